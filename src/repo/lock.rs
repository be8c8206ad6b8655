//! Repository locks. Writers that only add (backup, copy) take shared locks and may run
//! together; anything that deletes takes an exclusive one. A lock object carries an
//! expiry that its holder refreshes; one past its expiry is stale (its writer died).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::Repository;
use crate::format::lock::{Holder, Lock, LockKind, Purpose};
use crate::format::{LOCKS, lock_name};
use crate::{Error, Result};

/// How long a lock stays valid without a refresh, and how often its holder refreshes it.
pub const LOCK_TTL: chrono::Duration = chrono::Duration::minutes(5);
pub const LOCK_REFRESH: Duration = Duration::from_secs(60);

/// A lock read from the store.
#[derive(Clone, Debug)]
pub struct FoundLock {
    pub name: String,
    pub lock: Lock,
}

impl FoundLock {
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        let l = &self.lock;
        let what = match &l.machine {
            Some(m) => format!("{} of {m}", l.operation),
            None => l.operation.to_string(),
        };
        let state = if l.holder_is_gone() && l.expires >= now {
            "STALE: its process is gone from this host (remove with `offsite unlock`)".to_string()
        } else if l.is_stale(now) {
            format!(
                "STALE since {} (its writer stopped refreshing it; remove with `offsite unlock`)",
                l.expires.format("%Y-%m-%d %H:%M:%S UTC")
            )
        } else {
            format!("held since {}", l.created.format("%Y-%m-%d %H:%M:%S UTC"))
        };
        format!(
            "{} lock {} by {} pid {} for {what}, {state}",
            match l.kind {
                LockKind::Shared => "shared",
                LockKind::Exclusive => "exclusive",
            },
            self.name,
            l.host,
            l.pid
        )
    }
}

/// Reads every lock. Unreadable lock objects are reported as warnings and skipped.
pub async fn list_locks(repo: &Repository) -> Result<Vec<FoundLock>> {
    list_locks_except(repo, &|_| false).await
}

