//! `offsite-archiver`: the appliance that runs next to a source bucket and does the heavy
//! part of a backup copy (read, verify, re-seal, pack, upload) for a job runner that plans
//! and commits. `serve` runs the authenticated HTTP API (docs/ARCHIVER.md); `hash-token`
//! makes the hash of a token for the configuration, which never holds a token itself.

mod config;
mod tls;

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use offsite::clock::{Clock, SystemClock};
use offsite::remote::listen::{self, Guard, Plain};
use offsite::remote::server::{router_with, token_hash};
use offsite::remote::tasks::Tasks;
use offsite::remote::tokens::Tokens;
use offsite::remote::workshop::Workshop;

#[derive(Parser, Debug)]
#[command(name = "offsite-archiver", version = concat!(env!("CARGO_PKG_VERSION"), " (repository format 1)"))]
struct Cli {
    /// Log lines as JSON objects (for log collectors) instead of text.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API until SIGTERM (running tasks stop at a pack boundary).
    Serve {
        /// The configuration file (docs/ARCHIVER.md).
        #[arg(long, env = "OFFSITE_ARCHIVER_CONFIG")]
        config: std::path::PathBuf,
        /// Allow plain HTTP on an address other than loopback (tokens and traffic then
        /// cross the network unencrypted).
        #[arg(long)]
        insecure_http: bool,
    },
    /// Read a token on standard input and print the hash the configuration holds.
    HashToken,
    /// A container's health probe: GET this appliance's /v1/ready on 127.0.0.1 (the
    /// port and scheme from the configuration, or --url); exit 0 when it answers 2xx,
    /// 1 otherwise. For Docker's HEALTHCHECK and ECS: the image needs no curl.
    Probe {
        #[arg(long, env = "OFFSITE_ARCHIVER_CONFIG", required_unless_present = "url")]
        config: Option<std::path::PathBuf>,
        #[arg(long)]
        url: Option<String>,
    },
    /// Check a configuration file: its keys, its TLS files, and each repository opened
    /// with its password (exit 1 when anything is wrong, saying what).
    Check {
        #[arg(long, env = "OFFSITE_ARCHIVER_CONFIG")]
        config: std::path::PathBuf,
        /// The file's keys and values only: no TLS files loaded, no store reached (for
        /// checking deployment files on a machine without the cloud).
        #[arg(long)]
        offline: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Deployment checks (terraform/check.sh): the arguments a container would be
    // started with are parsed, and nothing runs.
    if std::env::var_os("OFFSITE_CHECK_ARGS").is_some() {
        println!("offsite-archiver: arguments accepted");
        return ExitCode::SUCCESS;
    }
    logging(&cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("offsite-archiver: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve {
                config,
                insecure_http,
            } => serve(&config, insecure_http).await,
            Command::HashToken => hash_token(),
            Command::Check { config, offline } => check(&config, offline).await,
            Command::Probe { config, url } => probe(config.as_deref(), url).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("offsite-archiver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OFFSITE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("offsite=info,offsite_archiver=info,warn")
    });
    // Colours only on a terminal: a log file or collector gets plain text.
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        "json" => fmt.json().init(),
        _ => fmt.init(),
    }
}

fn hash_token() -> anyhow::Result<()> {
    let mut token = String::new();
    std::io::stdin()
        .read_to_string(&mut token)
        .context("reading the token on standard input")?;
    if token.trim().len() < 16 {
        bail!("a token of at least 16 characters, please (e.g. `openssl rand -hex 32`)");
    }
    println!("{}", token_hash(&token));
    Ok(())
}

/// `check`: the file parses and holds together, the TLS files load, and each repository
/// opens with its password; one line per repository.
/// `probe`: the appliance's readiness on this host.
async fn probe(config: Option<&std::path::Path>, url: Option<String>) -> anyhow::Result<()> {
    let url = match (url, config) {
        (Some(u), _) => u,
        (None, Some(path)) => {
            let c = config::Config::load(path)?;
            let scheme = if c.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://127.0.0.1:{}/v1/ready", c.listen.port())
        }
        (None, None) => bail!("probe: give --config or --url"),
    };
    let status = offsite::probe::probe(&url)
        .await
        .map_err(|e| anyhow::anyhow!("unhealthy: {e}"))?;
    println!("{url}: {status}");
    Ok(())
}

