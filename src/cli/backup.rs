//! `offsite backup`: files, folders and raw disk images as a new restore point.

use std::collections::BTreeMap;
use std::path::Path;
use std::path::PathBuf;
use std::process::ExitCode;

use offsite::backup::{self, BackupOptions};
use serde_json::json;

use super::PasswordFile;
use super::output::{json, quiet, size};
use super::repos::{PARTIAL, open};

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    #[command(flatten)]
    pub pw: PasswordFile,
    /// The repository: s3://BUCKET/PREFIX, az://CONTAINER[@ACCOUNT]/PREFIX, or a folder.
    pub repo: String,
    /// The machine these files belong to.
    #[arg(long)]
    pub machine: String,
    /// The backup job writing this point.
    #[arg(long)]
    pub job: Option<String>,
    /// A tag KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = super::parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Store paths relative to this folder (default /).
    #[arg(long, value_name = "DIR")]
    pub base: Option<PathBuf>,
    /// Record this host name instead of this machine's.
    #[arg(long)]
    pub host: Option<String>,
    /// Read every file, also those the machine's last point shows unchanged (same
    /// size, modification and change time, inode and device), which are otherwise
    /// taken from it without being read.
    #[arg(long)]
    pub force_read: bool,
    /// Print the result as JSON (the shapes are in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
    /// Files, folders and raw disk images (block devices) to back up.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

pub async fn run(a: BackupArgs, pwf: Option<&Path>) -> anyhow::Result<ExitCode> {
    let BackupArgs {
        repo,
        machine,
        job,
        tags,
        base,
        host,
        json: as_json,
        paths,
        force_read,
        ..
    } = a;
    let r = open(&repo, pwf).await?;
    let opts = BackupOptions {
        machine,
        job,
        tags: tags.into_iter().collect::<BTreeMap<_, _>>(),
        paths,
        base,
        host,
        time: None,
        force_read,
    };
    let started = std::time::Instant::now();
    let progress = super::progress::for_terminal("backup", None);
    let (id, point) = backup::run(r, opts, progress).await?;
    let secs = started.elapsed().as_secs_f64();
    let s = &point.summary;
    if as_json {
        json(
            &json!({"point": id, "machine": point.machine, "job": point.job, "time": point.time,
            "parent": point.parent, "summary": s, "seconds": secs}),
        );
    } else if !quiet() {
        println!(
            "restore point {} of {} written\n  {} files, {} folders, {} symlinks, {}\n  added {} in {} new blobs\n  {:.1} s, {}/s",
            id.short(),
            point.machine,
            s.files,
            s.dirs,
            s.symlinks,
            size(s.bytes),
            size(s.bytes_added),
            s.blobs_added,
            secs,
            size((s.bytes as f64 / secs.max(1e-3)) as u64)
        );
        if s.files_reused > 0 {
            println!(
                "  {} unchanged since the last point ({}): taken from it, not read",
                super::output::plural(s.files_reused, "file"),
                size(s.bytes_reused)
            );
        }
        if s.errors > 0 {
            println!(
                "  {} entries could not be read and were left out (see the warnings above)",
                s.errors
            );
        }
    }
    Ok(if s.errors > 0 {
        ExitCode::from(PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}
