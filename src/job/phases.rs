//! One interval of a job as phases, in order: the pre-job script, the health check,
//! the transfer (with `look_forward`), the active full, retention, prune, the post-job
//! script. Each phase says when it is due — from the job, its state and what the
//! earlier phases reported — and writes its part of the [`IntervalReport`]; none ends
//! the interval by an error, so the post-job script always runs and the caller always
//! saves the state. The job's own lock is held across all of them: the health check,
//! the active full, retention and prune take the repository's exclusive lock beside it
//! (`repo::lock::beside`), so no other runner can start an interval in between.

use std::ops::Range;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use super::config::{Job, SourceSpec};
use super::interval::{IntervalReport, MachineReport, MachineResult, outcome};
use super::machines::{self, Reachable};
use super::script::{self, OnFailure, ScriptReport};
use super::state::JobState;
use super::{catch_up, timers};
use crate::clock::Clock;
use crate::copy::{self, CopyOptions, CopyReport, PointsSpec, TransferOptions};
use crate::progress::Progress;
use crate::prune::{PruneOptions, prune};
use crate::remote::pool::Redispatch;
use crate::repo::Repository;
use crate::repo::lock::beside;
use crate::retention::{ForgetOptions, forget};
use crate::stop::Stop;
use crate::{Result, health};

/// What every phase of one interval works with.
pub(super) struct Interval<'a, Tz: TimeZone> {
    pub job: &'a Job,
    pub clock: &'a Arc<dyn Clock>,
    pub tz: &'a Tz,
    pub progress: &'a Progress,
    pub stop: &'a Stop,
    /// The sources that could be opened (their entries in the jobs file beside them)
    /// and those that could not, with why.
    pub up: &'a Reachable<'a>,
    pub down: &'a [(&'a SourceSpec, String)],
    pub target: &'a Arc<Repository>,
    /// When the interval began.
    pub started: DateTime<Utc>,
    /// The interval's bounds (periodic jobs; an immediate job has none).
    pub bounds: Option<Range<DateTime<Utc>>>,
    /// The name of the job's own lock, held across the phases.
    pub job_lock: String,
}

impl<Tz: TimeZone> Interval<'_, Tz> {
    /// The environment of a script run in `phase`.
    fn script_env(&self, phase: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("OFFSITE_JOB".to_string(), self.job.name.clone()),
            ("OFFSITE_PHASE".to_string(), phase.to_string()),
            ("OFFSITE_TARGET".to_string(), self.target.url().to_string()),
            ("OFFSITE_RUN_STARTED".to_string(), self.started.to_rfc3339()),
        ];
        if let Some(i) = &self.bounds {
            env.push(("OFFSITE_INTERVAL_START".into(), i.start.to_rfc3339()));
            env.push(("OFFSITE_INTERVAL_END".into(), i.end.to_rfc3339()));
        }
        env
    }

    /// The interval's stamp for the job's timers ([`timers::tick`]).
    fn tick(&self) -> DateTime<Utc> {
        self.bounds.as_ref().map_or(self.started, |b| b.start)
    }

    /// Runs `fut` with the job's own lock counted as its own (see the module header).
    async fn exclusively<F: std::future::Future>(&self, fut: F) -> F::Output {
        beside(vec![self.job_lock.clone()], fut).await
    }
}

/// The phases, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    PreScript,
    HealthCheck,
    Transfer,
    ActiveFull,
    Retention,
    Prune,
    PostScript,
}

/// How the earlier phases leave the interval.
#[derive(Debug, Default)]
struct Flow {
    /// The pre-job script failed and says to fail: only the post-job script runs.
    halted: bool,
    /// `look_forward` looks again within the interval: what follows the transfer waits
    /// until its copies are done.
    looking: bool,
}

impl Phase {
    pub const ORDER: [Phase; 7] = [
        Phase::PreScript,
        Phase::HealthCheck,
        Phase::Transfer,
        Phase::ActiveFull,
        Phase::Retention,
        Phase::Prune,
        Phase::PostScript,
    ];

    /// Whether the phase runs in this interval, now.
    fn due<Tz: TimeZone>(
        self,
        iv: &Interval<'_, Tz>,
        state: &JobState,
        report: &IntervalReport,
        flow: &Flow,
    ) -> bool {
        let (job, tick) = (iv.job, iv.tick());
        // What comes after the transfer needs it to have finished, not stopped.
        let after_transfer = !flow.halted && !flow.looking && !report.stopped;
        match self {
            Phase::PreScript => job.pre_script.is_some(),
            Phase::HealthCheck => {
                let h = job.health_check.as_ref();
                !flow.halted
                    && !iv.stop.is_stopped()
                    && h.is_some_and(|h| timers::due(h.every, state.last_health_check, tick))
            }
            Phase::Transfer => !flow.halted,
            Phase::ActiveFull => {
                after_transfer
                    && report.transfer_waits.is_none()
                    && (job.active_full)
                        .is_some_and(|e| timers::due(e, state.last_active_full, tick))
            }
            Phase::Retention => after_transfer,
            Phase::Prune => {
                after_transfer
                    && (job.prune.as_ref())
                        .is_some_and(|p| timers::due(p.every, state.last_prune, tick))
            }
            Phase::PostScript => job.post_script.is_some(),
        }
    }

