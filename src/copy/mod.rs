//! `copy`: the backup copy engine. Reads chosen restore points from one or more source
//! repositories and writes them into a target repository as an independent chain under
//! the target's own key. This module only wires the stages, each a function with a typed
//! input and output, so a runner can plan and commit while an appliance transfers:
//!
//! ```text
//! select (which points) ─▶ plan (per chain: blobs the target lacks, coalesced reads)
//!    ─▶ transfer (read, verify, re-seal, pack, upload) ─▶ commit (index, then points)
//! ```
//! A killed copy leaves only whole packs, which the next run adopts.

pub mod commit;
pub mod failure;
mod locks;
pub mod options;
pub mod plan;
pub mod report;
pub mod select;
pub mod source;
pub mod target;
pub mod transfer;
mod transform;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::progress::Progress;
use crate::repo::Repository;
use crate::{Error, Result};

pub use commit::{Committed, commit};
pub use failure::Failure;
pub use options::{ChainMode, Compression, CopyOptions, TransferOptions};
pub use plan::{ChainPlan, balanced_pack_size, plan_chain};
pub use report::{ChainReport, ChainStatus, CopyReport, StageTimes};
pub use select::{Candidate, PointsSpec, Selection, Shard};
pub use source::Sources;
pub use target::TargetState;
pub use transfer::{TransferOutcome, transfer};

/// Runs a copy. Failures of single points or chains are in the report; an `Err` means
/// nothing could be copied at all (unreadable target, wrong selection).
pub async fn run(
    sources: Vec<Arc<Repository>>,
    target: Arc<Repository>,
    opts: &CopyOptions,
    progress: &Progress,
) -> Result<CopyReport> {
    let started = Instant::now();
    if sources.iter().any(|s| s.config.id == target.config.id) {
        return Err(Error::Invalid(
            "the target is one of the sources: a copy must go to another repository".into(),
        ));
    }
    let source_ids: HashSet<_> = sources.iter().map(|s| s.config.id).collect();
    let mut state = TargetState::load(&target, &source_ids, opts.map, opts.dry_run).await?;
    let mut srcs = Sources::open(sources, &opts.selection, opts.source_wait).await?;
    let chosen = opts.selection.apply(std::mem::take(&mut srcs.candidates))?;
    let mut report = CopyReport {
        target: target.url().to_string(),
        target_repository: target.config.id,
        dry_run: opts.dry_run,
        adopted_packs: state.adopted.0,
        adopted_bytes: state.adopted.1,
        ..Default::default()
    };
    for (machine, why) in &srcs.skipped {
        report
            .chains
            .push(ChainReport::skipped(machine.clone(), why.clone()));
    }

    let repos = srcs.repos();
    let read_locks = match opts.dry_run {
        true => Vec::new(),
        false => locks::lock_sources(&repos).await?,
    };
    let pack_size = opts.pack_size.unwrap_or(target.config.pack_size);
    let ctx = Ctx {
        sources: &srcs,
        repos: &repos,
        target: &target,
        opts,
        pack_size,
        progress,
    };
    for (name, candidates) in chains(chosen, opts.chain) {
        let meter = report::Meter::start(&repos, &target);
        let mut chain = ChainReport {
            chain: name.clone(),
            ..Default::default()
        };
        let stages = match copy_chain(&ctx, &name, candidates, &mut state, &mut chain).await {
            Ok(stages) => stages,
            Err(e) => {
                chain.fail(&e);
                Default::default()
            }
        };
        meter.finish(&target, &mut chain, &stages);
        report.chains.push(chain);
    }
    locks::release_all(read_locks).await;
    report.seconds = started.elapsed().as_secs_f64();
    progress.finish();
    Ok(report)
}

/// What every chain of one copy shares.
struct Ctx<'a> {
    sources: &'a Sources,
    repos: &'a [Arc<Repository>],
    target: &'a Arc<Repository>,
    opts: &'a CopyOptions,
    pack_size: u64,
    progress: &'a Progress,
}

/// Plans one chain and — unless this is a dry run — transfers and commits it under the
/// chain's lock in the target, planning from the target as it is once the lock is held.
async fn copy_chain(
    ctx: &Ctx<'_>,
    name: &str,
    candidates: Vec<Candidate>,
    state: &mut TargetState,
    chain: &mut ChainReport,
) -> Result<StageTimes> {
    // Copied points stay copied: a chain the target holds whole needs no lock.
    let held =
        |c: &Candidate| state.holds(ctx.sources.list[c.source].repo.config.id, c.id, &c.point);
    if candidates.iter().all(held) {
        chain.already_copied = candidates.len() as u64;
        chain.status = ChainStatus::UpToDate;
        return Ok(StageTimes::default());
    }
    let mut machines: Vec<String> = candidates.iter().map(|c| c.point.machine.clone()).collect();
    machines.sort();
    machines.dedup();
    chain.machines = machines;
    let lock = match ctx.opts.dry_run {
        true => None,
        false => Some(locks::lock_chain(ctx.target, name, ctx.opts.lock_wait).await?),
    };
    let result = async {
        if lock.is_some() {
            state.refresh(ctx.target).await?;
        }
        let threshold = ctx.target.multipart_threshold as u64;
        let (mode, srcs) = (ctx.opts.chain, &ctx.sources.list);
        let plan = plan_chain(
            name,
            mode,
            candidates,
            srcs,
            state,
            ctx.pack_size,
            threshold,
        )
        .await;
        chain.planned(&plan);
        if plan.points.is_empty() {
            chain.status = ChainStatus::UpToDate;
            return Ok(StageTimes::default());
        }
        if ctx.opts.dry_run {
            chain.dry_run(&plan);
            return Ok(StageTimes::default());
        }
        let (opts, progress) = (&ctx.opts.transfer, ctx.progress);
        let outcome = transfer(&plan, ctx.repos, ctx.target, opts, progress).await?;
        let done = commit(&plan, &outcome, ctx.target, state).await?;
        chain.record(outcome.blobs_written, done);
        Ok(outcome.stages)
    }
    .await;
    if let Some(lock) = lock {
        let released = lock.release().await;
        if result.is_ok() {
            released?;
        }
    }
    result
}

/// Groups chosen points into chains — one per machine, or one per source job — keeping
/// them oldest first within each.
fn chains(chosen: Vec<Candidate>, mode: ChainMode) -> BTreeMap<String, Vec<Candidate>> {
    let mut chains: BTreeMap<String, Vec<Candidate>> = BTreeMap::new();
    for c in chosen {
        let key = match mode {
            ChainMode::PerMachine => c.point.machine.clone(),
            ChainMode::PerJob => format!("job:{}", c.point.job.as_deref().unwrap_or("-")),
        };
        chains.entry(key).or_default().push(c);
    }
    chains
}
