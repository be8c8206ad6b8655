//! `offsite check`: the repository's structure, and with `--read-data` every blob.

use std::path::Path;
use std::process::ExitCode;

use offsite::check::{self, CheckOptions};
use offsite::format::lock::{LockKind, Purpose};

use super::PasswordFile;
use super::output::{json, size};
use super::repos::open;

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    pub pw: PasswordFile,
    pub repo: String,
    #[arg(long)]
    pub read_data: bool,
    #[command(flatten)]
    pub retrieve: super::retrieve::RetrieveArgs,
    /// Print the result as JSON (the shapes are in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: CheckArgs, pwf: Option<&Path>) -> anyhow::Result<ExitCode> {
    let CheckArgs {
        repo,
        read_data,
        retrieve,
        json: as_json,
        ..
    } = a;
    let r = open(&repo, pwf).await?;
    if read_data && super::retrieve::worth_a_look(&r, &retrieve) {
        super::retrieve::prepare_check(&r, &retrieve).await?;
    }
    let lock =
        offsite::repo::lock::LockGuard::acquire(&r, LockKind::Shared, Purpose::Check, None).await?;
    let progress = super::progress::for_terminal("check", None);
    let report = check::run(&r, &CheckOptions { read_data }, &progress).await;
    lock.release().await?;
    let report = report?;
    if as_json {
        json(&report);
    } else {
        for w in &report.warnings {
            println!("warning: {}: {}", w.object, w.message);
        }
        for e in &report.errors {
            println!("error: {}: {}", e.object, e.message);
        }
        println!(
            "checked {} index file(s), {} pack(s), {} blob(s), {} restore point(s){}: {}",
            report.indexes,
            report.packs,
            report.blobs,
            report.points,
            if read_data {
                format!(", read {}", size(report.bytes_read))
            } else {
                String::new()
            },
            if report.is_ok() {
                "no errors".to_string()
            } else {
                format!("{} ERROR(S)", report.errors.len())
            }
        );
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
