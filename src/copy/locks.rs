//! The locks a copy takes and respects: source points still being written (waited for,
//! then skipped), shared read locks on the sources (so nothing that deletes runs under
//! the copy), and another copy of the same chain into the target (one at a time). Waits
//! run on the repository's clock.

use std::sync::Arc;
use std::time::Duration;

use super::Selection;
use crate::format::lock::LockKind;
use crate::repo::Repository;
use crate::repo::lock::{LockGuard, list_locks};
use crate::{Error, Result};

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(500);

/// Waits (up to `wait`) while a selected machine's point is being written in `repo`;
/// returns the machines still being written afterwards, with a warning for each.
pub(super) async fn wait_for_writers(
    repo: &Repository,
    sel: &Selection,
    wait: Duration,
) -> Result<Vec<(String, String)>> {
    let clock = repo.clock();
    let deadline = clock.deadline(wait);
    loop {
        let now = clock.now();
        let mut writing = Vec::new();
        for l in list_locks(repo).await? {
            if l.lock.is_stale(now) || l.lock.operation != "backup" {
                continue;
            }
            if let Some(m) = &l.lock.machine
                && sel.machine_selected(m)?
            {
                writing.push((m.clone(), l.describe(now)));
            }
        }
        if writing.is_empty() {
            return Ok(Vec::new());
        }
        if now >= deadline {
            return Ok(writing
                .into_iter()
                .map(|(m, d)| {
                    let why = format!(
                        "skipped {m}: a restore point is still being written in {} after waiting {}s ({d})",
                        repo.url(),
                        wait.as_secs()
                    );
                    tracing::warn!("{why}");
                    (m, why)
                })
                .collect());
        }
        clock.sleep(POLL.min(clock.until(deadline))).await;
    }
}

/// Takes a shared lock on each source. Best effort: a source that cannot be locked
/// (read-only credentials) is still copied, with a warning; a source locked exclusively
/// (a prune running) stops the copy.
pub(super) async fn lock_sources(sources: &[Arc<Repository>]) -> Result<Vec<LockGuard>> {
    let mut guards = Vec::new();
    for s in sources {
        match LockGuard::acquire(s, LockKind::Shared, "copy-read", None).await {
            Ok(g) => guards.push(g),
            Err(e @ Error::Locked(_)) => {
                release_all(guards).await;
                return Err(e);
            }
            Err(e) => tracing::warn!("could not lock source {}: {e}", s.url()),
        }
    }
    Ok(guards)
}

/// Releases locks, warning about (not failing on) any that cannot be removed: an
/// unremoved lock expires on its own.
pub(super) async fn release_all(guards: Vec<LockGuard>) {
    for g in guards {
        if let Err(e) = g.release().await {
            tracing::warn!("could not release a lock: {e}");
        }
    }
}

/// Takes the target's lock for one chain. Copies of different chains (shards) run side
/// by side; a second copy of the same chain waits up to `wait`, then gives up clearly.
pub(super) async fn lock_chain(
    target: &Arc<Repository>,
    chain: &str,
    wait: Duration,
) -> Result<LockGuard> {
    let clock = target.clock();
    let deadline = clock.deadline(wait);
    loop {
        let g = LockGuard::acquire(target, LockKind::Shared, "copy", Some(chain)).await?;
        let now = clock.now();
        let locks = list_locks(target).await?;
        let mine = locks
            .iter()
            .find(|l| l.name == g.name)
            .map(|l| (l.lock.created, l.name.clone()));
        let earlier: Vec<String> = locks
            .iter()
            .filter(|l| l.name != g.name && !l.lock.is_stale(now))
            .filter(|l| l.lock.operation == "copy" && l.lock.machine.as_deref() == Some(chain))
            .filter(|l| {
                mine.as_ref()
                    .is_none_or(|m| (l.lock.created, l.name.clone()) < *m)
            })
            .map(|l| l.describe(now))
            .collect();
        if earlier.is_empty() {
            return Ok(g);
        }
        g.release().await?;
        if clock.now() >= deadline {
            return Err(Error::Locked(format!(
                "another copy of {chain} into {} is running ({}); this one stops here — run it again when that one is done, or give --lock-wait",
                target.url(),
                earlier.join("; ")
            )));
        }
        clock.sleep(POLL.min(clock.until(deadline))).await;
    }
}
