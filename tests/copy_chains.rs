//! Chains of one copy side by side: shared blobs stored once, a tiny read budget,
//! targets read ahead by another copy, borrowers and failed lenders, a stopped copy
//! resumed, and a dry run's projection against what the copy then does.

use std::collections::HashSet;
use std::time::Duration;

use std::sync::Arc;

use offsite::copy::plan::supplement;
use offsite::copy::*;
use offsite::copy::{ChainMode, PointsSpec, Selection, commit_index, plan_chain};
use offsite::progress::Progress;
use offsite::repo::Repository;
use offsite::store::gated::{GatedStore, Op};
use offsite::testkit;
use tokio::sync::RwLock;

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
async fn index_entries(repo: &Repository) -> Vec<offsite::Id> {
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
    let copy = offsite::copy::run(vec![src.clone()], target.clone(), &opts, &hidden);
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
        transfer: offsite::copy::TransferOptions {
            budget: offsite::copy::ReadBudget::new(1),
            ..Default::default()
        },
        ..Default::default()
    };
    let hidden = Progress::hidden();
    let copy = offsite::copy::run(vec![src.clone()], target.clone(), &opts, &hidden);
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
    let warm = offsite::repo::Repository::open_warm(
        target.loc.clone(),
        testkit::PW,
        offsite::repo::WarmSpec::COPY_TARGET,
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
    let first = offsite::copy::run(vec![src.clone()], target.clone(), &opts, &hidden);
    assert_eq!(first.await.unwrap().points_copied(), 3);
    let second = offsite::copy::run(vec![src.clone()], Arc::new(warm), &opts, &hidden);
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
    // "a" is the only point of its chain: it needs all its plan reads, unlisted.
    assert!(a.points[0].needs_all && !a.reads.is_empty());
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
    let extra = supplement(&b, &srcs.list, &state.read().await.known).expect("blobs to fetch");
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
    let stop = offsite::stop::Stop::new();
    let opts = CopyOptions {
        selection: Selection {
            points: PointsSpec::All,
            ..Default::default()
        },
        tasks: 1,
        transfer: offsite::copy::TransferOptions {
            stop: stop.clone(),
            uploads_in_flight: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let hidden = Progress::hidden();
    let copy = offsite::copy::run(vec![src.clone()], target.clone(), &opts, &hidden);
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
            .any(|f| matches!(f.failure, offsite::copy::Failure::Interrupted { .. }))
            || matches!(c.failure, Some(offsite::copy::Failure::Interrupted { .. }))
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
    let report = offsite::copy::run(vec![src.clone()], target.clone(), &again, &hidden)
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
    let plan = offsite::copy::run(vec![src.clone()], target.clone(), &dry, &hidden)
        .await
        .unwrap();
    let plans = plan
        .chains
        .iter()
        .map(|c| c.plan.clone().unwrap_or_default());
    let (p_read, p_puts) = plans.fold((0, 0), |(r, p), x| {
        (r + x.bytes_to_read, p + x.put_requests)
    });
    let real = offsite::copy::run(vec![src], target, &opts, &hidden)
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
