//! The appliance's side of a task: the repositories it may touch (by name, opened on
//! first use with the passwords its own configuration names), and the work itself —
//! plan the chain against the target as it is, then transfer — with the same library
//! code an in-process copy runs. It writes packs only; the runner commits.
//!
//! Planning needs each source's index and the target's points and index. Those are
//! kept between tasks: a source's index is read again only when its index files
//! changed (one LIST), the target's state is refreshed with what was added since (its
//! new point and index objects only).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{Mutex, RwLock};

use super::api::{RepositoryHealth, RepositoryInfo, RepositoryState, TaskRequest};
use super::tokens::TokenSpec;
use crate::clock::Clock;
use crate::copy::plan::{ChainPlan, plan_chain};
use crate::copy::select::Candidate;
use crate::copy::source::Source;
use crate::copy::target::TargetState;
use crate::copy::transfer::{TransferOutcome, transfer};
use crate::copy::{ReadBudget, TransferOptions};
use crate::progress::Progress;
use crate::repo::{MasterIndex, Repository, WarmSpec};
use crate::secret::Secret;
use crate::stop::Stop;
use crate::{Error, Id, Result};

/// A repository the appliance may touch.
#[derive(Clone, Debug)]
pub struct RepoSpec {
    pub name: String,
    pub url: String,
    pub password: Secret,
    pub role: Role,
}

pub use super::api::Role;

/// A source index and the index files it was read from.
struct CachedIndex {
    files: Vec<String>,
    index: Arc<MasterIndex>,
}

/// A target's name, its sources' ids and `map`: what a target state is planned for.
type TargetKey = (String, Vec<Id>, bool);

/// A repository that did not open: why, since when, and when to try again.
#[derive(Clone, Debug)]
struct Failed {
    error: String,
    since: chrono::DateTime<chrono::Utc>,
    retry_at: chrono::DateTime<chrono::Utc>,
    tries: u32,
}

/// The repositories and what is kept of them between tasks.
pub struct Workshop {
    specs: BTreeMap<String, RepoSpec>,
    clock: Arc<dyn Clock>,
    opened: Mutex<HashMap<String, Arc<Repository>>>,
    /// The names in `opened`, readable while an opening holds it (for health).
    open_names: std::sync::Mutex<HashSet<String>>,
    failures: std::sync::Mutex<BTreeMap<String, Failed>>,
    indexes: Mutex<HashMap<String, CachedIndex>>,
    /// Per target name, sources and `map`: its state as planning sees it.
    targets: Mutex<HashMap<TargetKey, Arc<RwLock<TargetState>>>>,
    /// Source bytes held at once, over all tasks.
    budget: ReadBudget,
    /// Bandwidth for every store it opens (S3 and Azure), when limited.
    throttle: Option<Arc<crate::store::throttle::Throttle>>,
}

/// Why a task cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("no repository named {0:?} on this appliance")]
    UnknownRepository(String),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "repository {0:?} is a source on this appliance (role = \"source\"): an appliance \
         never writes into a source"
    )]
    NotATarget(String),
    #[error("this token may not use repository {0:?}")]
    NotAllowed(String),
}

impl Workshop {
    pub fn new(specs: Vec<RepoSpec>, clock: Arc<dyn Clock>) -> Workshop {
        Workshop {
            specs: specs.into_iter().map(|s| (s.name.clone(), s)).collect(),
            clock,
            opened: Mutex::default(),
            open_names: Default::default(),
            failures: Default::default(),
            indexes: Mutex::default(),
            targets: Mutex::default(),
            budget: ReadBudget::default(),
            throttle: None,
        }
    }

    /// Sends every store's traffic through `throttle` (a cap on the appliance's reads
    /// and writes, say to leave bandwidth to the backups next to it).
    pub fn with_throttle(mut self, throttle: Arc<crate::store::throttle::Throttle>) -> Workshop {
        self.throttle = Some(throttle);
        self
    }

    /// Adds a repository opened already (tests: one over an injected store).
    pub fn with_opened(mut self, name: &str, repo: Arc<Repository>) -> Workshop {
        let spec = RepoSpec {
            name: name.to_string(),
            url: repo.url().to_string(),
            password: Secret::Env(String::new()),
            role: Role::Target,
        };
        self.specs.insert(name.to_string(), spec);
        self.opened.get_mut().insert(name.to_string(), repo);
        self.open_names().insert(name.to_string());
        self
    }

