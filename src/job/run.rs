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
use super::machines::{self, Reachable};
use super::phases::{self, Interval};
use super::state::JobState;
use crate::clock::Clock;
use crate::copy;
use crate::format::lock::{Holder, Purpose};
use crate::progress::Progress;
use crate::repo::lock::LockGuard;
use crate::repo::{Repository, WarmSpec};
use crate::stop::Stop;
use crate::store::throttle::Throttle;
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
/// is mapped onto an existing one) with the first readable source's chunking.
async fn open_target(
    job: &Job,
    first_source: Option<&Arc<Repository>>,
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
    let Some(first_source) = first_source else {
        return Err(Error::Invalid(format!(
            "{url}: no repository there yet, and no source could be read to make it from"
        )));
    };
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
///
/// Every path ends in a report: a source that cannot be read leaves its machines
/// unprotected (by name, from the job's state) and the others are copied; a target
/// that cannot be reached, or another runner's lock, gives a failed report whose
/// `not_started` says why (the runner tries again later).
pub async fn run_once<Tz: TimeZone>(
    job: &Job,
    clock: Arc<dyn Clock>,
    tz: &Tz,
    progress: &Progress,
    stop: &Stop,
) -> IntervalReport {
    let started = clock.now();
    let timer = std::time::Instant::now();
    let url = job.target.repository_url(&job.name);
    let mut report = IntervalReport::new(&job.name, &url, started);
    // One throttle for all the interval's traffic: the job's bandwidth and its requests
    // in flight, lowered when a store throttles.
    let throttle = Throttle::new(job.throttle.clone(), clock.clone());
    let opened = job
        .sources
        .iter()
        .map(|s| open_source(s, &clock, &throttle));
    let opened = futures::future::join_all(opened).await;
    let mut up = Reachable::default();
    let mut down = Vec::new();
    for (spec, r) in job.sources.iter().zip(opened) {
        match r {
            Ok(repo) => {
                up.specs.push(spec);
                up.repos.push(repo);
            }
            Err(e) => {
                report.errors.push(format!("source {}: {e}", spec.url));
                down.push((spec, e.to_string()));
            }
        }
    }
    match reach_target(job, &up, &clock, &throttle).await {
        Ok((target, lock, state)) => {
            report.target = target.url().to_string();
            // What runners and copies killed earlier left: their locks and staging files.
            match target.sweep_dead(&[lock.name.as_str()]).await {
                Ok(s) if s.is_empty() => {}
                Ok(s) => report.swept = Some(s),
                Err(e) => report
                    .warnings
                    .push(format!("clearing up after dead writers: {e}")),
            }
            let iv = Interval {
                job,
                clock: &clock,
                tz,
                progress,
                stop,
                up: &up,
                down: &down,
                target: &target,
                started,
                bounds: match &job.mode {
                    super::config::Mode::Periodic { intervals } => {
                        Some(intervals.around(started, tz))
                    }
                    super::config::Mode::Immediate { .. } => None,
                },
                job_lock: lock.name.clone(),
            };
            finish(&iv, state, lock, &throttle, &mut report).await;
        }
        Err(e) => {
            // Nothing of the job could be read or written: the machines the sources
            // name are unprotected, and the report still goes out (files, webhook).
            let e = e.to_string();
            let why = match e.contains(&url) {
                true => e,
                false => format!("{url}: {e}"),
            };
            report.errors.push(format!("target {why}"));
            report.not_started = Some(why.clone());
            let (why, result) = (
                format!("not copied: the target {why}"),
                MachineResult::Unprotected,
            );
            machines::mark_rest(job, &up, None, &mut report, result, &why).await;
            report.outcome = super::interval::outcome(&report);
        }
    }
    report.seconds = timer.elapsed().as_secs_f64();
    report
}

/// The target opened (made on the first run), the job's lock taken and its state read.
async fn reach_target(
    job: &Job,
    up: &Reachable<'_>,
    clock: &Arc<dyn Clock>,
    throttle: &Arc<Throttle>,
) -> Result<(Arc<Repository>, LockGuard, JobState)> {
    let target = open_target(job, up.repos.first(), clock, throttle).await?;
    let lock = lock_job(&target, &job.name).await?;
    match JobState::load(&target, &job.name).await {
        Ok(s) => Ok((target, lock, s)),
        Err(e) => {
            let _ = lock.release().await;
            Err(e)
        }
    }
}

/// The phases under the job's lock, then the state saved and the lock let go however
/// the phases went.
async fn finish<Tz: TimeZone>(
    iv: &Interval<'_, Tz>,
    mut state: JobState,
    lock: LockGuard,
    throttle: &Arc<Throttle>,
    report: &mut IntervalReport,
) {
    let halted = phases::drive(iv, &mut state, report).await;
    report.throttle = throttle.report();
    if report.throttle.decreases > 0 {
        report.warnings.push(format!(
            "the stores answered {} request(s) with 503/429: requests in flight were lowered to {} (now {})",
            report.throttle.throttled_answers, report.throttle.lowest_limit, report.throttle.limit
        ));
        report.outcome = super::interval::outcome(report);
    }
    let now = iv.clock.now();
    state.last_run = Some(now);
    if !halted && !report.stopped && report.transfer_waits.is_none() {
        state.last_interval = Some(iv.started);
    }
    state.last_result = Some(report.outcome);
    if let Some(reason) = report.errors.first().or(report.warnings.first()) {
        state.last_trouble = Some(super::state::Trouble {
            interval: iv.started,
            outcome: report.outcome,
            reason: reason.clone(),
        });
    }
    let saved = state.save(iv.target).await;
    if let Err(e) = lock.release_after(saved).await {
        report.errors.push(format!("saving the job's state: {e}"));
        report.outcome = super::interval::outcome(report);
    }
}