    async fn run<Tz: TimeZone>(
        self,
        iv: &Interval<'_, Tz>,
        state: &mut JobState,
        report: &mut IntervalReport,
        flow: &mut Flow,
    ) {
        match self {
            Phase::PreScript => pre_script(iv, state, report, flow).await,
            Phase::HealthCheck => health_check(iv, state, report).await,
            Phase::Transfer => {
                transfer_phase(iv, report, state).await;
                machines::mark_down(iv.down, state, report);
                if let (Some(every), Some(b)) = (iv.job.look_forward, &iv.bounds)
                    && !report.stopped
                    && report.transfer_waits.is_none()
                {
                    flow.looking = look_forward(iv, every, b, report).await;
                }
                if report.stopped {
                    // What is whole is committed; retention and prune wait for the
                    // next run, and the interval is not done.
                    report.errors.push(
                        "stopped before the interval finished; the next run continues it".into(),
                    );
                }
            }
            Phase::ActiveFull => {
                let full = health::active_full(iv.target, &iv.up.repos, iv.progress);
                match iv.exclusively(full).await {
                    Ok(a) => {
                        state.last_active_full = Some(iv.tick());
                        report.active_full = Some(a);
                    }
                    Err(e) => report.errors.push(format!("active full: {e}")),
                }
            }
            Phase::Retention => {
                let opts = ForgetOptions {
                    policy: iv.job.retention.clone(),
                    ..Default::default()
                };
                match iv.exclusively(forget(iv.target, &opts, iv.tz)).await {
                    Ok(r) => report.retention = Some(r),
                    Err(e) => report.errors.push(format!("retention: {e}")),
                }
            }
            Phase::Prune => prune_phase(iv, state, report).await,
            Phase::PostScript => post_script(iv, report).await,
        }
    }
}

/// Runs the interval's phases in order, each when it is due; the report's outcome is
/// set at the end. Returns whether the pre-job script halted the interval.
pub(super) async fn drive<Tz: TimeZone>(
    iv: &Interval<'_, Tz>,
    state: &mut JobState,
    report: &mut IntervalReport,
) -> bool {
    let mut flow = Flow::default();
    for phase in Phase::ORDER {
        if phase.due(iv, state, report, &flow) {
            phase.run(iv, state, report, &mut flow).await;
        }
    }
    report.outcome = outcome(report);
    flow.halted
}

/// The pre-job script; a failure it is told to fail on halts the interval (the post-job
/// script still runs: it often undoes what the pre-job one did).
async fn pre_script<Tz: TimeZone>(
    iv: &Interval<'_, Tz>,
    state: &JobState,
    report: &mut IntervalReport,
    flow: &mut Flow,
) {
    let Some(pre) = &iv.job.pre_script else {
        return;
    };
    let r = script::run(pre, "pre", &iv.script_env("pre")).await;
    flow.halted = note_script(report, r);
    if flow.halted {
        let why = "not copied: the pre-job script failed";
        let unprotected = MachineResult::Unprotected;
        machines::mark_rest(iv.job, iv.up, Some(state), report, unprotected, why).await;
    }
}

/// A script's run in the interval's report: its failure an error or a warning, as the
/// script is told; returns whether it failed and is told to fail.
fn note_script(report: &mut IntervalReport, r: ScriptReport) -> bool {
    let fails = r.error.is_some() && r.on_failure == OnFailure::Fail;
    if let Some(e) = &r.error {
        match r.on_failure {
            OnFailure::Fail => report.errors.push(e.clone()),
            OnFailure::Warn => report.warnings.push(e.clone()),
        }
    }
    report.scripts.push(r);
    fails
}

