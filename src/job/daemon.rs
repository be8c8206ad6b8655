//! The continuous runner (`offsite job run`): every job's intervals on schedule until
//! stopped ([`super::runner::run_forever`]), each interval's report handed to the
//! caller, fed to the metrics and health and delivered (report files, webhook); an
//! interval that could not run is tried again [`RETRY`] later; with a lag refresh, the
//! copy lag looked at every so often and after each interval. Everything runs on the
//! injected clock, so its policy is tested in simulated time; the CLI only prints,
//! serves the endpoint and turns signals into the stop.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::config::Job;
use super::endpoint::Health;
use super::interval::IntervalReport;
use super::metrics::Metrics;
use super::run::run_once;
use crate::clock::Clock;
use crate::stop::Stop;

/// An interval that could not run (a store unreachable, a lock held) is tried again
/// this much later, within its interval.
pub const RETRY: chrono::Duration = chrono::Duration::minutes(10);

/// Polls of an immediate job that did nothing, and repeats of the same failure, are
/// not reported one by one: a line says how many there were this often.
pub const HEARTBEAT: chrono::Duration = chrono::Duration::hours(1);

/// What the runner tells its caller.
pub trait Reporter: Send + Sync {
    /// An interval ran (or could not start: `r.not_started`): its report.
    fn report(&self, job: &Job, r: &IntervalReport);
    /// `quiet` intervals since `since` were not reported (nothing happened, or the same
    /// failure again); the last ended in `last`.
    fn heartbeat(&self, job: &Job, quiet: u64, since: DateTime<Utc>, last: &IntervalReport);
    /// The readable text of a report (for the report files).
    fn summary(&self, r: &IntervalReport) -> String;
}

/// What the runner last said of a job, so it says nothing twice.
#[derive(Default)]
struct Said {
    /// The last report delivered: its problems, and when.
    last: Option<(String, DateTime<Utc>)>,
    /// Intervals since then not reported, since when.
    quiet: u64,
    quiet_since: Option<DateTime<Utc>>,
    /// When the last report or heartbeat was given.
    spoke: Option<DateTime<Utc>>,
}

impl Said {
    /// Whether `r` deserves a report of its own: a periodic job's interval that went
    /// well always does (one report an interval), an immediate job's poll when it did
    /// something; one with problems when it copied something, or its problems are not
    /// the ones reported last (or that was over [`HEARTBEAT`] ago).
    fn worth_reporting(&self, job: &Job, r: &IntervalReport, now: DateTime<Utc>) -> bool {
        let fresh =
            |(sig, at): &(String, DateTime<Utc>)| *sig != signature(r) || now - *at >= HEARTBEAT;
        let copied = r.machines.iter().any(|m| m.points_copied > 0);
        let immediate = matches!(job.mode, super::config::Mode::Immediate { .. });
        match r.outcome {
            super::interval::Outcome::Success => !immediate || r.did_something(),
            _ => copied || self.last.as_ref().is_none_or(fresh),
        }
    }
}

/// What makes two reports the same for [`Said`]: the outcome and the problems.
fn signature(r: &IntervalReport) -> String {
    let lagging = r.unprotected();
    format!(
        "{} {:?} {:?} {lagging:?}",
        r.outcome, r.errors, r.not_started
    )
}

/// The runner's jobs and what it feeds.
pub struct Daemon {
    pub jobs: Vec<Job>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub health: Health,
    /// How often the copy lag is looked at between intervals; `None`: never (no one
    /// reads the metrics).
    pub refresh: Option<Duration>,
    said: std::sync::Mutex<std::collections::HashMap<String, Said>>,
}

impl Daemon {
    /// A runner for `jobs` on `clock`, its metrics and health knowing each job.
    pub fn new(jobs: Vec<Job>, clock: Arc<dyn Clock>, refresh: Option<Duration>) -> Daemon {
        let (metrics, health) = (Metrics::new(clock.clone()), Health::default());
        for j in &jobs {
            metrics.add_job(j);
            health.add_job(&j.name);
        }
        Daemon {
            jobs,
            clock,
            metrics,
            health,
            refresh,
            said: Default::default(),
        }
    }

