//! The appliance's task table: at most `slots` tasks run at once (a task past that is
//! refused, and the runner tries another appliance or waits); each runs on its own tokio
//! task, reports bytes and the packs it wrote as they land, and can be cancelled — it
//! then stops at a pack boundary. Finished tasks are kept (the newest [`KEEP_FINISHED`])
//! so the runner can collect their outcome.
//!
//! A task lives while its runner polls: each status request renews its lease, and a
//! task whose lease runs out (its runner died, was stopped, or lost the address) is
//! cancelled at a pack boundary by [`Tasks::expire_leases`]. A stopping appliance
//! takes no task, stops the running ones at a pack boundary and keeps answering their
//! status until every runner has collected what its task wrote ([`Tasks::drained`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::api::{TaskRequest, TaskResult, TaskState, TaskStatus};
use super::tokens::TokenSpec;
use super::workshop::{Refusal, Workshop};
use crate::clock::Clock;
use crate::format::index::IndexedPack;
use crate::progress::{Observer, Progress};
use crate::stop::Stop;

/// Finished tasks remembered for their runner.
pub const KEEP_FINISHED: usize = 256;

/// The lease of a task that asks for none.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// Why a task was not taken.
#[derive(Debug, thiserror::Error)]
pub enum NotTaken {
    #[error("all {0} task slots are busy; try another appliance or again later")]
    Busy(usize),
    #[error("the appliance is shutting down")]
    Stopping,
    #[error(transparent)]
    Refused(#[from] Refusal),
}

struct Entry {
    status: TaskStatus,
    /// The token that submitted it: only it (or an admin) sees and cancels it.
    owner: String,
    packs: Vec<IndexedPack>,
    stop: Stop,
    /// Order of submission, to forget the oldest finished first.
    seq: u64,
    /// The runner's last poll (or the submission), and how long the task lives without one.
    seen: DateTime<Utc>,
    lease: Duration,
    /// Finished, and its runner has had every pack and the result since.
    collected: bool,
}

impl Entry {
    fn lease_ran_out(&self, now: DateTime<Utc>) -> bool {
        let lease = chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX);
        now.signed_duration_since(self.seen) > lease
    }
}

#[derive(Default)]
struct Table {
    tasks: BTreeMap<String, Entry>,
    next_seq: u64,
}

/// What the appliance counts over its life (exported as metrics).
#[derive(Clone, Debug, Default)]
pub struct Totals {
    pub done: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub bytes: u64,
    pub packs: u64,
    pub pack_bytes: u64,
    /// Tasks cancelled because their runner stopped polling.
    pub leases_expired: u64,
}

pub struct Tasks {
    /// This process's id, in every answer: runners tell appliances behind one address
    /// apart by it.
    pub instance: String,
    slots: usize,
    workshop: Arc<Workshop>,
    clock: Arc<dyn Clock>,
    table: Mutex<Table>,
    totals: Mutex<Totals>,
    /// Set when the appliance shuts down: running tasks stop at a pack boundary.
    pub stopping: Stop,
    /// The lease of a task that asks for none, in seconds.
    default_lease: std::sync::atomic::AtomicU64,
}

