//! `offsite job run`: one interval of each job (`--once`), or the continuous runner —
//! intervals on schedule until SIGTERM, reports printed and delivered, metrics and
//! health served.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use offsite::clock::Clock;
use offsite::job::config::Job;
use offsite::job::daemon::{Daemon, Reporter};
use offsite::job::report;
use offsite::job::run::{IntervalReport, Outcome, run_once};
use offsite::stop::Stop;

use super::super::signals::stop_on_signal;

use super::super::output::{json, local_time, plural, quiet, size, table_text};
use super::super::repos::PARTIAL;
use super::load_valid;

/// `job run --once`: one interval of each job now, its report printed and delivered;
/// exit 0 when every interval succeeded, 3 when one warned, 1 when one failed.
pub(super) async fn once(
    config: &Path,
    job: Option<&str>,
    as_json: bool,
    metrics_file: Option<&Path>,
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
    let metrics = offsite::job::metrics::Metrics::new(clock.clone());
    for j in jobs {
        if stop.is_stopped() {
            break;
        }
        let progress = super::super::progress::for_terminal(&j.name, Some(0));
        let r = run_once(j, clock.clone(), &chrono::Local, &progress, &stop).await;
        if metrics_file.is_some() {
            metrics.add_job(j);
            metrics.interval(&r);
            metrics.status(&offsite::job::status::status(j, &clock, &chrono::Local).await);
        }
        let this = match r.outcome {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Deferred | Outcome::Warning => ExitCode::from(PARTIAL),
            Outcome::Failed => ExitCode::FAILURE,
        };
        // The worst outcome of the jobs run decides.
        if code == ExitCode::SUCCESS || this == ExitCode::FAILURE {
            code = this;
        }
        // Quiet, only what needs a human is printed.
        let worth = !quiet() || matches!(r.outcome, Outcome::Warning | Outcome::Failed);
        if !as_json && worth {
            print!("{}", summary(&r));
        }
        hooks.extend(report::deliver(
            &j.name,
            &j.report,
            &r,
            &summary(&r),
            &clock,
        ));
        reports.push(serde_json::to_value(&r)?);
    }
    if as_json {
        json(&reports);
    }
    if let Some(path) = metrics_file {
        write_metrics(path, &metrics)?;
    }
    futures::future::join_all(hooks).await;
    Ok(code)
}

/// The run's metrics into `path` (aside, then renamed: a collector never reads half),
/// each job's last success carried over from the file being replaced.
fn write_metrics(path: &Path, metrics: &offsite::job::metrics::Metrics) -> anyhow::Result<()> {
    const SUCCESS: &str = "offsite_job_last_success_timestamp_seconds{job=\"";
    let before = std::fs::read_to_string(path).unwrap_or_default();
    for line in before.lines() {
        let Some(rest) = line.strip_prefix(SUCCESS) else {
            continue;
        };
        if let Some((job, value)) = rest.split_once("\"} ")
            && let Ok(at) = value.trim().parse::<f64>()
        {
            metrics.remember_success(job, at);
        }
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, metrics.encode())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| anyhow::anyhow!("--metrics-file {}: {e}", path.display()))
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
    let _ = writeln!(
        out,
        "job {} → {}, {}",
        r.job,
        r.target,
        local_time(r.started)
    );
    if let Some(w) = &r.not_started {
        let again = r
            .waits_until
            .map(|t| format!("; tried again at {}", local_time(t)));
        let _ = writeln!(out, "not run: {w}{}", again.unwrap_or_default());
    }
    if let Some(w) = &r.transfer_waits {
        let _ = writeln!(out, "transfer: {w}");
    }
    out.push_str(&table_text(&["MACHINE", "RESULT", "COPIED", "WHY"], &rows));
    if let Some(f) = &r.retention {
        let _ = writeln!(
            out,
            "retention: {} kept, {} forgotten, {} set",
            plural(f.kept() as u64, "point"),
            f.forgotten(),
            plural(f.flagged() as u64, "GFS flag")
        );
    }
    if let Some(p) = &r.prune {
        let _ = writeln!(
            out,
            "prune: {} freed, {} deleted, {} rewritten",
            size(p.bytes_freed),
            plural((p.packs_deleted + p.unindexed_deleted) as u64, "pack"),
            p.packs_rewritten
        );
    }
    if let Some(h) = &r.health {
        let _ = writeln!(
            out,
            "health check: {}, {} verified, {} bad, {} healed from the sources, {} damaged",
            plural(h.points as u64, "point"),
            plural(h.blobs_checked as u64, "blob"),
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

/// Runs `jobs` until SIGTERM or Ctrl-C (`job::daemon`), printing each interval's report
/// (a JSON line each with `--json`) and — with `metrics_listen` — serving metrics and
/// health, the copy lag refreshed every `refresh`.
pub(super) async fn continuous(
    jobs: Vec<Job>,
    as_json: bool,
    metrics_listen: Option<std::net::SocketAddr>,
    refresh: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    let clock: Arc<dyn Clock> = Arc::new(offsite::clock::SystemClock);
    let stop =
        stop_on_signal("stopping: the packs in flight are finished and what is whole is committed");
    let daemon = Daemon::new(jobs, clock, metrics_listen.map(|_| refresh));
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
            daemon.metrics.clone(),
            daemon.health.clone(),
            stop.clone(),
            async move { done.stopped().await },
        )));
    }
    eprintln!(
        "running {} job(s); SIGTERM or Ctrl-C stops",
        daemon.jobs.len()
    );
    daemon
        .run(&chrono::Local, stop.clone(), &Printer { as_json })
        .await;
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

/// The continuous runner's output: each interval's report as its summary, or a JSON
/// line each with `--json`.
struct Printer {
    as_json: bool,
}

impl Reporter for Printer {
    fn report(&self, _job: &Job, r: &IntervalReport) {
        if quiet() && !matches!(r.outcome, Outcome::Warning | Outcome::Failed) {
            return;
        }
        match self.as_json {
            true => println!("{}", serde_json::to_string(r).unwrap_or_default()),
            false => print!("{}", summary(r)),
        }
    }

    fn heartbeat(
        &self,
        job: &Job,
        quiet: u64,
        since: chrono::DateTime<chrono::Utc>,
        last: &IntervalReport,
    ) {
        let line = serde_json::json!({
            "job": job.name, "heartbeat": true, "intervals": quiet,
            "since": since, "outcome": last.outcome,
        });
        match self.as_json {
            true => println!("{line}"),
            false => println!(
                "{} job {}: {} since {} (last: {})",
                local_time(chrono::Utc::now()),
                job.name,
                plural(quiet, "quiet interval"),
                local_time(since),
                last.outcome
            ),
        }
    }

    fn summary(&self, r: &IntervalReport) -> String {
        summary(r)
    }
}
