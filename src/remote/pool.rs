//! The proxy pool: the runner's appliances with their task slots. A chain is one task;
//! [`Pool::attempt`] gives it to an appliance with a free slot that knows the chain's
//! repositories, follows it (collecting the packs it writes as they land) and returns
//! its outcome — or, when the appliance stops answering or forgets the task, says it
//! was lost with the packs it had reported, which the caller indexes before it tries
//! again elsewhere ([`Redispatch`]). Waits run on the injected clock.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};

use super::api::{API_VERSION, TaskRequest, TaskState};
use super::client::{Appliance, RemoteError, Submitted};
use crate::clock::Clock;
use crate::copy::plan::ChainPlan;
use crate::copy::transfer::TransferOutcome;
use crate::format::index::IndexedPack;
use crate::progress::Progress;
use crate::{Error, Id, Result};

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
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            poll: Duration::from_millis(500),
            lost_after: 4,
            redispatch: Redispatch::Pool,
        }
    }
}

struct Member {
    app: Appliance,
    slots: Arc<Semaphore>,
    down: AtomicBool,
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
}

impl Pool {
    /// Reaches each appliance's `/v1/health` for its slots; those that do not answer
    /// are left out (and said so). At least one must answer.
    pub async fn connect(
        apps: Vec<Appliance>,
        opts: PoolOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Pool> {
        if apps.is_empty() {
            return Err(Error::Invalid("no archiver to dispatch to".into()));
        }
        let mut members = Vec::new();
        let mut problems = Vec::new();
        for app in apps {
            match app.health().await {
                Ok(h) => {
                    tracing::info!(
                        "archiver {}: version {}, {} task slot(s)",
                        app.url(),
                        h.version,
                        h.slots
                    );
                    if h.api != API_VERSION {
                        problems.push(format!(
                            "{}: speaks archiver API version {}, this runner {API_VERSION}: run \
                             the same release on both",
                            app.url(),
                            h.api,
                        ));
                        continue;
                    }
                    if h.format != crate::format::VERSION {
                        problems.push(format!(
                            "{}: writes repository format {}, this runner {}",
                            app.url(),
                            h.format,
                            crate::format::VERSION
                        ));
                        continue;
                    }
                    members.push(Member {
                        app,
                        slots: Arc::new(Semaphore::new(h.slots.max(1))),
                        down: AtomicBool::new(false),
                        names: Mutex::default(),
                    });
                }
                Err(e) => problems.push(e.to_string()),
            }
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
    async fn names(&self, m: &Member, ids: &[Id]) -> Option<Vec<String>> {
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
        let infos = m.app.repositories().await.ok()?;
        let mut names: HashMap<Id, Vec<String>> = HashMap::new();
        for i in infos {
            if let Some(id) = i.id {
                names.entry(id).or_default().push(i.name);
            }
        }
        for id in ids {
            if let Some(n) = names.get(id).filter(|n| n.len() > 1) {
                tracing::warn!(
                    "archiver {} knows repository {} by {} names ({}): a task cannot tell                      which is meant, so it gets none of this repository's chains",
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
    /// names for `source_ids` and `target_id`) on one appliance of the pool.
    pub async fn attempt(
        &self,
        req: &TaskRequest,
        source_ids: &[Id],
        target_id: Id,
        progress: &Progress,
    ) -> Attempt {
        let mut ids = source_ids.to_vec();
        ids.push(target_id);
        loop {
            let mut candidates = 0;
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
                let Some(mut names) = self.names(m, &ids).await else {
                    continue;
                };
                candidates += 1;
                let target = names.pop().unwrap_or_default();
                let req = TaskRequest {
                    sources: names,
                    target,
                    ..req.clone()
                };
                match m.app.submit(&req).await {
                    Ok(Submitted::Taken(id)) => {
                        let out = self.follow(m, &id, &req, progress).await;
                        drop(permit);
                        return out;
                    }
                    // Another runner took the slot: try the others, then wait.
                    Ok(Submitted::Busy) => continue,
                    Err(RemoteError::Unreachable { what, .. }) => {
                        self.lose(m, &what);
                    }
                    Err(e) => return Attempt::NoAppliance(e.to_string()),
                }
            }
            if candidates == 0 {
                return Attempt::NoAppliance(match self.alive() {
                    0 => "every archiver of the pool was lost".to_string(),
                    _ => "no live archiver knows the chain's repositories".to_string(),
                });
            }
            self.clock.sleep(self.opts.poll).await;
        }
    }

    fn lose(&self, m: &Member, why: &str) {
        if !m.down.swap(true, Ordering::SeqCst) {
            tracing::warn!("archiver {} lost: {why}", m.app.url());
        }
    }

    /// Follows task `id` on `m` to its end, collecting its packs as they land.
    async fn follow(
        &self,
        m: &Member,
        id: &str,
        task: &TaskRequest,
        progress: &Progress,
    ) -> Attempt {
        let mut packs: Vec<IndexedPack> = Vec::new();
        let (mut total, mut done) = (0u64, 0u64);
        let mut failures = 0;
        loop {
            self.clock.sleep(self.opts.poll).await;
            let st = match m.app.status(id, packs.len()).await {
                Ok(st) => st,
                Err(RemoteError::Unreachable { what, .. }) => {
                    failures += 1;
                    if failures < self.opts.lost_after {
                        continue;
                    }
                    self.lose(m, &what);
                    return Attempt::Lost {
                        appliance: m.app.url().to_string(),
                        why: what,
                        packs,
                    };
                }
                Err(e) => {
                    let why = e.to_string();
                    self.lose(m, &why);
                    return Attempt::Lost {
                        appliance: m.app.url().to_string(),
                        why,
                        packs,
                    };
                }
            };
            failures = 0;
            if st.packs_from == packs.len() {
                packs.extend(st.packs);
            }
            if st.bytes_total > total {
                progress.add_total(st.bytes_total - total);
                total = st.bytes_total;
            }
            if st.bytes_done > done {
                progress.add_bytes(st.bytes_done - done);
                done = st.bytes_done;
            }
            if !st.state.is_finished() {
                continue;
            }
            let appliance = m.app.url().to_string();
            return match (st.state, st.result) {
                (TaskState::Done, Some(result)) => {
                    let (plan, outcome) = result.into_engine(&task.chain, task.mode, packs);
                    Attempt::Finished(Box::new(Finished {
                        appliance,
                        plan,
                        outcome,
                    }))
                }
                // This runner cancels nothing: a cancelled task is an appliance shutting
                // down, and what it did not bring goes elsewhere like a lost one's.
                (TaskState::Cancelled, _) => Attempt::Lost {
                    why: "the archiver stopped the task (shutting down)".into(),
                    appliance,
                    packs,
                },
                (_, _) => Attempt::Lost {
                    why: st
                        .error
                        .unwrap_or_else(|| "the task ended without an outcome".into()),
                    appliance,
                    packs,
                },
            };
        }
    }
}
