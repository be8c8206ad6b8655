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
pub use report::{ChainReport, ChainStatus, CopyReport};
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
    for (name, candidates) in chains(chosen, opts.chain) {
        let meter = report::Meter::start(&repos, &target);
        let threshold = target.multipart_threshold as u64;
        let plan = plan_chain(
            &name, opts.chain, candidates, &srcs.list, &state, pack_size, threshold,
        )
        .await;
        let mut chain = ChainReport {
            chain: name,
            machines: plan.machines(),
            already_copied: plan.already_copied,
            blobs_present: plan.blobs_present,
            ..Default::default()
        };
        if plan.points.is_empty() {
            chain.status = ChainStatus::UpToDate;
        } else if opts.dry_run {
            chain.status = ChainStatus::Planned;
            chain.plan = Some(plan.projection.clone());
            chain.failed = plan
                .points
                .iter()
                .filter_map(|p| {
                    let f = p.failure.clone()?;
                    Some(report::FailedPoint::new(&p.point, p.id, f))
                })
                .collect();
            meter.finish(&target, &mut chain, &Default::default());
        } else {
            match copy_chain(&plan, &repos, &target, opts, progress, &mut state).await {
                Ok((outcome, done)) => {
                    chain.blobs_new = outcome.blobs_written;
                    chain.bytes_logical = done.bytes_logical;
                    chain.status = match (done.copied.is_empty(), done.failed.is_empty()) {
                        (_, true) => ChainStatus::Copied,
                        (true, false) => ChainStatus::Failed,
                        (false, false) => ChainStatus::Partial,
                    };
                    chain.copied = done.copied;
                    chain.failed = done.failed;
                    meter.finish(&target, &mut chain, &outcome.stages);
                }
                Err(e) => chain.fail(&e),
            }
        }
        report.chains.push(chain);
    }
    locks::release_all(read_locks).await;
    report.seconds = started.elapsed().as_secs_f64();
    progress.finish();
    Ok(report)
}

/// Transfers and commits one planned chain under the chain's lock in the target.
async fn copy_chain(
    plan: &ChainPlan,
    sources: &[Arc<Repository>],
    target: &Arc<Repository>,
    opts: &CopyOptions,
    progress: &Progress,
    state: &mut TargetState,
) -> Result<(TransferOutcome, Committed)> {
    let lock = locks::lock_chain(target, &plan.chain, opts.lock_wait).await?;
    let result = async {
        let outcome = transfer(plan, sources, target, &opts.transfer, progress).await?;
        let done = commit(plan, &outcome, target, state).await?;
        Ok((outcome, done))
    }
    .await;
    let released = lock.release().await;
    let out = result?;
    released?;
    Ok(out)
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
