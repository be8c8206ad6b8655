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

/// What the runner tells its caller.
pub trait Reporter: Send + Sync {
    /// An interval ran: its report.
    fn report(&self, job: &Job, r: &IntervalReport);
    /// An interval could not run; it is tried again at `retry`.
    fn could_not_run(&self, job: &Job, e: &crate::Error, retry: DateTime<Utc>);
    /// The readable text of a report (for the report files).
    fn summary(&self, r: &IntervalReport) -> String;
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
        match run_once(j, clock.clone(), tz, &progress, &stop).await {
            Ok(r) => {
                out.report(j, &r);
                self.metrics.interval(&r);
                self.health.interval(&r);
                super::report::deliver(&j.name, &j.report, &r, &out.summary(&r), clock);
                if self.refresh.is_some() && !stop.is_stopped() {
                    look(j, clock, &self.metrics).await;
                }
                r.waits_until
            }
            Err(e) => {
                self.health.could_not_run(&j.name);
                let retry = clock.now() + RETRY;
                out.could_not_run(j, &e, retry);
                Some(retry)
            }
        }
    }
}

/// A status look at one job for its metrics; a look that fails is logged, and the
/// next one tries again.
async fn look(j: &Job, clock: &Arc<dyn Clock>, metrics: &Metrics) {
    match super::status::status(j, clock).await {
        Ok(s) => metrics.status(&s),
        Err(e) => tracing::warn!("{}: cannot look at the copy lag: {e}", j.name),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::Utc;

    use super::*;
    use crate::clock::ManualClock;
    use crate::job::config::{SourceSpec, TargetSpec};
    use crate::job::interval::Outcome;
    use crate::secret::Secret;

    /// Records what the runner says, and stops it after `calls`.
    struct Recorder {
        calls: usize,
        failed_at: Mutex<Vec<(DateTime<Utc>, DateTime<Utc>)>>,
        clock: Arc<dyn Clock>,
        stop: Stop,
    }

    impl Reporter for Recorder {
        fn report(&self, _: &Job, _: &IntervalReport) {
            panic!("this job cannot run");
        }
        fn could_not_run(&self, _: &Job, _: &crate::Error, retry: DateTime<Utc>) {
            let mut f = self.failed_at.lock().unwrap();
            f.push((self.clock.now(), retry));
            if f.len() >= self.calls {
                self.stop.stop();
            }
        }
        fn summary(&self, _: &IntervalReport) -> String {
            String::new()
        }
    }

    /// A job whose source is not there cannot run: the runner says so, counts it in its
    /// health, and tries again RETRY later — three times in simulated time, no real wait.
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
            calls: 3,
            failed_at: Mutex::default(),
            clock: clock.clone(),
            stop: stop.clone(),
        };
        let run = daemon.run(&Utc, stop.clone(), &out);
        tokio::time::timeout(std::time::Duration::from_secs(30), run)
            .await
            .expect("three tries in simulated time");
        let tries = out.failed_at.into_inner().unwrap();
        assert_eq!(tries.len(), 3);
        for w in tries.windows(2) {
            assert_eq!(w[0].1, w[0].0 + RETRY, "retried RETRY later");
            assert!(w[1].0 >= w[0].1, "not before it was due");
        }
        let health = daemon.health.snapshot();
        let h = &health["nightly"];
        assert_eq!((h.running, h.last_outcome), (false, Some(Outcome::Failed)));
    }
}