/// The health check: damaged points and archived packs of a wrong size are errors.
async fn health_check<Tz: TimeZone>(
    iv: &Interval<'_, Tz>,
    state: &mut JobState,
    report: &mut IntervalReport,
) {
    let hidden = Progress::hidden();
    let check = health::check_and_heal(iv.target, &iv.up.repos, &hidden);
    match iv.exclusively(check).await {
        Ok(h) => {
            for d in &h.damaged {
                report.errors.push(format!(
                    "health check: point {} of {} is damaged: {}",
                    d.point.short(),
                    d.machine,
                    d.reason
                ));
            }
            let wrong_size =
                |f: &&health::Finding| matches!(f, health::Finding::ArchivedPackSize { .. });
            for f in h.findings.iter().filter(wrong_size) {
                report.errors.push(format!("health check: {f}"));
            }
            // Healed is not the same as healthy all along: someone should know the
            // target's storage damaged data.
            for p in &h.healed {
                report.warnings.push(format!("health check: {p}"));
            }
            // A check of nothing (the first interval, before any copy) does not count.
            if h.points > 0 {
                state.last_health_check = Some(iv.tick());
            }
            report.health = Some(h);
        }
        Err(e) => report.errors.push(format!("health check: {e}")),
    }
}

/// Prune, with the job's settings.
async fn prune_phase<Tz: TimeZone>(
    iv: &Interval<'_, Tz>,
    state: &mut JobState,
    report: &mut IntervalReport,
) {
    let Some(p) = &iv.job.prune else {
        return;
    };
    let opts = PruneOptions {
        repack_below: p.repack_below,
        grace: p.grace,
        dry_run: false,
    };
    match iv
        .exclusively(prune(iv.target, &opts, &Progress::hidden()))
        .await
    {
        Ok(r) => {
            report.prune = Some(r);
            state.last_prune = Some(iv.tick());
        }
        Err(e) => report.errors.push(format!("prune: {e}")),
    }
}

/// The post-job script, told how the interval went.
async fn post_script<Tz: TimeZone>(iv: &Interval<'_, Tz>, report: &mut IntervalReport) {
    let Some(post) = &iv.job.post_script else {
        return;
    };
    report.outcome = outcome(report);
    let mut env = iv.script_env("post");
    env.push(("OFFSITE_RESULT".into(), report.outcome.to_string()));
    env.push(("OFFSITE_UNPROTECTED".into(), report.unprotected().join(",")));
    let copied: usize = report.machines.iter().map(|m| m.points_copied).sum();
    env.push(("OFFSITE_POINTS_COPIED".into(), copied.to_string()));
    let r = script::run(post, "post", &env).await;
    note_script(report, r);
}

/// The transfer phase: each source's copy inside the copy windows, paused at a pack
/// boundary when the window closes or `stop` is asked; the report says which.
async fn transfer_phase<Tz: TimeZone>(
    iv: &Interval<'_, Tz>,
    report: &mut IntervalReport,
    state: &mut JobState,
) {
    let Interval {
        job,
        clock,
        tz,
        stop,
        ..
    } = *iv;
    let interval_start = iv.bounds.as_ref().map(|b| b.start);
    let env = &iv.script_env("archivers");
    let started = report.started;
    if !job.windows.open_at(started, tz) {
        let next = job.windows.next_open(started, tz);
        report.waits_until = next;
        let why = match next {
            Some(t) => format!("outside the copy windows; the next opens at {t}"),
            None => "no copy window ever opens".into(),
        };
        // A source that cannot be read is the reason for its machines, not the window.
        machines::mark_down(iv.down, state, report);
        let (up, result) = (iv.up, MachineResult::Deferred);
        machines::mark_rest(job, up, Some(state), report, result, &why).await;
        report.transfer_waits = Some(why);
        return;
    }
    let closes = job.windows.closes_after(started, tz);
    let window_end = async {
        match closes {
            Some(t) => clock.sleep(clock.until(t)).await,
            None => std::future::pending().await,
        }
    };
    let since = job.look_forward.and(interval_start);
    // The archiver pool, started (when ephemeral) for this transfer only.
    let mut via = None;
    if let Some(spec) = &job.archivers {
        let mut a = crate::job::archivers::ArchiversReport::default();
        match crate::job::archivers::open(spec, env, clock, &mut a).await {
            Ok(pool) => via = Some(pool),
            Err(e) if spec.redispatch == Redispatch::Fail => {
                report.errors.push(format!("archivers: {e}"));
                a.error = Some(e.to_string());
                crate::job::archivers::close(spec, env, &mut a).await;
                report.archivers = Some(a);
                return;
            }
            Err(e) => {
                report
                    .warnings
                    .push(format!("archivers: {e}; the runner transfers itself"));
                a.error = Some(e.to_string());
            }
        }
        report.archivers = Some(a);
    }
    // Which points of each source: the newest, and with catch-up what was missed.
    let mut points = Vec::new();
    for (spec, source) in iv.up.specs.iter().zip(&iv.up.repos) {
        let now = clock.now();
        let p = catch_up::points(job, spec, source, state, since, now, tz).await;
        points.push(p.unwrap_or_else(|e| {
            // The copy reads the same points and says what is wrong.
            tracing::debug!("catch-up: {}: {e}", spec.url);
            since.map_or(PointsSpec::Latest, PointsSpec::LatestSince)
        }));
    }
    let run = |stop: Stop| transfer(iv, points, stop, via.clone());
    let results = stop.with(window_end, run).await;
    if let (Some(spec), Some(a)) = (&job.archivers, report.archivers.as_mut()) {
        crate::job::archivers::close(spec, env, a).await;
    }
    for (spec, result) in results {
        match result {
            Ok(r) => {
                machines::note_copies(spec, &r, report, state, clock.now());
                report.copies.push(r);
            }
            Err(e) => report.errors.push(format!("source {}: {e}", spec.url)),
        }
    }
    if stop.is_stopped() {
        report.stopped = true;
    } else if let Some(t) = closes.filter(|t| clock.now() >= *t) {
        // The window closed mid-transfer: what is whole is committed, the rest waits
        // for the next window.
        let next = job.windows.next_open(clock.now(), tz);
        report.waits_until = next;
        report.transfer_waits = Some(match next {
            Some(n) => format!("the copy window closed at {t}; the transfer resumes at {n}"),
            None => format!("the copy window closed at {t}"),
        });
    }
}

