//! One interval of a job, now (`offsite job run --once`): its repositories opened (the
//! target made on the first run), the job's lock in its target, then the phases
//! ([`super::phases`]: pre-job script, health check, transfer — each source's newest
//! point of each machine that the target lacks, machines side by side up to
//! `max_tasks` — active full, retention, prune, post-job script) under that lock, then
//! the job's state saved in the target and a report per machine.
//!
//! Outside the job's copy windows the transfer waits for the next window (retention and
//! prune still run); a window that closes mid-transfer, or a stop (SIGTERM), ends it at
//! a pack boundary with what is whole committed.

use std::sync::Arc;

use chrono::TimeZone;

use super::config::{Job, SourceSpec};
pub use super::interval::{IntervalReport, MachineReport, MachineResult, Outcome};
use super::phases::{self, Interval};
use super::state::JobState;
use crate::clock::Clock;
use crate::copy;
use crate::format::lock::{Holder, Purpose};
use crate::progress::Progress;
use crate::repo::lock::LockGuard;
use crate::repo::{Repository, WarmSpec};
use crate::stop::Stop;
use crate::store::throttle::{Throttle, ThrottleReport};
use crate::{Error, Result, store};

async fn open_source(
    s: &SourceSpec,
    clock: &Arc<dyn Clock>,
    throttle: &Arc<Throttle>,
) -> Result<Arc<Repository>> {
    let (url, pw, warm) = (&s.url, &s.password, WarmSpec::READER);
    let repo = crate::repo::open_repository_with(url, pw, clock, warm, Some(throttle)).await?;
    let repo = repo.ok_or_else(|| Error::NoRepository { url: s.url.clone() })?;
    Ok(Arc::new(repo))
}

/// The job's target repository, made with its own key on the first run (unless the job
/// is mapped onto an existing one).
async fn open_target(
    job: &Job,
    first_source: &Repository,
    clock: &Arc<dyn Clock>,
    throttle: &Arc<Throttle>,
) -> Result<Arc<Repository>> {
    let url = job.target.repository_url(&job.name);
    let secret = &job.target.password;
    let warm = WarmSpec::COPY_TARGET;
    match crate::repo::open_repository_with(&url, secret, clock, warm, Some(throttle)).await? {
        Some(mut r) => {
            // The job's data class and lock, written once into the target's config
            // (and again when the job file changes them).
            let wanted = job.storage_policy();
            if r.config.storage != wanted {
                r.set_storage(wanted).await?;
            }
            return Ok(Arc::new(r));
        }
        None if job.target.map => {
            return Err(Error::Invalid(format!(
                "{url}: no repository there; a mapped job (map = true) continues an existing repository"
            )));
        }
        None => {}
    }
    let pw = secret
        .read()
        .map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    let loc = store::open_throttled(&url, true, Some(throttle.clone()))?.with_clock(clock.clone());
    let mut opts = copy::target_init_options(
        &first_source.config,
        Some(job.target.compression),
        job.target.pack_size,
        crate::keys::kdf_from_env()?,
    );
    opts.storage = job.storage_policy();
    tracing::info!(
        "{}: creating the job's target repository at {url}",
        job.name
    );
    Ok(Arc::new(Repository::init(loc, &pw, opts).await?))
}

/// The job's own lock in its target: one runner per job. Another runner's live lock for
/// the job stops this one.
async fn lock_job(target: &Arc<Repository>, job: &str) -> Result<LockGuard> {
    let holder = Holder::Job(job.to_string());
    let (g, others, ()) = LockGuard::acquire_shared_and_list(
        target,
        Purpose::Job,
        Some(holder.clone()),
        &|_| false,
        &|_| {},
        async { Ok(()) },
    )
    .await?;
    let now = target.clock().now();
    let running: Vec<String> = others
        .iter()
        .filter(|l| l.lock.operation == Purpose::Job && l.lock.machine.as_ref() == Some(&holder))
        .map(|l| l.describe(now))
        .collect();
    if running.is_empty() {
        return Ok(g);
    }
    let _ = g.release().await;
    Err(Error::Locked(format!(
        "job {job} is being run by another runner ({}); this one leaves it",
        running.join("; ")
    )))
}

