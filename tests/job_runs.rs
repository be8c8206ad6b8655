//! Whole job intervals (`job::run::run_once`) over in-memory sources and targets, on a
//! simulated clock: the copy window, the plan, pauses and stops at pack boundaries,
//! scripts, the health check, look-forward and the active full.

use chrono::Utc;

use offsite::job::script::{self, OnFailure};

use std::sync::Arc;

use chrono::TimeZone;
use offsite::Error;
use offsite::clock::Clock;
use offsite::clock::ManualClock;
use offsite::job::config::{Job, SourceSpec};
use offsite::job::config::{Secret, TargetSpec};
use offsite::job::run::*;
use offsite::job::state::JobState;
use offsite::progress::Progress;
use offsite::repo::InitOptions;
use offsite::repo::Repository;
use offsite::schedule::{Window, Windows};
use offsite::stop::Stop;
use offsite::store;
use offsite::testkit;

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
        kdf: offsite::keys::DRY_RUN_KDF,
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
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &Stop::new()).await;
    assert!(r.copies.is_empty(), "{r:?}");
    assert_eq!(r.outcome, Outcome::Deferred, "{r:?}");
    // Every machine is in the table, deferred to the window's opening.
    assert_eq!(r.machines.len(), 2, "{r:?}");
    for m in &r.machines {
        assert_eq!(m.result, MachineResult::Deferred, "{r:?}");
        assert!(
            m.reason
                .as_ref()
                .unwrap()
                .contains("2026-11-30 01:00:00 UTC"),
            "{m:?}"
        );
    }
    let waits = r.transfer_waits.unwrap();
    assert!(waits.contains("2026-11-30 01:00:00 UTC"), "{waits}");

    clock.advance(chrono::Duration::hours(38)); // Monday 02:00
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &Stop::new()).await;
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
    let prices = offsite::prices::Prices::load(None).unwrap();
    let p = offsite::job::plan::plan(&job, clock.clone(), &prices, &Utc)
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

    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &Stop::new()).await;
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

    let again = offsite::job::plan::plan(&job, clock, &prices, &Utc)
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
    let gated = offsite::store::gated::GatedStore::new(testkit::memory());
    store::register_memory("pause-dst", Arc::new(gated.clone()));
    let gate = gated.gate(offsite::store::gated::Op::Put, "data/");
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
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &Stop::new()).await;
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
    let gated = offsite::store::gated::GatedStore::new(testkit::memory());
    store::register_memory("sigterm-dst", Arc::new(gated.clone()));
    let gate = gated.gate(offsite::store::gated::Op::Put, "data/");
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
    let (mut job, pw, files) = job("scripts").await;
    job.windows = Windows(Vec::new());
    let log = pw.path().join("log");
    let l = log.display();
    job.pre_script = sh(
        &format!("echo pre $OFFSITE_JOB $OFFSITE_INTERVAL_START >> {l}; test ! -e {l}.fail"),
        OnFailure::Fail,
    );
    job.post_script = sh(
        &format!("echo post $OFFSITE_RESULT $OFFSITE_POINTS_COPIED $OFFSITE_UNPROTECTED >> {l}"),
        OnFailure::Warn,
    );
    // Sunday 29 November 2026, 10:00 UTC: the daily interval began at midnight.
    let t0 = Utc.with_ymd_and_hms(2026, 11, 29, 10, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let never = Stop::new();
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.scripts.len(), 2);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text, "pre scripts 2026-11-29T00:00:00+00:00\npost success 2\n",
        "the pre-job script ran before the copy, the post-job script after"
    );

    // Now the pre-job script fails (and web has a new point): nothing is
    // transferred, the post-job script hears of it, and the interval is not counted
    // as done.
    let src = store::open(&job.sources[0].url, false).unwrap();
    let src = Arc::new(Repository::open(src, testkit::PW).await.unwrap());
    testkit::backup_machine(&src, files.path(), "web", 7).await;
    std::fs::write(format!("{l}.fail"), "").unwrap();
    std::fs::remove_file(&log).unwrap();
    clock.advance(chrono::Duration::days(1));
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never).await;
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
    assert!(r.copies.is_empty() && r.retention.is_none(), "{r:?}");
    assert!(r.errors[0].contains("pre-job script"), "{r:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    // Every machine is in the table — web unprotected because of the script, db
    // up to date — and the post-job script is told which.
    assert!(text.ends_with("post failed 0 web\n"), "{text}");
    let result = |m: &str| r.machines.iter().find(|x| x.machine == m).unwrap().clone();
    assert_eq!(result("db").result, MachineResult::UpToDate, "{r:?}");
    let web = result("web");
    assert_eq!(web.result, MachineResult::Unprotected, "{r:?}");
    assert!(
        web.reason.unwrap().contains("pre-job script failed"),
        "{r:?}"
    );

    // Told to warn, the same failure lets the interval run.
    job.pre_script.as_mut().unwrap().on_failure = OnFailure::Warn;
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never).await;
    assert_eq!(r.outcome, Outcome::Warning, "{r:?}");
    assert!(r.retention.is_some(), "{r:?}");
    assert!(r.warnings[0].contains("pre-job script"), "{r:?}");
}

