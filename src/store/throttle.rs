//! A job's throttle on its stores' HTTP traffic: bandwidth limits for reads and writes
//! (token buckets, optionally by weekly time slot — "20 MB/s on weekdays 08:00–18:00")
//! and an AIMD limit on requests in flight that halves when the store answers 503
//! (SlowDown, ServerBusy) or 429 and grows by one per window of answers without one.
//!
//! It sits at the HTTP layer ([`ThrottleConnector`], object_store's `HttpConnector`), so
//! it sees every attempt, the store client's own retries included — a throttled store
//! answers many 503s that a retry then hides. Time is the injected clock's.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use serde::Serialize;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::schedule::Window;

/// Bytes per second for reads and writes (`None`: unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    pub read: Option<u64>,
    pub write: Option<u64>,
}

/// What a throttle is told: rates by default and per weekly slot, and the ceiling of
/// requests in flight.
#[derive(Clone, Debug, PartialEq)]
pub struct ThrottleSpec {
    pub rates: Rates,
    /// The first slot containing the moment wins; outside all, `rates`.
    pub schedule: Vec<(Window, Rates)>,
    pub max_requests: usize,
}

impl Default for ThrottleSpec {
    fn default() -> Self {
        ThrottleSpec {
            rates: Rates::default(),
            schedule: Vec::new(),
            max_requests: 64,
        }
    }
}

/// What the throttle did, for the report.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct ThrottleReport {
    /// Answers 503 or 429 seen.
    pub throttled_answers: u64,
    /// Attempts that failed in a way the store client retries: a 5xx or 429 answer, or
    /// no answer at all (connection refused or cut).
    pub failed_attempts: u64,
    /// Times the limit on requests in flight was halved.
    pub decreases: u64,
    /// The lowest the limit went, and where it is now.
    pub lowest_limit: usize,
    pub limit: usize,
    /// The ceiling it returns to.
    pub ceiling: usize,
    /// Seconds requests waited for bandwidth.
    pub waited_for_bandwidth: f64,
}

#[derive(Debug)]
struct Aimd {
    limit: f64,
    in_flight: usize,
    good_since_change: usize,
    last_decrease: Option<DateTime<Utc>>,
    report: ThrottleReport,
}

#[derive(Debug, Default)]
struct Bucket {
    /// Tokens (bytes) available; negative is debt paid by waiting.
    tokens: f64,
    last: Option<DateTime<Utc>>,
}

/// One job's throttle, shared by every store it opens.
#[derive(Debug)]
pub struct Throttle {
    spec: ThrottleSpec,
    clock: Arc<dyn Clock>,
    aimd: Mutex<Aimd>,
    freed: Notify,
    read: Mutex<Bucket>,
    write: Mutex<Bucket>,
}

/// Halvings closer together than this are one throttling episode.
const DECREASE_SPACING: chrono::Duration = chrono::Duration::seconds(1);

impl Throttle {
    pub fn new(spec: ThrottleSpec, clock: Arc<dyn Clock>) -> Arc<Throttle> {
        let max = spec.max_requests.max(1);
        Arc::new(Throttle {
            aimd: Mutex::new(Aimd {
                limit: max as f64,
                in_flight: 0,
                good_since_change: 0,
                last_decrease: None,
                report: ThrottleReport {
                    lowest_limit: max,
                    limit: max,
                    ceiling: max,
                    ..Default::default()
                },
            }),
            spec,
            clock,
            freed: Notify::new(),
            read: Mutex::default(),
            write: Mutex::default(),
        })
    }

    fn aimd(&self) -> std::sync::MutexGuard<'_, Aimd> {
        self.aimd.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn report(&self) -> ThrottleReport {
        self.aimd().report.clone()
    }

    /// Whether the limit is below its ceiling now (the store throttled recently).
    pub fn is_throttled(&self) -> bool {
        self.aimd().report.limit < self.spec.max_requests.max(1)
    }