/// Runs one interval of `job` now, on `clock`, periods and windows in `tz`. When `stop`
/// is asked, the transfer finishes the packs it is filling, commits what is whole and
/// the interval ends there (its retention and prune wait for the next run).
pub async fn run_once<Tz: TimeZone>(
    job: &Job,
    clock: Arc<dyn Clock>,
    tz: &Tz,
    progress: &Progress,
    stop: &Stop,
) -> Result<IntervalReport> {
    let started = clock.now();
    let timer = std::time::Instant::now();
    // One throttle for all the interval's traffic: the job's bandwidth and its requests
    // in flight, lowered when a store throttles.
    let throttle = Throttle::new(job.throttle.clone(), clock.clone());
    let opened = futures::future::try_join_all(
        job.sources
            .iter()
            .map(|s| open_source(s, &clock, &throttle)),
    );
    let sources = opened.await?;
    let first = sources
        .first()
        .ok_or_else(|| Error::Invalid(format!("job {}: no sources", job.name)))?;
    let target = open_target(job, first, &clock, &throttle).await?;
    let mut report = IntervalReport {
        job: job.name.clone(),
        target: target.url().to_string(),
        started,
        seconds: 0.0,
        outcome: Outcome::Success,
        machines: Vec::new(),
        transfer_waits: None,
        waits_until: None,
        copies: Vec::new(),
        retention: None,
        prune: None,
        health: None,
        active_full: None,
        errors: Vec::new(),
        warnings: Vec::new(),
        scripts: Vec::new(),
        stopped: false,
        throttle: ThrottleReport::default(),
        archivers: None,
    };
    let lock = lock_job(&target, &job.name).await?;
    let mut state = match JobState::load(&target, &job.name).await {
        Ok(s) => s,
        Err(e) => {
            let _ = lock.release().await;
            return Err(e);
        }
    };
    let iv = Interval {
        job,
        clock: &clock,
        tz,
        progress,
        stop,
        sources: &sources,
        target: &target,
        started,
        bounds: match &job.mode {
            super::config::Mode::Periodic { intervals } => Some(intervals.around(started, tz)),
            super::config::Mode::Immediate { .. } => None,
        },
        job_lock: lock.name.clone(),
    };
    let halted = phases::drive(&iv, &mut state, &mut report).await;

    report.throttle = throttle.report();
    if report.throttle.decreases > 0 {
        report.warnings.push(format!(
            "the stores answered {} request(s) with 503/429: requests in flight were lowered to {} (now {})",
            report.throttle.throttled_answers, report.throttle.lowest_limit, report.throttle.limit
        ));
    }
    state.last_run = Some(clock.now());
    if !halted && !report.stopped && report.transfer_waits.is_none() {
        state.last_interval = Some(started);
    }
    state.last_result = Some(report.outcome);
    // The state is saved, and the job's lock let go, however the phases went.
    let saved = state.save(&target).await;
    lock.release_after(saved).await?;
    report.seconds = timer.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use crate::job::script::{self, OnFailure};

    use super::*;
    use crate::clock::ManualClock;
    use crate::job::config::{Secret, TargetSpec};
    use crate::repo::InitOptions;
    use crate::schedule::{Window, Windows};
    use crate::testkit;

    /// A job over an in-memory source holding two machines, into an in-memory target,
    /// transferring only on Mondays 01:00–05:00.
    async fn job(name: &str) -> (Job, tempfile::TempDir, tempfile::TempDir) {
        job_of(name, 3 << 20).await
    }

    /// [`job`] with machines of `big` bytes each.
    async fn job_of(name: &str, big: usize) -> (Job, tempfile::TempDir, tempfile::TempDir) {
        let src_url = format!("memory://{name}-src/repo");
        let pw = tempfile::tempdir().unwrap();
        std::fs::write(pw.path().join("pw"), "unit test\n").unwrap();
        let opts = InitOptions {
            kdf: crate::keys::DRY_RUN_KDF,
            ..Default::default()
        };
        let src = Arc::new(
            Repository::init(store::open(&src_url, true).unwrap(), testkit::PW, opts)
                .await
                .unwrap(),
        );
        let files = tempfile::tempdir().unwrap();
        for (i, m) in ["web", "db"].iter().enumerate() {
            testkit::backup_machine_sized(&src, files.path(), m, i as u64, big).await;
        }
        let secret = Secret::File(pw.path().join("pw"));
        let sources = vec![SourceSpec::plain(&src_url, secret.clone())];
        let target = TargetSpec {
            pack_size: Some(1 << 20),
            ..TargetSpec::plain(&format!("memory://{name}-dst/jobs"), secret)
        };
        let job = Job {
            max_tasks: 2,
            windows: Windows(vec![Window::parse("mon 01:00-05:00").unwrap()]),
            ..Job::plain(name, sources, target)
        };
        (job, pw, files)
    }

    /// The job's target after an interval that did not finish: its state does not count
    /// the interval as done, and what it holds checks clean.
    async fn unfinished_but_clean(job: &Job) -> Repository {
        let target = Repository::open(
            store::open(&job.target.repository_url(&job.name), false).unwrap(),
            &job.target.password.read().unwrap(),
        )
        .await
        .unwrap();
        let state = JobState::load(&target, &job.name).await.unwrap();
        assert_eq!(state.last_interval, None);
        let check = testkit::check_read_data(&target).await;
        assert!(check.is_ok(), "{:?}", check.errors);
        target
    }

    /// Outside its window the interval transfers nothing and says when the window opens;
    /// inside it, every machine is copied and the state remembers them.
    #[tokio::test]
    async fn transfer_waits_for_the_copy_window() {
        let (job, _pw, _files) = job("window").await;
        // Saturday 28 November 2026, noon UTC.
        let sat = Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(sat));
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &Stop::new())
            .await
            .unwrap();
        assert!(r.copies.is_empty(), "{r:?}");
        let waits = r.transfer_waits.unwrap();
        assert!(waits.contains("2026-11-30 01:00:00 UTC"), "{waits}");

        clock.advance(chrono::Duration::hours(38)); // Monday 02:00
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &Stop::new())
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        let copied: Vec<_> = r
            .machines
            .iter()
            .filter(|m| m.result == MachineResult::Copied)
            .collect();
        assert_eq!(copied.len(), 2, "{r:?}");
        let target = store::open(&job.target.repository_url(&job.name), false).unwrap();
        let pw = job.target.password.read().unwrap();
        let target = Repository::open(target, &pw).await.unwrap();
        let state = JobState::load(&target, &job.name).await.unwrap();
        assert_eq!(state.machines.len(), 2);
        assert_eq!(state.last_interval, Some(clock.now()));
    }

    /// A job's plan writes nothing (not even the target), projects what the interval's
    /// transfer then does — points, bytes read, PUTs within 5 % (or one request) — and,
    /// once the copy ran, finds nothing left.
    #[tokio::test]
    async fn a_job_plan_projects_the_transfer_and_writes_nothing() {
        let (job, _pw, _files) = job_of("plan", 3 << 20).await;
        let monday = Utc.with_ymd_and_hms(2026, 11, 30, 2, 0, 0).unwrap();
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(monday));
        let prices = crate::prices::Prices::load(None).unwrap();
        let p = super::super::plan::plan(&job, clock.clone(), &prices)
            .await
            .unwrap();
        assert!(!p.target_exists);
        assert_eq!((p.total.points, p.sources[0].chains), (2, 2), "{p:?}");
        assert_eq!(p.cost.target_class, "default");
        let url = job.target.repository_url(&job.name);
        let pw = job.target.password.read().unwrap();
        let absent = Repository::open(store::open(&url, false).unwrap(), &pw).await;
        assert!(
            matches!(absent, Err(Error::NoRepository { .. })),
            "the plan made the target"
        );

        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &Stop::new())
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        let chains = r.copies.iter().flat_map(|c| &c.chains);
        let (read, puts) = chains.fold((0, 0), |(b, n), c| {
            (b + c.bytes_read, n + c.requests_target.put)
        });
        // Within 5 %, or one request per chain: how many packs a chain's transfer closes
        // varies by one from run to run (its packers work side by side), so with two
        // chains the PUTs vary by two (measured on the code before and after the issue 19
        // refactor alike: 10, 11 or 12 for a projection of 12).
        let chains = p.sources[0].chains as f64;
        let near = |projected: u64, actual: u64, slack: f64| {
            (projected as f64 - actual as f64).abs() <= (0.05 * actual as f64).max(slack)
        };
        assert!(
            near(p.total.bytes_to_read, read, 1.0),
            "{} vs {read}",
            p.total.bytes_to_read
        );
        assert!(
            near(p.total.put_requests, puts, chains),
            "{} vs {puts}",
            p.total.put_requests
        );

        let again = super::super::plan::plan(&job, clock, &prices)
            .await
            .unwrap();
        assert!(again.target_exists);
        assert_eq!(again.total.points, 0, "{again:?}");
    }

    /// A window that closes mid-transfer pauses it at a pack boundary: the packs
    /// written are kept and indexed, no machine counts as copied, the report says when
    /// the transfer resumes, and the next window's run brings only the rest.
    #[tokio::test]
    async fn a_closing_window_pauses_the_transfer_and_the_next_resumes_it() {
        // More packs per machine than uploads in flight.
        let (job, _pw, _files) = job_of("pause", 12 << 20).await;
        let gated = crate::store::gated::GatedStore::new(testkit::memory());
        store::register_memory("pause-dst", Arc::new(gated.clone()));
        let gate = gated.gate(crate::store::gated::Op::Put, "data/");
        // Monday 30 November 2026, 04:59 UTC: the window closes in a minute.
        let t0 = Utc.with_ymd_and_hms(2026, 11, 30, 4, 59, 0).unwrap();
        let clock = Arc::new(ManualClock::new(t0));
        let (hidden, never) = (Progress::hidden(), Stop::new());
        let run = run_once(&job, clock.clone(), &Utc, &hidden, &never);
        let closer = async {
            gate.wait_for(1).await;
            clock.advance(chrono::Duration::minutes(2));
            gate.open();
        };
        let (r, ()) = tokio::join!(run, closer);
        let r = r.unwrap();
        assert!(
            r.machines
                .iter()
                .all(|m| m.result == MachineResult::Unprotected),
            "{r:?}"
        );
        let waits = r.transfer_waits.clone().unwrap();
        assert!(
            waits.contains("closed at 2026-11-30 05:00:00 UTC"),
            "{waits}"
        );
        let next = Utc.with_ymd_and_hms(2026, 12, 7, 1, 0, 0).unwrap();
        assert_eq!(r.waits_until, Some(next));
        let first: u64 = r
            .copies
            .iter()
            .flat_map(|c| &c.chains)
            .map(|c| c.blobs_new)
            .sum();
        assert!(first > 0, "the packs in flight were finished: {r:?}");
        let target = unfinished_but_clean(&job).await;

        clock.set(next + chrono::Duration::hours(1));
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &Stop::new())
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        let second: u64 = r
            .copies
            .iter()
            .flat_map(|c| &c.chains)
            .map(|c| c.blobs_new)
            .sum();
        let check = testkit::check_read_data(&target).await;
        assert!(check.is_ok(), "{:?}", check.errors);
        assert_eq!(check.points, 2);
        assert_eq!(
            check.blobs as u64,
            first + second,
            "nothing was brought twice"
        );
    }

    /// A stop asked mid-transfer ends the interval there: what is whole is committed,
    /// retention and prune do not run, and the interval is not counted as done.
    #[tokio::test]
    async fn a_stop_ends_the_interval_at_a_pack_boundary() {
        let (mut job, _pw, _files) = job_of("sigterm", 12 << 20).await;
        job.windows = Windows(Vec::new());
        let gated = crate::store::gated::GatedStore::new(testkit::memory());
        store::register_memory("sigterm-dst", Arc::new(gated.clone()));
        let gate = gated.gate(crate::store::gated::Op::Put, "data/");
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let stop = Stop::new();
        let hidden = Progress::hidden();
        let run = run_once(&job, clock.clone(), &Utc, &hidden, &stop);
        let asker = async {
            gate.wait_for(1).await;
            stop.stop();
            gate.open();
        };
        let (r, ()) = tokio::join!(run, asker);
        let r = r.unwrap();
        assert!(r.stopped, "{r:?}");
        assert!(r.retention.is_none(), "{r:?}");
        assert_eq!(r.outcome, Outcome::Warning);
        let target = unfinished_but_clean(&job).await;
        let check = testkit::check_read_data(&target).await;
        assert_eq!(check.points, 0, "{check:?}");
    }

    fn sh(script: &str, on_failure: OnFailure) -> Option<script::ScriptSpec> {
        Some(script::ScriptSpec {
            command: vec!["sh".into(), "-c".into(), script.into()],
            timeout: std::time::Duration::from_secs(30),
            on_failure,
        })
    }

    /// The scripts run first and last, see the job, the interval and (post) the
    /// result; a pre-job script that fails and is told to fail stops the interval
    /// before any transfer, and the post-job script still runs.
    #[tokio::test]
    async fn scripts_run_around_the_interval_and_a_failing_pre_script_stops_it() {
        let (mut job, pw, _files) = job("scripts").await;
        job.windows = Windows(Vec::new());
        let log = pw.path().join("log");
        let l = log.display();
        job.pre_script = sh(
            &format!("echo pre $OFFSITE_JOB $OFFSITE_INTERVAL_START >> {l}; test ! -e {l}.fail"),
            OnFailure::Fail,
        );
        job.post_script = sh(
            &format!("echo post $OFFSITE_RESULT $OFFSITE_POINTS_COPIED >> {l}"),
            OnFailure::Warn,
        );
        // Sunday 29 November 2026, 10:00 UTC: the daily interval began at midnight.
        let t0 = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
        let clock = Arc::new(ManualClock::new(t0));
        let never = Stop::new();
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(r.scripts.len(), 2);
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            text, "pre scripts 2026-11-29T00:00:00+00:00\npost success 2\n",
            "the pre-job script ran before the copy, the post-job script after"
        );

        // Now the pre-job script fails: nothing is transferred, the post-job script
        // hears of it, and the interval is not counted as done.
        std::fs::write(format!("{l}.fail"), "").unwrap();
        std::fs::remove_file(&log).unwrap();
        clock.advance(chrono::Duration::days(1));
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
        assert!(r.copies.is_empty() && r.retention.is_none(), "{r:?}");
        assert!(r.errors[0].contains("pre-job script"), "{r:?}");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.ends_with("post failed 0\n"), "{text}");

        // Told to warn, the same failure lets the interval run.
        job.pre_script.as_mut().unwrap().on_failure = OnFailure::Warn;
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Warning, "{r:?}");
        assert!(r.retention.is_some(), "{r:?}");
        assert!(r.warnings[0].contains("pre-job script"), "{r:?}");
    }

    /// When due, the health check heals a corrupt blob of the target from the source
    /// before the transfer, and remembers when it ran; the next interval skips it.
    #[tokio::test]
    async fn a_due_health_check_heals_the_target() {
        let (mut job, _pw, _files) = job("healing").await;
        job.windows = Windows(Vec::new());
        job.health_check = Some(crate::job::config::HealthCheckSpec {
            every: std::time::Duration::from_secs(30 * 86_400),
        });
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let never = Stop::new();
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        assert_eq!(r.health.as_ref().unwrap().blobs_bad, 0, "{r:?}");

        let target = Repository::open(
            store::open(&job.target.repository_url(&job.name), false).unwrap(),
            &job.target.password.read().unwrap(),
        )
        .await
        .unwrap();
        let (pack, e) = testkit::largest_blob(&target).await;
        testkit::flip_bit(&*target.loc.store, &target.loc.path(&pack), e.offset + 30).await;

        clock.advance(chrono::Duration::days(1));
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        assert!(r.health.is_none(), "not due yet");
        clock.advance(chrono::Duration::days(30));
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        let h = r.health.as_ref().unwrap();
        assert!(h.blobs_healed >= 1 && h.is_healthy(), "{h:?}");
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        let check = testkit::check_read_data(&target).await;
        assert!(check.is_ok(), "{:?}", check.errors);
        assert_eq!(check.points, 2);
    }

    /// `look_forward`: machines wait within the interval for a point made after it
    /// began (the older ones are not copied); one that gets a point is copied at the next
    /// look; one that never does is unprotected at the interval's last look — and only
    /// then do retention and prune run.
    #[tokio::test]
    async fn look_forward_waits_for_a_point_of_this_interval() {
        let (mut job, _pw, files) = job("forward").await;
        job.windows = Windows(Vec::new());
        job.look_forward = Some(std::time::Duration::from_secs(300));
        // Tomorrow 10:00 UTC: the daily interval began at midnight, after every point.
        let day = (Utc::now() + chrono::Duration::days(1)).date_naive();
        let t0 = day.and_hms_opt(10, 0, 0).unwrap().and_utc();
        let clock = Arc::new(ManualClock::new(t0));
        let never = Stop::new();
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        let result = |r: &IntervalReport, m: &str| {
            r.machines
                .iter()
                .find(|x| x.machine == m)
                .map(|x| x.result.clone())
        };
        assert_eq!(result(&r, "web"), Some(MachineResult::Waiting), "{r:?}");
        assert_eq!(result(&r, "db"), Some(MachineResult::Waiting), "{r:?}");
        assert_eq!(r.waits_until, Some(t0 + chrono::Duration::minutes(5)));
        assert!(
            r.retention.is_none(),
            "retention waits for the copies: {r:?}"
        );

        // web gets a point in this interval.
        clock.advance(chrono::Duration::minutes(5));
        let src = Arc::new(
            Repository::open(
                store::open(&job.sources[0].url, false).unwrap(),
                testkit::PW,
            )
            .await
            .unwrap(),
        );
        let root = files.path().join("web");
        std::fs::write(root.join("new-today"), b"made after the interval began").unwrap();
        let opts = crate::backup::BackupOptions {
            machine: "web".into(),
            paths: vec![root],
            base: Some(files.path().to_path_buf()),
            time: Some(clock.now()),
            ..Default::default()
        };
        crate::backup::run(src, opts, Progress::hidden())
            .await
            .unwrap();
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        assert_eq!(result(&r, "web"), Some(MachineResult::Copied), "{r:?}");
        assert_eq!(result(&r, "db"), Some(MachineResult::Waiting), "{r:?}");

        // The last look of the interval: db is unprotected, and retention runs.
        clock.set(day.and_hms_opt(23, 58, 0).unwrap().and_utc());
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        assert_eq!(result(&r, "db"), Some(MachineResult::Unprotected), "{r:?}");
        assert_eq!(result(&r, "web"), Some(MachineResult::UpToDate), "{r:?}");
        assert!(r.waits_until.is_none() && r.retention.is_some(), "{r:?}");
    }

    /// An active full runs after the transfer when due — the newest points read again
    /// into fresh packs — and not again until `every` has passed.
    #[tokio::test]
    async fn an_active_full_runs_when_due() {
        let (mut job, _pw, _files) = job("activefull").await;
        job.windows = Windows(Vec::new());
        job.active_full = Some(std::time::Duration::from_secs(30 * 86_400));
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let never = Stop::new();
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        let a = r.active_full.as_ref().expect("due on the first interval");
        assert!(a.blobs_healed > 0, "{a:?}");
        clock.advance(chrono::Duration::days(1));
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never)
            .await
            .unwrap();
        assert!(r.active_full.is_none(), "{r:?}");
        let target = Repository::open(
            store::open(&job.target.repository_url(&job.name), false).unwrap(),
            &job.target.password.read().unwrap(),
        )
        .await
        .unwrap();
        let check = testkit::check_read_data(&target).await;
        assert!(check.is_ok(), "{:?}", check.errors);
        assert_eq!(check.points, 2);
    }
}
