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

mod chain;
mod claims;
pub mod commit;
pub mod failure;
mod locks;
pub mod offload;
pub mod options;
pub mod plan;
pub mod report;
pub mod select;
pub mod settings;
pub mod source;
pub mod target;
pub mod transfer;
mod transform;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::RwLock;

use crate::progress::Progress;
use crate::repo::Repository;
use crate::{Error, Result};

pub use commit::{Committed, commit, commit_index, commit_points, point_failures};
pub use failure::Failure;
pub use options::{CopyOptions, target_init_options};
pub use plan::{ChainPlan, balanced_pack_size, plan_chain};
pub use report::{ChainReport, ChainStatus, CopyReport, Plan, StageTimes};
pub use select::{Candidate, PointsSpec, Selection, Shard};
pub use settings::{ChainMode, Compression, ReadBudget, TransferOptions};
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
    let source_ids: HashSet<_> = sources
        .iter()
        .map(|s| s.config.id)
        .chain(opts.sibling_sources.iter().copied())
        .collect();
    // The target and the sources are read, and the sources locked, side by side: each
    // is round trips of its own.
    let read_locks = async {
        match opts.dry_run {
            true => Ok(Vec::new()),
            false => locks::lock_sources(&sources).await,
        }
    };
    let (loaded, read_locks) = tokio::join!(
        async {
            tokio::try_join!(
                TargetState::load(&target, &source_ids, opts.map, opts.dry_run),
                Sources::open(sources.clone(), &opts.selection, opts.source_wait)
            )
        },
        read_locks
    );
    let read_locks = read_locks?;
    let chosen = loaded.and_then(|(state, mut srcs)| {
        let chosen = opts.selection.apply(std::mem::take(&mut srcs.candidates))?;
        Ok((state, srcs, chosen))
    });
    let (mut state, srcs, chosen) = match chosen {
        Ok(c) => c,
        Err(e) => {
            locks::release_all(read_locks).await;
            return Err(e);
        }
    };
    let chains = chains(chosen, opts.chain);
    if opts.tasks <= 1 || chains.len() <= 1 {
        state.claims = std::sync::Arc::new(claims::Claims::solitary());
    }
    // On a locking target, the index files there before the run: packs only in later
    // ones were written (locked) during it — except those a dead writer left, adopted
    // while loading.
    let before = target
        .config
        .storage
        .lock
        .is_some()
        .then(|| (state.seen_indexes().clone(), state.adopted_packs.clone()));
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

    let state = RwLock::new(state);
    let our_locks = locks::OurLocks::default();
    let ctx = chain::Ctx {
        sources: &srcs,
        target: &target,
        state: &state,
        opts,
        pack_size: opts.pack_size.unwrap_or(target.config.pack_size),
        progress,
        our_locks: &our_locks,
    };
    // Chains side by side, up to `tasks` at once; reports in chain order.
    let mut done: Vec<(usize, ChainReport)> = futures::stream::iter(chains.into_iter().enumerate())
        .map(|(n, (name, candidates))| {
            let ctx = &ctx;
            async move {
                ctx.progress.task_started();
                let report = chain::run_chain(ctx, name, candidates).await;
                ctx.progress.task_finished();
                (n, report)
            }
        })
        .buffer_unordered(opts.tasks.max(1))
        .collect()
        .await;
    done.sort_by_key(|(n, _)| *n);
    report.chains.extend(done.into_iter().map(|(_, c)| c));
    if let Some(before) = before.filter(|_| !opts.dry_run) {
        match hold_copied(&target, &report, &before).await {
            Ok(h) => report.locks = h,
            Err(e) => report.lock_error = Some(e.to_string()),
        }
    }
    locks::release_all(read_locks).await;
    report.seconds = started.elapsed().as_secs_f64();
    progress.finish();
    Ok(report)
}

/// Groups chosen points into chains — one per machine, or one per source job — keeping
/// them oldest first within each.
/// On a locking target, the packs the points just copied reuse are locked as long as
/// those points are (new packs and the points were locked with their writes).
async fn hold_copied(
    target: &Repository,
    report: &CopyReport,
    (indexes_before, adopted): &(HashSet<String>, HashSet<crate::Id>),
) -> Result<Option<crate::immutability::Hold>> {
    let ids: Vec<crate::Id> = report
        .chains
        .iter()
        .flat_map(|c| c.copied.iter().filter_map(|p| p.target_point))
        .collect();
    let Some((_, until)) = target.new_lock()? else {
        return Ok(None);
    };
    if ids.is_empty() {
        return Ok(None);
    }
    let (points, index) = tokio::try_join!(target.load_points_by_id(ids), target.load_index())?;
    let points: Vec<_> = points.into_iter().map(|(id, p)| (id, p, until)).collect();
    // Packs listed only by index files written since the run began were locked with
    // their write (by this run or another writer's, under the same policy), as were the
    // points: only the older packs the points reuse are looked at.
    let fresh = crate::immutability::Fresh {
        packs: index
            .packs()
            .iter()
            .filter(|p| p.index_files.iter().all(|f| !indexes_before.contains(f)))
            .filter(|p| !adopted.contains(&p.id))
            .map(|p| p.id)
            .collect(),
        points: true,
    };
    crate::immutability::hold_except(target, &index, &points, &fresh)
        .await
        .map(Some)
}

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
