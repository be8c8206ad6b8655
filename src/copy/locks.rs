//! The locks a copy takes and respects: source points still being written (waited for,
//! then skipped), shared read locks on the sources (so nothing that deletes runs under
//! the copy), and another copy of the same chain into the target (one at a time). Waits
//! run on the repository's clock.

use std::sync::Arc;
use std::time::Duration;

use super::Selection;
use crate::format::lock::{Holder, LockKind, Purpose};
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
            if l.lock.is_stale(now) || l.lock.operation != Purpose::Backup {
                continue;
            }
            if let Some(Holder::Machine(m)) = &l.lock.machine
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
    let tries = sources
        .iter()
        .map(|s| LockGuard::acquire(s, LockKind::Shared, Purpose::CopyRead, None));
    let taken = futures::future::join_all(tries).await;
    let mut guards = Vec::new();
    let mut refused = None;
    for (s, r) in sources.iter().zip(taken) {
        match r {
            Ok(g) => guards.push(g),
            Err(e @ Error::Locked(_)) => refused = refused.or(Some(e)),
            Err(e) => tracing::warn!("could not lock source {}: {e}", s.url()),
        }
    }
    if let Some(e) = refused {
        release_all(guards).await;
        return Err(e);
    }
    Ok(guards)
}

/// Releases locks, warning about (not failing on) any that cannot be removed: an
/// unremoved lock expires on its own.
pub(super) async fn release_all(guards: Vec<LockGuard>) {
    let released = futures::future::join_all(guards.into_iter().map(LockGuard::release)).await;
    for r in released {
        if let Err(e) = r {
            tracing::warn!("could not release a lock: {e}");
        }
    }
}

/// Takes the target's lock for one chain. Copies of different chains (shards) run side
/// by side; a second copy of the same chain waits up to `wait`, then gives up clearly.
/// `read` runs once the lock is stored, side by side with the look at the other locks
/// (again after each wait): what it returns was read under the lock.
pub(super) async fn lock_chain<T, F, Fut>(
    target: &Arc<Repository>,
    chain: &str,
    wait: Duration,
    ours: &OurLocks,
    read: F,
) -> Result<(LockGuard, T)>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let clock = target.clock();
    let deadline = clock.deadline(wait);
    loop {
        let (g, others, value) = LockGuard::acquire_shared_and_list(
            target,
            Purpose::Copy,
            Some(Holder::from(chain)),
            &|n| ours.has(n),
            &|n| ours.add(n),
            read(),
        )
        .await?;
        let now = clock.now();
        let mine = (g.created, g.name.clone());
        let earlier: Vec<String> = others
            .iter()
            .filter(|l| l.lock.operation == Purpose::Copy && l.lock.machine == Some(chain.into()))
            .filter(|l| (l.lock.created, l.name.clone()) < mine)
            .map(|l| l.describe(now))
            .collect();
        if earlier.is_empty() {
            return Ok((g, value));
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

/// The chain locks this copy holds in the target: one run never copies a chain twice,
/// so its own locks need not be read when it looks for other copies of a chain.
#[derive(Debug, Default)]
pub(super) struct OurLocks(std::sync::Mutex<std::collections::HashSet<String>>);

impl OurLocks {
    fn has(&self, name: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(name)
    }

    fn add(&self, name: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::testkit;

    /// Moves the clock half a second at a time until `task` ends (a handful of real
    /// milliseconds per step, so the waiting code runs between steps).
    async fn drive<T>(clock: &ManualClock, task: &tokio::task::JoinHandle<T>, steps: usize) {
        for _ in 0..steps {
            if task.is_finished() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            clock.advance(chrono::Duration::milliseconds(500));
        }
    }

    /// A second copy of a chain waits on the repository's clock — a minute of waiting in
    /// a fraction of a second — then gives up naming the holder; started again, it gets
    /// the lock as soon as the other copy finishes.
    #[tokio::test]
    async fn a_second_copy_of_a_chain_waits_on_the_clock() {
        let t0 = chrono::Utc::now();
        let clock = Arc::new(ManualClock::new(t0));
        let repo = testkit::repo(testkit::memory(), 1 << 20).await;
        let repo = Arc::new(Arc::into_inner(repo).unwrap().with_clock(clock.clone()));
        let holder = LockGuard::acquire(&repo, LockKind::Shared, Purpose::Copy, Some("web".into()))
            .await
            .unwrap();
        // The holder's lock is the older one (equal times would be settled by name).
        clock.advance(chrono::Duration::seconds(1));

        let started = Instant::now();
        let r = repo.clone();
        let waiter = tokio::spawn(async move {
            let ours = OurLocks::default();
            lock_chain(&r, "web", Duration::from_secs(60), &ours, || async {
                Ok(())
            })
            .await
        });
        drive(&clock, &waiter, 400).await;
        let e = waiter.await.unwrap().err().unwrap();
        assert!(matches!(e, Error::Locked(_)), "{e}");
        assert!(e.to_string().contains("another copy of web"), "{e}");
        assert!(clock.now() - t0 >= chrono::Duration::seconds(60));
        assert!(started.elapsed() < Duration::from_secs(20));

        let r = repo.clone();
        let waiter = tokio::spawn(async move {
            let ours = OurLocks::default();
            lock_chain(&r, "web", Duration::from_secs(60), &ours, || async {
                Ok(())
            })
            .await
        });
        drive(&clock, &waiter, 10).await;
        assert!(!waiter.is_finished());
        holder.release().await.unwrap();
        drive(&clock, &waiter, 10).await;
        let (mine, ()) = waiter.await.unwrap().unwrap();
        mine.release().await.unwrap();
    }

    /// A backup writing a selected machine holds the copy back until it finishes; one
    /// that outlasts the wait gets the machine skipped, with the reason.
    #[tokio::test]
    async fn writers_are_waited_for_then_their_machine_is_skipped() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let repo = testkit::repo(testkit::memory(), 1 << 20).await;
        let repo = Arc::new(Arc::into_inner(repo).unwrap().with_clock(clock.clone()));
        let backup =
            LockGuard::acquire(&repo, LockKind::Shared, Purpose::Backup, Some("db".into()))
                .await
                .unwrap();
        let all = Selection::default();
        let r = repo.clone();
        let sel = all.clone();
        let waiter =
            tokio::spawn(async move { wait_for_writers(&r, &sel, Duration::from_secs(30)).await });
        drive(&clock, &waiter, 200).await;
        let skipped = waiter.await.unwrap().unwrap();
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].0, "db");
        assert!(
            skipped[0].1.contains("still being written"),
            "{}",
            skipped[0].1
        );

        let r = repo.clone();
        let waiter =
            tokio::spawn(async move { wait_for_writers(&r, &all, Duration::from_secs(30)).await });
        drive(&clock, &waiter, 4).await;
        backup.release().await.unwrap();
        drive(&clock, &waiter, 10).await;
        assert!(waiter.await.unwrap().unwrap().is_empty());
    }
}
