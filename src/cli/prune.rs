//! `offsite prune`: frees the data no restore point uses (after `forget`), and says what
//! it kept, rewrote and deleted.

use std::process::ExitCode;
use std::time::Duration;

use offsite::prune::{self, PruneOptions};

use super::PasswordFile;
use super::output::{json, quiet, size};
use super::repos::open;

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub pw: PasswordFile,
    pub repo: String,
    /// Rewrite a pack when less than this share of it (0–1) is still used.
    #[arg(long, value_name = "SHARE", default_value_t = 0.5)]
    pub repack_below: f64,
    /// Leave packs that are in no index and younger than this many hours (a writer that
    /// died may have left them; the next backup or copy adopts them).
    #[arg(long, value_name = "HOURS", default_value_t = 24)]
    pub grace_hours: u64,
    /// Say what would be freed; write and delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON (the shapes are in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: PruneArgs, pwf: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let r = open(&a.repo, pwf).await?;
    let opts = PruneOptions {
        repack_below: a.repack_below,
        grace: Duration::from_secs(a.grace_hours.saturating_mul(3600)),
        dry_run: a.dry_run,
    };
    let progress = super::progress::for_terminal("prune", None);
    let report = prune::prune(&r, &opts, &progress).await?;
    if a.json {
        json(&report);
        return Ok(ExitCode::SUCCESS);
    }
    if quiet() {
        return Ok(ExitCode::SUCCESS);
    }
    let would = if report.dry_run { "would be " } else { "" };
    println!(
        "{} restore point(s) use {} blob(s); {} pack(s), {} before",
        report.points,
        report.blobs_used,
        report.packs_before,
        size(report.bytes_before)
    );
    println!(
        "packs {would}deleted: {} unused, {} in no index ({} younger than the grace period left)",
        report.packs_deleted, report.unindexed_deleted, report.unindexed_left
    );
    println!(
        "packs {would}rewritten: {} ({} blob(s), {} moved into {} new pack(s))",
        report.packs_rewritten,
        report.blobs_moved,
        size(report.bytes_moved),
        report.packs_written
    );
    println!(
        "{} {would}freed; {} pack(s), {} after ({} unused left in packs kept)",
        size(report.bytes_freed),
        report.packs_after,
        size(report.bytes_after),
        size(report.unused_bytes_kept)
    );
    if report.packs_locked > 0 {
        println!(
            "{} pack(s) ({}) would be freed but are locked; the first lock ends {}",
            report.packs_locked,
            size(report.bytes_locked),
            report
                .next_unlock
                .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                .unwrap_or_default()
        );
    }
    if report.staging_files > 0 {
        println!(
            "staging files left by killed writers {would}removed: {} ({})",
            report.staging_files,
            size(report.staging_bytes)
        );
    }
    if report.archived_kept > 0 {
        println!(
            "{} archived pack(s) kept whole instead of rewritten (reading them back needs a retrieval)",
            report.archived_kept
        );
    }
    Ok(ExitCode::SUCCESS)
}
