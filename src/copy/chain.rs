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
use super::offload::{KeepPacks, Offload, OffloadRequest};
use super::plan::{plan_chain, supplement};
use super::report::{ChainReport, ChainStatus, Meter, StageTimes};
use super::select::Candidate;
use super::source::{Source, Sources};
use super::target::TargetState;
use super::transfer::transfer;
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
    let (opts, progress) = (&ctx.opts.transfer, ctx.progress);
    let (plan, outcome) = match (&ctx.opts.via, ctx.opts.dry_run) {
        // An archiver plans against the target and transfers; this process never reads
        // a source pack. It claims nothing, so no chain waits on it.
        (Some(elsewhere), false) => {
            match offload(ctx, view, name, &candidates, &**elsewhere, chain).await? {
                Some(done) => done,
                None => {
                    let plan = plan_here(ctx, view, name, candidates).await;
                    let outcome = transfer(&plan, &view.repos, target, opts, progress).await?;
                    (plan, outcome)
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
            let outcome = transfer(&plan, &view.repos, target, opts, progress).await?;
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
        let more = transfer(&extra, &view.repos, target, opts, progress).await?;
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
) -> Result<Option<(super::ChainPlan, TransferOutcome)>> {
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;
    use crate::copy::{ChainMode, PointsSpec, Selection, commit_index, plan_chain};
    use crate::store::gated::{GatedStore, Op};
    use crate::testkit;

    /// Three machines sharing a large file, backed up into one source.
    async fn sharing_source() -> (Arc<Repository>, tempfile::TempDir) {
        let src = testkit::repo(testkit::memory(), 16 << 20).await;
        let dir = tempfile::tempdir().unwrap();
        for m in ["a", "b", "c"] {
            // Same seed: the same 3 MiB file on every machine.
            testkit::backup_machine(&src, dir.path(), m, 7).await;
        }
        (src, dir)
    }

    /// Every blob entry of every index file of `repo`, duplicates included.
    async fn index_entries(repo: &Repository) -> Vec<crate::Id> {
        let names = repo.index_names().await.unwrap();
        let files = repo.load_index_files(names).await.unwrap();
        files
            .iter()
            .flat_map(|(_, f)| &f.packs)
            .flat_map(|p| p.entries.iter().map(|e| e.id))
            .collect()
    }

    /// Chains copied side by side store a blob they share once, and every point arrives
    /// whole. The target holds every pack upload until three chains are uploading at
    /// once, so the test fails (times out) unless the chains really overlap.
    #[tokio::test]
    async fn chains_side_by_side_store_shared_blobs_once() {
        let (src, _files) = sharing_source().await;
        let gated = GatedStore::new(testkit::memory());
        let target = testkit::repo(Arc::new(gated.clone()), 1 << 20).await;
        let gate = gated.gate(Op::Put, "data/");
        let opts = CopyOptions {
            selection: Selection {
                points: PointsSpec::All,
                ..Default::default()
            },
            tasks: 3,
            ..Default::default()
        };
        let hidden = Progress::hidden();
        let copy = crate::copy::run(vec![src.clone()], target.clone(), &opts, &hidden);
        let overlap = async {
            gate.wait_for(3).await;
            gate.open();
        };
        let (report, ()) = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(copy, overlap)
        })
        .await
        .expect("three chains upload at once");
        let report = report.unwrap();
        assert_eq!(report.points_copied(), 3, "{report:?}");
        assert!(!report.has_failures(), "{report:?}");

        let entries = index_entries(&target).await;
        let unique: HashSet<_> = entries.iter().collect();
        assert_eq!(entries.len(), unique.len(), "a blob was stored twice");
        let written: u64 = report.chains.iter().map(|c| c.blobs_new).sum();
        assert_eq!(written as usize, unique.len());
        // Each chain counted its own requests: together, what the target saw.
        let puts: u64 = report.chains.iter().map(|c| c.requests_target.put).sum();
        assert!(puts > 0 && puts <= target.loc.requests.snapshot().put);
        let check = testkit::check_read_data(&target).await;
        assert!(check.is_ok(), "{:?}", check.errors);
        assert_eq!(check.points, 3);
    }

    /// Chains share one read budget: with a budget smaller than any read (each read
    /// then takes all of it), three chains side by side still finish — one read at a
    /// time across the copy — and the target checks clean.
    #[tokio::test]
    async fn chains_sharing_a_tiny_read_budget_finish() {
        let (src, _files) = sharing_source().await;
        let target = testkit::repo(testkit::memory(), 1 << 20).await;
        let opts = CopyOptions {
            selection: Selection {
                points: PointsSpec::All,
                ..Default::default()
            },
            tasks: 3,
            transfer: crate::copy::TransferOptions {
                budget: crate::copy::ReadBudget::new(1),
                ..Default::default()
            },
            ..Default::default()
        };
        let hidden = Progress::hidden();
        let copy = crate::copy::run(vec![src.clone()], target.clone(), &opts, &hidden);
        let report = tokio::time::timeout(Duration::from_secs(30), copy)
            .await
            .expect("chains sharing a budget do not wait on each other in a circle")
            .unwrap();
        assert_eq!(report.points_copied(), 3, "{report:?}");
        let check = testkit::check_read_data(&target).await;
        assert!(check.is_ok(), "{:?}", check.errors);
    }

    /// A target opened warm holds what it read before the key was derived; a copy that
    /// committed meanwhile is seen under the chain locks all the same, so no point is
    /// written twice and the warm copy reports them copied already.
    #[tokio::test]
    async fn a_target_read_ahead_before_another_copy_copies_nothing_twice() {
        let (src, _files) = sharing_source().await;
        let target = testkit::repo(testkit::memory(), 1 << 20).await;
        let warm = crate::repo::Repository::open_warm(
            target.loc.clone(),
            testkit::PW,
            crate::repo::WarmSpec::COPY_TARGET,
        )
        .await
        .unwrap();
        let opts = CopyOptions {
            selection: Selection {
                points: PointsSpec::All,
                ..Default::default()
            },
            ..Default::default()
        };
        let hidden = Progress::hidden();
        let first = crate::copy::run(vec![src.clone()], target.clone(), &opts, &hidden);
        assert_eq!(first.await.unwrap().points_copied(), 3);
        let second = crate::copy::run(vec![src.clone()], Arc::new(warm), &opts, &hidden);
        let report = second.await.unwrap();
        assert_eq!(report.points_copied(), 0, "{report:?}");
        assert!(!report.has_failures(), "{report:?}");
        assert_eq!(target.load_points().await.unwrap().len(), 3);
    }

    /// A chain that borrowed blobs from a chain that then failed fetches them itself
    /// before it commits: its point is whole.
    #[tokio::test]
    async fn a_borrower_fetches_what_a_failed_lender_did_not_bring() {
        let (src, _files) = sharing_source().await;
        let target = testkit::repo(testkit::memory(), 1 << 20).await;
        let all = Selection {
            points: PointsSpec::All,
            ..Default::default()
        };
        let mut srcs = Sources::open(vec![src.clone()], &all, Duration::ZERO)
            .await
            .unwrap();
        let state = TargetState::default();
        let mut cands = std::mem::take(&mut srcs.candidates);
        cands.retain(|c| c.point.machine != "c");
        let of = |m: &str| {
            cands
                .iter()
                .filter(|c| c.point.machine == m)
                .cloned()
                .collect()
        };
        let lender = state.claims.begin("a");
        let _borrower = state.claims.begin("b");
        let t = target.multipart_threshold as u64;
        let mode = ChainMode::PerMachine;
        let a = plan_chain("a", mode, of("a"), &srcs.list, &state, 1 << 20, t).await;
        let b = plan_chain("b", mode, of("b"), &srcs.list, &state, 1 << 20, t).await;
        assert!(!a.points[0].needs.is_empty());
        assert!(
            !b.points[0].borrowed.is_empty(),
            "b borrows the shared file"
        );
        // "a" fails before it writes anything.
        state.claims.release("a");
        drop(lender);

        let claims = state.claims.clone();
        let state = RwLock::new(state);
        let out = testkit::transfer(&b, &srcs, &target).await.unwrap();
        commit_index(&out, &target, &state).await.unwrap();
        claims.wait_for_lenders("b").await;
        let known = state.read().await.known.clone();
        let extra = supplement(&b, &srcs.list, &known).expect("blobs to fetch");
        let more = testkit::transfer(&extra, &srcs, &target).await.unwrap();
        assert_eq!(more.blobs_written as usize, b.points[0].borrowed.len());
        commit_index(&more, &target, &state).await.unwrap();
        assert!(supplement(&b, &srcs.list, &state.read().await.known).is_none());
        let failures = point_failures(&b, &[&out, &more]);
        let done = commit_points(&b, failures, &target, &state).await.unwrap();
        assert_eq!(done.copied.len(), 1);
        let check = testkit::check_read_data(&target).await;
        assert!(check.is_ok(), "{:?}", check.errors);
    }

    /// A copy asked to stop mid-transfer finishes the pack it is filling and stops:
    /// the packs written are whole and indexed, no point is committed half, the chains
    /// not started say why, and the next copy brings only the rest.
    #[tokio::test]
    async fn a_stopped_copy_keeps_whole_packs_and_the_next_brings_the_rest() {
        let src = testkit::repo(testkit::memory(), 16 << 20).await;
        let files = tempfile::tempdir().unwrap();
        // More packs per machine than uploads in flight.
        for (seed, m) in ["web", "db"].iter().enumerate() {
            testkit::backup_machine_sized(&src, files.path(), m, seed as u64, 12 << 20).await;
        }
        let gated = GatedStore::new(testkit::memory());
        let target = testkit::repo(Arc::new(gated.clone()), 1 << 20).await;
        let gate = gated.gate(Op::Put, "data/");
        let stop = crate::stop::Stop::new();
        let opts = CopyOptions {
            selection: Selection {
                points: PointsSpec::All,
                ..Default::default()
            },
            tasks: 1,
            transfer: crate::copy::TransferOptions {
                stop: stop.clone(),
                uploads_in_flight: 1,
                ..Default::default()
            },
            ..Default::default()
        };
        let hidden = Progress::hidden();
        let copy = crate::copy::run(vec![src.clone()], target.clone(), &opts, &hidden);
        let stopper = async {
            gate.wait_for(1).await;
            stop.stop();
            gate.open();
        };
        let (report, ()) = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(copy, stopper)
        })
        .await
        .expect("a stopped copy returns");
        let report = report.unwrap();
        assert_eq!(report.points_copied(), 0, "{report:?}");
        let interrupted = |c: &ChainReport| {
            c.failed
                .iter()
                .any(|f| f.reason.contains("stopped before the point was whole"))
                || matches!(c.failure, Some(crate::copy::Failure::Interrupted { .. }))
        };
        assert!(report.chains.iter().all(interrupted), "{report:?}");
        let first: u64 = report.chains.iter().map(|c| c.blobs_new).sum();
        assert!(first > 0, "the pack in flight was finished: {report:?}");
        // Whole packs, all indexed; no point yet.
        let check = testkit::check_read_data(&target).await;
        assert!(check.is_ok(), "{:?}", check.errors);
        assert_eq!(check.points, 0);

        let again = CopyOptions {
            transfer: Default::default(),
            ..opts.clone()
        };
        let report = crate::copy::run(vec![src.clone()], target.clone(), &again, &hidden)
            .await
            .unwrap();
        assert_eq!(report.points_copied(), 2, "{report:?}");
        let second: u64 = report.chains.iter().map(|c| c.blobs_new).sum();
        let entries = index_entries(&target).await;
        assert_eq!(
            (first + second) as usize,
            entries.len(),
            "nothing brought twice"
        );
        let check = testkit::check_read_data(&target).await;
        assert!(check.is_ok(), "{:?}", check.errors);
        assert_eq!(check.points, 2);
    }

    /// A dry run projects what the copy then does, within 5 %: bytes read from the
    /// sources and PUTs, on seven machines sharing most of their data, copied four at a
    /// time (so later chains find what earlier ones brought).
    #[tokio::test]
    async fn a_dry_run_projects_what_the_copy_then_does() {
        let src = testkit::repo(testkit::memory(), 16 << 20).await;
        let dir = tempfile::tempdir().unwrap();
        for m in ["a", "b", "c", "d", "e", "f", "g"] {
            testkit::backup_machine(&src, dir.path(), m, 7).await;
        }
        let target = testkit::repo(testkit::memory(), 1 << 20).await;
        let opts = CopyOptions {
            selection: Selection {
                points: PointsSpec::All,
                ..Default::default()
            },
            ..Default::default()
        };
        let dry = CopyOptions {
            dry_run: true,
            ..opts.clone()
        };
        let hidden = Progress::hidden();
        let plan = crate::copy::run(vec![src.clone()], target.clone(), &dry, &hidden)
            .await
            .unwrap();
        let plans = plan
            .chains
            .iter()
            .map(|c| c.plan.clone().unwrap_or_default());
        let (p_read, p_puts) = plans.fold((0, 0), |(r, p), x| {
            (r + x.bytes_to_read, p + x.put_requests)
        });
        let real = crate::copy::run(vec![src], target, &opts, &hidden)
            .await
            .unwrap();
        assert_eq!(real.points_copied(), 7);
        let read: u64 = real.chains.iter().map(|c| c.bytes_read).sum();
        let puts: u64 = real.chains.iter().map(|c| c.requests_target.put).sum();
        let near = |a: u64, b: u64| a.abs_diff(b) * 20 <= a.max(b);
        assert!(
            near(p_read, read),
            "projected {p_read} bytes to read, read {read}"
        );
        assert!(near(p_puts, puts), "projected {p_puts} PUTs, made {puts}");
    }
}