/// When due, the health check heals a corrupt blob of the target from the source
/// before the transfer, and remembers when it ran; the next interval skips it. A check
/// of the empty target (the first interval) does not count; a heal is a warning that
/// says which pack, how many points and from where — and the only interval a
/// `webhook_on = "problems"` receiver hears of.
#[tokio::test]
async fn a_due_health_check_heals_the_target() {
    use offsite::job::report::{SendOn, Webhook, deliver};
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let (mut job, _pw, _files) = job("healing").await;
    job.windows = Windows(Vec::new());
    job.health_check = Some(offsite::job::config::HealthCheckSpec {
        every: std::time::Duration::from_secs(30 * 86_400),
    });
    job.report.webhook = Some(Webhook {
        url: format!("{}/hook", receiver.uri()),
        token_env: None,
        on: SendOn::Problems,
    });
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let c: Arc<dyn Clock> = clock.clone();
    let never = Stop::new();
    let run = || async {
        let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never).await;
        if let Some(sent) = deliver(&job.name, &job.report, &r, "", &c) {
            sent.await.unwrap();
        }
        r
    };
    let r = run().await;
    assert_eq!(r.health.as_ref().unwrap().points, 0, "{r:?}");
    clock.advance(chrono::Duration::days(1));
    let r = run().await;
    let h = r.health.as_ref().unwrap();
    assert_eq!(
        (h.points, h.blobs_bad),
        (2, 0),
        "the first check of copies: {r:?}"
    );

    let target = Repository::open(
        store::open(&job.target.repository_url(&job.name), false).unwrap(),
        &job.target.password.read().unwrap(),
    )
    .await
    .unwrap();
    let (pack, e) = testkit::largest_blob(&target).await;
    testkit::flip_bit(&*target.loc.store, &target.loc.path(&pack), e.offset + 30).await;

    clock.advance(chrono::Duration::days(1));
    let r = run().await;
    assert!(r.health.is_none(), "not due yet");
    assert!(
        receiver.received_requests().await.unwrap().is_empty(),
        "all went well so far"
    );
    clock.advance(chrono::Duration::days(30));
    let r = run().await;
    let calls = receiver.received_requests().await.unwrap();
    assert_eq!(calls.len(), 1, "one webhook call, for the heal");
    let sent: serde_json::Value = serde_json::from_slice(&calls[0].body).unwrap();
    assert_eq!(sent["outcome"], "warning");
    let h = r.health.as_ref().unwrap();
    assert!(h.blobs_healed >= 1 && h.is_healthy(), "{h:?}");
    // Healed, the interval warns: the target's storage damaged data.
    assert_eq!(r.outcome, Outcome::Warning, "{r:?}");
    assert_eq!(h.healed.len(), 1, "{h:?}");
    let said = &r.warnings[0];
    let short = &pack.rsplit('/').next().unwrap()[..8];
    let head = format!("health check: pack {short} was damaged (1 bad blob); ");
    assert!(said.starts_with(&head), "{said}");
    assert!(
        said.contains("its bad blobs were copied again from source memory://healing-src/repo"),
        "{said}"
    );
    assert!(!said.contains("It was not changed"), "{said}");
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
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never).await;
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
    let opts = offsite::backup::BackupOptions {
        machine: "web".into(),
        paths: vec![root],
        base: Some(files.path().to_path_buf()),
        time: Some(clock.now()),
        ..Default::default()
    };
    offsite::backup::run(src, opts, Progress::hidden())
        .await
        .unwrap();
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never).await;
    assert_eq!(result(&r, "web"), Some(MachineResult::Copied), "{r:?}");
    assert_eq!(result(&r, "db"), Some(MachineResult::Waiting), "{r:?}");

    // The last look of the interval: db is unprotected, and retention runs.
    clock.set(day.and_hms_opt(23, 58, 0).unwrap().and_utc());
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never).await;
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
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let a = r.active_full.as_ref().expect("due on the first interval");
    assert!(a.blobs_healed > 0, "{a:?}");
    clock.advance(chrono::Duration::days(1));
    let r = run_once(&job, clock.clone(), &Utc, &Progress::hidden(), &never).await;
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
