//! `offsite job validate|list|status|plan`: what a jobs file says, whether its
//! repositories can be reached, where each job's copies stand, and what its next
//! transfer will cost.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use offsite::job::config::{Job, Mode};
use offsite::job::{JobsFile, Problem};
use offsite::repo::Repository;
use offsite::store;

use super::super::output::{json, size, table};
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

/// `job status`: per machine, the newest source point, whether the target holds it, the lag.
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
