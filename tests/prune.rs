//! Prune over whole histories: what forgotten points used is freed and the rest kept, a
//! damaged repository stops it before any change, and — a property test — any history
//! of backups, copies, forgets and prunes, killed at any write, leaves every point
//! restorable bit for bit.

use std::path::Path;

use std::sync::Arc;

use std::time::Duration;

use offsite::backup::{self, BackupOptions};
use offsite::clock::ManualClock;
use offsite::format::DATA;
use offsite::progress::Progress;
use offsite::prune::*;
use offsite::repo::Repository;
use offsite::retention::{ForgetOptions, Policy, forget};
use offsite::store::{Location, StoreKind};
use offsite::testkit;

/// Files by path, with their bytes; and per machine, the files its point holds.
type Files = Vec<(String, Vec<u8>)>;
type Expected = Vec<(String, Files)>;

/// Every file under `dir`, by path relative to it, with its bytes.
fn files(dir: &Path) -> Files {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Writes machine `m`'s files for `day` (files 0 to 2 change every day), backs them
/// up, and keeps a copy of them as that point's expected content.
async fn backup_day(repo: &Arc<Repository>, dir: &Path, m: &str, day: u64) {
    let root = dir.join("live").join(m);
    std::fs::create_dir_all(&root).unwrap();
    for f in 0..8u64 {
        let seed = if f < 3 { 1000 * day + f } else { f } + 17 * m.len() as u64;
        std::fs::write(root.join(format!("f{f}")), testkit::bytes(seed, 30_000)).unwrap();
    }
    let opts = BackupOptions {
        machine: m.to_string(),
        paths: vec![root.clone()],
        base: Some(dir.join("live")),
        ..Default::default()
    };
    backup::run(repo.clone(), opts, Progress::hidden())
        .await
        .unwrap();
}

/// Two days of three machines in 96 KiB packs, the first day forgotten: prune has
/// packs to delete and to rewrite. Returns the files each remaining point must hold.
async fn forgotten_history(
    repo: &Arc<Repository>,
    dir: &Path,
) -> Vec<(String, Vec<(String, Vec<u8>)>)> {
    let mut expected = Vec::new();
    for day in 1..=2 {
        for m in ["web", "db", "mail"] {
            backup_day(repo, dir, m, day).await;
            if day == 2 {
                expected.push((m.to_string(), files(&dir.join("live").join(m))));
            }
        }
    }
    let opts = ForgetOptions {
        policy: Policy {
            keep: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let report = forget(repo, &opts, &chrono::Utc).await.unwrap();
    assert_eq!(report.forgotten(), 3);
    expected
}

/// Each machine's (only) point restores to exactly `expected`.
async fn assert_restores(repo: &Repository, expected: &Expected) {
    let points = repo.load_points().await.unwrap();
    assert_eq!(points.len(), expected.len());
    for (m, want) in expected {
        let (id, p) = points.iter().find(|(_, p)| &p.machine == m).unwrap();
        let to = tempfile::tempdir().unwrap();
        offsite::restore::run(repo, id, p, to.path(), &Progress::hidden())
            .await
            .unwrap();
        assert_eq!(&files(&to.path().join(m)), want, "{m} restores bit for bit");
    }
}

fn now_pruning() -> PruneOptions {
    PruneOptions {
        grace: Duration::ZERO,
        ..Default::default()
    }
}

/// After forget, prune deletes the packs only forgotten points used, rewrites those
/// mostly dead, and every remaining point still restores bit for bit; a second prune
/// finds nothing to do.
#[tokio::test]
async fn prune_frees_what_forgotten_points_used_and_keeps_the_rest() {
    let repo = testkit::repo(testkit::memory(), 96 << 10).await;
    let dir = tempfile::tempdir().unwrap();
    let expected = forgotten_history(&repo, dir.path()).await;
    let dry = PruneOptions {
        dry_run: true,
        ..now_pruning()
    };
    let plan = prune(&repo, &dry, &Progress::hidden()).await.unwrap();
    assert!(plan.bytes_freed > 0, "{plan:?}");
    assert_eq!(
        plan.packs_before,
        repo.list(DATA).await.unwrap().len(),
        "a dry run deletes nothing"
    );

    let r = prune(&repo, &now_pruning(), &Progress::hidden())
        .await
        .unwrap();
    assert_eq!(r.packs_deleted, plan.packs_deleted, "{r:?}");
    assert!(r.packs_deleted > 0 && r.packs_rewritten > 0, "{r:?}");
    assert!(r.blobs_moved > 0 && r.packs_written > 0, "{r:?}");
    assert!(r.bytes_after < r.bytes_before, "{r:?}");
    let stored: u64 = repo.list(DATA).await.unwrap().iter().map(|m| m.size).sum();
    assert_eq!(stored, r.bytes_after);
    let check = testkit::check_read_data(&repo).await;
    assert!(check.is_ok(), "{:?}", check.errors);
    assert_restores(&repo, &expected).await;

    let again = prune(&repo, &now_pruning(), &Progress::hidden())
        .await
        .unwrap();
    assert_eq!(again.bytes_freed, 0, "{again:?}");
    assert_eq!(again.packs_rewritten, 0, "{again:?}");
}

/// A point that needs a blob no index has stops prune before it changes anything.
#[tokio::test]
async fn a_damaged_repository_stops_prune_before_it_changes_anything() {
    let repo = testkit::repo(testkit::memory(), 96 << 10).await;
    let dir = tempfile::tempdir().unwrap();
    forgotten_history(&repo, dir.path()).await;
    for name in repo.index_names().await.unwrap() {
        repo.delete(&name).await.unwrap();
    }
    let before = repo.list(DATA).await.unwrap().len();
    let e = prune(&repo, &now_pruning(), &Progress::hidden())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("prune changed nothing"), "{e}");
    assert_eq!(repo.list(DATA).await.unwrap().len(), before);
}

/// Prune killed after each of its writes in turn: whatever it left, the repository
/// checks clean and every point restores bit for bit, and a prune run again then
/// finishes the work.
#[tokio::test]
async fn a_prune_killed_at_any_moment_loses_nothing() {
    let mut cut = 0;
    loop {
        let (flaky, under, repo) = testkit::flaky(96 << 10, 1 << 30).await;
        let repo = Arc::new(repo);
        let dir = tempfile::tempdir().unwrap();
        let expected = forgotten_history(&repo, dir.path()).await;
        flaky.crash_after_writes(cut);
        let finished = prune(&repo, &now_pruning(), &Progress::hidden())
            .await
            .is_ok();

        // The next process, an hour later on the store's clock (the dead prune's lock is
        // stale by then).
        let later = Arc::new(ManualClock::new(
            repo.clock().now() + chrono::Duration::hours(1),
        ));
        let loc = Location::new(under, "", repo.url(), StoreKind::Memory).with_clock(later);
        let next = Arc::new(Repository::open(loc, testkit::PW).await.unwrap());
        let check = testkit::check_read_data(&next).await;
        assert!(
            check.is_ok(),
            "killed after {cut} writes: {:?}",
            check.errors
        );
        assert_restores(&next, &expected).await;
        prune(&next, &now_pruning(), &Progress::hidden())
            .await
            .unwrap();
        let check = testkit::check_read_data(&next).await;
        assert!(
            check.is_ok(),
            "pruned again after {cut}: {:?}",
            check.errors
        );
        assert_restores(&next, &expected).await;
        if finished {
            assert!(cut > 5, "prune wrote something before it finished");
            break;
        }
        cut += 1;
    }
}

/// One repository of a random history: its store (crashable), the store under it,
/// and the clock every process opening it shares.
struct World {
    flaky: Arc<offsite::store::flaky::FlakyStore>,
    url: String,
    clock: Arc<ManualClock>,
}

impl World {
    async fn new(pack_size: u64, clock: Arc<ManualClock>) -> World {
        let (flaky, _under, repo) = testkit::flaky(pack_size, 1 << 30).await;
        World {
            flaky,
            url: repo.url().to_string(),
            clock,
        }
    }

    /// The repository as a new process opens it.
    async fn open(&self) -> Arc<Repository> {
        let loc = Location::new(self.flaky.clone(), "", &self.url, StoreKind::Memory)
            .with_clock(self.clock.clone());
        Arc::new(Repository::open(loc, testkit::PW).await.unwrap())
    }
}

/// A step of a history; `crash`: the process doing it dies after that many writes.
#[derive(Clone, Debug)]
enum Step {
    Backup {
        machine: usize,
    },
    Copy,
    Forget {
        target: bool,
        keep: u32,
        weekly: u32,
    },
    Prune {
        target: bool,
    },
}

fn step() -> impl proptest::strategy::Strategy<Value = (Step, Option<u64>)> {
    use proptest::prelude::*;
    let step = prop_oneof![
        4 => (0usize..3).prop_map(|machine| Step::Backup { machine }),
        3 => Just(Step::Copy),
        2 => (any::<bool>(), 1u32..3, 0u32..2)
            .prop_map(|(target, keep, weekly)| Step::Forget { target, keep, weekly }),
        2 => any::<bool>().prop_map(|target| Step::Prune { target }),
    ];
    let crash = prop_oneof![2 => Just(None), 1 => (0u64..14).prop_map(Some)];
    (step, crash)
}

/// Checks `repo` reads whole and every point in it restores to what its backup held
/// (a copied point: what its source point held).
async fn assert_whole(
    repo: &Repository,
    expected: &std::collections::HashMap<offsite::Id, Files>,
    what: &str,
) {
    let check = testkit::check_read_data(repo).await;
    assert!(check.is_ok(), "{what}: {:?}", check.errors);
    for (id, p) in repo.load_points().await.unwrap() {
        let origin = p.source.as_ref().map_or(id, |s| s.point);
        let want = expected
            .get(&origin)
            .unwrap_or_else(|| panic!("{what}: {id} unknown"));
        let to = tempfile::tempdir().unwrap();
        offsite::restore::run(repo, &id, &p, to.path(), &Progress::hidden())
            .await
            .unwrap();
        assert_eq!(&files(&to.path().join(&p.machine)), want, "{what}: {id}");
    }
}

/// Runs a history of backups, copies, forgets and prunes on a source and its copy,
/// each step possibly killed after some of its writes (the next process an hour later
/// on the shared clock, so the dead one's locks are stale); then prunes both once
/// more. After every killed step and at the end both repositories check clean and
/// every remaining point restores bit for bit.
async fn history(steps: Vec<(Step, Option<u64>)>) {
    let clock = Arc::new(ManualClock::auto_advance(chrono::Utc::now()));
    let src = World::new(96 << 10, clock.clone()).await;
    let dst = World::new(128 << 10, clock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut expected = std::collections::HashMap::new();
    let prune_now = now_pruning();
    for (n, (step, crash)) in steps.iter().enumerate() {
        let what = format!("step {n} {step:?} killed after {crash:?}");
        let world = match step {
            Step::Copy | Step::Forget { target: true, .. } | Step::Prune { target: true } => &dst,
            _ => &src,
        };
        let repo = world.open().await;
        if let Some(c) = crash {
            world.flaky.crash_after_writes(*c);
        }
        match step {
            Step::Backup { machine } => {
                let m = ["web", "db", "mail"][*machine];
                // A failed backup is what a crash does; the files stay as written.
                let day = n as u64 + 1;
                let root = dir.path().join("live").join(m);
                std::fs::create_dir_all(&root).unwrap();
                for f in 0..8u64 {
                    let seed = if f < 3 { 1000 * day + f } else { f } + 17 * m.len() as u64;
                    std::fs::write(root.join(format!("f{f}")), testkit::bytes(seed, 30_000))
                        .unwrap();
                }
                let opts = BackupOptions {
                    machine: m.to_string(),
                    paths: vec![root.clone()],
                    base: Some(dir.path().join("live")),
                    ..Default::default()
                };
                let _ = backup::run(repo.clone(), opts, Progress::hidden()).await;
                world.flaky.revive();
                // A point that landed (even if its writer died after) holds today's files.
                let after = world.open().await;
                for (id, p) in after.load_points().await.unwrap() {
                    if p.machine == m {
                        expected.entry(id).or_insert_with(|| files(&root));
                    }
                }
            }
            Step::Copy => {
                let from = src.open().await;
                let opts = offsite::copy::CopyOptions {
                    selection: offsite::copy::Selection {
                        points: offsite::copy::PointsSpec::All,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let _ = offsite::copy::run(vec![from], repo, &opts, &Progress::hidden()).await;
            }
            Step::Forget { keep, weekly, .. } => {
                let opts = ForgetOptions {
                    policy: Policy {
                        keep: *keep,
                        weekly: *weekly,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let _ = forget(&repo, &opts, &chrono::Utc).await;
            }
            Step::Prune { .. } => {
                let _ = prune(&repo, &prune_now, &Progress::hidden()).await;
            }
        }
        world.flaky.revive();
        clock.advance(chrono::Duration::hours(if crash.is_some() {
            1
        } else {
            20
        }));
        if crash.is_some() {
            assert_whole(&*world.open().await, &expected, &what).await;
        }
    }
    for (world, name) in [(&src, "source"), (&dst, "copy")] {
        let repo = world.open().await;
        prune(&repo, &prune_now, &Progress::hidden()).await.unwrap();
        assert_whole(&repo, &expected, &format!("{name} at the end of {steps:?}")).await;
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 16,
        failure_persistence: None,
        ..Default::default()
    })]
    /// Any history of backups, copies, forgets and prunes, with crashes injected
    /// anywhere: every remaining point restores.
    #[test]
    fn any_history_with_crashes_leaves_every_point_restorable(
        steps in proptest::collection::vec(step(), 4..16)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(history(steps));
    }
}
