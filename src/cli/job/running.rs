//! `offsite job run`: one interval of each job (`--once`), or the continuous runner —
//! intervals on schedule until SIGTERM, reports printed and delivered, metrics and
//! health served.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use offsite::clock::Clock;
use offsite::job::config::Job;
use offsite::job::endpoint::Health;
use offsite::job::metrics::Metrics;
use offsite::job::report;
use offsite::job::run::{IntervalReport, Outcome, run_once};
use offsite::stop::Stop;

use super::super::output::{json, size, table_text};
use super::super::repos::PARTIAL;
use super::load_valid;

/// `job run --once`: one interval of each job now, its report printed and delivered;
/// exit 0 when every interval succeeded, 3 when one warned, 1 when one failed.
pub(super) async fn once(
    config: &Path,
    job: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let file = load_valid(config)?;
    let jobs: Vec<&Job> = match job {
        Some(name) => vec![
            file.job(name)
                .ok_or_else(|| anyhow::anyhow!("{}: no job named {name:?}", config.display()))?,
        ],
        None => file.jobs.iter().collect(),
    };
    let clock: std::sync::Arc<dyn offsite::clock::Clock> =
        std::sync::Arc::new(offsite::clock::SystemClock);
    let mut code = ExitCode::SUCCESS;
    let mut reports = Vec::new();
    let stop =
        stop_on_signal("stopping: the packs in flight are finished and what is whole is committed");
    let mut hooks = Vec::new();
    for j in jobs {
        if stop.is_stopped() {
            break;
        }
        let progress = super::super::progress::for_terminal(&j.name, Some(0));
        match run_once(j, clock.clone(), &chrono::Local, &progress, &stop).await {
            Ok(r) => {
                if r.outcome != Outcome::Success && code == ExitCode::SUCCESS {
                    code = ExitCode::from(PARTIAL);
                }
                if r.outcome == Outcome::Failed {
                    code = ExitCode::FAILURE;
                }
                if !as_json {
                    print!("{}", summary(&r));
                }
                hooks.extend(deliver(j, &r, &clock));
                reports.push(serde_json::to_value(&r)?);
            }
            Err(e) => {
                eprintln!("job {}: {e}", j.name);
                reports
                    .push(json!({ "job": j.name, "outcome": "failed", "errors": [e.to_string()] }));
                code = ExitCode::FAILURE;
            }
        }
    }
    if as_json {
        json(&reports);
    }
    futures::future::join_all(hooks).await;
    Ok(code)
}

