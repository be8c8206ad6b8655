//! Progress reporting: counters every operation updates, drawn as an indicatif bar
//! only when standard error is a terminal, so pipes and CI logs stay quiet.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Clone, Default)]
pub struct Progress {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    bytes: AtomicU64,
    files: AtomicU64,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Counts without drawing.
    pub fn hidden() -> Progress {
        Progress::default()
    }

    /// Draws a bar on a terminal; `total` bytes if known (for an ETA), else a spinner.
    pub fn for_terminal(label: &str, total: Option<u64>) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress::hidden();
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}")
                    .expect("valid template"),
            ),
        };
        bar.set_message(label.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Progress {
            inner: Arc::new(Inner {
                bar: Some(bar),
                ..Default::default()
            }),
        }
    }

    /// Grows the expected total (work is discovered as it is planned), so the bar
    /// shows an ETA for what is known.
    pub fn add_total(&self, n: u64) {
        if let Some(b) = &self.inner.bar {
            b.inc_length(n);
        }
    }

    pub fn add_bytes(&self, n: u64) {
        self.inner.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(b) = &self.inner.bar {
            b.inc(n);
        }
    }

    pub fn add_file(&self) {
        self.inner.files.fetch_add(1, Ordering::Relaxed);
    }

    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    pub fn files(&self) -> u64 {
        self.inner.files.load(Ordering::Relaxed)
    }

    pub fn finish(&self) {
        if let Some(b) = &self.inner.bar {
            b.finish_and_clear();
        }
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
    pub fn enter(&self) -> BusyGuard {
        let mut s = self.inner.lock().expect("busy lock");
        if s.in_flight == 0 {
            s.since = Some(Instant::now());
        }
        s.in_flight += 1;
        drop(s);
        BusyGuard(self.clone())
    }

    /// Busy time so far (including an operation still in flight).
    pub fn total(&self) -> Duration {
        let s = self.inner.lock().expect("busy lock");
        s.total + s.since.map_or(Duration::ZERO, |t| t.elapsed())
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut s = self.0.inner.lock().expect("busy lock");
        s.in_flight -= 1;
        if s.in_flight == 0
            && let Some(t) = s.since.take()
        {
            s.total += t.elapsed();
        }
    }
}