    /// Runs the jobs until `stop` is asked (a transfer in progress stops at a pack
    /// boundary), periods and windows in `tz`.
    pub async fn run<Tz: TimeZone>(&self, tz: &Tz, stop: Stop, out: &dyn Reporter) {
        if let Some(every) = self.refresh {
            let (jobs, clock, metrics, stop) = (
                self.jobs.clone(),
                self.clock.clone(),
                self.metrics.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                while !stop.is_stopped() {
                    for j in &jobs {
                        look(j, &clock, &metrics).await;
                    }
                    tokio::select! {
                        _ = clock.sleep(every) => {}
                        _ = stop.stopped() => {}
                    }
                }
            });
        }
        let memory = futures::future::join_all(
            (self.jobs.iter()).map(|j| super::runner::remember(j, &self.clock)),
        )
        .await;
        let interval = |j: &Job, _at| {
            let (j, stop) = (j.clone(), stop.clone());
            async move { self.interval(&j, tz, stop, out).await }
        };
        let runner = super::runner::run_forever(
            &self.jobs,
            memory,
            self.clock.clone(),
            tz,
            interval,
            stop.clone(),
        );
        runner.await;
    }

    /// One interval of `j`; when the runner should look at it again, if it says.
    async fn interval<Tz: TimeZone>(
        &self,
        j: &Job,
        tz: &Tz,
        stop: Stop,
        out: &dyn Reporter,
    ) -> Option<DateTime<Utc>> {
        let clock = &self.clock;
        self.health.started(&j.name);
        let progress = self.metrics.progress(&j.name);
        let mut r = run_once(j, clock.clone(), tz, &progress, &stop).await;
        if r.not_started.is_some() {
            // Tried again within the interval.
            r.waits_until = Some(clock.now() + RETRY);
        }
        self.metrics.interval(&r);
        self.health.interval(&r);
        self.tell(j, &r, out);
        if self.refresh.is_some() && !stop.is_stopped() && r.not_started.is_none() {
            look(j, clock, &self.metrics).await;
        }
        r.waits_until
    }

    /// Reports and delivers `r` when it is worth it (see [`Said`]); else counts it and
    /// gives a heartbeat line every [`HEARTBEAT`].
    fn tell(&self, j: &Job, r: &IntervalReport, out: &dyn Reporter) {
        let now = self.clock.now();
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        let s = said.entry(j.name.clone()).or_default();
        if s.worth_reporting(j, r, now) {
            out.report(j, r);
            super::report::deliver(&j.name, &j.report, r, &out.summary(r), &self.clock);
            *s = Said {
                last: Some((signature(r), now)),
                spoke: Some(now),
                ..Said::default()
            };
            return;
        }
        s.quiet += 1;
        let since = *s.quiet_since.get_or_insert(r.started);
        if s.spoke.is_none_or(|t| now - t >= HEARTBEAT) {
            out.heartbeat(j, s.quiet, since, r);
            s.spoke = Some(now);
            (s.quiet, s.quiet_since) = (0, None);
        }
    }
}

