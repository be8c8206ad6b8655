//! `offsite job`: backup copy jobs from a jobs file (docs/JOBS.md). The subcommands and
//! what they share (loading the file, choosing jobs) are here; `run` (once, or the
//! continuous runner) is in [`running`], `validate`, `list`, `status` and `plan` —
//! what a file says and where its jobs stand — in [`show`], and `simulate` (a year of a
//! job, kept and priced) in [`simulate`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use offsite::job::config::Job;
use offsite::job::{JobsFile, Problem};

mod running;
mod show;
mod simulate;

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
        /// With --once: write the metrics of the run (Prometheus text, as /metrics
        /// serves it, the copy lag looked at after the run) to FILE, for node_exporter's
        /// textfile collector; written aside and renamed, the last success carried over
        /// from the file a failed run replaces.
        #[arg(long, value_name = "FILE", requires = "once")]
        metrics_file: Option<PathBuf>,
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
    /// What the job keeps and costs over the coming days (365 by default): its own
    /// schedule, windows, retention (GFS), prune and locks run over simulated days
    /// against a model of its target sized from its sources (or --machines N --size S);
    /// per month the bytes stored, requests and the bill from the price table, the
    /// points kept at the end and why; per day as --csv, --json or an --svg chart.
    /// Reads the sources' points; writes nothing.
    Simulate(simulate::SimulateArgs),
    /// A container's health probe: GET the continuous runner's /health on this host;
    /// exit 0 when it answers 200, 1 otherwise (stopping, or nothing listening). For
    /// Docker's HEALTHCHECK and ECS health checks: the image needs no curl.
    Probe {
        #[arg(long, default_value = "http://127.0.0.1:9184/health")]
        url: String,
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
            ..
        } => {
            let file = load_valid(&config)?;
            let jobs: Vec<Job> = match &job {
                Some(name) => vec![file.job(name).cloned().ok_or_else(|| {
                    anyhow::anyhow!("{}: no job named {name:?}", config.display())
                })?],
                None => file.jobs.clone(),
            };
            running::continuous(jobs, as_json, metrics_listen, metrics_refresh).await
        }
        JobAction::Run {
            config,
            once: true,
            job,
            json: as_json,
            metrics_file,
            ..
        } => running::once(&config, job.as_deref(), as_json, metrics_file.as_deref()).await,
        JobAction::Validate {
            config,
            offline,
            json: as_json,
        } => show::validate(&config, offline, as_json).await,
        JobAction::Plan {
            config,
            job,
            prices,
            json: as_json,
        } => show::plan(&config, job.as_deref(), prices.as_deref(), as_json).await,
        JobAction::Status {
            config,
            job,
            json: as_json,
        } => show::status(&config, job.as_deref(), as_json).await,
        JobAction::List {
            config,
            json: as_json,
        } => show::list(&config, as_json),
        JobAction::Simulate(a) => simulate::simulate(a).await,
        JobAction::Probe { url } => match offsite::probe::probe(&url).await {
            Ok(status) => {
                println!("{url}: {status}");
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("unhealthy: {e}");
                Ok(ExitCode::FAILURE)
            }
        },
    }
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