    /// Checks that every repository a request names is configured here, that `caller`
    /// may use it, and that its target is one (a source is never written).
    pub fn check_names(
        &self,
        req: &TaskRequest,
        caller: &TokenSpec,
    ) -> std::result::Result<(), Refusal> {
        req.validate().map_err(Refusal::Invalid)?;
        for n in req.sources.iter().chain([&req.target]) {
            if !caller.may_use(n) {
                return Err(Refusal::NotAllowed(n.clone()));
            }
            if !self.specs.contains_key(n) {
                return Err(Refusal::UnknownRepository(n.clone()));
            }
        }
        if self
            .specs
            .get(&req.target)
            .is_some_and(|t| t.role != Role::Target)
        {
            return Err(Refusal::NotATarget(req.target.clone()));
        }
        Ok(())
    }

    /// The repository `name`, opened once. One that does not open (a wrong password, a
    /// store not reachable, a target not made yet) is tried again only after a backoff
    /// (5 s, doubling to a minute): until then its last error is the answer, so no
    /// request makes the appliance derive keys again.
    pub async fn repository(&self, name: &str) -> Result<Arc<Repository>> {
        // Held while opening: the key derivation (Argon2, by design slow and memory-hard)
        // is done once, not by every task and listing that asks at the same moment.
        let mut opened = self.opened.lock().await;
        if let Some(r) = opened.get(name) {
            return Ok(r.clone());
        }
        let spec = self.specs.get(name).ok_or_else(|| {
            Error::Invalid(format!("no repository named {name:?} on this appliance"))
        })?;
        let now = self.clock.now();
        if let Some(failed) = self.opening(name).filter(|a| now < a.retry_at) {
            return Err(Error::Invalid(format!(
                "repository {name} does not open (since {}): {}",
                failed.since.format("%Y-%m-%d %H:%M:%S UTC"),
                failed.error
            )));
        }
        let (url, pw, clock) = (&spec.url, &spec.password, &self.clock);
        let throttle = self.throttle.as_ref();
        let found = crate::repo::open_repository_with(url, pw, clock, WarmSpec::NOTHING, throttle)
            .await
            .and_then(|f| f.ok_or_else(|| Error::NoRepository { url: url.clone() }));
        match found {
            Ok(repo) => {
                let repo = Arc::new(repo);
                opened.insert(name.to_string(), repo.clone());
                self.open_names().insert(name.to_string());
                self.attempts().remove(name);
                tracing::info!("repository {name}: open ({})", repo.config.id.short());
                Ok(repo)
            }
            Err(e) => {
                self.failed(name, &e);
                Err(e)
            }
        }
    }

