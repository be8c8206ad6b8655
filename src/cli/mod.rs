//! Argument parsing and the commands. Each command opens what it needs, calls the
//! library, and prints a table (or `--json`, whose shape docs/CLI.md documents).

mod backup;
mod check;
mod commands;
mod copy;
mod demo;
mod forget;
mod init;
mod job;
mod ls;
pub mod output;
mod password;
mod points;
mod progress;
mod prune;
mod repos;
mod restore;
mod retrieve;
pub(crate) mod sample;
mod signals;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "offsite",
    version,
    about = "Backup copies between object stores: re-packed, compressed, encrypted under the target's own key"
)]
pub struct Args {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log lines as text (for a terminal) or as JSON objects, one a line, with their
    /// time (for log collectors).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Memory the large blob tables (indexes, a copy's sets of needed blobs) may hold
    /// together before they spill to files in --cache-dir, e.g. 512MiB. Default: a
    /// quarter of the machine's memory, or of its container's limit, at most 256MiB.
    #[arg(long, global = true, value_name = "SIZE", env = "OFFSITE_MEMORY", value_parser = offsite::units::parse_size)]
    pub memory: Option<u64>,
    /// Where tables over the memory budget spill (each file is unlinked as it is made,
    /// so nothing is left behind). Default: the system's temporary directory.
    #[arg(long, global = true, value_name = "DIR", env = "OFFSITE_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The repository password's file, for the commands that open a repository.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PasswordFile {
    /// Read the repository password from this file (else OFFSITE_PASSWORD, else a prompt).
    #[arg(long = "password-file", id = "password_file", value_name = "FILE")]
    pub path: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a repository.
    Init(Box<init::InitArgs>),
    /// Back up files, folders and raw disk images as a new restore point.
    Backup(Box<backup::BackupArgs>),
    /// List restore points (and points being written).
    Points(Box<points::PointsArgs>),
    /// Restore a point into a folder, bit for bit.
    Restore(Box<restore::RestoreArgs>),
    /// List a point's files and folders without restoring them.
    Ls {
        #[command(flatten)]
        pw: PasswordFile,
        repo: String,
        /// `latest` or a point id (a unique prefix is enough).
        point: String,
        /// Only this path and what is under it.
        path: Option<String>,
        #[arg(long)]
        machine: Option<String>,
        /// Print one JSON object per line (the shape is in docs/CLI.md).
        #[arg(long)]
        json: bool,
    },
    /// Verify the repository; with --read-data, every blob (archived packs are planned
    /// and priced first, and retrieved with --retrieve).
    Check(Box<check::CheckArgs>),
    /// Copy restore points into another repository, as an independent chain under its own key.
    Copy(Box<CopyArgs>),
    /// Forget restore points a retention policy does not keep (newest N, weekly, monthly,
    /// yearly); `offsite prune` then frees the data only they used.
    Forget(Box<forget::ForgetArgs>),
    /// Free the data no restore point uses: delete unused packs, rewrite mostly unused ones.
    Prune(Box<prune::PruneArgs>),
    /// Backup copy jobs from a jobs file (docs/JOBS.md).
    Job {
        #[command(subcommand)]
        action: job::JobAction,
    },
    /// A target's storage: the class of its data packs and its object lock.
    Target {
        #[command(subcommand)]
        action: target::TargetAction,
    },
    /// Manage the passwords that open a repository.
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Run the embedded default: a whole backup copy job between two local folder
    /// repositories — sample machines backed up, copied under the copy's own key, changed
    /// and copied again incrementally, the copy restored, compared bit for bit and checked.
    Demo {
        /// Working folder (replaced if it holds an earlier demo).
        #[arg(long, default_value = "offsite-demo")]
        dir: PathBuf,
    },
    /// Remove stale locks (left by writers that died); --all removes live ones too.
    Unlock {
        #[command(flatten)]
        pw: PasswordFile,
        repo: String,
        #[arg(long)]
        all: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// The sources' password file (else OFFSITE_PASSWORD, else a prompt).
    #[command(flatten)]
    pub pw: PasswordFile,
    /// Source repository (repeatable). Its password: OFFSITE_PASSWORD or --password-file.
    #[arg(long = "from", required = true, value_name = "SRC")]
    pub from: Vec<String>,
    /// Target repository. Its password: OFFSITE_TARGET_PASSWORD or --target-password-file.
    #[arg(long = "to", value_name = "DST")]
    pub to: String,
    /// Create the target (with its own key) if it does not exist.
    #[arg(long)]
    pub init: bool,
    /// Read the target's password from this file (else OFFSITE_TARGET_PASSWORD, else a prompt).
    #[arg(long, value_name = "FILE")]
    pub target_password_file: Option<PathBuf>,
    /// Machine name or glob (repeatable); default all.
    #[arg(long = "machine", value_name = "GLOB")]
    pub machines: Vec<String>,
    /// Source job name (repeatable); default all.
    #[arg(long = "source-job", value_name = "NAME")]
    pub jobs: Vec<String>,
    /// Only points with this tag (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// latest (of each machine), all, or since=YYYY-MM-DD.
    #[arg(long, default_value = "latest")]
    pub points: offsite::copy::PointsSpec,
    /// Target pack size (default: the target's; 64MiB for a new target).
    #[arg(long, value_parser = output::parse_size)]
    pub pack_size: Option<u64>,
    /// keep (re-seal the source's payload) or zstd:LEVEL; default the target's level.
    #[arg(long)]
    pub compression: Option<offsite::copy::Compression>,
    /// per-machine (packs never mix machines) or per-job (one commit for the whole job).
    #[arg(long, default_value = "per-machine")]
    pub chain: offsite::copy::ChainMode,
    /// Continue on top of a target that holds points from elsewhere (a seeded copy).
    #[arg(long)]
    pub map: bool,
    /// Copy only the machines of shard I of N (0-based), e.g. 0/4.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<offsite::copy::Shard>,
    /// A price table for the dry run's cost (default: the built-in one, docs/prices.toml;
    /// or OFFSITE_PRICES).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
    /// Print the plan; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds to wait for a source point that is being written before skipping it.
    #[arg(long, default_value_t = 600)]
    pub source_wait: u64,
    /// Seconds to wait for another copy of the same machine into the target.
    #[arg(long, default_value_t = 0)]
    pub lock_wait: u64,
    /// Chains (machines) copied side by side.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub tasks: u16,
    /// Ranged source reads in flight per chain (default: 3, more on a link with latency,
    /// up to 16).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: Option<u16>,
    /// Run the transfers on archiver appliances (repeatable: a pool); each chain goes to
    /// one with a free task slot. A URL is one appliance; dns+https://NAME:PORT is every
    /// address NAME resolves to (a headless Service). Without it, this process transfers.
    #[arg(long = "via", value_name = "URL")]
    pub via: Vec<String>,
    /// How long an archiver keeps a task this process stopped asking for (it then
    /// stops the task at a pack boundary), in seconds.
    #[arg(long, default_value_t = 15, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub via_lease: u64,
    /// The archivers' token: a file holding it (default: OFFSITE_ARCHIVER_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub via_token_file: Option<std::path::PathBuf>,
    /// A PEM certificate authority to trust for the archivers' HTTPS (a private CA).
    #[arg(long, value_name = "FILE")]
    pub via_ca: Option<std::path::PathBuf>,
    /// When an archiver is lost mid-chain: another of the pool (then this process),
    /// this process at once, or fail the chain.
    #[arg(long, default_value = "pool", value_name = "pool|local|fail")]
    pub redispatch: offsite::remote::pool::Redispatch,
    /// Print the result as JSON (the shapes are in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// Add a password (the new one from OFFSITE_NEW_PASSWORD, --new-password-file or a prompt).
    Add {
        #[command(flatten)]
        pw: PasswordFile,
        repo: String,
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
    /// List the key files.
    List {
        #[command(flatten)]
        pw: PasswordFile,
        repo: String,
        /// Print the result as JSON (the shapes are in docs/CLI.md).
        #[arg(long)]
        json: bool,
    },
    /// Remove a key file (not the one in use, not the last).
    Remove {
        #[command(flatten)]
        pw: PasswordFile,
        repo: String,
        id: String,
    },
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("tag {s:?} must be KEY=VALUE")),
    }
}

