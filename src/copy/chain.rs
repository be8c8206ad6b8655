//! One chain of a copy from start to end, as [`super::run`] drives several side by side
//! (`--tasks`): the chain's lock in the target, a refresh, the plan (claiming the blobs it
//! brings, borrowing those another chain brings), the transfer, the index; then a wait
//! for its lenders' indexes, a fetch of whatever they failed to bring, and the points.
//!
//! The target's state is shared behind a read-write lock: planners read it side by side,
//! a refresh or a commit changes it alone. Nothing waits on another chain while holding
//! it, so chains never wait on each other in a circle.

use std::sync::Arc;

use tokio::sync::RwLock;

use super::claims::Indexing;
use super::commit::{commit_index, commit_points, point_failures};
use super::locks;
use super::offload::{KeepPacks, Offload, OffloadRequest, Offloaded};
use super::plan::{plan_chain, supplement};
use super::report::{ChainReport, ChainStatus, Meter, StageTimes};
use super::select::Candidate;
use super::source::{Source, Sources};
use super::target::TargetState;
use super::transfer::{KEEP_BLOBS, transfer_keeping};
use super::{CopyOptions, TransferOutcome};
use crate::Result;
use crate::progress::Progress;
use crate::repo::Repository;

/// What every chain of one copy shares.
pub(super) struct Ctx<'a> {
    pub sources: &'a Sources,
    pub target: &'a Arc<Repository>,
    pub state: &'a RwLock<TargetState>,
    pub opts: &'a CopyOptions,
    pub pack_size: u64,
    pub progress: &'a Progress,
    pub our_locks: &'a locks::OurLocks,
}

/// One chain's own view of the repositories: the same stores, with request counters of
/// its own, so its report counts its requests and not its neighbours'.
pub(super) struct View {
    pub sources: Vec<Source>,
    pub repos: Vec<Arc<Repository>>,
    pub target: Arc<Repository>,
}

/// Copies one chain and reports what became of it; a failure is in the report.
pub(super) async fn run_chain(ctx: &Ctx<'_>, name: String, cands: Vec<Candidate>) -> ChainReport {
    let sources = ctx.sources.metered_view();
    let view = View {
        repos: sources.iter().map(|s| s.repo.clone()).collect(),
        sources,
        target: Arc::new(ctx.target.metered_view()),
    };
    let meter = Meter::start(&view.repos, &view.target);
    let mut chain = ChainReport {
        chain: name.clone(),
        ..Default::default()
    };
    let claims = ctx.state.read().await.claims.clone();
    let indexing = claims.begin(&name);
    let stages = match copy_chain(ctx, &view, &name, cands, indexing, &mut chain).await {
        Ok(stages) => stages,
        Err(e) => {
            chain.fail(&e);
            Default::default()
        }
    };
    // A dry run brings nothing: its claims stand for the whole run, so a chain planned
    // later borrows what an earlier one would have brought, as the real run finds it
    // in the target by then (else the projection counts shared data once per chain).
    if !ctx.opts.dry_run {
        claims.release(&name);
    }
    meter.finish(&view.target, &mut chain, &stages);
    chain
}

/// Plans the chain and — unless this is a dry run — transfers and commits it under the
/// chain's lock in the target, planning from the target as it is once the lock is held.
async fn copy_chain(
    ctx: &Ctx<'_>,
    view: &View,
    name: &str,
    candidates: Vec<Candidate>,
    indexing: Indexing,
    chain: &mut ChainReport,
) -> Result<StageTimes> {
    // Copied points stay copied: a chain the target holds whole needs no lock.
    let held = {
        let state = ctx.state.read().await;
        let id = |c: &Candidate| view.sources[c.source].repo.config.id;
        candidates
            .iter()
            .all(|c| state.holds(id(c), c.id, &c.point))
    };
    if held {
        chain.already_copied = candidates.len() as u64;
        chain.status = ChainStatus::UpToDate;
        return Ok(StageTimes::default());
    }
    let mut machines: Vec<String> = candidates.iter().map(|c| c.point.machine.clone()).collect();
    machines.sort();
    machines.dedup();
    chain.machines = machines;
    if ctx.opts.transfer.stop.is_stopped() {
        chain.status = ChainStatus::Failed;
        chain.failure = Some(super::Failure::Interrupted {
            what: format!("{name}: the copy was asked to stop before this chain started"),
        });
        return Ok(StageTimes::default());
    }
    // What other writers committed before the lock was taken is read side by side
    // with the lock's look at the others, once it is stored.
    let lock = match ctx.opts.dry_run {
        true => None,
        false => {
            let news = || TargetState::shared_news(ctx.state, &view.target, true);
            let (lock, news) =
                locks::lock_chain(&view.target, name, ctx.opts.lock_wait, ctx.our_locks, news)
                    .await?;
            ctx.state.write().await.apply(news);
            Some(lock)
        }
    };
    let result = transfer_and_commit(ctx, view, name, candidates, indexing, chain).await;
    match lock {
        Some(lock) => lock.release_after(result).await,
        None => result,
    }
}