/// The locks of `repo` but those `skip` names (locks this process holds: their contents
/// are known, and reading them would cost a round trip).
pub async fn list_locks_except(
    repo: &Repository,
    skip: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Vec<FoundLock>> {
    let metas = repo.list(LOCKS).await?;
    let names = metas
        .into_iter()
        .map(|m| repo.loc.name_of(&m.location))
        .filter(|n| !skip(n));
    let found: Vec<Option<FoundLock>> = futures::stream::iter(names.map(|name| {
        async move {
            let bytes = match repo.get(&name).await {
                Ok(b) => b,
                // Released between list and get.
                Err(Error::NotFound { .. }) => return None,
                Err(e) => {
                    tracing::warn!("cannot read lock {name}: {e}");
                    return None;
                }
            };
            match Lock::open(repo.key(), &name, &bytes) {
                Ok(lock) => Some(FoundLock { name, lock }),
                Err(e) => {
                    tracing::warn!("{e}");
                    None
                }
            }
        }
    }))
    .buffer_unordered(super::IO_CONCURRENCY)
    .collect()
    .await;
    Ok(found.into_iter().flatten().collect())
}

/// A held lock; refreshed in the background until released.
pub struct LockGuard {
    repo: Arc<Repository>,
    pub name: String,
    /// When the lock was taken (what decides which of two lock holders came first).
    pub created: DateTime<Utc>,
    refresher: tokio::task::JoinHandle<()>,
}

impl LockGuard {
    /// Takes a lock of `kind` for `operation`. Fails with a message naming the holder if
    /// a live lock conflicts (any exclusive one, or any one when `kind` is exclusive).
    pub async fn acquire(
        repo: &Arc<Repository>,
        kind: LockKind,
        operation: Purpose,
        machine: Option<Holder>,
    ) -> Result<LockGuard> {
        conflicts(repo, kind, None).await?;
        let g = Self::put(repo, kind, operation, machine).await?;
        // Two exclusive takers can both pass the first look; the second look settles it.
        if kind == LockKind::Exclusive
            && let Err(e) = conflicts(repo, kind, Some(&g.name)).await
        {
            let _ = g.release().await;
            return Err(e);
        }
        Ok(g)
    }

    /// Takes a shared lock first and looks after, in one listing: fails (releasing it)
    /// when a live exclusive lock is there, else returns the live locks of others — all
    /// but this one and those `ours` names. Either this look or an exclusive taker's
    /// second look sees the other, as with [`Self::acquire`], at two round trips less.
    /// `written` is told the lock's name as soon as it is stored (so that writers of the
    /// same process taking locks at the same time can skip it in their look).
    /// `alongside` runs side by side with the look, once the lock is stored — a read that
    /// must see the repository as it is under the lock costs no round trip of its own.
    pub async fn acquire_shared_and_list<T, F>(
        repo: &Arc<Repository>,
        operation: Purpose,
        machine: Option<Holder>,
        ours: &(dyn Fn(&str) -> bool + Sync),
        written: &(dyn Fn(&str) + Sync),
        alongside: F,
    ) -> Result<(LockGuard, Vec<FoundLock>, T)>
    where
        F: Future<Output = Result<T>>,
    {
        let g = Self::put(repo, LockKind::Shared, operation, machine).await?;
        written(&g.name);
        let now = repo.clock().now();
        let skip = |n: &str| n == g.name || ours(n);
        let look = list_locks_except(repo, &skip);
        let (listed, along) = tokio::join!(look, alongside);
        let listed = listed.and_then(|l| Ok((l, along?)));
        let (others, along): (Vec<FoundLock>, T) = match listed {
            Ok((l, along)) => (
                l.into_iter().filter(|l| !l.lock.is_stale(now)).collect(),
                along,
            ),
            Err(e) => {
                let _ = g.release().await;
                return Err(e);
            }
        };
        let exclusive: Vec<String> = others
            .iter()
            .filter(|l| l.lock.kind == LockKind::Exclusive)
            .map(|l| l.describe(now))
            .collect();
        if !exclusive.is_empty() {
            let _ = g.release().await;
            return Err(locked(repo, &exclusive));
        }
        Ok((g, others, along))
    }

    /// Writes a lock and starts refreshing it; no look at other locks.
    async fn put(
        repo: &Arc<Repository>,
        kind: LockKind,
        operation: Purpose,
        machine: Option<Holder>,
    ) -> Result<LockGuard> {
        let now = repo.clock().now();
        let lock = Lock {
            kind,
            operation,
            machine,
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            created: now,
            expires: now + LOCK_TTL,
        };
        let name = lock_name(&crate::crypto::random_bytes::<16>());
        repo.put_new(&name, lock.seal(repo.key()).into()).await?;
        let created = lock.created;
        let refresher = {
            let repo = repo.clone();
            let name = name.clone();
            tokio::spawn(async move {
                let mut lock = lock;
                loop {
                    repo.clock().sleep(LOCK_REFRESH).await;
                    lock.expires = repo.clock().now() + LOCK_TTL;
                    if let Err(e) = repo
                        .put_overwrite(&name, lock.seal(repo.key()).into())
                        .await
                    {
                        tracing::warn!("could not refresh lock {name}: {e}");
                    }
                }
            })
        };
        Ok(LockGuard {
            repo: repo.clone(),
            name,
            created,
            refresher,
        })
    }

    pub async fn release(mut self) -> Result<()> {
        self.refresher.abort();
        // A refresh in flight on another thread would land after the delete and bring
        // the lock back (live for another TTL): the refresher has stopped before the
        // delete is sent.
        let _ = (&mut self.refresher).await;
        self.repo.delete(&self.name).await
    }

    /// Releases the lock after the work it guarded, which returned `result`: the work's
    /// error wins over a failed release, which fails only work that succeeded.
    pub async fn release_after<T>(self, result: Result<T>) -> Result<T> {
        let released = self.release().await;
        let value = result?;
        released?;
        Ok(value)
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

tokio::task_local! {
    /// Locks the future running [`beside`] holds itself: a lock taken inside does not
    /// conflict with them.
    static BESIDE: Vec<String>;
}

/// Runs `fut` with the locks named in `held` — locks the caller holds, such as a job's
/// own lock across its interval — treated as its own: a lock `fut` takes (retention's
/// and prune's exclusive ones) is not refused because of them, so the caller need not
/// let them go, and no other runner can slip in between. Other holders still conflict.
pub async fn beside<F: std::future::Future>(held: Vec<String>, fut: F) -> F::Output {
    BESIDE.scope(held, fut).await
}

async fn conflicts(repo: &Repository, kind: LockKind, mine: Option<&str>) -> Result<()> {
    let now = repo.clock().now();
    let ours = |name: &str| {
        Some(name) == mine || BESIDE.try_with(|b| b.iter().any(|h| h == name)) == Ok(true)
    };
    let holders: Vec<String> = list_locks(repo)
        .await?
        .into_iter()
        .filter(|l| !ours(&l.name) && !l.lock.is_stale(now))
        .filter(|l| kind == LockKind::Exclusive || l.lock.kind == LockKind::Exclusive)
        .map(|l| l.describe(now))
        .collect();
    if holders.is_empty() {
        return Ok(());
    }
    Err(locked(repo, &holders))
}

fn locked(repo: &Repository, holders: &[String]) -> Error {
    Error::Locked(format!(
        "{}: the repository is locked: {}. Wait for it to finish, or if that process is gone, run `offsite unlock` after the lock expires",
        repo.url(),
        holders.join("; ")
    ))
}

/// Removes stale locks (all locks with `all`); returns the ones removed.
pub async fn remove_locks(repo: &Repository, all: bool) -> Result<Vec<FoundLock>> {
    let now = repo.clock().now();
    let mut removed = Vec::new();
    for l in list_locks(repo).await? {
        if all || l.lock.is_stale(now) {
            repo.delete(&l.name).await?;
            removed.push(l);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    /// An exclusive lock is refused beside a live shared one — unless taken `beside` it,
    /// by its holder; a third holder's lock still refuses it.
    #[tokio::test]
    async fn an_exclusive_lock_goes_beside_the_takers_own_lock_only() {
        let repo = testkit::repo(testkit::memory(), 1 << 20).await;
        let job = LockGuard::acquire(
            &repo,
            LockKind::Shared,
            Purpose::Job,
            Some("job:nightly".into()),
        )
        .await
        .unwrap();
        let refused = LockGuard::acquire(&repo, LockKind::Exclusive, Purpose::Prune, None).await;
        assert!(matches!(refused, Err(Error::Locked(_))));
        let ours = vec![job.name.clone()];
        let prune = beside(
            ours.clone(),
            LockGuard::acquire(&repo, LockKind::Exclusive, Purpose::Prune, None),
        )
        .await
        .unwrap();
        prune.release().await.unwrap();

        let other =
            LockGuard::acquire(&repo, LockKind::Shared, Purpose::Backup, Some("web".into()))
                .await
                .unwrap();
        let refused = beside(
            ours,
            LockGuard::acquire(&repo, LockKind::Exclusive, Purpose::Prune, None),
        )
        .await;
        assert!(matches!(refused, Err(Error::Locked(m)) if m.contains("backup")));
        other.release().await.unwrap();
        job.release().await.unwrap();
        assert!(list_locks(&repo).await.unwrap().is_empty(), "all released");
    }
}
