//! The runner's Prometheus metrics (`job run --metrics-listen`): per job and machine the
//! copy lag — the age of the newest source point the target lacks, growing between
//! looks as time passes — and whether the machine is protected; per job the last
//! success, interval outcomes, points, bytes and requests by kind, errors, task slots
//! and throttling. Fed by each interval's report, by status looks at the sources, and
//! live by the copy's progress (bytes, chains in flight). Time comes from the injected
//! clock, so the lag is testable.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::config::Job;
use super::interval::{IntervalReport, MachineResult, Outcome};
use super::status::JobStatus;
use crate::clock::Clock;
use crate::progress::{Observer, Progress};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;
type Behind = BTreeMap<(String, String), Option<DateTime<Utc>>>;

fn job_label(job: &str) -> Labels {
    vec![("job".into(), job.into())]
}

fn machine_labels(job: &str, machine: &str) -> Labels {
    vec![
        ("job".into(), job.into()),
        ("machine".into(), machine.into()),
    ]
}

/// Every metric of a runner, registered once.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    clock: Arc<dyn Clock>,
    /// Per (job, machine): the time of the newest source point the target lacks, if any.
    behind: Arc<Mutex<Behind>>,
    lag: Family<Labels, FloatGauge>,
    protected: Family<Labels, Gauge>,
    last_copied: Family<Labels, FloatGauge>,
    last_success: Family<Labels, FloatGauge>,
    last_run: Family<Labels, FloatGauge>,
    last_outcome: Family<Labels, Gauge>,
    intervals: Family<Labels, Counter>,
    points: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    copied: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    slots: Family<Labels, Gauge>,
    slots_busy: Family<Labels, Gauge>,
    throttled: Family<Labels, Gauge>,
    concurrency: Family<Labels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new(clock: Arc<dyn Clock>) -> Metrics {
        let mut r = Registry::with_prefix("offsite");
        let m = Metrics {
            registry: Arc::new(Registry::default()),
            clock,
            behind: Arc::default(),
            lag: Family::default(),
            protected: Family::default(),
            last_copied: Family::default(),
            last_success: Family::default(),
            last_run: Family::default(),
            last_outcome: Family::default(),
            intervals: Family::default(),
            points: Family::default(),
            bytes: Family::default(),
            copied: Family::default(),
            requests: Family::default(),
            errors: Family::default(),
            retries: Family::default(),
            slots: Family::default(),
            slots_busy: Family::default(),
            throttled: Family::default(),
            concurrency: Family::default(),
        };
        // Name, help, field: the series an operator's dashboards read.
        macro_rules! register {
            ($($field:ident: $name:literal, $help:literal;)*) => {
                $(r.register($name, $help, m.$field.clone());)*
            };
        }
        register! {
            lag: "copy_lag_seconds",
                "Age of the newest source point the target lacks (0: the newest is copied)";
            protected: "machine_protected",
                "1 when the target holds the machine's newest source point, else 0";
            last_copied: "machine_last_copied_timestamp_seconds",
                "Creation time of the last point copied of the machine";
            last_success: "job_last_success_timestamp_seconds",
                "When an interval of the job last ended in success";
            last_run: "job_last_run_timestamp_seconds",
                "When an interval of the job last ended";
            last_outcome: "job_last_outcome",
                "The last interval's outcome: 0 success, 1 warning, 2 failed, 3 deferred (outside the copy windows)";
            intervals: "job_intervals",
                "Intervals run, by outcome";
            points: "job_points_copied",
                "Points copied";
            bytes: "job_bytes",
                "Bytes read from the sources (kind=read) and written to the target (kind=written), per finished copy";
            copied: "job_bytes_copied",
                "Bytes of blobs copied, counted as the copy goes";
            requests: "job_requests",
                "Store requests by store (source, target) and kind";
            errors: "job_errors",
                "Errors: failed phases, failed points and unprotected machines";
            retries: "job_retries",
                "Store requests tried again: 5xx and 429 answers and lost connections";
            slots: "job_task_slots",
                "Task slots (max_tasks)";
            slots_busy: "job_task_slots_busy",
                "Chains being copied now";
            throttled: "job_throttled",
                "1 while the job runs below its concurrency because the store throttles";
            concurrency: "job_concurrency",
                "Requests in flight the job allows itself now";
        }
        Metrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// Makes the job's series known before its first interval.
    pub fn add_job(&self, job: &Job) {
        let l = job_label(&job.name);
        self.slots.get_or_create(&l).set(job.max_tasks as i64);
        self.concurrency.get_or_create(&l).set(0);
        self.slots_busy.get_or_create(&l).set(0);
        self.throttled.get_or_create(&l).set(0);
        self.errors.get_or_create(&l).inc_by(0);
        self.retries.get_or_create(&l).inc_by(0);
        for o in Outcome::ALL {
            let mut lo = l.clone();
            lo.push(("outcome".into(), o.to_string()));
            self.intervals.get_or_create(&lo).inc_by(0);
        }
    }

    /// A progress observer for `job`'s copy: bytes and chains in flight, live.
    pub fn progress(&self, job: &str) -> Progress {
        Progress::new(Arc::new(Live {
            bytes: self.copied.get_or_create_owned(&job_label(job)),
            busy: self.slots_busy.get_or_create_owned(&job_label(job)),
        }))
    }

    /// A last success known from before this process (a scheduled run's metrics file
    /// carries it from run to run), unless this process has seen a later one.
    pub fn remember_success(&self, job: &str, at: f64) {
        let g = self.last_success.get_or_create(&job_label(job));
        if g.get() < at {
            g.set(at);
        }
    }

    /// What an interval did.
    pub fn interval(&self, r: &IntervalReport) {
        let l = job_label(&r.job);
        let ended = self.clock.now().timestamp() as f64;
        self.last_run.get_or_create(&l).set(ended);
        if r.outcome == Outcome::Success {
            self.last_success.get_or_create(&l).set(ended);
        }
        self.last_outcome.get_or_create(&l).set(match r.outcome {
            Outcome::Success => 0,
            Outcome::Warning => 1,
            Outcome::Failed => 2,
            Outcome::Deferred => 3,
        });
        let mut lo = l.clone();
        lo.push(("outcome".into(), r.outcome.to_string()));
        self.intervals.get_or_create(&lo).inc();
        let copied: usize = r.machines.iter().map(|m| m.points_copied).sum();
        self.points.get_or_create(&l).inc_by(copied as u64);
        let unprotected = r
            .machines
            .iter()
            .filter(|m| m.result == MachineResult::Unprotected)
            .count();
        self.errors
            .get_or_create(&l)
            .inc_by((r.errors.len() + unprotected) as u64);
        let t = &r.throttle;
        self.throttle(&r.job, t.limit, t.limit < t.ceiling);
        self.retries.get_or_create(&l).inc_by(t.failed_attempts);
        for c in r.copies.iter().flat_map(|c| &c.chains) {
            for (kind, n) in [("read", c.bytes_read), ("written", c.bytes_written)] {
                let mut lk = l.clone();
                lk.push(("kind".into(), kind.into()));
                self.bytes.get_or_create(&lk).inc_by(n);
            }
            for (store, q) in std::iter::once(("source", &c.requests_source))
                .chain(std::iter::once(("target", &c.requests_target)))
            {
                for (kind, n) in [
                    ("get", q.get),
                    ("put", q.put),
                    ("list", q.list),
                    ("head", q.head),
                    ("delete", q.delete),
                ] {
                    let mut lk = l.clone();
                    lk.push(("store".into(), store.into()));
                    lk.push(("kind".into(), kind.into()));
                    self.requests.get_or_create(&lk).inc_by(n);
                }
            }
            for p in &c.copied {
                self.last_copied
                    .get_or_create(&machine_labels(&r.job, &p.machine))
                    .set(p.time.timestamp() as f64);
            }
        }
    }

    /// What a look at the sources and target found: per machine whether the newest
    /// point is copied, and since when it waits if not.
    pub fn status(&self, s: &JobStatus) {
        let mut behind = self.behind.lock().unwrap_or_else(|e| e.into_inner());
        for m in &s.machines {
            let l = machine_labels(&s.job, &m.machine);
            self.protected.get_or_create(&l).set(i64::from(m.copied));
            if let Some(t) = m.last_copied {
                self.last_copied.get_or_create(&l).set(t.timestamp() as f64);
            }
            // A machine whose source cannot be read keeps the lag last seen (growing).
            let Some(newest) = m.newest_at_source else {
                continue;
            };
            behind.insert(
                (s.job.clone(), m.machine.clone()),
                (!m.copied).then_some(newest),
            );
        }
    }

    /// The AIMD state of a job: requests it allows itself, and whether that is below
    /// its usual because the store throttles.
    pub fn throttle(&self, job: &str, concurrency: usize, throttled: bool) {
        let l = job_label(job);
        self.concurrency.get_or_create(&l).set(concurrency as i64);
        self.throttled.get_or_create(&l).set(i64::from(throttled));
    }

    /// The metrics in the OpenMetrics text format, the lag computed for now.
    pub fn encode(&self) -> String {
        let now = self.clock.now();
        for ((job, machine), since) in self.behind.lock().unwrap_or_else(|e| e.into_inner()).iter()
        {
            let lag = since.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1e3);
            self.lag
                .get_or_create(&machine_labels(job, machine))
                .set(lag);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The live part: bytes as they are copied, chains as they start and end.
struct Live {
    bytes: Counter,
    busy: Gauge,
}

impl Observer for Live {
    fn add_bytes(&self, n: u64) {
        self.bytes.inc_by(n);
    }
    fn task_started(&self) {
        self.busy.inc();
    }
    fn task_finished(&self) {
        self.busy.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::job::status::MachineStatus;
    use chrono::TimeZone;

    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    }

    /// The lag of a machine whose newest point is not copied grows with the clock; a
    /// copied machine's is zero.
    #[test]
    fn the_copy_lag_grows_with_time_until_the_point_is_copied() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(t0));
        let m = Metrics::new(clock.clone());
        let machine = |name: &str, copied: bool| MachineStatus {
            machine: name.into(),
            newest_at_source: Some(t0 - chrono::Duration::hours(2)),
            copied,
            lag_seconds: Some(0),
            last_copied: None,
            source_error: None,
        };
        m.status(&JobStatus {
            job: "nightly".into(),
            target: "memory://t".into(),
            target_exists: true,
            target_error: None,
            sources: Vec::new(),
            last_run: None,
            last_result: None,
            last_trouble: None,
            last_prune: None,
            last_health_check: None,
            next_run: t0,
            next_prune: None,
            next_health_check: None,
            machines: vec![machine("web", false), machine("db", true)],
        });
        let text = m.encode();
        let web = r#"offsite_copy_lag_seconds{job="nightly",machine="web"}"#;
        let db = r#"offsite_copy_lag_seconds{job="nightly",machine="db"}"#;
        assert_eq!(value(&text, web), 7200.0);
        assert_eq!(value(&text, db), 0.0);
        assert_eq!(
            value(
                &text,
                r#"offsite_machine_protected{job="nightly",machine="web"}"#
            ),
            0.0
        );
        clock.advance(chrono::Duration::minutes(30));
        assert_eq!(value(&m.encode(), web), 9000.0);
    }

    #[test]
    fn live_progress_counts_bytes_and_busy_slots() {
        let m = Metrics::new(Arc::new(ManualClock::new(Utc::now())));
        let p = m.progress("j");
        p.task_started();
        p.task_started();
        p.add_bytes(1000);
        p.task_finished();
        let text = m.encode();
        assert_eq!(value(&text, r#"offsite_job_task_slots_busy{job="j"}"#), 1.0);
        assert_eq!(
            value(&text, r#"offsite_job_bytes_copied_total{job="j"}"#),
            1000.0
        );
    }

    /// Every series the shipped Grafana dashboard and Kubernetes alerts query is one the
    /// runner exports.
    #[test]
    fn the_dashboard_and_alerts_read_only_series_that_exist() {
        let source = include_str!("metrics.rs");
        let registered: Vec<String> = source
            .lines()
            .filter_map(|l| l.trim().split_once(": \""))
            .filter(|(field, _)| field.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .filter_map(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| format!("offsite_{name}"))
            .collect();
        assert!(registered.len() >= 16, "{registered:?}");
        let readers = [
            (
                "dashboard",
                include_str!("../../grafana/offsite-dashboard.json"),
                10,
            ),
            (
                "alerts",
                include_str!("../../kubernetes/components/monitoring/prometheusrule.yaml"),
                4,
            ),
        ];
        for (what, text, least) in readers {
            let mut used = 0;
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !word.starts_with("offsite_") || word == "offsite_jobs" {
                    continue;
                }
                let name = word.strip_suffix("_total").unwrap_or(word);
                assert!(
                    registered.iter().any(|r| r == name),
                    "the {what} read {word}, which is not exported"
                );
                used += 1;
            }
            assert!(used >= least, "the {what} query {used} series");
        }
    }
}
