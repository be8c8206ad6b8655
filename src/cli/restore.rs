//! `offsite restore`: a point into a folder, bit for bit (archived packs planned, priced and retrieved first when asked).

use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use offsite::repo::WarmSpec;
use offsite::restore;
use serde_json::json;

use super::PasswordFile;
use super::output::{json, size};
use super::repos::open_warm;

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub pw: PasswordFile,
    pub repo: String,
    /// `latest` or a point id (a unique prefix is enough).
    pub point: String,
    #[arg(long)]
    pub machine: Option<String>,
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Ranged reads in flight (default: 8 for folders; for S3 and Azure 16, more on
    /// a link with latency, up to 64).
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// Restore only paths matching this glob, and what is under them (repeatable).
    #[arg(long = "include", value_name = "PATH|GLOB")]
    pub include: Vec<String>,
    /// Leave out paths matching this glob, and what is under them (repeatable).
    #[arg(long = "exclude", value_name = "PATH|GLOB")]
    pub exclude: Vec<String>,
    #[command(flatten)]
    pub retrieve: super::retrieve::RetrieveArgs,
    /// Print the result as JSON (the shapes are in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: RestoreArgs, pwf: Option<&Path>) -> anyhow::Result<ExitCode> {
    let RestoreArgs {
        repo,
        point,
        machine,
        to,
        connections,
        include,
        exclude,
        retrieve,
        json: as_json,
        ..
    } = a;
    let r = open_warm(&repo, pwf, WarmSpec::READER).await?;
    let (id, p) = r.find_point(&point, machine.as_deref()).await?;
    let started = std::time::Instant::now();
    let before = r.loc.requests.snapshot();
    let filter = restore::PathFilter::new(&include, &exclude)?;
    // On a tiered target, what the point reads is looked at (and retrieved when
    // asked) before anything is written.
    let index = match super::retrieve::worth_a_look(&r, &retrieve) {
        true => Some(super::retrieve::prepare(&r, &id, &p, &filter, &retrieve, false).await?),
        false => None,
    };
    let progress = super::progress::for_terminal("restore", Some(p.summary.bytes));
    let opts = restore::RestoreOptions {
        connections,
        filter,
        index,
    };
    let stats = restore::run_with(&r, &id, &p, &to, &opts, &progress).await?;
    let secs = started.elapsed().as_secs_f64();
    let requests = r.loc.requests.snapshot().since(&before);
    if as_json {
        json(
            &json!({"point": id, "machine": p.machine, "to": to, "stats": stats, "seconds": secs, "requests": requests}),
        );
    } else if !super::output::quiet() {
        println!(
            "restored point {} of {} to {}\n  {} files, {} folders, {} symlinks, {} in {:.1} s ({} GETs, {} read)",
            id.short(),
            p.machine,
            to.display(),
            stats.files,
            stats.dirs,
            stats.symlinks,
            size(stats.bytes),
            secs,
            requests.get,
            size(requests.bytes_in)
        );
    }
    Ok(ExitCode::SUCCESS)
}