    /// Waits for a place among the requests in flight.
    pub async fn enter(&self) {
        loop {
            let notified = self.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut a = self.aimd();
                if (a.in_flight as f64) < a.limit.floor().max(1.0) {
                    a.in_flight += 1;
                    return;
                }
            }
            notified.await;
        }
    }

    /// An attempt failed in a way that is retried (counted for the report).
    pub fn failed_attempt(&self) {
        self.aimd().report.failed_attempts += 1;
    }

    /// A request ended; `throttled` when the store answered 503 or 429.
    pub fn leave(&self, throttled: bool) {
        let now = self.clock.now();
        let max = self.spec.max_requests.max(1) as f64;
        {
            let mut a = self.aimd();
            a.in_flight = a.in_flight.saturating_sub(1);
            if throttled {
                a.report.throttled_answers += 1;
                let spaced = a.last_decrease.is_none_or(|t| now - t >= DECREASE_SPACING);
                if spaced {
                    // Halve what was really in flight, not a ceiling never reached.
                    let base = a.limit.min((a.in_flight + 1) as f64);
                    a.limit = (base / 2.0).floor().max(1.0);
                    a.last_decrease = Some(now);
                    a.good_since_change = 0;
                    a.report.decreases += 1;
                }
            } else {
                a.good_since_change += 1;
                // One more after a window's worth of good answers: additive increase.
                if a.good_since_change >= a.limit as usize && a.limit < max {
                    a.limit += 1.0;
                    a.good_since_change = 0;
                }
            }
            a.report.limit = a.limit as usize;
            a.report.lowest_limit = a.report.lowest_limit.min(a.limit as usize);
        }
        self.freed.notify_waiters();
    }

    /// The rates in force at `t`.
    fn rates_at(&self, t: DateTime<Utc>) -> Rates {
        self.spec
            .schedule
            .iter()
            .find(|(w, _)| w.open_at(t, &chrono::Local))
            .map_or(self.spec.rates, |(_, r)| *r)
    }

    /// Takes `bytes` from the read or write bucket, waiting while it is in debt.
    pub async fn take(&self, write: bool, bytes: u64) {
        let now = self.clock.now();
        let rates = self.rates_at(now);
        let Some(rate) = (if write { rates.write } else { rates.read }) else {
            return;
        };
        let rate = rate.max(1) as f64;
        let wait = {
            let mut b = match write {
                true => self.write.lock(),
                false => self.read.lock(),
            }
            .unwrap_or_else(|e| e.into_inner());
            // Refill since the last take, up to one second's worth (the burst).
            if let Some(last) = b.last {
                let secs = (now - last).num_milliseconds().max(0) as f64 / 1e3;
                b.tokens = (b.tokens + secs * rate).min(rate);
            } else {
                b.tokens = rate;
            }
            b.last = Some(now);
            b.tokens -= bytes as f64;
            if b.tokens < 0.0 {
                -b.tokens / rate
            } else {
                0.0
            }
        };
        if wait > 0.0 {
            self.aimd().report.waited_for_bandwidth += wait;
            self.clock.sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// object_store's HTTP connector with a [`Throttle`] in front of every request.
#[derive(Debug, Clone)]
pub struct ThrottleConnector(pub Arc<Throttle>);

impl HttpConnector for ThrottleConnector {
    fn connect(&self, options: &object_store::ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(Throttled {
            inner,
            throttle: self.0.clone(),
        }))
    }
}

#[derive(Debug)]
struct Throttled {
    inner: HttpClient,
    throttle: Arc<Throttle>,
}

#[async_trait::async_trait]
impl HttpService for Throttled {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let sent = req.body().content_length() as u64;
        if sent > 0 {
            self.throttle.take(true, sent).await;
        }
        self.throttle.enter().await;
        let res = self.inner.execute(req).await;
        let status = res.as_ref().map(|r| r.status().as_u16());
        let throttled = matches!(status, Ok(503 | 429));
        if matches!(status, Ok(500..=599 | 429) | Err(_)) {
            self.throttle.failed_attempt();
        }
        self.throttle.leave(throttled);
        if let Ok(r) = &res {
            let got = r
                .headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if got > 0 && r.status().is_success() {
                self.throttle.take(false, got).await;
            }
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn throttle(max: usize) -> (Arc<Throttle>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::auto_advance(Utc::now()));
        let spec = ThrottleSpec {
            max_requests: max,
            ..Default::default()
        };
        (Throttle::new(spec, clock.clone()), clock)
    }

    /// Throttled answers halve the requests in flight (once per episode), and good
    /// answers bring them back one at a time, up to the ceiling.
    #[tokio::test]
    async fn aimd_halves_on_throttling_and_recovers_step_by_step() {
        let (t, clock) = throttle(16);
        for _ in 0..8 {
            t.enter().await;
        }
        t.leave(true);
        assert_eq!(t.report().limit, 4, "half of the 8 in flight");
        // A second 503 of the same burst is the same episode.
        t.leave(true);
        assert_eq!(t.report().limit, 4);
        assert_eq!(t.report().decreases, 1);
        assert!(t.is_throttled());
        clock.advance(chrono::Duration::seconds(2));
        t.leave(true);
        assert_eq!(t.report().limit, 2, "halved again: {:?}", t.report());
        // Good answers: one more after each window of them (2, then 3, ...).
        for _ in 0..5 {
            t.leave(false);
        }
        assert_eq!(t.report().limit, 4, "{:?}", t.report());
        for _ in 0..200 {
            t.enter().await;
            t.leave(false);
        }
        let r = t.report();
        assert_eq!(
            (r.limit, r.lowest_limit, r.throttled_answers),
            (16, 2, 3),
            "{r:?}"
        );
        assert!(!t.is_throttled());
    }

    /// At the limit, a request waits until one in flight leaves.
    #[tokio::test]
    async fn a_request_over_the_limit_waits_for_a_place() {
        let (t, _clock) = throttle(2);
        t.enter().await;
        t.enter().await;
        let waiting = {
            let t = t.clone();
            tokio::spawn(async move { t.enter().await })
        };
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        t.leave(false);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
    }

    /// 10 MB through a 1 MB/s bucket takes about 9 s of (simulated) waiting: one second
    /// of burst, then the rate.
    #[tokio::test]
    async fn bandwidth_is_held_to_its_rate() {
        let clock = Arc::new(ManualClock::auto_advance(Utc::now()));
        let spec = ThrottleSpec {
            rates: Rates {
                read: Some(1_000_000),
                write: None,
            },
            ..Default::default()
        };
        let t = Throttle::new(spec, clock.clone());
        let start = clock.now();
        for _ in 0..10 {
            t.take(false, 1_000_000).await;
        }
        let took = (clock.now() - start).num_milliseconds();
        assert!((8_900..=9_100).contains(&took), "{took} ms");
        // Writes are not limited.
        let before = clock.now();
        t.take(true, 50_000_000).await;
        assert_eq!(clock.now(), before);
    }

    /// A slot of the weekly schedule sets the rate while it is open.
    #[tokio::test]
    async fn the_schedule_picks_the_rate_in_force() {
        let clock = Arc::new(ManualClock::auto_advance(Utc::now()));
        let spec = ThrottleSpec {
            rates: Rates {
                read: Some(1_000_000),
                write: None,
            },
            schedule: vec![(
                Window::parse("daily 00:00-24:00").unwrap(),
                Rates {
                    read: Some(100_000_000),
                    write: None,
                },
            )],
            ..Default::default()
        };
        let t = Throttle::new(spec, clock.clone());
        let start = clock.now();
        for _ in 0..10 {
            t.take(false, 10_000_000).await;
        }
        // 100 MB/s: no waiting for 100 MB beyond the first second's burst.
        assert!((clock.now() - start).num_milliseconds() <= 100);
    }

    /// Through object_store's S3 client against a server that answers 503 SlowDown three
    /// times before it serves: the client's retries get the object, and the throttle saw
    /// every 503 and lowered the requests in flight.
    #[tokio::test]
    async fn the_connector_sees_the_clients_retries_of_slow_downs() {
        use object_store::ObjectStoreExt;
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        let slow_down = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
        Mock::given(method("GET"))
            .and(path("/b/obj"))
            .respond_with(ResponseTemplate::new(503).set_body_string(slow_down))
            .up_to_n_times(3)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/b/obj"))
            .respond_with(ResponseTemplate::new(200).set_body_string("hello"))
            .mount(&server)
            .await;
        let (t, _clock) = throttle(8);
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(server.uri())
            .with_allow_http(true)
            .with_bucket_name("b")
            .with_region("us-east-1")
            .with_access_key_id("k")
            .with_secret_access_key("s")
            .with_http_connector(ThrottleConnector(t.clone()))
            .build()
            .unwrap();
        let got = store
            .get(&"obj".into())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(&got[..], b"hello");
        let r = t.report();
        assert_eq!(r.throttled_answers, 3, "{r:?}");
        assert_eq!(r.failed_attempts, 3, "{r:?}");
        assert!(r.decreases >= 1 && r.lowest_limit < 8, "{r:?}");
    }
}