/// An interval's report in a few lines.
fn summary(r: &IntervalReport) -> String {
    use std::fmt::Write;
    let rows: Vec<Vec<String>> = r
        .machines
        .iter()
        .map(|m| {
            vec![
                m.machine.clone(),
                m.result.to_string(),
                m.points_copied.to_string(),
                m.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "job {} → {}", r.job, r.target);
    if let Some(w) = &r.transfer_waits {
        let _ = writeln!(out, "transfer: {w}");
    }
    out.push_str(&table_text(&["MACHINE", "RESULT", "COPIED", "WHY"], &rows));
    if let Some(f) = &r.retention {
        let _ = writeln!(
            out,
            "retention: {} point(s) kept, {} forgotten, {} GFS flag(s) set",
            f.kept(),
            f.forgotten(),
            f.flagged()
        );
    }
    if let Some(p) = &r.prune {
        let _ = writeln!(
            out,
            "prune: {} freed, {} pack(s) deleted, {} rewritten",
            size(p.bytes_freed),
            p.packs_deleted + p.unindexed_deleted,
            p.packs_rewritten
        );
    }
    if let Some(h) = &r.health {
        let _ = writeln!(
            out,
            "health check: {} point(s), {} blob(s) verified, {} bad, {} healed from the sources, {} damaged",
            h.points,
            h.blobs_checked,
            h.blobs_bad,
            h.blobs_healed,
            h.damaged.len()
        );
        if h.archived_packs > 0 {
            let cheapest = h.retrieval.as_ref().and_then(|q| {
                q.iter().min_by(|a, b| a.usd.total_cmp(&b.usd)).map(|q| {
                    format!(
                        "; reading them takes a retrieval, {} about ${:.2}",
                        q.tier.as_str(),
                        q.usd
                    )
                })
            });
            let _ = writeln!(
                out,
                "  {} archived data pack(s) ({}) looked at, not read: {} of a size the index does not say{}",
                h.archived_packs,
                size(h.archived_bytes),
                h.archived_suspect,
                cheapest.unwrap_or_default()
            );
        }
    }
    for sc in &r.scripts {
        // A failure's reason is among the errors or warnings below.
        let how = if sc.ok { "ok" } else { "failed" };
        let _ = writeln!(out, "{}-job script: {how} ({:.1} s)", sc.phase, sc.seconds);
    }
    for e in &r.errors {
        let _ = writeln!(out, "error: {e}");
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    let _ = writeln!(out, "{}: {} in {:.1} s", r.job, r.outcome, r.seconds);
    out
}

/// Sends an interval's report where the job wants it besides the output: the report
/// files, and the webhook (in the background; its task is returned so a one-shot run
/// can wait for it before exiting).
fn deliver(
    j: &Job,
    r: &IntervalReport,
    clock: &Arc<dyn Clock>,
) -> Option<tokio::task::JoinHandle<()>> {
    if let Some(dir) = &j.report.dir {
        match report::write_files(dir, r, &summary(r)) {
            Ok(path) => tracing::debug!("{}: report written to {}", j.name, path.display()),
            Err(e) => tracing::warn!(
                "{}: cannot write the report into {}: {e}",
                j.name,
                dir.display()
            ),
        }
    }
    let hook = j.report.webhook.clone().filter(|h| report::wants(h, r))?;
    let body = serde_json::to_string(r).ok()?;
    let (clock, job) = (clock.clone(), j.name.clone());
    Some(tokio::spawn(async move {
        let env = |v: &str| std::env::var(v).ok();
        match report::send(&hook, body, &clock, &env).await {
            (_, None) => tracing::debug!("{job}: report sent to {}", hook.url),
            (tries, Some(e)) => {
                tracing::warn!("{job}: report not delivered after {tries} tries: {e}")
            }
        }
    }))
}

/// An interval that could not run is tried again this many minutes later.
const RETRY_MINUTES: i64 = 10;

/// A stop asked on SIGTERM or Ctrl-C (saying `why` on stderr).
fn stop_on_signal(why: &'static str) -> Stop {
    let stop = Stop::new();
    let asker = stop.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot watch for SIGTERM: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("{why}");
        asker.stop();
    });
    stop
}

/// Runs `jobs` until SIGTERM or Ctrl-C, printing each interval's report (a JSON line
/// each with `--json`), delivering it where each job wants it, and — with
/// `metrics_listen` — serving metrics and health, the copy lag refreshed by a look at
/// the sources every `refresh`.
pub(super) async fn continuous(
    jobs: Vec<Job>,
    as_json: bool,
    metrics_listen: Option<std::net::SocketAddr>,
    refresh: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(offsite::clock::SystemClock);
    let stop =
        stop_on_signal("stopping: the packs in flight are finished and what is whole is committed");
    let metrics = Metrics::new(clock.clone());
    let health = Health::default();
    for j in &jobs {
        metrics.add_job(j);
        health.add_job(&j.name);
    }
    let runner_done = Stop::new();
    let mut server = None;
    if let Some(addr) = metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--metrics-listen {addr}: {e}"))?;
        eprintln!(
            "metrics on http://{}/metrics, health on /health",
            listener.local_addr()?
        );
        let done = runner_done.clone();
        server = Some(tokio::spawn(offsite::job::endpoint::serve(
            listener,
            metrics.clone(),
            health.clone(),
            stop.clone(),
            async move { done.stopped().await },
        )));
        // The copy lag between intervals: a look at the sources every `refresh`.
        let (jobs, clock, metrics, stop) =
            (jobs.clone(), clock.clone(), metrics.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.is_stopped() {
                for j in &jobs {
                    look(j, &clock, &metrics).await;
                }
                tokio::select! {
                    _ = clock.sleep(refresh) => {}
                    _ = stop.stopped() => {}
                }
            }
        });
    }
    let memory = futures::future::join_all(
        jobs.iter()
            .map(|j| offsite::job::runner::remember(j, &clock)),
    )
    .await;
    eprintln!("running {} job(s); SIGTERM or Ctrl-C stops", jobs.len());
    let interval = |j: &Job, _at| {
        let (j, clock, stop) = (j.clone(), clock.clone(), stop.clone());
        let (metrics, health) = (metrics.clone(), health.clone());
        async move {
            health.started(&j.name);
            let progress = metrics.progress(&j.name);
            match run_once(&j, clock.clone(), &chrono::Local, &progress, &stop).await {
                Ok(r) => {
                    match as_json {
                        true => println!("{}", serde_json::to_string(&r).unwrap_or_default()),
                        false => print!("{}", summary(&r)),
                    }
                    metrics.interval(&r);
                    health.interval(&r);
                    deliver(&j, &r, &clock);
                    if metrics_listen.is_some() && !stop.is_stopped() {
                        look(&j, &clock, &metrics).await;
                    }
                    r.waits_until
                }
                Err(e) => {
                    health.could_not_run(&j.name);
                    // Tried again in a while, within the interval.
                    let retry = clock.now() + chrono::Duration::minutes(RETRY_MINUTES);
                    eprintln!("job {}: {e}; trying again at {retry}", j.name);
                    Some(retry)
                }
            }
        }
    };
    let runner = offsite::job::runner::run_forever(
        &jobs,
        memory,
        clock.clone(),
        &chrono::Local,
        interval,
        stop.clone(),
    );
    runner.await;
    runner_done.stop();
    if let Some(s) = server {
        match s.await {
            Ok(Err(e)) => tracing::warn!("metrics endpoint: {e}"),
            Err(e) => tracing::warn!("metrics endpoint: {e}"),
            Ok(Ok(())) => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A status look at one job for its metrics; a look that fails is logged, and the
/// next one tries again.
async fn look(j: &Job, clock: &Arc<dyn Clock>, metrics: &Metrics) {
    match offsite::job::status::status(j, clock).await {
        Ok(s) => metrics.status(&s),
        Err(e) => tracing::warn!("{}: cannot look at the copy lag: {e}", j.name),
    }
}
