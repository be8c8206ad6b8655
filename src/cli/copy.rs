//! `offsite copy`: opens the sources and the target (creating it with `--init`), runs
//! the copy engine and prints its report as a table or `--json`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};

use offsite::copy::{
    self, ChainReport, ChainStatus, Compression, CopyOptions, CopyReport, Selection,
    TransferOptions,
};
use offsite::remote::pool::{Pool, PoolOptions};
use offsite::repo::{InitOptions, Repository, WarmSpec};
use offsite::{keys, store};

use super::output::{json, size, table};
use super::repos::{PARTIAL, open_warm_with, repo_password};
use super::{CopyArgs, password};

pub async fn run(a: CopyArgs, pwf: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    // Passwords first (a prompt at a time), then every key derived side by side.
    let pw = repo_password(pwf)?;
    let existing = match existing_target(&a).await? {
        Some(loc) => Some((loc, target_password(&a, false)?)),
        None => None,
    };
    let open_sources = futures::future::try_join_all(
        a.from
            .iter()
            .map(|u| open_warm_with(u, &pw, WarmSpec::READER)),
    );
    let open_target = async {
        match existing {
            Some((loc, pw)) => match Repository::open_warm(loc, &pw, WarmSpec::COPY_TARGET).await {
                Ok(r) => Ok(Some(Arc::new(r))),
                Err(offsite::Error::NoRepository { .. }) => bail!(
                    "{}: no repository there; add --init to create it with its own key",
                    a.to
                ),
                Err(e) => Err(e.into()),
            },
            None => anyhow::Ok(None),
        }
    };
    let (sources, target) = tokio::try_join!(open_sources, open_target)?;
    let target = match target {
        Some(t) => t,
        None => create_target(&a, &sources).await?,
    };
    let opts = CopyOptions {
        selection: Selection {
            machines: a.machines.clone(),
            jobs: a.jobs.clone(),
            tags: a.tags.clone(),
            points: a.points.clone(),
            shard: a.shard,
        },
        pack_size: a.pack_size,
        chain: a.chain,
        map: a.map,
        dry_run: a.dry_run,
        source_wait: Duration::from_secs(a.source_wait),
        lock_wait: Duration::from_secs(a.lock_wait),
        tasks: usize::from(a.tasks),
        transfer: TransferOptions {
            compression: a.compression.unwrap_or(Compression::Target),
            reads_in_flight: a.connections.map(usize::from),
            stop: super::signals::stop_on_signal(
                "stopping: the packs in flight are finished, what is whole is committed and \
                 archivers' tasks are cancelled",
            ),
            ..Default::default()
        },
        sibling_sources: Vec::new(),
        via: pool(&a)
            .await?
            .map(|p| p as Arc<dyn offsite::copy::offload::Offload>),
    };
    let progress = super::progress::for_terminal(
        if a.dry_run { "planning" } else { "copy" },
        (!a.dry_run).then_some(0),
    );
    let priced = (
        sources.first().map(|s| s.loc.kind),
        target.loc.kind,
        target.config.storage.data_class.clone(),
    );
    let mut report = copy::run(sources, target, &opts, &progress).await?;
    report.target = a.to.clone();
    if report.dry_run {
        let prices = offsite::prices::Prices::load(a.prices.as_deref())?;
        let t = report.planned();
        let (source, target, class) = priced;
        if let Some(source) = source {
            report.cost = Some(prices.copy_cost(
                source,
                target,
                class.as_deref(),
                (t.get_requests, t.bytes_to_read, t.put_requests),
            ));
        }
    }
    if a.json {
        json(&report);
    } else {
        print_report(&report);
    }
    let all_failed = !report.chains.is_empty()
        && report
            .chains
            .iter()
            .all(|c| matches!(c.status, ChainStatus::Failed | ChainStatus::Skipped));
    Ok(if all_failed {
        ExitCode::FAILURE
    } else if report.has_failures() {
        ExitCode::from(PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}

/// The archivers of `--via`, reached once for their slots; `None` without `--via`.
async fn pool(a: &CopyArgs) -> anyhow::Result<Option<Arc<Pool>>> {
    if a.via.is_empty() {
        return Ok(None);
    }
    let token = match &a.via_token_file {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("reading the archiver token {}", f.display()))?,
        None => std::env::var("OFFSITE_ARCHIVER_TOKEN").map_err(|_| {
            anyhow::anyhow!(
                "--via needs the archivers' token: set OFFSITE_ARCHIVER_TOKEN or --via-token-file"
            )
        })?,
    };
    let ca = match &a.via_ca {
        Some(f) => Some(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?),
        None => None,
    };
    let resolver = offsite::remote::address::SystemResolver;
    let apps =
        offsite::remote::address::appliances(&a.via, &token, ca.as_deref(), &resolver).await?;
    let opts = PoolOptions {
        redispatch: a.redispatch,
        lease: Duration::from_secs(a.via_lease),
        ..Default::default()
    };
    let clock: Arc<dyn offsite::clock::Clock> = Arc::new(offsite::clock::SystemClock);
    Ok(Some(Arc::new(Pool::connect(apps, opts, clock).await?)))
}

/// The target's location when a repository is there already.
async fn existing_target(a: &CopyArgs) -> anyhow::Result<Option<store::Location>> {
    // A folder target that does not exist yet is made only by a real (not dry) --init.
    let loc = match store::open(&a.to, a.init && !a.dry_run) {
        Ok(l) => l,
        Err(offsite::Error::NoRepository { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // Without --init the target must exist: opening it says so (one request less
    // than looking first).
    if !a.init {
        return Ok(Some(loc));
    }
    Ok(Repository::exists_at(&loc).await?.then_some(loc))
}

fn target_password(a: &CopyArgs, confirm: bool) -> anyhow::Result<Vec<u8>> {
    password::get(
        a.target_password_file.as_deref(),
        "OFFSITE_TARGET_PASSWORD",
        "--target-password-file",
        "Target repository password: ",
        confirm,
    )
}

/// Creates the target with `--init`: a new master key, the first source's chunker (so
/// later backups into it deduplicate with copied data), 64 MiB packs unless told
/// otherwise. A dry run plans against an empty stand-in instead.
async fn create_target(
    a: &CopyArgs,
    sources: &[Arc<Repository>],
) -> anyhow::Result<Arc<Repository>> {
    if !a.init {
        bail!(
            "{}: no repository there; add --init to create it with its own key",
            a.to
        );
    }
    if a.dry_run {
        // Plan against an empty stand-in: a dry run creates nothing, not even the target.
        let scratch = format!(
            "memory://dry-run-{}",
            hex::encode(offsite::crypto::random_bytes::<8>())
        );
        let opts = target_init_options(a, sources, keys::DRY_RUN_KDF);
        let r = Repository::init(store::open(&scratch, true)?, b"dry run", opts).await?;
        eprintln!(
            "{} does not exist yet: planning the copy into a new, empty repository",
            a.to
        );
        return Ok(Arc::new(r));
    }
    let pw = target_password(a, true)?;
    let opts = target_init_options(a, sources, keys::kdf_from_env()?);
    let r = Repository::init(store::open(&a.to, true)?, &pw, opts).await?;
    eprintln!(
        "created target repository {} at {}",
        r.config.id.short(),
        a.to
    );
    Ok(Arc::new(r))
}

fn target_init_options(
    a: &CopyArgs,
    sources: &[Arc<Repository>],
    kdf: offsite::format::keyfile::KdfParams,
) -> InitOptions {
    copy::target_init_options(&sources[0].config, a.compression, a.pack_size, kdf)
}

/// Runs shorter than this get no speed or bottleneck figures.
const MEASURABLE: f64 = 1.0;

pub(super) fn print_report(r: &CopyReport) {
    match r.dry_run {
        true => print_plan(r),
        false if super::output::quiet() => {}
        false => print_copies(r),
    }
    for c in &r.chains {
        for f in &c.failed {
            println!(
                "FAILED {} point {} of {}: {}",
                f.machine,
                f.source_point.short(),
                f.time.format("%Y-%m-%d %H:%M:%S"),
                f.reason
            );
        }
        for w in &c.warnings {
            println!("warning: {}: {w}", c.chain);
        }
    }
}

/// A dry run's plan per chain, and its estimated cost.
fn print_plan(r: &CopyReport) {
    let rows: Vec<Vec<String>> = r
        .chains
        .iter()
        .map(|c| {
            let p = c.plan.clone().unwrap_or_default();
            vec![
                c.chain.clone(),
                p.points.to_string(),
                c.already_copied.to_string(),
                p.blobs.to_string(),
                size(p.bytes_to_read),
                p.get_requests.to_string(),
                p.target_objects.to_string(),
                p.put_requests.to_string(),
            ]
        })
        .collect();
    println!("dry run: nothing was written to {}", r.target);
    table(
        &[
            "CHAIN", "POINTS", "ALREADY", "BLOBS", "TO READ", "GETS", "OBJECTS", "PUTS",
        ],
        &rows,
    );
    if let Some(c) = &r.cost {
        println!(
            "estimated cost: ${:.4} in requests, ${:.4} reading out of the source's region; \
             the new data stored in {} costs ${:.4} a month (prices: docs/prices.toml or --prices)",
            c.requests_usd, c.transfer_usd, c.target_class, c.storage_month_usd
        );
    }
}

/// Each chain's copy, what archivers did, and the run's total.
fn print_copies(r: &CopyReport) {
    let reqs = |c: &ChainReport| {
        let (s, t) = (&c.requests_source, &c.requests_target);
        format!(
            "{}G {}L {}H / {}P {}L {}H {}D",
            s.get, s.list, s.head, t.put, t.list, t.head, t.delete
        )
    };
    let rows: Vec<Vec<String>> = r
        .chains
        .iter()
        .map(|c| {
            vec![
                c.chain.clone(),
                c.status.to_string(),
                format!("{}/{}", c.copied.len(), c.copied.len() + c.failed.len()),
                c.already_copied.to_string(),
                format!("{} new, {} had", c.blobs_new, c.blobs_present),
                size(c.bytes_read),
                size(c.bytes_written),
                reqs(c),
                format!("{:.1} s", c.seconds),
                // Below a second, a rate says more about start-up than about speed.
                if c.seconds >= MEASURABLE && !c.copied.is_empty() {
                    format!("{}/s", size(c.throughput as u64))
                } else {
                    "-".into()
                },
                if c.seconds >= MEASURABLE && !c.copied.is_empty() {
                    format!(
                        "{} (read {:.0}% cpu {:.0}% write {:.0}%)",
                        c.bottleneck.limiting,
                        c.bottleneck.source_read * 100.0,
                        c.bottleneck.processing * 100.0,
                        c.bottleneck.target_write * 100.0
                    )
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    table(
        &[
            "CHAIN",
            "STATUS",
            "COPIED",
            "ALREADY",
            "BLOBS",
            "READ",
            "WRITTEN",
            "REQUESTS src/dst",
            "TIME",
            "SPEED",
            "BOTTLENECK",
        ],
        &rows,
    );
    println!(
        "REQUESTS: source G=GET L=LIST H=HEAD / target P=PUT (multipart parts included) L=LIST H=HEAD D=DELETE; \
         BOTTLENECK: the stage busy most of the time, with each stage's busy share"
    );
    for c in &r.chains {
        for l in &c.lost_appliances {
            println!(
                "{}: archiver {} lost ({}); {} pack(s), {}, it wrote were kept",
                c.chain,
                l.appliance,
                l.why,
                l.packs_kept,
                size(l.bytes_kept)
            );
        }
        if let Some(a) = &c.appliance {
            println!("{}: transferred by archiver {a}", c.chain);
        }
    }
    if r.adopted_packs > 0 {
        println!(
            "adopted {} pack(s), {}, left in the target by a run that died",
            r.adopted_packs,
            size(r.adopted_bytes)
        );
    }
    let copied = r.points_copied();
    if copied == 0 && !r.has_failures() {
        let had: u64 = r.chains.iter().map(|c| c.already_copied).sum();
        println!(
            "nothing new to copy: all {had} selected restore point(s) are already in the target"
        );
    } else {
        println!(
            "{copied} restore point(s) copied to {} in {:.1} s",
            r.target, r.seconds
        );
    }
}
