//! Progress: operations report what they did to an observer; the library draws nothing.
//! The CLI implements [`Observer`] with a terminal bar; a job runner or an appliance
//! will feed its metrics from the same calls. [`Busy`] measures how long a pipeline
//! stage had work in flight, for the bottleneck figures of a copy report.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Told about work as it happens. Every method has a do-nothing default.
pub trait Observer: Send + Sync {
    /// More work became known: `bytes` to be processed (an ETA grows with the plan).
    fn add_total(&self, _bytes: u64) {}
    /// `bytes` of work were done.
    fn add_bytes(&self, _bytes: u64) {}
    /// One file was read or written.
    fn add_file(&self) {}
    /// The operation ended.
    fn finish(&self) {}
    /// A task (a chain of a copy) started, or finished: task slots in use.
    fn task_started(&self) {}
    fn task_finished(&self) {}
    /// A pack reached the store (not yet indexed): an appliance reports these so a
    /// runner that loses it can index them instead of sending their blobs again.
    fn pack_written(&self, _pack: &crate::format::index::IndexedPack) {}
}

struct Silent;
impl Observer for Silent {}

/// A cheap, cloneable handle to an observer, passed to every long operation.
#[derive(Clone)]
pub struct Progress(Arc<dyn Observer>);

impl Progress {
    /// Reports to nobody.
    pub fn hidden() -> Progress {
        Progress(Arc::new(Silent))
    }

    pub fn new(observer: Arc<dyn Observer>) -> Progress {
        Progress(observer)
    }

    pub fn add_total(&self, n: u64) {
        self.0.add_total(n);
    }

    pub fn add_bytes(&self, n: u64) {
        self.0.add_bytes(n);
    }

    pub fn add_file(&self) {
        self.0.add_file();
    }

    pub fn finish(&self) {
        self.0.finish();
    }

    pub fn task_started(&self) {
        self.0.task_started();
    }

    pub fn task_finished(&self) {
        self.0.task_finished();
    }

    pub fn pack_written(&self, pack: &crate::format::index::IndexedPack) {
        self.0.pack_written(pack);
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::hidden()
    }
}

/// Measures how long a pipeline stage was busy: the wall time during which at least one
/// of its operations was in flight. Shares of these over the job's duration show which
/// stage limits it.
#[derive(Clone, Default, Debug)]
pub struct Busy {
    inner: Arc<Mutex<BusyState>>,
}

#[derive(Default, Debug)]
struct BusyState {
    in_flight: u32,
    since: Option<Instant>,
    total: Duration,
}

/// Marks one operation in flight until dropped.
pub struct BusyGuard(Busy);

impl Busy {
    fn state(&self) -> std::sync::MutexGuard<'_, BusyState> {
        // The state stays consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn enter(&self) -> BusyGuard {
        let mut s = self.state();
        if s.in_flight == 0 {
            s.since = Some(Instant::now());
        }
        s.in_flight += 1;
        drop(s);
        BusyGuard(self.clone())
    }

    /// Busy time so far (including an operation still in flight).
    pub fn total(&self) -> Duration {
        let s = self.state();
        s.total + s.since.map_or(Duration::ZERO, |t| t.elapsed())
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.in_flight -= 1;
        if s.in_flight == 0
            && let Some(t) = s.since.take()
        {
            s.total += t.elapsed();
        }
    }
}
