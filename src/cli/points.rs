//! `offsite points`: the restore points of a repository, points being written and stale locks.

use std::path::Path;
use std::process::ExitCode;

use offsite::format::lock::{Holder, Purpose};
use offsite::repo::WarmSpec;
use offsite::repo::lock::list_locks;
use serde_json::json;

use super::PasswordFile;
use super::output::{json, size, table};
use super::repos::open_warm;

#[derive(clap::Args, Debug)]
pub struct PointsArgs {
    #[command(flatten)]
    pub pw: PasswordFile,
    pub repo: String,
    #[arg(long)]
    pub machine: Option<String>,
    /// Print the result as JSON (the shapes are in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: PointsArgs, pwf: Option<&Path>) -> anyhow::Result<ExitCode> {
    let PointsArgs {
        repo,
        machine,
        json: as_json,
        ..
    } = a;
    let r = open_warm(&repo, pwf, WarmSpec::POINTS).await?;
    let points: Vec<_> = r
        .load_points()
        .await?
        .into_iter()
        .filter(|(_, p)| machine.as_ref().is_none_or(|m| &p.machine == m))
        .collect();
    let marks = r.load_marks().await?;
    let marks_of = |id: &offsite::Id| marks.get(id).map(Vec::as_slice).unwrap_or_default();
    let now = r.clock().now();
    let locks = list_locks(&r).await?;
    let writing: Vec<_> = locks
        .iter()
        // Points being written: a backup's or a copy chain's (a job runner's own lock
        // writes no point itself).
        .filter(|l| !l.lock.is_stale(now) && l.lock.machine.is_some())
        .filter(|l| l.lock.operation != Purpose::Job)
        .filter(|l| {
            machine
                .as_ref()
                .is_none_or(|m| matches!(&l.lock.machine, Some(Holder::Machine(held)) if held == m))
        })
        .collect();
    let stale: Vec<_> = locks.iter().filter(|l| l.lock.is_stale(now)).collect();
    if as_json {
        let pts: Vec<_> = points
            .iter()
            .map(|(id, p)| {
                json!({"id": id, "time": p.time, "machine": p.machine, "job": p.job, "host": p.host,
                    "tags": p.tags, "parent": p.parent, "paths": p.paths, "summary": p.summary, "source": p.source,
                    "marks": marks_of(id).iter().map(|m| json!({"kind": m.kind, "detail": m.detail,
                        "set_at": m.set_at, "until": m.until})).collect::<Vec<_>>()})
            })
            .collect();
        let w: Vec<_> = writing
            .iter()
            .map(|l| json!({"machine": l.lock.machine, "operation": l.lock.operation, "host": l.lock.host,
                "pid": l.lock.pid, "since": l.lock.created, "lock": l.name}))
            .collect();
        let st: Vec<_> = stale
            .iter()
            .map(|l| json!({"lock": l.name, "machine": l.lock.machine, "host": l.lock.host, "expired": l.lock.expires}))
            .collect();
        json(&json!({"points": pts, "in_progress": w, "stale_locks": st}));
    } else {
        let rows: Vec<Vec<String>> = points
            .iter()
            .map(|(id, p)| {
                vec![
                    id.short(),
                    p.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                    p.machine.clone(),
                    p.job.clone().unwrap_or_default(),
                    p.host.clone(),
                    p.summary.files.to_string(),
                    size(p.summary.bytes),
                    p.tags
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(","),
                    marks_of(id)
                        .iter()
                        .filter(|m| m.until.is_none_or(|u| u > now))
                        .map(|m| m.kind.to_string())
                        .collect::<Vec<_>>()
                        .join(","),
                ]
            })
            .collect();
        table(
            &[
                "ID",
                "TIME (UTC)",
                "MACHINE",
                "JOB",
                "HOST",
                "FILES",
                "SIZE",
                "TAGS",
                "MARKS",
            ],
            &rows,
        );
        println!("{} restore point(s)", points.len());
        for l in writing {
            println!("being written: {}", l.describe(now));
        }
        for l in stale {
            println!("warning: {}", l.describe(now));
        }
    }
    Ok(ExitCode::SUCCESS)
}
