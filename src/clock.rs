//! The time source, and the randomness that spreads retries. Everything whose behaviour
//! depends on time — lock expiry and refresh, retry backoff, waiting for a lock or a
//! writer; schedules and retention later — asks a `Clock`, so tests run hours of waiting
//! in milliseconds with a [`ManualClock`]. Stopwatches that only measure speed for a
//! report use `std::time::Instant`: they change no decision.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;

    /// Waits `d` of this clock's time.
    fn sleep(&self, d: Duration) -> Sleep;

    /// A random fraction in `0.0..1.0` (the jitter of retry backoff).
    fn jitter(&self) -> f64;

    /// The moment `d` from now.
    fn deadline(&self, d: Duration) -> DateTime<Utc> {
        self.now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
    }

    /// How long until `deadline`; zero once it has passed.
    fn until(&self, deadline: DateTime<Utc>) -> Duration {
        (deadline - self.now()).to_std().unwrap_or(Duration::ZERO)
    }
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }

    fn jitter(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// A clock that moves only when told to. `sleep` waits until [`ManualClock::advance`]
/// (or `set`) moves time past its end; with [`ManualClock::auto_advance`] a sleep moves
/// time forward by itself instead (for code with no background sleepers, such as retry
/// loops). Jitter is a fixed fraction, so backoff is reproducible.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    now: DateTime<Utc>,
    sleepers: Vec<(DateTime<Utc>, oneshot::Sender<()>)>,
    auto: bool,
    jitter: f64,
    slept: Duration,
}

impl ManualClock {
    pub fn new(t: DateTime<Utc>) -> Self {
        ManualClock {
            state: Mutex::new(State {
                now: t,
                sleepers: Vec::new(),
                auto: false,
                jitter: 0.5,
                slept: Duration::ZERO,
            }),
        }
    }

    /// A clock whose sleeps advance it: waiting costs no real time.
    pub fn auto_advance(t: DateTime<Utc>) -> Self {
        let c = ManualClock::new(t);
        c.lock().auto = true;
        c
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock left consistent data behind.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn advance(&self, d: chrono::Duration) {
        let mut s = self.lock();
        let t = s.now + d;
        s.set(t);
    }

    pub fn set(&self, t: DateTime<Utc>) {
        self.lock().set(t);
    }

    pub fn set_jitter(&self, fraction: f64) {
        self.lock().jitter = fraction.clamp(0.0, 1.0);
    }

    /// Sleeps waiting for time to move.
    pub fn sleepers(&self) -> usize {
        let mut s = self.lock();
        s.sleepers.retain(|(_, tx)| !tx.is_closed());
        s.sleepers.len()
    }

    /// The total time all sleeps asked for (what a test would have waited in real time).
    pub fn slept(&self) -> Duration {
        self.lock().slept
    }
}

impl State {
    fn set(&mut self, t: DateTime<Utc>) {
        self.now = t;
        let (due, waiting): (Vec<_>, Vec<_>) =
            self.sleepers.drain(..).partition(|(end, _)| *end <= t);
        self.sleepers = waiting;
        for (_, tx) in due {
            let _ = tx.send(());
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    fn sleep(&self, d: Duration) -> Sleep {
        let mut s = self.lock();
        s.slept += d;
        let end = s.now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        if d.is_zero() || s.auto {
            if end > s.now {
                s.set(end);
            }
            return Box::pin(tokio::task::yield_now());
        }
        let (tx, rx) = oneshot::channel();
        s.sleepers.push((end, tx));
        Box::pin(async move {
            // A dropped clock ends the sleep rather than hanging forever.
            let _ = rx.await;
        })
    }

    fn jitter(&self) -> f64 {
        self.lock().jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sleeps_end_when_time_is_moved_past_them() {
        let t0 = Utc::now();
        let c = std::sync::Arc::new(ManualClock::new(t0));
        let short = c.sleep(Duration::from_secs(10));
        let long = c.sleep(Duration::from_secs(100));
        assert_eq!(c.sleepers(), 2);
        c.advance(chrono::Duration::seconds(30));
        short.await;
        assert_eq!(c.sleepers(), 1);
        let waiter = tokio::spawn(long);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        c.advance(chrono::Duration::seconds(70));
        waiter.await.unwrap();
        assert_eq!(
            c.until(c.deadline(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
    }

    #[tokio::test]
    async fn auto_advance_moves_time_by_the_sleep() {
        let t0 = Utc::now();
        let c = ManualClock::auto_advance(t0);
        c.sleep(Duration::from_secs(3600)).await;
        assert_eq!(c.now() - t0, chrono::Duration::hours(1));
        assert_eq!(c.slept(), Duration::from_secs(3600));
    }
}
