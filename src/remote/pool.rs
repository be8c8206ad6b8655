//! The proxy pool: the runner's appliances with their task slots. A chain is one task;
//! [`Pool::attempt`] gives it to an appliance with a free slot that knows the chain's
//! repositories, follows it (collecting the packs it writes as they land) and returns
//! its outcome — or, when the appliance stops answering or forgets the task, says it
//! was lost with the packs it had reported, which the caller indexes before it tries
//! again elsewhere ([`Redispatch`]). Waits run on the injected clock.
//!
//! Each task is asked for at every poll, which renews its lease on the appliance; a
//! runner that stops cancels its tasks and collects what they wrote, and a task whose
//! follower is dropped (an error elsewhere in the copy) is cancelled on the way out.
//! An address that reaches more than one appliance (a balancer) is refused when the
//! pool is made — probes on new connections meet each backend — and, should a later
//! answer come from another appliance, the chain fails saying so: it is never moved
//! silently.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};

use super::api::{API_VERSION, LEASES, TaskRequest, TaskState};
use super::client::{Appliance, RemoteError, Submitted};
use crate::clock::Clock;
use crate::copy::plan::ChainPlan;
use crate::copy::transfer::TransferOutcome;
use crate::format::index::IndexedPack;
use crate::progress::Progress;
use crate::stop::Stop;
use crate::{Error, Id, Result};

/// How long a lost appliance is left alone before it is asked again.
pub const REVIVE_AFTER: Duration = Duration::from_secs(5);

/// What to do with a chain whose appliance was lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redispatch {
    /// Another appliance of the pool; in-process when none is left.
    #[default]
    Pool,
    /// In-process, at once.
    Local,
    /// The chain fails (the next run copies it).
    Fail,
}

impl std::str::FromStr for Redispatch {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "pool" => Ok(Redispatch::Pool),
            "local" => Ok(Redispatch::Local),
            "fail" => Ok(Redispatch::Fail),
            _ => Err(format!("'{s}': redispatch is pool, local or fail")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// How often a task's state is asked for.
    pub poll: Duration,
    /// Failed polls in a row after which an appliance counts as lost.
    pub lost_after: u32,
    pub redispatch: Redispatch,
    /// How long an appliance keeps a task its runner stopped asking for.
    pub lease: Duration,
    /// Health requests on new connections to each address when the pool is made, to
    /// find an address that reaches several appliances.
    pub probes: usize,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            poll: Duration::from_millis(500),
            lost_after: 4,
            redispatch: Redispatch::Pool,
            lease: Duration::from_secs(15),
            probes: 4,
        }
    }
}

impl PoolOptions {
    /// How long a poll may wait for its answer: a few polls, within 2 to 10 seconds, so
    /// a hung appliance is lost in seconds (`lost_after` of them).
    pub fn request_timeout(&self) -> Duration {
        (self.poll * 4).clamp(Duration::from_secs(2), Duration::from_secs(10))
    }

    /// The lease asked for, in the range the API allows.
    pub fn lease_secs(&self) -> u64 {
        self.lease.as_secs().clamp(*LEASES.start(), *LEASES.end())
    }
}

struct Member {
    app: Appliance,
    slots: Arc<Semaphore>,
    down: AtomicBool,
    /// When it was lost, or last looked at since: a lost appliance is asked again now
    /// and then, and one that answers (restarted, say) takes tasks again.
    looked: std::sync::Mutex<Option<chrono::DateTime<chrono::Utc>>>,
    reviving: Mutex<()>,
    /// Repository id → the names this appliance knows it by (more than one: a copy of
    /// a repository under another prefix, which a task cannot tell apart by id).
    names: Mutex<HashMap<Id, Vec<String>>>,
}

/// The appliances a copy dispatches to.
pub struct Pool {
    members: Vec<Member>,
    opts: PoolOptions,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let urls: Vec<&str> = self.members.iter().map(|m| m.app.url()).collect();
        f.debug_struct("Pool").field("appliances", &urls).finish()
    }
}

/// A task that ran to its end on an appliance.
#[derive(Debug)]
pub struct Finished {
    pub appliance: String,
    pub plan: ChainPlan,
    pub outcome: TransferOutcome,
}