async fn transfer_and_commit(
    ctx: &Ctx<'_>,
    view: &View,
    name: &str,
    candidates: Vec<Candidate>,
    indexing: Indexing,
    chain: &mut ChainReport,
) -> Result<StageTimes> {
    let target = &view.target;
    let (plan, outcome) = match (&ctx.opts.via, ctx.opts.dry_run) {
        // An archiver plans against the target and transfers; this process never reads
        // a source pack. It claims nothing, so no chain waits on it.
        (Some(elsewhere), false) => {
            match offload(ctx, view, name, &candidates, &**elsewhere, chain).await? {
                Offloaded::Done(done) => *done,
                Offloaded::Here => {
                    let plan = plan_here(ctx, view, name, candidates).await;
                    let outcome = transfer_here(ctx, view, &plan).await?;
                    (plan, outcome)
                }
                Offloaded::Stopped(what) => {
                    chain.status = ChainStatus::Failed;
                    chain.failure = Some(super::Failure::Interrupted { what });
                    return Ok(StageTimes::default());
                }
            }
        }
        // A dry run plans here, with or without archivers.
        _ => {
            let plan = plan_here(ctx, view, name, candidates).await;
            if plan.points.is_empty() || ctx.opts.dry_run {
                chain.planned(&plan);
                match plan.points.is_empty() {
                    true => chain.status = ChainStatus::UpToDate,
                    false => chain.dry_run(&plan),
                }
                return Ok(StageTimes::default());
            }
            let outcome = transfer_here(ctx, view, &plan).await?;
            (plan, outcome)
        }
    };
    chain.planned(&plan);
    if plan.points.is_empty() {
        chain.status = ChainStatus::UpToDate;
        return Ok(StageTimes::default());
    }
    let claims = index(ctx, target, &outcome).await?;
    claims.release(name);
    drop(indexing);

    // Blobs borrowed from chains running beside this one: wait until they are indexed,
    // then fetch what a lender failed to bring.
    claims.wait_for_lenders(name).await;
    let mut outcomes = vec![outcome];
    let missing = supplement(&plan, &view.sources, &ctx.state.read().await.known);
    if let Some(extra) = missing {
        let n: usize = extra.points.iter().map(|p| p.needs.len()).sum();
        tracing::info!(
            "{name}: {n} blob(s) another chain was to bring did not arrive; copying them"
        );
        let more = transfer_here(ctx, view, &extra).await?;
        index(ctx, target, &more).await?;
        outcomes.push(more);
    }
    let all: Vec<&TransferOutcome> = outcomes.iter().collect();
    let failures = point_failures(&plan, &all);
    let done = commit_points(&plan, failures, target, ctx.state).await?;
    chain.record(outcomes.iter().map(|o| o.blobs_written).sum(), done);
    let mut stages = StageTimes::default();
    for o in &outcomes {
        stages.source_read += o.stages.source_read;
        stages.processing += o.stages.processing;
        stages.target_write += o.stages.target_write;
    }
    Ok(stages)
}

/// Hands the chain's transfer to `elsewhere` (the archiver pool); `None`: transfer it
/// here. Packs of lost attempts are indexed as they are given back.
async fn offload(
    ctx: &Ctx<'_>,
    view: &View,
    name: &str,
    candidates: &[Candidate],
    elsewhere: &dyn Offload,
    chain: &mut ChainReport,
) -> Result<Offloaded> {
    // The sources this chain reads, in the order the request names them.
    let mut used: Vec<usize> = candidates.iter().map(|c| c.source).collect();
    used.sort_unstable();
    used.dedup();
    let position = |s: usize| used.iter().position(|u| *u == s).unwrap_or(0);
    let req = OffloadRequest {
        chain: name.to_string(),
        mode: ctx.opts.chain,
        source_ids: (used.iter())
            .map(|s| view.sources[*s].repo.config.id)
            .collect(),
        target_id: view.target.config.id,
        points: (candidates.iter())
            .map(|c| (position(c.source), c.id))
            .collect(),
        pack_size: ctx.pack_size,
        compression: ctx.opts.transfer.compression,
        map: ctx.opts.map,
        reads_in_flight: ctx.opts.transfer.reads_in_flight,
        uploads_in_flight: ctx.opts.transfer.uploads_in_flight,
        stop: ctx.opts.transfer.stop.clone(),
    };
    let keeper = Keeper {
        ctx,
        target: &view.target,
    };
    (elsewhere.transfer(&req, &keeper, chain, ctx.progress)).await
}

/// Indexes the packs an offloaded transfer wrote before it was lost.
struct Keeper<'c, 'a> {
    ctx: &'c Ctx<'a>,
    target: &'c Repository,
}

#[async_trait::async_trait]
impl KeepPacks for Keeper<'_, '_> {
    async fn keep(&self, packs: Vec<crate::format::index::IndexedPack>) -> Result<()> {
        let kept = TransferOutcome {
            packs,
            ..Default::default()
        };
        commit_index(&kept, self.target, self.ctx.state).await
    }
}

/// Transfers `plan` in this process, handing its packs to the index as they land.
async fn transfer_here(
    ctx: &Ctx<'_>,
    view: &View,
    plan: &super::ChainPlan,
) -> Result<TransferOutcome> {
    let target = &view.target;
    let keep = Keeper { ctx, target };
    let (opts, progress) = (&ctx.opts.transfer, ctx.progress);
    let keep = Some((&keep as &dyn KeepPacks, KEEP_BLOBS));
    transfer_keeping(plan, &view.repos, target, opts, progress, keep).await
}

/// Plans the chain in this process, against the target as the shared state has it.
async fn plan_here(
    ctx: &Ctx<'_>,
    view: &View,
    name: &str,
    candidates: Vec<Candidate>,
) -> super::ChainPlan {
    let state = ctx.state.read().await;
    let threshold = view.target.multipart_threshold as u64;
    let (mode, srcs) = (ctx.opts.chain, &view.sources);
    plan_chain(
        name,
        mode,
        candidates,
        srcs,
        &state,
        ctx.pack_size,
        threshold,
    )
    .await
}

/// Indexes a transfer's packs (side by side with other chains' I/O); returns the run's
/// claims.
async fn index(
    ctx: &Ctx<'_>,
    target: &Repository,
    outcome: &TransferOutcome,
) -> Result<Arc<super::claims::Claims>> {
    commit_index(outcome, target, ctx.state).await?;
    Ok(ctx.state.read().await.claims.clone())
}