    fn open_names(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.open_names.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn attempts(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Failed>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn opening(&self, name: &str) -> Option<Failed> {
        self.attempts().get(name).cloned()
    }

    /// Notes a failed opening and when to try again.
    fn failed(&self, name: &str, e: &Error) {
        let now = self.clock.now();
        let mut all = self.attempts();
        let f = all.entry(name.to_string()).or_insert(Failed {
            error: String::new(),
            since: now,
            retry_at: now,
            tries: 0,
        });
        f.tries += 1;
        // A target not made yet costs one GET to look for (no key to derive), and the
        // runner that makes it asks at once: no backoff for that.
        let wait = match e {
            Error::NoRepository { .. } => 0,
            _ => (5i64 << (f.tries - 1).min(4)).min(60),
        };
        f.retry_at = now + chrono::Duration::seconds(wait);
        let said = e.to_string();
        if f.error != said {
            tracing::warn!("repository {name} does not open: {said}");
        }
        f.error = said;
    }

    /// Each repository's state as far as known, without opening any: for health.
    pub fn states(&self) -> Vec<RepositoryHealth> {
        let opened = self.open_names().clone();
        // Held while a repository is being opened (its keys derived).
        let busy = self.opened.try_lock().is_err();
        let failures = self.attempts().clone();
        (self.specs.values())
            .map(|s| {
                let failed = failures.get(&s.name);
                let state = match (opened.contains(&s.name), failed) {
                    (true, _) => RepositoryState::Open,
                    (false, Some(_)) => RepositoryState::Failing,
                    (false, None) if busy => RepositoryState::Opening,
                    (false, None) => RepositoryState::NotTried,
                };
                RepositoryHealth {
                    name: s.name.clone(),
                    role: s.role,
                    state,
                    error: failed.map(|f| f.error.clone()),
                    since: failed.map(|f| f.since),
                }
            })
            .collect()
    }

    /// Every configured repository with its id, or why it does not open (now).
    pub async fn repositories(&self) -> Vec<RepositoryInfo> {
        let mut out = Vec::new();
        for name in self.specs.keys() {
            let (id, error) = match self.repository(name).await {
                Ok(r) => (Some(r.config.id), None),
                Err(e) => (None, Some(e.to_string())),
            };
            out.push(RepositoryInfo {
                name: name.clone(),
                id,
                error,
            });
        }
        out
    }

    /// A source's index, read again only when its index files changed.
    async fn source_index(&self, name: &str, repo: &Repository) -> Result<Arc<MasterIndex>> {
        // Held while loading: tasks starting together wait for one load, not make four.
        let mut cache = self.indexes.lock().await;
        let mut files = repo.index_names().await?;
        files.sort();
        if let Some(c) = cache.get(name)
            && c.files == files
        {
            return Ok(c.index.clone());
        }
        let index = MasterIndex::from_files(repo.load_index_files(files.clone()).await?);
        let index = Arc::new(index);
        cache.insert(
            name.to_string(),
            CachedIndex {
                files,
                index: index.clone(),
            },
        );
        Ok(index)
    }

    /// The target's state for planning, brought up to date.
    async fn target_state(
        &self,
        name: &str,
        target: &Repository,
        sources: Vec<Id>,
        map: bool,
    ) -> Result<Arc<RwLock<TargetState>>> {
        let key = (name.to_string(), sources.clone(), map);
        // Held while loading, as for the source indexes.
        let mut targets = self.targets.lock().await;
        let cached = targets.get(&key).cloned();
        match cached {
            Some(state) => {
                let news = TargetState::shared_news(&state, target, true).await?;
                state.write().await.apply(news);
                Ok(state)
            }
            None => {
                let ids: HashSet<Id> = sources.into_iter().collect();
                // Adoption is the runner's: it holds the chain's lock.
                let state = TargetState::load(target, &ids, map, true).await?;
                let state = Arc::new(RwLock::new(state));
                targets.insert(key, state.clone());
                Ok(state)
            }
        }
    }

    /// Plans the request's chain and transfers it; `stop` ends it at a pack boundary.
    /// Returns the plan (without its reads) and the outcome.
    pub async fn run(
        &self,
        req: &TaskRequest,
        stop: Stop,
        progress: &Progress,
    ) -> Result<(ChainPlan, TransferOutcome)> {
        let target = self.repository(&req.target).await?;
        let mut sources = Vec::new();
        for name in &req.sources {
            let repo = self.repository(name).await?;
            let index = self.source_index(name, &repo).await?;
            sources.push(Source { repo, index });
        }
        let mut candidates = Vec::new();
        for p in &req.points {
            let point = sources[p.source].repo.load_point(&p.id).await?;
            candidates.push(Candidate {
                source: p.source,
                id: p.id,
                point,
            });
        }
        let ids = sources.iter().map(|s| s.repo.config.id).collect();
        let state = self
            .target_state(&req.target, &target, ids, req.map)
            .await?;
        // Planned alone, its claims dropped at once: a chain here never borrows from
        // another task, as the runner commits each task's points on its outcome alone
        // (two tasks may both bring a blob their machines share; prune frees the spare).
        let plan = {
            let state = state.write().await;
            let threshold = target.multipart_threshold as u64;
            let (chain, mode) = (&req.chain, req.mode);
            let plan = plan_chain(
                chain,
                mode,
                candidates,
                &sources,
                &state,
                req.pack_size,
                threshold,
            )
            .await;
            state.claims.release(chain);
            plan
        };
        let opts = TransferOptions {
            compression: req.compression,
            reads_in_flight: req.reads_in_flight,
            uploads_in_flight: req.uploads_in_flight,
            budget: self.budget.clone(),
            stop,
        };
        let repos: Vec<Arc<Repository>> = sources.iter().map(|s| s.repo.clone()).collect();
        let outcome = transfer(&plan, &repos, &target, &opts, progress).await?;
        Ok((plan, outcome))
    }
}
