//! `offsite job`: backup copy jobs from a jobs file (docs/JOBS.md) — `validate` reports
//! every mistake with its line, and whether each repository can be reached; `list` says
//! what each job will do.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use offsite::clock::Clock;
use offsite::job::config::{Job, Mode};
use offsite::job::endpoint::Health;
use offsite::job::metrics::Metrics;
use offsite::job::run::{IntervalReport, Outcome, run_once};
use offsite::job::{JobsFile, Problem, report};
use offsite::repo::Repository;
use offsite::stop::Stop;
use offsite::store;
use std::sync::Arc;

use super::output::{json, size, table, table_text};
use super::repos::PARTIAL;

#[derive(Subcommand, Debug)]
pub enum JobAction {
    /// Check a jobs file: every mistake with its line, then whether every repository can
    /// be reached (unless --offline). Exit 1 on any problem.
    Validate {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Only read the file; reach no repository.
        #[arg(long)]
        offline: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run the jobs: each interval when it is due, until SIGTERM or Ctrl-C (a transfer
    /// in progress stops at a pack boundary, committing what is whole). With --once: one interval of each job (or of --job
    /// NAME) now, then exit 0 all copied, 3 a machine unprotected or a phase failed, 1 a
    /// job could not run.
    Run {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// One interval now, then exit.
        #[arg(long)]
        once: bool,
        /// Serve Prometheus metrics on http://ADDR/metrics and a health probe on
        /// /health (e.g. 0.0.0.0:9184); not with --once.
        #[arg(long, value_name = "ADDR", conflicts_with = "once")]
        metrics_listen: Option<std::net::SocketAddr>,
        /// How often the copy lag is looked at between intervals (with --metrics-listen).
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = offsite::units::parse_duration)]
        metrics_refresh: std::time::Duration,
        /// Only this job.
        #[arg(long, value_name = "NAME")]
        job: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// How current each job's copy is: per machine the newest point at the sources,
    /// whether the target holds it and the copy lag; the job's last run and prune.
    Status {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "NAME")]
        job: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// What each job's next transfer would copy and cost, writing nothing: per source
    /// the points, bytes to read, requests and new objects, and the money (requests,
    /// transfer out of the source's region, a month of the new data's storage) from
    /// the price table.
    Plan {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long, value_name = "NAME")]
        job: Option<String>,
        /// A price table (default: the built-in one, docs/prices.toml; or OFFSITE_PRICES).
        #[arg(long, value_name = "FILE")]
        prices: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show the jobs of a jobs file: schedule, sources, target, retention, prune.
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Reads and decodes a jobs file; its problems, or the jobs.
fn load(path: &std::path::Path) -> anyhow::Result<Result<JobsFile, Vec<Problem>>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(JobsFile::parse(&text))
}

/// Decodes the jobs file, or fails listing its problems.
fn load_valid(config: &std::path::Path) -> anyhow::Result<JobsFile> {
    match load(config)? {
        Ok(f) => Ok(f),
        Err(problems) => {
            for p in &problems {
                eprintln!("{}:{}: {}", config.display(), p.line, p.message);
            }
            anyhow::bail!(
                "{}: not a valid jobs file; run `offsite job validate`",
                config.display()
            )
        }
    }
}