/// `look_forward`: the machines with no point made since the interval began are
/// waiting — looked for again in `every`, or unprotected when the interval ends before
/// that. Returns whether the job looks again in this interval.
async fn look_forward<Tz: TimeZone>(
    iv: &Interval<'_, Tz>,
    every: std::time::Duration,
    interval: &std::ops::Range<DateTime<Utc>>,
    report: &mut IntervalReport,
) -> bool {
    let all = machines::offered(iv.job, iv.up, report).await;
    let seen: std::collections::HashSet<&str> =
        report.machines.iter().map(|m| m.machine.as_str()).collect();
    let waiting: Vec<String> = all
        .into_keys()
        .filter(|m| !seen.contains(m.as_str()))
        .collect();
    if waiting.is_empty() {
        return false;
    }
    let next = iv.clock.now() + chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
    let (result, reason, looking) = match next < interval.end {
        true => (
            MachineResult::Waiting,
            format!(
                "no point made since {} yet; looking again at {next}",
                interval.start
            ),
            true,
        ),
        false => (
            MachineResult::Unprotected,
            format!(
                "no point made since the interval began at {}",
                interval.start
            ),
            false,
        ),
    };
    if looking {
        report.waits_until = Some(next);
        report.transfer_waits = Some(format!(
            "look_forward: waiting for a new point of {}; looking again at {next}",
            waiting.join(", ")
        ));
    }
    for machine in waiting {
        report.machines.push(MachineReport {
            machine,
            result: result.clone(),
            points_copied: 0,
            reason: Some(reason.clone()),
        });
    }
    looking
}

/// The interval's transfer: each source in turn, its machines side by side up to
/// `max_tasks`; per source, its copy's report or why it could not run.
async fn transfer<'a, Tz: TimeZone>(
    iv: &Interval<'a, Tz>,
    points: Vec<PointsSpec>,
    stop: Stop,
    via: Option<Arc<crate::remote::pool::Pool>>,
) -> Vec<(&'a SourceSpec, Result<CopyReport>)> {
    let mut out = Vec::new();
    let sources = &iv.up.repos;
    for ((spec, source), points) in iv.up.specs.iter().copied().zip(sources).zip(points) {
        let mut opts = copy_options(iv.job, spec, sources, None, via.clone());
        opts.selection.points = points;
        opts.transfer.stop = stop.clone();
        let target = iv.target.clone();
        let r = copy::run(vec![source.clone()], target, &opts, iv.progress).await;
        out.push((spec, r));
    }
    out
}

/// The copy of `spec`'s points into the job's target as the runner makes it (and a
/// job's plan projects it): the machines the source names, each one's latest point (or
/// those since `since`), the target's pack size, chain, mapping and compression.
pub(super) fn copy_options(
    job: &Job,
    spec: &SourceSpec,
    sources: &[Arc<Repository>],
    since: Option<DateTime<Utc>>,
    via: Option<Arc<crate::remote::pool::Pool>>,
) -> CopyOptions {
    CopyOptions {
        selection: copy::Selection {
            points: since.map_or(PointsSpec::Latest, PointsSpec::LatestSince),
            ..job.selection(spec)
        },
        pack_size: job.target.pack_size,
        chain: job.target.chain,
        map: job.target.map,
        tasks: job.max_tasks,
        transfer: TransferOptions {
            compression: job.target.compression,
            ..Default::default()
        },
        sibling_sources: sources.iter().map(|s| s.config.id).collect(),
        via: via.map(|p| p as Arc<dyn copy::offload::Offload>),
        ..Default::default()
    }
}
