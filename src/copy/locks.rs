//! The locks a copy respects: source points still being written (waited for, then
//! skipped) and another copy of the same chain into the target (one at a time).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Selection;
use crate::format::lock::LockKind;
use crate::repo::Repository;
use crate::repo::lock::{LockGuard, list_locks};
use crate::{Error, Result};

/// Waits (up to `wait`) while a selected machine's point is being written in `repo`;
/// returns the machines still being written afterwards, with a warning for each.
pub(super) async fn wait_for_writers(
    repo: &Repository,
    sel: &Selection,
    wait: Duration,
) -> Result<Vec<(String, String)>> {
    let deadline = Instant::now() + wait;
    loop {
        let now = repo.clock.now();
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
        if Instant::now() >= deadline {
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
        tokio::time::sleep(Duration::from_millis(500).min(deadline - Instant::now())).await;
    }
}

/// Takes the target's lock for one chain. Copies of different chains (shards) run side
/// by side; a second copy of the same chain waits up to `wait`, then gives up clearly.
pub(super) async fn lock_chain(
    target: &Arc<Repository>,
    chain: &str,
    wait: Duration,
) -> Result<LockGuard> {
    let deadline = Instant::now() + wait;
    loop {
        let g = LockGuard::acquire(target, LockKind::Shared, "copy", Some(chain)).await?;
        let now = target.clock.now();
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
        if Instant::now() >= deadline {
            return Err(Error::Locked(format!(
                "another copy of {chain} into {} is running ({}); this one stops here — run it again when that one is done, or give --lock-wait",
                target.url(),
                earlier.join("; ")
            )));
        }
        tokio::time::sleep(Duration::from_millis(500).min(deadline - Instant::now())).await;
    }
}