/// How one attempt ended.
#[derive(Debug)]
pub enum Attempt {
    Finished(Box<Finished>),
    /// The appliance was lost mid-task; the packs it reported are whole in the target.
    Lost {
        appliance: String,
        why: String,
        packs: Vec<IndexedPack>,
    },
    /// No live appliance of the pool can take the chain (none left, or none knows its
    /// repositories).
    NoAppliance(String),
    /// The runner was asked to stop: the task was cancelled, and the packs it wrote
    /// are whole in the target. `None`: asked before any appliance took the chain.
    Stopped {
        appliance: Option<String>,
        packs: Vec<IndexedPack>,
    },
    /// An answer came from another appliance than the one that took the task: the
    /// address reaches several. The chain must fail, loudly.
    Misrouted(String),
}

impl Pool {
    /// Reaches each appliance's `/v1/health` for its slots; those that do not answer,
    /// or speak another API version or format, are left out (and said so); at least one
    /// must answer. An address that reaches several appliances fails the whole pool:
    /// the configuration is wrong, and copying through it would lose tasks.
    pub async fn connect(
        apps: Vec<Appliance>,
        opts: PoolOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Pool> {
        if apps.is_empty() {
            return Err(Error::Invalid("no archiver to dispatch to".into()));
        }
        let mut members: Vec<Member> = Vec::new();
        let mut problems = Vec::new();
        for app in apps {
            let slots = match admit(&app, &opts).await {
                Ok(slots) => slots,
                Err(Admission::LeftOut(why)) => {
                    problems.push(why);
                    continue;
                }
                Err(Admission::Several(e)) => return Err(Error::Invalid(e.to_string())),
            };
            let instance = app.instance().unwrap_or_default();
            if let Some(other) = Pool::same_instance(&members, &instance) {
                tracing::warn!(
                    "archiver {} is the same appliance as {} (instance {instance}); taken once",
                    app.url(),
                    other.app.url()
                );
                continue;
            }
            members.push(Member {
                app,
                slots: Arc::new(Semaphore::new(slots.max(1))),
                down: AtomicBool::new(false),
                looked: std::sync::Mutex::new(None),
                reviving: Mutex::new(()),
                names: Mutex::default(),
            });
        }
        for p in &problems {
            tracing::warn!("archiver left out: {p}");
        }
        if members.is_empty() {
            return Err(Error::Invalid(format!(
                "no archiver answers: {}",
                problems.join("; ")
            )));
        }
        Ok(Pool {
            members,
            opts,
            clock,
        })
    }

    pub fn options(&self) -> &PoolOptions {
        &self.opts
    }

    /// Appliances in the pool, lost or not.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The member already taken that is `instance`.
    fn same_instance<'a>(members: &'a [Member], instance: &str) -> Option<&'a Member> {
        members
            .iter()
            .find(|m| m.app.instance().as_deref() == Some(instance))
    }

    /// Appliances not lost.
    pub fn alive(&self) -> usize {
        let up = |m: &&Member| !m.down.load(Ordering::SeqCst);
        self.members.iter().filter(up).count()
    }

    /// Task slots over the live appliances.
    pub fn slots(&self) -> usize {
        let up = |m: &&Member| !m.down.load(Ordering::SeqCst);
        let n = self.members.iter().filter(up);
        n.map(|m| m.slots.available_permits()).sum::<usize>().max(1)
    }

    /// The names `m` knows the repositories `ids` by; `None` if it lacks one, or knows
    /// one by two names (said once in the log: its configuration should name it once).
    /// Why it does not, when its repositories say (one that does not open goes into
    /// `unopened`).
    async fn names(
        &self,
        m: &Member,
        ids: &[Id],
        unopened: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        let lookup = |names: &HashMap<Id, Vec<String>>| -> Option<Vec<String>> {
            ids.iter()
                .map(|id| match names.get(id).map(Vec::as_slice) {
                    Some([one]) => Some(one.clone()),
                    _ => None,
                })
                .collect()
        };
        if let Some(found) = lookup(&*m.names.lock().await) {
            return Some(found);
        }
        // Asked again each time one is missing: a target made since is found.
        let infos = match m.app.repositories().await {
            Ok(i) => i,
            Err(RemoteError::Elsewhere { .. }) if self.restarted(m).await => {
                m.app.repositories().await.ok()?
            }
            Err(e) => {
                self.lose(m, &e.to_string());
                return None;
            }
        };
        let mut names: HashMap<Id, Vec<String>> = HashMap::new();
        for i in infos {
            match (i.id, i.error) {
                (Some(id), _) => names.entry(id).or_default().push(i.name),
                (None, Some(e)) => unopened.push(format!("{}: {e}", m.app.url())),
                (None, None) => {}
            }
        }
        for id in ids {
            if let Some(n) = names.get(id).filter(|n| n.len() > 1) {
                tracing::warn!(
                    "archiver {} knows repository {} by {} names ({}): a task cannot tell \
                     which is meant, so it gets none of this repository's chains",
                    m.app.url(),
                    id.short(),
                    n.len(),
                    n.join(", ")
                );
            }
        }
        let found = lookup(&names);
        *m.names.lock().await = names;
        found
    }

    /// Runs `req` (its `sources` and `target` are filled in here, from the appliance's
    /// names for `source_ids` and `target_id`, and its lease from the options) on one
    /// appliance of the pool. `stop` cancels it.
    pub async fn attempt(
        &self,
        req: &TaskRequest,
        source_ids: &[Id],
        target_id: Id,
        stop: &Stop,
        progress: &Progress,
    ) -> Attempt {
        let mut ids = source_ids.to_vec();
        ids.push(target_id);
        loop {
            self.revive().await;
            let mut candidates = 0;
            let mut unopened = Vec::new();
            let mut tried = vec![false; self.members.len()];
            // The appliance with the most free slots first (looked at afresh for each
            // pick, so chains dispatched together spread over the pool).
            loop {
                let pick = (self.members.iter().enumerate())
                    .filter(|(i, m)| !tried[*i] && !m.down.load(Ordering::SeqCst))
                    .max_by_key(|(i, m)| (m.slots.available_permits(), std::cmp::Reverse(*i)));
                let Some((i, m)) = pick else { break };
                tried[i] = true;
                let Ok(permit) = m.slots.clone().try_acquire_owned() else {
                    // Busy now, free later.
                    candidates += 1;
                    continue;
                };
                let Some(mut names) = self.names(m, &ids, &mut unopened).await else {
                    continue;
                };
                candidates += 1;
                let target = names.pop().unwrap_or_default();
                let req = TaskRequest {
                    sources: names,
                    target,
                    lease_secs: Some(self.opts.lease_secs()),
                    ..req.clone()
                };
                match m.app.submit(&req).await {
                    Ok(Submitted::Taken(id)) => {
                        let out = self.follow(m, &id, &req, stop, progress).await;
                        drop(permit);
                        return out;
                    }
                    // Another runner took the slot: try the others, then wait.
                    Ok(Submitted::Busy) => continue,
                    // Restarted since: a whole new appliance at the address; try again.
                    Err(RemoteError::Elsewhere { .. }) if self.restarted(m).await => continue,
                    Err(e @ RemoteError::Elsewhere { .. }) => {
                        return Attempt::Misrouted(e.to_string());
                    }
                    Err(RemoteError::Unreachable { what, .. }) => {
                        self.lose(m, &what);
                    }
                    Err(e) => return Attempt::NoAppliance(e.to_string()),
                }
            }
            if candidates == 0 {
                let mut why = match self.alive() {
                    0 => "every archiver of the pool was lost".to_string(),
                    _ => "no live archiver knows the chain's repositories".to_string(),
                };
                if !unopened.is_empty() {
                    why.push_str(&format!(" (not open there: {})", unopened.join("; ")));
                }
                return Attempt::NoAppliance(why);
            }
            if stop.is_stopped() {
                return Attempt::Stopped {
                    appliance: None,
                    packs: Vec::new(),
                };
            }
            self.clock.sleep(self.opts.poll).await;
        }
    }

    fn lose(&self, m: &Member, why: &str) {
        *m.looked.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.clock.now());
        if !m.down.swap(true, Ordering::SeqCst) {
            tracing::warn!("archiver {} lost: {why}", m.app.url());
        }
    }

    /// Whether another instance answering at `m`'s address is the appliance restarted
    /// (probes on new connections meet only it: it is taken as `m` from now on) rather
    /// than a balancer in front of several.
    async fn restarted(&self, m: &Member) -> bool {
        let before = m.app.instance();
        m.app.forget_instance();
        match admit(&m.app, &self.opts).await {
            Ok(_) => {
                m.names.lock().await.clear();
                let now = m.app.instance().unwrap_or_default();
                tracing::info!(
                    "archiver {} answers again (instance {} now, {} before)",
                    m.app.url(),
                    now,
                    before.unwrap_or_default()
                );
                true
            }
            Err(Admission::Several(e)) => {
                tracing::warn!("{e}");
                false
            }
            Err(Admission::LeftOut(why)) => {
                self.lose(m, &why);
                false
            }
        }
    }

    /// Asks lost appliances again, each at most once per [`REVIVE_AFTER`]: one that
    /// answers as a whole appliance (it restarted, or its network came back) takes
    /// tasks again — as a new instance, which the probes check like a new one.
    async fn revive(&self) {
        let now = self.clock.now();
        let after = chrono::Duration::from_std(REVIVE_AFTER).unwrap_or_default();
        for m in self
            .members
            .iter()
            .filter(|m| m.down.load(Ordering::SeqCst))
        {
            // One chain asks; the others wait for its answer rather than give up on
            // an appliance that is coming back.
            let _asking = m.reviving.lock().await;
            if !m.down.load(Ordering::SeqCst) {
                continue;
            }
            {
                let mut looked = m.looked.lock().unwrap_or_else(|e| e.into_inner());
                if looked.is_some_and(|t| now.signed_duration_since(t) < after) {
                    continue;
                }
                *looked = Some(now);
            }
            if self.restarted(m).await {
                m.down.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Follows task `id` on `m` to its end, collecting its packs as they land; cancels
    /// it when `stop` is asked (and collects what it wrote until then), and when this
    /// future is dropped before the task ended.
    async fn follow(
        &self,
        m: &Member,
        id: &str,
        task: &TaskRequest,
        stop: &Stop,
        progress: &Progress,
    ) -> Attempt {
        let timeout = self.opts.request_timeout();
        let mut guard = CancelOnDrop::new(&m.app, id, timeout);
        let mut seen = Seen::default();
        let mut failures = 0;
        let mut cancelled = false;
        let appliance = m.app.url().to_string();
        loop {
            tokio::select! {
                _ = self.clock.sleep(self.opts.poll) => {}
                _ = stop.stopped(), if !cancelled => {}
            }
            if stop.is_stopped() && !cancelled {
                cancelled = true;
                tracing::info!(
                    "{}: stopping; cancelling its task on {appliance}",
                    task.chain
                );
                if let Err(e) = m.app.cancel(id, timeout).await {
                    tracing::warn!("{}: the cancel did not reach {appliance}: {e}", task.chain);
                }
            }
            let st = match m.app.status(id, seen.packs.len(), timeout).await {
                Ok(st) => st,
                Err(RemoteError::Elsewhere { .. }) if self.restarted(m).await => {
                    let why = "the archiver restarted (a new instance answers there); the task \
                               is gone";
                    return Attempt::Lost {
                        appliance,
                        why: why.into(),
                        packs: seen.packs,
                    };
                }
                Err(e @ RemoteError::Elsewhere { .. }) => return Attempt::Misrouted(e.to_string()),
                Err(RemoteError::Unreachable { what, .. })
                    if failures + 1 < self.opts.lost_after =>
                {
                    failures += 1;
                    tracing::debug!("{appliance}: poll failed ({what}); trying again");
                    continue;
                }
                Err(e) => {
                    let why = match e {
                        RemoteError::Unreachable { what, .. } => what,
                        e => e.to_string(),
                    };
                    self.lose(m, &why);
                    let packs = seen.packs;
                    return match cancelled {
                        true => Attempt::Stopped {
                            appliance: Some(appliance),
                            packs,
                        },
                        false => Attempt::Lost {
                            appliance,
                            why,
                            packs,
                        },
                    };
                }
            };
            failures = 0;
            seen.take(&st, progress);
            if !st.state.is_finished() {
                continue;
            }
            guard.disarm();
            return match (st.state, st.result) {
                _ if cancelled => Attempt::Stopped {
                    appliance: Some(appliance),
                    packs: seen.packs,
                },
                (TaskState::Done, Some(result)) => {
                    let (plan, outcome) = result.into_engine(&task.chain, task.mode, seen.packs);
                    Attempt::Finished(Box::new(Finished {
                        appliance,
                        plan,
                        outcome,
                    }))
                }
                // A task cancelled that this runner did not cancel: the appliance is
                // shutting down, and what it did not bring goes elsewhere like a lost
                // one's.
                (TaskState::Cancelled, _) => Attempt::Lost {
                    why: "the archiver stopped the task (shutting down)".into(),
                    appliance,
                    packs: seen.packs,
                },
                (_, _) => Attempt::Lost {
                    why: st
                        .error
                        .unwrap_or_else(|| "the task ended without an outcome".into()),
                    appliance,
                    packs: seen.packs,
                },
            };
        }
    }
}

/// What a follower has seen of its task: the packs so far, and the bytes reported.
#[derive(Default)]
struct Seen {
    packs: Vec<IndexedPack>,
    total: u64,
    done: u64,
}

impl Seen {
    fn take(&mut self, st: &super::api::TaskStatus, progress: &Progress) {
        if st.packs_from == self.packs.len() {
            self.packs.extend(st.packs.iter().cloned());
        }
        if st.bytes_total > self.total {
            progress.add_total(st.bytes_total - self.total);
            self.total = st.bytes_total;
        }
        if st.bytes_done > self.done {
            progress.add_bytes(st.bytes_done - self.done);
            self.done = st.bytes_done;
        }
    }
}

/// Cancels a task whose follower is dropped before the task ended (the copy failed or
/// was dropped elsewhere): best effort, on the runtime, without waiting; the task's
/// lease ends it should the cancel not arrive.
struct CancelOnDrop {
    app: Option<Appliance>,
    id: String,
    timeout: Duration,
}

impl CancelOnDrop {
    fn new(app: &Appliance, id: &str, timeout: Duration) -> CancelOnDrop {
        CancelOnDrop {
            app: Some(app.clone()),
            id: id.to_string(),
            timeout,
        }
    }

    fn disarm(&mut self) {
        self.app = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(app) = self.app.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (id, timeout) = (std::mem::take(&mut self.id), self.timeout);
        rt.spawn(async move {
            if let Err(e) = app.cancel(&id, timeout).await {
                tracing::debug!("task {id}: cancel on the way out did not arrive: {e}");
            }
        });
    }
}

/// Why an appliance is not taken into the pool.
enum Admission {
    /// Unreachable, or of another version: the others may do.
    LeftOut(String),
    /// Its address reaches several appliances.
    Several(RemoteError),
}

/// Health, version and format of `app`, and probes on new connections that must all
/// meet the instance its health answer came from; its task slots.
async fn admit(app: &Appliance, opts: &PoolOptions) -> std::result::Result<usize, Admission> {
    let h = app
        .health()
        .await
        .map_err(|e| Admission::LeftOut(e.to_string()))?;
    tracing::info!(
        "archiver {}: version {}, instance {}, {} task slot(s)",
        app.url(),
        h.version,
        h.instance,
        h.slots
    );
    if h.api != API_VERSION {
        return Err(Admission::LeftOut(format!(
            "{}: speaks archiver API version {}, this runner {API_VERSION}: run the same \
             release on both",
            app.url(),
            h.api,
        )));
    }
    if h.format != crate::format::VERSION {
        return Err(Admission::LeftOut(format!(
            "{}: writes repository format {}, this runner {}",
            app.url(),
            h.format,
            crate::format::VERSION
        )));
    }
    let met = app
        .probe(opts.probes)
        .await
        .map_err(|e| Admission::LeftOut(e.to_string()))?;
    if let Some(other) = met.into_iter().find(|i| *i != h.instance) {
        return Err(Admission::Several(RemoteError::Elsewhere {
            url: app.url().to_string(),
            expected: h.instance,
            got: other,
        }));
    }
    Ok(h.slots)
}
