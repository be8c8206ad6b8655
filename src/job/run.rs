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
