//! `offsite job validate|list|status|plan`: what a jobs file says, whether its
//! repositories can be reached, where each job's copies stand, and what its next
//! transfer will cost.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use offsite::job::config::{Job, Mode};
use offsite::job::{JobsFile, Problem};

use super::super::output::{json, size, span, table};
use super::{chosen, humantime, load, load_valid};

/// `job validate`: every mistake with its line, then (unless offline) whether every
/// repository can be reached.
pub(super) async fn validate(
    config: &Path,
    offline: bool,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let mut problems = match load(config)? {
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

/// `job plan`: each job's next transfer, priced.
pub(super) async fn plan(
    config: &Path,
    job: Option<&str>,
    prices: Option<&Path>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let file = load_valid(config)?;
    let prices = offsite::prices::Prices::load(prices)?;
    let clock: std::sync::Arc<dyn offsite::clock::Clock> =
        std::sync::Arc::new(offsite::clock::SystemClock);
    let mut all = Vec::new();
    for j in chosen(&file, job, config)? {
        all.push(offsite::job::plan::plan(j, clock.clone(), &prices, &chrono::Local).await?);
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

/// `job status`: per machine, the newest source point, whether the target holds it, the
/// lag; per job its last and next runs, the next prune and health check, the last
/// trouble, and the sources or target that cannot be read. Exit 3 when a source or the
/// target cannot be read.
pub(super) async fn status(
    config: &Path,
    job: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let file = load_valid(config)?;
    let clock: std::sync::Arc<dyn offsite::clock::Clock> =
        std::sync::Arc::new(offsite::clock::SystemClock);
    let mut all = Vec::new();
    for j in chosen(&file, job, config)? {
        all.push(offsite::job::status::status(j, &clock, &chrono::Local).await);
    }
    let unread = |s: &offsite::job::status::JobStatus| {
        s.target_error.is_some() || s.sources.iter().any(|x| x.error.is_some())
    };
    let code = match all.iter().any(unread) {
        true => ExitCode::from(super::super::repos::PARTIAL),
        false => ExitCode::SUCCESS,
    };
    if as_json {
        json(&all);
        return Ok(code);
    }
    for s in &all {
        print_status(s);
    }
    Ok(code)
}

fn print_status(s: &offsite::job::status::JobStatus) {
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
    };
    println!(
        "job {} → {}: last run {} ({}), next run {}",
        s.job,
        s.target,
        when(s.last_run),
        s.last_result.map_or("never".into(), |o| o.to_string()),
        when(Some(s.next_run)),
    );
    if s.next_prune.is_some() || s.next_health_check.is_some() {
        println!(
            "  prune: last {}, next {}; health check: last {}, next {}",
            when(s.last_prune),
            when(s.next_prune),
            when(s.last_health_check),
            when(s.next_health_check)
        );
    }
    if let Some(t) = &s.last_trouble {
        println!(
            "  last trouble: {} ({}): {}",
            when(Some(t.interval)),
            t.outcome,
            t.reason
        );
    }
    if let Some(e) = &s.target_error {
        println!("  target cannot be read: {e}");
    }
    for src in &s.sources {
        if let Some(e) = &src.error {
            println!("  source {} cannot be read: {e}", src.url);
        }
    }
    let rows: Vec<Vec<String>> = s
        .machines
        .iter()
        .map(|m| {
            let copied = match (&m.source_error, m.copied) {
                (Some(_), _) => "?  (source down)".into(),
                (None, true) => "yes".into(),
                (None, false) => "NO".into(),
            };
            vec![
                m.machine.clone(),
                when(m.newest_at_source),
                copied,
                m.lag_seconds.map_or("?".into(), span),
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

/// `job list`: what each job does, in words.
pub(super) fn list(config: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let file = load_valid(config)?;
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

/// Whether each repository can be reached and opened with its password: a source must
/// hold a repository; a target's store must answer (its job repository is made on the
/// first run) and, when the repository is there, open with the job's password. One
/// problem per repository that cannot, at its `url` line.
async fn reach(file: &JobsFile) -> Vec<Problem> {
    let mut checks = Vec::new();
    for j in &file.jobs {
        for s in &j.sources {
            checks.push((s.url.clone(), &s.password, s.line, true));
        }
        let target = j.target.repository_url(&j.name);
        checks.push((target, &j.target.password, j.target.line, false));
    }
    let clock: std::sync::Arc<dyn offsite::clock::Clock> =
        std::sync::Arc::new(offsite::clock::SystemClock);
    let clock = &clock;
    let nothing = offsite::repo::WarmSpec::NOTHING;
    let looks = checks
        .into_iter()
        .map(|(url, secret, line, must_exist)| async move {
            let opened = offsite::repo::open_repository(&url, secret, clock, nothing).await;
            let message = match opened {
                Ok(Some(_)) => return None,
                Ok(None) if !must_exist => return None,
                Ok(None) => format!("{url}: no repository there"),
                Err(e @ offsite::Error::WrongPassword { .. }) => format!("{e}"),
                Err(e) => format!("{url}: cannot be opened: {e}"),
            };
            Some(Problem { line, message })
        });
    futures::future::join_all(looks)
        .await
        .into_iter()
        .flatten()
        .collect()
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
