//! What the requests through a location show of the link to the store — the latency of a
//! request (time until the answer's headers) and the rate one request's body moves at —
//! and, from that, how many requests to keep in flight. A request spends its latency
//! moving no data; to keep `base` requests' worth of bytes moving, `base × (1 + latency /
//! transfer time)` must be open: the bandwidth-delay product in requests. On loopback
//! that is `base`; at 40 ms per direction with 4 MiB reads it is several times more. It
//! is recomputed as requests finish, within a cap that bounds memory.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bodies shorter than this say little about the rate (they are mostly latency).
const RATE_SAMPLE_MIN: u64 = 256 << 10;
/// Weight of a new sample in the moving averages.
const WEIGHT: f64 = 0.2;

/// Moving averages of what requests through one location took.
#[derive(Debug, Default)]
pub struct Link {
    inner: Mutex<Estimates>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Estimates {
    /// Seconds until an answer's headers.
    latency: Option<f64>,
    /// Bytes per second of one request's body.
    rate: Option<f64>,
}

fn average(old: Option<f64>, sample: f64) -> Option<f64> {
    Some(match old {
        Some(o) => o + WEIGHT * (sample - o),
        None => sample,
    })
}

impl Link {
    fn estimates(&self) -> Estimates {
        *self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request answered (headers in) after `d`.
    pub fn latency_sample(&self, d: Duration) {
        let mut e = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        e.latency = average(e.latency, d.as_secs_f64());
    }

    /// A body of `bytes` moved in `d` (after its headers).
    pub fn transfer_sample(&self, bytes: u64, d: Duration) {
        if bytes < RATE_SAMPLE_MIN || d.is_zero() {
            return;
        }
        let mut e = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        e.rate = average(e.rate, bytes as f64 / d.as_secs_f64());
    }

    /// A request that sent `bytes` was answered after `d`: latency and transfer in one.
    /// Small ones are latency; large ones give a rate once the latency is taken off.
    pub fn upload_sample(&self, bytes: u64, d: Duration) {
        if bytes < RATE_SAMPLE_MIN {
            return self.latency_sample(d);
        }
        let latency = self.latency().unwrap_or_default();
        self.transfer_sample(bytes, d.saturating_sub(latency));
    }

    /// The latency seen so far, if any request has been answered.
    pub fn latency(&self) -> Option<Duration> {
        self.estimates().latency.map(Duration::from_secs_f64)
    }

    /// Requests of about `request_bytes` each to keep in flight so that `base` of them
    /// are moving data at any time, at most `cap` (and at least `base`).
    pub fn in_flight(&self, request_bytes: u64, base: usize, cap: usize) -> usize {
        let base = base.max(1);
        let cap = cap.max(base);
        let e = self.estimates();
        // Until a large body has been timed (and on stores that hand over files, not
        // streams), stay at base.
        let (Some(latency), Some(rate)) = (e.latency, e.rate.filter(|r| *r > 0.0)) else {
            return base;
        };
        let transfer = request_bytes.max(1) as f64 / rate;
        let n = base as f64 * (1.0 + latency / transfer.max(1e-6));
        (n.round() as usize).clamp(base, cap)
    }
}

/// A limit on requests in flight that follows the link: each finished request moves the
/// limit toward [`Link::in_flight`] — up at once, down one permit per finished request.
#[derive(Debug)]
pub struct Inflight {
    link: Arc<Link>,
    permits: Arc<Semaphore>,
    limit: AtomicUsize,
    request_bytes: u64,
    base: usize,
    cap: usize,
}

/// One request's place; dropping it returns the place and adjusts the limit.
#[derive(Debug)]
pub struct Place<'a> {
    permit: Option<OwnedSemaphorePermit>,
    of: &'a Inflight,
}

impl Inflight {
    /// Requests of about `request_bytes`, `base` moving data at a time, at most `cap` in
    /// flight.
    pub fn new(link: Arc<Link>, request_bytes: u64, base: usize, cap: usize) -> Inflight {
        let start = link.in_flight(request_bytes, base, cap);
        Inflight {
            link,
            permits: Arc::new(Semaphore::new(start)),
            limit: AtomicUsize::new(start),
            request_bytes,
            base: base.max(1),
            cap: cap.max(base.max(1)),
        }
    }

    /// Exactly `n` in flight, whatever the link does.
    pub fn fixed(n: usize) -> Inflight {
        let n = n.max(1);
        Inflight {
            link: Arc::default(),
            permits: Arc::new(Semaphore::new(n)),
            limit: AtomicUsize::new(n),
            request_bytes: 0,
            base: n,
            cap: n,
        }
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// The most this can ever allow (size buffers by it).
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Waits for a place.
    pub async fn enter(&self) -> Place<'_> {
        // The semaphore is never closed, so acquiring cannot fail; a place without a
        // permit would only not count.
        let permit = self.permits.clone().acquire_owned().await.ok();
        Place { permit, of: self }
    }

    fn adjust(&self, permit: OwnedSemaphorePermit) {
        let want = self.link.in_flight(self.request_bytes, self.base, self.cap);
        let limit = self.limit();
        if want < limit {
            // Keep this place closed: one step down.
            permit.forget();
            self.limit.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        drop(permit);
        if want > limit {
            self.permits.add_permits(want - limit);
            self.limit.store(want, Ordering::Relaxed);
        }
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.permit.take() {
            self.of.adjust(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn in_flight_follows_the_bandwidth_delay_product() {
        let link = Link::default();
        assert_eq!(link.in_flight(4 * MIB, 3, 16), 3, "nothing seen yet");
        link.latency_sample(Duration::from_millis(80));
        assert_eq!(link.in_flight(4 * MIB, 3, 16), 3, "no body timed yet");
        let link = Link::default();
        // Loopback: answers in 1 ms, 4 MiB in 10 ms: base.
        link.latency_sample(Duration::from_millis(1));
        link.transfer_sample(4 * MIB, Duration::from_millis(10));
        assert_eq!(link.in_flight(4 * MIB, 3, 16), 3);
        // 80 ms round trips at the same rate: 3 × (1 + 80/10) = 27, capped.
        let far = Link::default();
        far.latency_sample(Duration::from_millis(80));
        far.transfer_sample(4 * MIB, Duration::from_millis(10));
        assert_eq!(far.in_flight(4 * MIB, 3, 16), 16);
        assert_eq!(far.in_flight(4 * MIB, 3, 64), 27);
        // Small bodies do not count toward the rate.
        far.transfer_sample(1000, Duration::from_secs(1));
        assert_eq!(far.in_flight(4 * MIB, 3, 64), 27);
    }

    #[tokio::test]
    async fn the_limit_rises_and_falls_with_the_link() {
        let link = Arc::new(Link::default());
        let inflight = Inflight::new(link.clone(), 4 * MIB, 2, 8);
        assert_eq!(inflight.limit(), 2);
        link.latency_sample(Duration::from_millis(80));
        link.transfer_sample(4 * MIB, Duration::from_millis(40));
        drop(inflight.enter().await);
        assert_eq!(inflight.limit(), 6, "2 × (1 + 80/40)");
        let places: Vec<_> = futures::future::join_all((0..6).map(|_| inflight.enter())).await;
        // The link got fast: each finished request gives one place back.
        for _ in 0..30 {
            link.latency_sample(Duration::from_micros(10));
        }
        drop(places);
        assert_eq!(inflight.limit(), 2);
        assert_eq!(inflight.permits.available_permits(), 2);
    }
}