pub async fn run(action: JobAction) -> anyhow::Result<ExitCode> {
    match action {
        JobAction::Run {
            config,
            once: false,
            job,
            json: as_json,
            metrics_listen,
            metrics_refresh,
        } => {
            let file = load_valid(&config)?;
            let jobs: Vec<Job> = match &job {
                Some(name) => vec![file.job(name).cloned().ok_or_else(|| {
                    anyhow::anyhow!("{}: no job named {name:?}", config.display())
                })?],
                None => file.jobs.clone(),
            };
            continuous(jobs, as_json, metrics_listen, metrics_refresh).await
        }
        JobAction::Run {
            config,
            once: true,
            job,
            json: as_json,
            ..
        } => {
            let file = load_valid(&config)?;
            let jobs: Vec<&Job> = match &job {
                Some(name) => vec![file.job(name).ok_or_else(|| {
                    anyhow::anyhow!("{}: no job named {name:?}", config.display())
                })?],
                None => file.jobs.iter().collect(),
            };
            let clock: std::sync::Arc<dyn offsite::clock::Clock> =
                std::sync::Arc::new(offsite::clock::SystemClock);
            let mut code = ExitCode::SUCCESS;
            let mut reports = Vec::new();
            let stop = stop_on_signal(
                "stopping: the packs in flight are finished and what is whole is committed",
            );
            let mut hooks = Vec::new();
            for j in jobs {
                if stop.is_stopped() {
                    break;
                }
                let progress = super::progress::for_terminal(&j.name, Some(0));
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
                        reports.push(json!({ "job": j.name, "outcome": "failed", "errors": [e.to_string()] }));
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
        JobAction::Validate {
            config,
            offline,
            json: as_json,
        } => {
            let mut problems = match load(&config)? {
                Ok(file) if !offline => reach(&file).await,
                Ok(_) => Vec::new(),
                Err(p) => p,
            };
            problems.sort_by_key(|p| p.line);
            if as_json {
                json(&json!({ "file": config, "problems": problems }));
            } else {
                for p in &problems {
                    println!("{}:{}: {}", config.display(), p.line, p.message);
                }
                if problems.is_empty() {
                    println!("{}: valid", config.display());
                }
            }
            Ok(match problems.is_empty() {
                true => ExitCode::SUCCESS,
                false => ExitCode::FAILURE,
            })
        }
        JobAction::Plan {
            config,
            job,
            prices,
            json: as_json,
        } => {
            let file = load_valid(&config)?;
            let prices = offsite::prices::Prices::load(prices.as_deref())?;
            let clock: std::sync::Arc<dyn offsite::clock::Clock> =
                std::sync::Arc::new(offsite::clock::SystemClock);
            let mut all = Vec::new();
            for j in chosen(&file, job.as_deref(), &config)? {
                all.push(offsite::job::plan::plan(j, clock.clone(), &prices).await?);
            }
            if as_json {
                json(&all);
                return Ok(ExitCode::SUCCESS);
            }
            for p in &all {
                print_plan(p);
            }
            Ok(ExitCode::SUCCESS)
        }
        JobAction::Status {
            config,
            job,
            json: as_json,
        } => {
            let file = load_valid(&config)?;
            let clock: std::sync::Arc<dyn offsite::clock::Clock> =
                std::sync::Arc::new(offsite::clock::SystemClock);
            let mut all = Vec::new();
            for j in chosen(&file, job.as_deref(), &config)? {
                all.push(offsite::job::status::status(j, &clock).await?);
            }
            if as_json {
                json(&all);
                return Ok(ExitCode::SUCCESS);
            }
            let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                })
                .unwrap_or_else(|| "-".into())
            };
            for s in &all {
                println!(
                    "job {} → {}: last run {} ({}), last prune {}",
                    s.job,
                    s.target,
                    when(s.last_run),
                    s.last_result.map_or("never".into(), |o| o.to_string()),
                    when(s.last_prune)
                );
                let rows: Vec<Vec<String>> = s
                    .machines
                    .iter()
                    .map(|m| {
                        vec![
                            m.machine.clone(),
                            when(Some(m.newest_at_source)),
                            if m.copied { "yes".into() } else { "NO".into() },
                            humantime(m.lag_seconds),
                            when(m.last_copied),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "MACHINE",
                        "NEWEST AT SOURCE",
                        "COPIED",
                        "LAG",
                        "LAST COPIED",
                    ],
                    &rows,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobAction::List {
            config,
            json: as_json,
        } => {
            let file = load_valid(&config)?;
            if as_json {
                json(&file.jobs.iter().map(describe).collect::<Vec<_>>());
                return Ok(ExitCode::SUCCESS);
            }
            let rows: Vec<Vec<String>> = file
                .jobs
                .iter()
                .map(|j| {
                    let d = describe(j);
                    let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
                    vec![
                        s("name"),
                        s("schedule"),
                        s("windows"),
                        s("sources"),
                        s("target"),
                        s("retention"),
                        s("prune"),
                    ]
                })
                .collect();
            table(
                &["JOB", "WHEN", "WINDOWS", "FROM", "TO", "KEEP", "PRUNE"],
                &rows,
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A job in words (for `list`).
fn describe(j: &Job) -> serde_json::Value {
    let schedule = match &j.mode {
        Mode::Periodic { intervals } => format!(
            "every {} from {}",
            humantime(intervals.every.num_seconds()),
            intervals.start_at.format("%H:%M")
        ),
        Mode::Immediate { poll_every } => {
            format!(
                "each new point (looks every {})",
                humantime(poll_every.as_secs() as i64)
            )
        }
    };
    let windows = match j.windows.0.is_empty() {
        true => "always".to_string(),
        false => j
            .windows
            .0
            .iter()
            .map(|w| w.text.clone())
            .collect::<Vec<_>>()
            .join("; "),
    };
    let sources: Vec<String> = j
        .sources
        .iter()
        .map(|s| match s.machines.is_empty() {
            true => s.url.clone(),
            false => format!("{} ({})", s.url, s.machines.join(", ")),
        })
        .collect();
    let r = &j.retention;
    let mut keep = vec![format!("{} newest", r.keep)];
    if r.weekly > 0 {
        keep.push(format!("{} weekly ({})", r.weekly, r.weekly_on));
    }
    if r.monthly > 0 {
        keep.push(format!("{} monthly", r.monthly));
    }
    if r.yearly > 0 {
        keep.push(format!("{} yearly", r.yearly));
    }
    let prune = match &j.prune {
        Some(p) => format!("every {}", humantime(p.every.as_secs() as i64)),
        None => "never".into(),
    };
    json!({
        "name": j.name,
        "schedule": schedule,
        "windows": windows,
        "sources": sources.join("; "),
        "target": j.target.repository_url(&j.name),
        "pack_size": j.target.pack_size.map(size),
        "max_tasks": j.max_tasks,
        "retention": keep.join(", "),
        "prune": prune,
        "pre_script": j.pre_script.as_ref().map(|p| p.command.join(" ")),
        "post_script": j.post_script.as_ref().map(|p| p.command.join(" ")),
    })
}

fn humantime(secs: i64) -> String {
    match secs {
        s if s % 604_800 == 0 => format!("{}w", s / 604_800),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Whether each repository can be reached: a source must hold a repository; a target's
/// store must answer (its job repository is made on the first run). One problem per
/// repository that cannot, at its `url` line.
async fn reach(file: &JobsFile) -> Vec<Problem> {
    let mut checks = Vec::new();
    for j in &file.jobs {
        for s in &j.sources {
            checks.push((s.url.clone(), s.line, true));
        }
        checks.push((j.target.repository_url(&j.name), j.target.line, false));
    }
    let looks = checks
        .into_iter()
        .map(|(url, line, must_exist)| async move {
            let found = match store::open(&url, false) {
                Ok(loc) => Repository::exists_at(&loc).await.map_err(|e| e.to_string()),
                Err(offsite::Error::NoRepository { .. }) => Ok(false),
                Err(e) => Err(e.to_string()),
            };
            match found {
                Ok(true) => None,
                Ok(false) if !must_exist => None,
                Ok(false) => Some(Problem {
                    line,
                    message: format!("{url}: no repository there"),
                }),
                Err(e) => Some(Problem {
                    line,
                    message: format!("{url}: cannot be reached: {e}"),
                }),
            }
        });
    futures::future::join_all(looks)
        .await
        .into_iter()
        .flatten()
        .collect()
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
async fn continuous(
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

/// The jobs of `file` that `--job` names (all without it); an error naming the file
/// when it names none.
fn chosen<'a>(
    file: &'a JobsFile,
    job: Option<&str>,
    config: &std::path::Path,
) -> anyhow::Result<Vec<&'a Job>> {
    let all: Vec<&Job> = file
        .jobs
        .iter()
        .filter(|j| job.is_none_or(|n| n == j.name))
        .collect();
    if let (Some(n), true) = (job, all.is_empty()) {
        anyhow::bail!("{}: no job named {n:?}", config.display());
    }
    Ok(all)
}

/// One job's plan as a table of its sources and a line of money.
fn print_plan(p: &offsite::job::plan::JobPlan) {
    println!(
        "job {} → {}{}: nothing was written",
        p.job,
        p.target,
        if p.target_exists {
            ""
        } else {
            " (made by the first run; planned as empty)"
        }
    );
    let row = |name: &str, chains: String, t: &offsite::copy::Plan| {
        vec![
            name.to_string(),
            chains,
            t.points.to_string(),
            t.blobs.to_string(),
            size(t.bytes_to_read),
            t.get_requests.to_string(),
            t.target_objects.to_string(),
            t.put_requests.to_string(),
        ]
    };
    let mut rows: Vec<Vec<String>> = p
        .sources
        .iter()
        .map(|s| row(&s.url, s.chains.to_string(), &s.plan))
        .collect();
    if p.sources.len() > 1 {
        rows.push(row("total", "-".into(), &p.total));
    }
    table(
        &[
            "SOURCE", "CHAINS", "POINTS", "BLOBS", "TO READ", "GETS", "OBJECTS", "PUTS",
        ],
        &rows,
    );
    let c = &p.cost;
    println!(
        "estimated cost: ${:.4} in requests, ${:.4} reading out of the sources' regions; the \
         new data stored in {} costs ${:.4} a month (prices: docs/prices.toml or --prices)",
        c.requests_usd, c.transfer_usd, c.target_class, c.storage_month_usd
    );
}