/// How log lines are written (stderr).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init_logging(verbose: u8, quiet: bool, format: LogFormat) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        // -vvv: every request with its latency.
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("OFFSITE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("offsite={level},warn")));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match format {
        // Colours only on a terminal: a log file or collector gets plain text.
        LogFormat::Text => {
            use std::io::IsTerminal;
            fmt.without_time()
                .with_ansi(std::io::stderr().is_terminal())
                .init()
        }
        LogFormat::Json => fmt.json().init(),
    }
}

impl Command {
    /// The `--password-file` given to this command, if it takes one.
    fn password_file(&self) -> Option<PathBuf> {
        let pw = match self {
            Command::Init(a) => &a.pw,
            Command::Backup(a) => &a.pw,
            Command::Points(a) => &a.pw,
            Command::Restore(a) => &a.pw,
            Command::Check(a) => &a.pw,
            Command::Ls { pw, .. } | Command::Unlock { pw, .. } => pw,
            Command::Copy(c) => &c.pw,
            Command::Forget(f) => &f.pw,
            Command::Prune(p) => &p.pw,
            Command::Key { action } => match action {
                KeyAction::Add { pw, .. }
                | KeyAction::List { pw, .. }
                | KeyAction::Remove { pw, .. } => pw,
            },
            Command::Target { action } => action.password_file()?,
            Command::Demo { .. } | Command::Job { .. } => return None,
        };
        pw.path.clone()
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    commands::run(args).await
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks (unique argument names, valid defaults) for every
    /// command, which otherwise fire only when that command is run.
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