async fn check(path: &std::path::Path, offline: bool) -> anyhow::Result<()> {
    let config = config::Config::load(path)?;
    if offline {
        println!(
            "{}: keys good; listen {}; {} token(s); {} task slot(s); {} repositories \
             (offline: TLS files and stores not checked)",
            path.display(),
            config.listen,
            config.tokens.len(),
            config.task_slots,
            config.repositories.len()
        );
        return Ok(());
    }
    if let Some(t) = &config.tls {
        tls::acceptor(&t.cert, &t.key)?;
        println!("tls: {} and {} load", t.cert.display(), t.key.display());
    }
    println!(
        "listen {}; {} token(s); {} task slot(s)",
        config.listen,
        config.tokens.len(),
        config.task_slots
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let names: Vec<(String, offsite::remote::workshop::Role)> = (config.repositories.iter())
        .map(|r| (r.name.clone(), r.role))
        .collect();
    let workshop = Workshop::new(config.repositories, clock);
    let mut bad = 0;
    for (name, role) in names {
        let role = format!("{role:?}").to_lowercase();
        match workshop.repository(&name).await {
            Ok(r) => println!(
                "repository {name} ({role}): opens, id {}",
                r.config.id.short()
            ),
            Err(e) => {
                bad += 1;
                println!("repository {name} ({role}): does not open: {e}");
            }
        }
    }
    if bad > 0 {
        bail!("{bad} repository(ies) do not open (see above)");
    }
    println!("{}: good", path.display());
    Ok(())
}

async fn serve(path: &std::path::Path, insecure_http: bool) -> anyhow::Result<()> {
    let config = config::Config::load(path)?;
    if config.tls.is_none() && !config.listen.ip().is_loopback() && !insecure_http {
        bail!(
            "{}: not a loopback address and no [tls]: give a certificate and key, or start with \
             --insecure-http to send tokens and data unencrypted",
            config.listen
        );
    }
    // One budget for every task's tables (indexes, plans), as `offsite --memory`.
    offsite::repo::table::budget::configure(config.memory, config.cache_dir.clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut workshop = Workshop::new(config.repositories, clock.clone());
    if config.rates.read.is_some() || config.rates.write.is_some() {
        let spec = offsite::store::throttle::ThrottleSpec {
            rates: config.rates,
            ..Default::default()
        };
        workshop =
            workshop.with_throttle(offsite::store::throttle::Throttle::new(spec, clock.clone()));
    }
    let workshop = Arc::new(workshop);
    // Open the repositories now (key derivation is slow by design), not on the first
    // task; those that do not open are tried again, each after its backoff, so health
    // says when a password or a grant is fixed.
    let opening = workshop.clone();
    tokio::spawn(async move {
        loop {
            opening.repositories().await;
            tokio::time::sleep(Duration::from_secs(15)).await;
        }
    });
    let tasks = Tasks::new(config.task_slots, workshop, clock);
    tasks.set_default_lease(config.lease);
    let guard = Guard::new(config.limits.clone());
    let tokens = Tokens::new(config.tokens.clone());
    let app = router_with(tasks.clone(), tokens.clone(), guard.clone());
    let tcp = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = tcp.local_addr()?;
    let shutdown = drain(tasks.clone(), config.drain_timeout);
    match &config.tls {
        Some(t) => {
            let tls = tls::Tls::new(tls::acceptor(&t.cert, &t.key)?);
            tokio::spawn(reload_on_hangup(
                path.to_path_buf(),
                tokens,
                Some(tls.clone()),
            ));
            println!("offsite-archiver listening on https://{addr}");
            listen::serve(tcp, tls, app, guard, shutdown).await;
        }
        None => {
            tokio::spawn(reload_on_hangup(path.to_path_buf(), tokens, None));
            println!("offsite-archiver listening on http://{addr}");
            listen::serve(tcp, Plain, app, guard, shutdown).await;
        }
    }
    Ok(())
}

/// On each SIGHUP: reads the configuration again and puts its tokens and TLS
/// certificate in force for new requests and connections. Running tasks are not
/// touched; a configuration that does not load changes nothing (and says why). Other
/// settings take a restart.
async fn reload_on_hangup(path: std::path::PathBuf, tokens: Tokens, tls: Option<tls::Tls>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot watch for SIGHUP: reloading needs a restart");
        return;
    };
    while hup.recv().await.is_some() {
        let loaded = config::Config::load(&path).and_then(|c| {
            let acceptor = match (&c.tls, &tls) {
                (Some(t), Some(_)) => Some(tls::acceptor(&t.cert, &t.key)?),
                _ => None,
            };
            Ok((c.tokens, acceptor))
        });
        match loaded {
            Ok((new_tokens, acceptor)) => {
                let n = new_tokens.len();
                tokens.replace(new_tokens);
                if let (Some(a), Some(t)) = (acceptor, &tls) {
                    t.replace(a);
                }
                tracing::info!(
                    "reloaded: {n} token(s){}",
                    if tls.is_some() {
                        " and the TLS certificate"
                    } else {
                        ""
                    }
                );
            }
            Err(e) => tracing::warn!("reload refused, nothing changed: {e:#}"),
        }
    }
}

/// Waits for SIGTERM (or Ctrl-C), then drains: `/v1/ready` and new tasks answer 503 at
/// once, running tasks stop at their next pack boundary, and the service goes on
/// answering status until every runner has collected what its task wrote (or its lease
/// ran out unasked), for at most `timeout`. Returns when the service may close.
async fn drain(tasks: Arc<Tasks>, timeout: Duration) {
    wait_for_signal().await;
    tracing::info!(
        "stopping: no new task; running tasks stop at a pack boundary; their runners have up \
         to {timeout:?} to collect them"
    );
    tasks.stopping.stop();
    let deadline = tokio::time::Instant::now() + timeout;
    while !tasks.drained() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                "stopping with {} task(s) not collected by their runners (drain_timeout)",
                tasks.outstanding()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::info!("drained: every task's packs were collected; closing");
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