/// A status look at one job for its metrics; a look that fails is logged, and the
/// next one tries again.
async fn look(j: &Job, clock: &Arc<dyn Clock>, metrics: &Metrics) {
    // The metrics use the lags only, which do not depend on the time zone.
    let s = super::status::status(j, clock, &Utc).await;
    let unread = s
        .target_error
        .iter()
        .chain(s.sources.iter().filter_map(|s| s.error.as_ref()));
    for e in unread {
        tracing::warn!("{}: cannot look at the copy lag: {e}", j.name);
    }
    metrics.status(&s);
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::clock::ManualClock;
    use crate::job::config::{SourceSpec, TargetSpec};
    use crate::job::interval::Outcome;
    use crate::secret::Secret;

    /// Records what the runner says, and stops it after `calls` reports.
    struct Recorder {
        calls: usize,
        reports: Mutex<Vec<IntervalReport>>,
        heartbeats: Mutex<Vec<u64>>,
        /// Stop after this many heartbeats too.
        beats: usize,
        stop: Stop,
    }

    impl Reporter for Recorder {
        fn report(&self, _: &Job, r: &IntervalReport) {
            let mut f = self.reports.lock().unwrap();
            f.push(r.clone());
            if f.len() >= self.calls {
                self.stop.stop();
            }
        }
        fn heartbeat(&self, _: &Job, quiet: u64, _: DateTime<Utc>, _: &IntervalReport) {
            let mut b = self.heartbeats.lock().unwrap();
            b.push(quiet);
            if b.len() >= self.beats {
                self.stop.stop();
            }
        }
        fn summary(&self, _: &IntervalReport) -> String {
            String::new()
        }
    }

    /// A job whose source and target are not there cannot run: the runner reports
    /// why, counts it in its health, and tries again RETRY later — the same failure
    /// reported again only an hour later, all in simulated time.
    #[tokio::test]
    async fn an_interval_that_cannot_run_is_tried_again_after_the_retry_pause() {
        let t0 = Utc::now();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::auto_advance(t0));
        let secret = Secret::Env("OFFSITE_DAEMON_TEST_UNSET".into());
        let source = SourceSpec::plain("memory://daemon-test-nothing-here/repo", secret.clone());
        let target = TargetSpec::plain("memory://daemon-test-target/jobs", secret);
        let job = Job::plain("nightly", vec![source], target);
        let daemon = Daemon::new(vec![job], clock.clone(), None);
        let stop = Stop::new();
        let out = Recorder {
            calls: 2,
            reports: Mutex::default(),
            heartbeats: Mutex::default(),
            beats: usize::MAX,
            stop: stop.clone(),
        };
        let run = daemon.run(&Utc, stop.clone(), &out);
        tokio::time::timeout(std::time::Duration::from_secs(30), run)
            .await
            .expect("two reports in simulated time");
        let reports = out.reports.into_inner().unwrap();
        assert_eq!(reports.len(), 2);
        for r in &reports {
            assert_eq!(r.outcome, Outcome::Failed);
            let why = r.not_started.as_deref().unwrap();
            assert!(
                why.starts_with("memory://daemon-test-target/jobs/nightly: "),
                "{why}"
            );
            assert!(
                why.contains("OFFSITE_DAEMON_TEST_UNSET is not set"),
                "{why}"
            );
            assert!(r.errors[0].contains("daemon-test-nothing-here"), "{r:?}");
            assert_eq!(
                r.waits_until,
                Some(r.started + RETRY),
                "tried again RETRY later"
            );
        }
        // Tried every RETRY; the five tries between said nothing.
        let apart = reports[1].started - reports[0].started;
        assert!(apart >= HEARTBEAT && apart < HEARTBEAT + RETRY, "{apart}");
        assert!(out.heartbeats.into_inner().unwrap().is_empty());
        let health = daemon.health.snapshot();
        let h = &health["nightly"];
        assert_eq!((h.running, h.last_outcome), (false, Some(Outcome::Failed)));
    }

    /// What the runner says of an immediate job polling every minute for two hours:
    /// the poll that copied a point is reported, the polls that found nothing are
    /// counted into a heartbeat line an hour; a failure is reported, the same failure
    /// again within the hour is not, a different one is.
    #[test]
    fn an_immediate_job_reports_what_it_did_and_a_heartbeat_an_hour() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 0, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(t0));
        let secret = Secret::Env("UNUSED".into());
        let job = Job {
            mode: crate::job::Mode::Immediate {
                poll_every: std::time::Duration::from_secs(60),
            },
            ..Job::plain("live", Vec::new(), TargetSpec::plain("memory://x", secret))
        };
        let daemon = Daemon::new(vec![job.clone()], clock.clone(), None);
        let out = Recorder {
            calls: usize::MAX,
            reports: Mutex::default(),
            heartbeats: Mutex::default(),
            beats: usize::MAX,
            stop: Stop::new(),
        };
        let poll = |copied: usize, errors: &[&str]| {
            let mut r = IntervalReport::new("live", "memory://x/live", clock.now());
            r.machines.push(crate::job::interval::MachineReport {
                machine: "web".into(),
                result: crate::job::interval::MachineResult::UpToDate,
                points_copied: copied,
                reason: None,
            });
            r.errors = errors.iter().map(|e| e.to_string()).collect();
            r.outcome = crate::job::interval::outcome(&r);
            daemon.tell(&job, &r, &out);
            clock.advance(chrono::Duration::minutes(1));
        };
        poll(1, &[]);
        for _ in 0..120 {
            poll(0, &[]);
        }
        assert_eq!(
            out.reports.lock().unwrap().len(),
            1,
            "only the poll that copied"
        );
        assert_eq!(*out.heartbeats.lock().unwrap(), vec![60, 60]);
        poll(0, &["source s3://a: unreachable"]);
        poll(0, &["source s3://a: unreachable"]);
        poll(0, &["source s3://b: unreachable"]);
        let reports = out.reports.lock().unwrap();
        assert_eq!(reports.len(), 3, "a new problem is said, a repeat is not");
        assert_eq!(reports[2].errors[0], "source s3://b: unreachable");
    }
}
