//! A request to stop at the next safe point, shared by whoever may ask (SIGTERM, a copy
//! window closing, an appliance's task being cancelled) and whoever does the work (a
//! transfer stops taking reads, finishes its open pack and returns what is whole).
//! Cloned handles share one flag; asking twice is asking once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Clone, Debug, Default)]
pub struct Stop(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    asked: AtomicBool,
    notify: Notify,
}

impl Stop {
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks every holder to stop at its next safe point.
    pub fn stop(&self) {
        self.0.asked.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.asked.load(Ordering::SeqCst)
    }

    /// Returns once a stop is asked (at once if it was).
    pub async fn stopped(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the flag is read, so a stop between the two is not lost.
            notified.as_mut().enable();
            if self.is_stopped() {
                return;
            }
            notified.await;
        }
    }

    /// A new stop that is asked when this one is, or when `also` completes — a copy
    /// window's end, say. The returned future runs `work` with it and returns its
    /// output; `also` is dropped when `work` is done.
    pub async fn with<F, A>(&self, also: A, work: impl FnOnce(Stop) -> F) -> F::Output
    where
        F: Future,
        A: Future<Output = ()>,
    {
        let child = Stop::new();
        let work = work(child.clone());
        tokio::pin!(work);
        let watch = async {
            tokio::select! {
                _ = self.stopped() => {}
                _ = also => {}
            }
            child.stop();
            std::future::pending::<F::Output>().await
        };
        tokio::select! {
            out = &mut work => out,
            out = watch => out,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_stop_asked_before_or_while_waiting_ends_the_wait() {
        let s = Stop::new();
        let waiter = tokio::spawn({
            let s = s.clone();
            async move { s.stopped().await }
        });
        tokio::task::yield_now().await;
        assert!(!s.is_stopped());
        s.stop();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        // Asked already: returns at once.
        s.stopped().await;
    }

    /// The child is asked when the parent is or when `also` completes, and the work
    /// still runs to its end (it decides where its safe point is).
    #[tokio::test]
    async fn a_child_stops_with_its_parent_or_its_deadline_and_work_finishes() {
        let parent = Stop::new();
        let out = parent
            .with(async {}, |child| async move {
                child.stopped().await;
                7
            })
            .await;
        assert_eq!(out, 7);

        let parent = Stop::new();
        let asker = parent.clone();
        let out = parent
            .with(std::future::pending(), |child| async move {
                asker.stop();
                child.stopped().await;
                "stopped by the parent"
            })
            .await;
        assert_eq!(out, "stopped by the parent");
        // Work that ends first ends it all; the child was never asked.
        let quiet = Stop::new();
        let asked = quiet
            .with(
                std::future::pending(),
                |child| async move { child.is_stopped() },
            )
            .await;
        assert!(!asked);
    }
}
