//! Retries for transient store failures. object_store already retries 5xx and 429
//! responses of each HTTP request; this layer covers what it leaves: errors after its
//! own retries ran out, connection resets on requests it does not consider idempotent
//! (a conditional create), and bodies cut short. Backoff doubles from 200 ms to 10 s with
//! "equal jitter" (half fixed, half random), so many workers do not retry in step.

use std::future::Future;
use std::time::Duration;

use crate::clock::Clock;
use crate::{Error, Result};

pub const ATTEMPTS: u32 = 6;
const FIRST: Duration = Duration::from_millis(200);
const MAX: Duration = Duration::from_secs(10);

impl Error {
    /// Whether trying again may succeed: network and server trouble, not answers.
    pub fn is_transient(&self) -> bool {
        use object_store::Error as S;
        match self {
            Error::Store { source, .. } => match crate::store::diagnose::Problem::of(source) {
                // Missing credentials, a wrong name or a refused grant stay so.
                Some(p) => p.is_transient(),
                None => !matches!(
                    source,
                    S::NotFound { .. }
                        | S::AlreadyExists { .. }
                        | S::Precondition { .. }
                        | S::NotModified { .. }
                        | S::PermissionDenied { .. }
                        | S::Unauthenticated { .. }
                        | S::InvalidPath { .. }
                        | S::NotSupported { .. }
                        | S::NotImplemented { .. }
                        | S::UnknownConfigurationKey { .. }
                ),
            },
            Error::ShortRead { .. } => true,
            _ => false,
        }
    }
}

/// The wait before retry number `attempt` (0-based), given a random fraction in 0..1.
pub fn backoff(attempt: u32, random: f64) -> Duration {
    let cap = FIRST.saturating_mul(1 << attempt.min(16)).min(MAX);
    cap / 2 + cap.mul_f64(random.clamp(0.0, 1.0) / 2.0)
}

/// Runs `op` until it succeeds, fails permanently, or [`ATTEMPTS`] tries are used. The
/// waits between tries are `clock`'s, so tests spend none of them for real.
pub async fn retry<T, F, Fut>(clock: &dyn Clock, what: &str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt + 1 < ATTEMPTS => {
                let wait = backoff(attempt, clock.jitter());
                tracing::info!("{what}: {e}; retrying in {} ms", wait.as_millis());
                clock.sleep(wait).await;
                attempt += 1;
            }
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(100));
        assert_eq!(backoff(0, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(3, 0.0), Duration::from_millis(800));
        assert_eq!(backoff(20, 1.0), MAX);
        assert!(backoff(20, 0.0) >= MAX / 2);
    }

    #[tokio::test]
    async fn transient_errors_are_retried_permanent_ones_not() {
        let clock = crate::clock::ManualClock::auto_advance(chrono::Utc::now());
        let clock = &clock;
        let mut n = 0;
        let r: Result<u32> = retry(clock, "t", || {
            n += 1;
            let k = n;
            async move {
                if k < 3 {
                    Err(Error::ShortRead { object: "o".into() })
                } else {
                    Ok(k)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
        // Two waits with the clock's fixed jitter of one half: 150 ms + 300 ms.
        assert_eq!(clock.slept(), Duration::from_millis(450));
        let mut m = 0;
        let r: Result<()> = retry(clock, "t", || {
            m += 1;
            async { Err(Error::NotFound { object: "o".into() }) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(m, 1);
        let mut k = 0;
        let r: Result<()> = retry(clock, "t", || {
            k += 1;
            async { Err(Error::ShortRead { object: "o".into() }) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(k, ATTEMPTS);
    }
}