impl Tasks {
    /// The task table; inside a tokio runtime it also starts the watch on leases (once
    /// a second on `clock`, for as long as the table lives).
    pub fn new(slots: usize, workshop: Arc<Workshop>, clock: Arc<dyn Clock>) -> Arc<Tasks> {
        let tasks = Arc::new(Tasks {
            instance: instance_id(),
            slots: slots.max(1),
            workshop,
            clock: clock.clone(),
            table: Mutex::default(),
            totals: Mutex::default(),
            stopping: Stop::new(),
            default_lease: DEFAULT_LEASE.as_secs().into(),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Tasks> = Arc::downgrade(&tasks);
            rt.spawn(async move {
                loop {
                    clock.sleep(Duration::from_secs(1)).await;
                    match weak.upgrade() {
                        Some(t) => t.expire_leases(),
                        None => break,
                    }
                }
            });
        }
        tasks
    }

    /// The lease of tasks that ask for none (`DEFAULT_LEASE` unless set).
    pub fn set_default_lease(&self, lease: Duration) {
        let secs = lease.as_secs().max(1);
        (self.default_lease).store(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// Cancels (at a pack boundary) every running task whose runner has not polled
    /// within its lease.
    pub fn expire_leases(&self) {
        let now = self.clock.now();
        let mut expired = 0;
        for (id, e) in self.table().tasks.iter() {
            if !e.status.state.is_finished() && !e.stop.is_stopped() && e.lease_ran_out(now) {
                tracing::warn!(
                    "task {id}: chain {}: no poll for {:?} (its lease); stopping it at a pack \
                     boundary",
                    e.status.chain,
                    e.lease
                );
                e.stop.stop();
                expired += 1;
            }
        }
        if expired > 0 {
            self.totals
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .leases_expired += expired;
        }
    }

    /// Tasks a runner still has to collect: running, or finished but not yet asked for
    /// since (unless its lease ran out unasked: its runner is gone).
    pub fn outstanding(&self) -> usize {
        let now = self.clock.now();
        let t = self.table();
        let open =
            |e: &&Entry| !e.status.state.is_finished() || !(e.collected || e.lease_ran_out(now));
        t.tasks.values().filter(open).count()
    }

    /// Nothing left for a runner ([`Tasks::outstanding`] is 0).
    pub fn drained(&self) -> bool {
        self.outstanding() == 0
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn totals(&self) -> Totals {
        self.totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn workshop(&self) -> &Arc<Workshop> {
        &self.workshop
    }

    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Tasks running now.
    pub fn busy(&self) -> usize {
        let t = self.table();
        t.tasks
            .values()
            .filter(|e| !e.status.state.is_finished())
            .count()
    }

    /// Takes a task from `caller` if a slot is free; returns its id.
    pub fn submit(
        self: &Arc<Self>,
        req: TaskRequest,
        caller: &TokenSpec,
    ) -> Result<String, NotTaken> {
        if self.stopping.is_stopped() {
            return Err(NotTaken::Stopping);
        }
        self.workshop.check_names(&req, caller)?;
        let id = hex::encode(crate::crypto::random_bytes::<12>());
        let stop = Stop::new();
        {
            let mut t = self.table();
            let running = t
                .tasks
                .values()
                .filter(|e| !e.status.state.is_finished())
                .count();
            if running >= self.slots {
                return Err(NotTaken::Busy(self.slots));
            }
            t.next_seq += 1;
            let seq = t.next_seq;
            t.tasks.insert(
                id.clone(),
                Entry {
                    owner: caller.name.clone(),
                    status: TaskStatus {
                        id: id.clone(),
                        chain: req.chain.clone(),
                        state: TaskState::Planning,
                        started: self.clock.now(),
                        finished: None,
                        bytes_total: 0,
                        bytes_done: 0,
                        packs_done: 0,
                        packs_from: 0,
                        packs: Vec::new(),
                        result: None,
                        error: None,
                    },
                    packs: Vec::new(),
                    stop: stop.clone(),
                    seq,
                    seen: self.clock.now(),
                    lease: Duration::from_secs(req.lease_secs.unwrap_or_else(|| {
                        (self.default_lease).load(std::sync::atomic::Ordering::Relaxed)
                    })),
                    collected: false,
                },
            );
            forget_oldest_finished(&mut t);
        }
        tracing::info!("task {id}: chain {} taken", req.chain);
        let me = self.clone();
        let task_id = id.clone();
        // The transfer's future borrows across awaits in ways the compiler cannot prove
        // `Send` for every lifetime, so a task runs on a thread of its own that drives it
        // with the runtime's handle (its reads, uploads and CPU work still go to the
        // runtime's pools); one thread per task slot.
        let handle = tokio::runtime::Handle::current();
        let started = std::thread::Builder::new()
            .name(format!("task-{id}"))
            .spawn(move || {
                handle.block_on(async move {
                    let progress = Progress::new(Arc::new(TaskObserver {
                        tasks: me.clone(),
                        id: task_id.clone(),
                    }));
                    // Cancelled, or the appliance stopping: either ends it at a pack boundary.
                    let workshop = me.workshop.clone();
                    let result = me
                        .stopping
                        .with(stop.stopped(), |child| async move {
                            workshop.run(&req, child, &progress).await
                        })
                        .await;
                    let stopped = stop.is_stopped() || me.stopping.is_stopped();
                    me.finish(&task_id, result, stopped);
                })
            });
        if let Err(e) = started {
            let err = crate::Error::Internal(format!("cannot start a task thread: {e}"));
            self.finish(&id, Err(err), false);
        }
        Ok(id)
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Entry)) {
        if let Some(e) = self.table().tasks.get_mut(id) {
            f(e);
        }
    }

    fn finish(
        &self,
        id: &str,
        result: crate::Result<(crate::copy::plan::ChainPlan, crate::copy::TransferOutcome)>,
        stopped: bool,
    ) {
        let now = self.clock.now();
        let mut totals = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        self.update(id, |e| {
            e.status.finished = Some(now);
            match result {
                Ok((plan, mut outcome)) => {
                    e.status.state = match stopped {
                        true => TaskState::Cancelled,
                        false => TaskState::Done,
                    };
                    // The packs went out one by one as they landed; the outcome's list
                    // is the same, in full.
                    e.packs = std::mem::take(&mut outcome.packs);
                    e.status.packs_done = e.packs.len();
                    e.status.result = Some(TaskResult::new(plan, outcome));
                }
                Err(err) => {
                    e.status.state = TaskState::Failed;
                    e.status.error = Some(err.to_string());
                }
            }
            match e.status.state {
                TaskState::Done => totals.done += 1,
                TaskState::Cancelled => totals.cancelled += 1,
                _ => totals.failed += 1,
            }
            let how = match &e.status.error {
                Some(err) => format!("failed: {err}"),
                None => format!("{:?}, {} pack(s)", e.status.state, e.packs.len()),
            };
            tracing::info!("task {id}: chain {} {how}", e.status.chain);
        });
    }

    /// The task's status with the packs from `packs_from` on; its runner's poll, which
    /// renews the lease (and, once it is finished, collects it).
    pub fn status(&self, id: &str, packs_from: usize, caller: &TokenSpec) -> Option<TaskStatus> {
        let now = self.clock.now();
        let mut t = self.table();
        let e = t.tasks.get_mut(id).filter(|e| caller.may_see(&e.owner))?;
        e.seen = now;
        let mut s = e.status.clone();
        s.packs_from = packs_from.min(e.packs.len());
        s.packs = e.packs[s.packs_from..].to_vec();
        if s.state.is_finished() {
            e.collected = true;
        }
        Some(s)
    }

    /// Every task `caller` may see, without packs or result.
    pub fn list(&self, caller: &TokenSpec) -> Vec<TaskStatus> {
        let t = self.table();
        let mut all: Vec<(u64, TaskStatus)> = t
            .tasks
            .values()
            .filter(|e| caller.may_see(&e.owner))
            .map(|e| {
                let mut s = e.status.clone();
                s.result = None;
                (e.seq, s)
            })
            .collect();
        all.sort_by_key(|(seq, _)| *seq);
        all.into_iter().map(|(_, s)| s).collect()
    }

    /// Asks a task to stop at its next pack boundary; `false` if there is no such task
    /// that `caller` may see.
    pub fn cancel(&self, id: &str, caller: &TokenSpec) -> bool {
        let t = self.table();
        match t.tasks.get(id).filter(|e| caller.may_see(&e.owner)) {
            Some(e) => {
                e.stop.stop();
                true
            }
            None => false,
        }
    }
}

/// `HOST-RANDOM`: the host name (a pod's or a container's) for the reader of logs, and
/// random bits so two processes on one host differ.
fn instance_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && h.len() <= 64 && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or_else(|| "archiver".into());
    format!("{host}-{}", hex::encode(crate::crypto::random_bytes::<4>()))
}

fn forget_oldest_finished(t: &mut Table) {
    let mut finished: Vec<(u64, String)> = t
        .tasks
        .iter()
        .filter(|(_, e)| e.status.state.is_finished())
        .map(|(id, e)| (e.seq, id.clone()))
        .collect();
    if finished.len() <= KEEP_FINISHED {
        return;
    }
    finished.sort();
    let excess = finished.len() - KEEP_FINISHED;
    for (_, id) in finished.into_iter().take(excess) {
        t.tasks.remove(&id);
    }
}

/// Keeps a task's counters and pack list as the transfer reports them.
struct TaskObserver {
    tasks: Arc<Tasks>,
    id: String,
}

impl Observer for TaskObserver {
    fn add_total(&self, bytes: u64) {
        self.tasks.update(&self.id, |e| {
            e.status.bytes_total += bytes;
            e.status.state = TaskState::Running;
        });
    }

    fn add_bytes(&self, bytes: u64) {
        self.tasks
            .update(&self.id, |e| e.status.bytes_done += bytes);
        self.tasks
            .totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bytes += bytes;
    }

    fn pack_written(&self, pack: &IndexedPack) {
        self.tasks.update(&self.id, |e| {
            e.packs.push(pack.clone());
            e.status.packs_done = e.packs.len();
        });
        let mut totals = self.tasks.totals.lock().unwrap_or_else(|e| e.into_inner());
        totals.packs += 1;
        totals.pack_bytes += pack.size;
    }
}
