//! Blobs that the chains of one copy run are bringing into the target, so chains copied
//! concurrently (`--tasks`) still store each new blob once. Copied one after another, a
//! later chain finds an earlier chain's blobs in the target's index; copied side by side,
//! it finds them *claimed* here instead. The first chain to plan a blob claims it and
//! transfers it; a chain that needs a blob claimed by another *borrows* it: it does not
//! transfer it, and before it commits a point needing it, it waits until the lender has
//! indexed its packs. The lender signals that before it commits its own points, so two
//! chains borrowing from each other never wait on each other. What a lender failed to
//! bring, the borrower fetches itself (see `copy/chain.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::Id;

/// How a chain planning a blob the target does not index stands to it.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This chain brings it (it claimed it now, or earlier).
    Mine,
    /// Another chain of this run brings it.
    Borrowed,
}

#[derive(Debug, Default)]
pub struct Claims {
    inner: Mutex<Inner>,
    /// One chain at a time: nobody to share with, so nothing is recorded (a claim map
    /// costs ~100 bytes a blob, and a chain of tiny files has millions).
    solitary: bool,
}

#[derive(Debug, Default)]
struct Inner {
    /// Blob → the chain bringing it.
    blobs: HashMap<Id, Arc<str>>,
    /// Chain → a receiver that turns true (or closes) once its packs are indexed.
    indexed: HashMap<Arc<str>, watch::Receiver<bool>>,
    /// Chain → the chains it borrowed from.
    lenders: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

/// Held by a chain from before it plans until its packs are indexed; dropping it tells
/// the borrowers (also when the chain fails).
#[derive(Debug)]
pub struct Indexing {
    _done: watch::Sender<bool>,
}

impl Claims {
    /// Claims of a run whose chains go one at a time: every blob is the planning
    /// chain's own, and a later chain finds an earlier one's blobs in the target's index.
    pub fn solitary() -> Claims {
        Claims {
            solitary: true,
            ..Default::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map stays consistent between statements, so a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `chain` before it plans.
    pub fn begin(&self, chain: &str) -> Indexing {
        let (tx, rx) = watch::channel(false);
        self.lock().indexed.insert(Arc::from(chain), rx);
        Indexing { _done: tx }
    }

    /// Claims `blob` for `chain` unless another chain has.
    pub fn claim(&self, blob: Id, chain: &str) -> Claim {
        if self.solitary {
            return Claim::Mine;
        }
        let mut inner = self.lock();
        match inner.blobs.get(&blob) {
            Some(owner) if &**owner == chain => Claim::Mine,
            Some(owner) => {
                let owner = owner.clone();
                inner
                    .lenders
                    .entry(Arc::from(chain))
                    .or_default()
                    .insert(owner);
                Claim::Borrowed
            }
            None => {
                inner.blobs.insert(blob, Arc::from(chain));
                Claim::Mine
            }
        }
    }

    /// Drops `chain`'s claims once its packs are indexed (or it failed): what it brought
    /// is in the target's known blobs now, what it did not, a later planner claims anew.
    pub fn release(&self, chain: &str) {
        self.lock().blobs.retain(|_, owner| &**owner != chain);
    }

    /// Waits until every chain `chain` borrowed from has indexed its packs or ended.
    pub async fn wait_for_lenders(&self, chain: &str) {
        let waits: Vec<watch::Receiver<bool>> = {
            let inner = self.lock();
            let lenders = inner.lenders.get(chain).into_iter().flatten();
            lenders
                .filter_map(|l| inner.indexed.get(l).cloned())
                .collect()
        };
        for mut rx in waits {
            // A closed channel means the lender ended (its guard dropped): done too.
            let _ = rx.wait_for(|done| *done).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_claim_wins_and_borrowers_wait_for_the_lender() {
        let claims = Claims::default();
        let (a, b) = (claims.begin("a"), claims.begin("b"));
        let x = Id::hash(b"x");
        assert_eq!(claims.claim(x, "a"), Claim::Mine);
        assert_eq!(claims.claim(x, "a"), Claim::Mine);
        assert_eq!(claims.claim(x, "b"), Claim::Borrowed);
        // b borrowed nothing from anyone but a: waiting ends when a's guard drops.
        let waiting = claims.wait_for_lenders("b");
        tokio::pin!(waiting);
        assert!(futures::poll!(&mut waiting).is_pending());
        claims.release("a");
        drop(a);
        waiting.await;
        // a released x: the next planner claims it anew.
        assert_eq!(claims.claim(x, "b"), Claim::Mine);
        drop(b);
        // A chain that borrowed nothing does not wait.
        claims.wait_for_lenders("c").await;
    }
}
