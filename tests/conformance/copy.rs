//! The copy engine's part of the conformance suite: source and target repositories both
//! made by the store under test.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStoreExt;
use offsite::copy::{
    self, ChainMode, ChainStatus, Compression, CopyOptions, CopyReport, Failure, PointsSpec,
    Selection, Shard,
};
use offsite::format::lock::{LockKind, Purpose};
use offsite::progress::Progress;
use offsite::repo::Repository;
use offsite::repo::lock::LockGuard;
use offsite::{Id, restore};

use super::{MakeLocation, PW, backup_dir, check, fixtures, init, snapshot};

pub const TARGET_PW: &[u8] = b"target secret";

pub async fn init_target(mk: &MakeLocation) -> Arc<Repository> {
    let loc = mk();
    let opts = offsite::repo::InitOptions {
        pack_size: 4 << 20,
        ..super::fast_init()
    };
    Arc::new(Repository::init(loc, TARGET_PW, opts).await.unwrap())
}

/// A source with machines web01 and db01, two points each (the second after a change).
pub async fn source(mk: &MakeLocation) -> (Arc<Repository>, tempfile::TempDir) {
    let repo = init(mk()).await;
    let dir = tempfile::tempdir().unwrap();
    for (i, m) in ["web01", "db01"].iter().enumerate() {
        fixtures::machine_tree(&dir.path().join(m), 20 + i as u64);
        backup_dir(&repo, m, &dir.path().join(m)).await;
    }
    change(&dir.path().join("web01"), 1);
    change(&dir.path().join("db01"), 2);
    for m in ["web01", "db01"] {
        backup_dir(&repo, m, &dir.path().join(m)).await;
    }
    (repo, dir)
}

/// A small change: a new file and an edit in the random file.
pub fn change(machine: &std::path::Path, seed: u64) {
    std::fs::write(
        machine.join(format!("etc/new-{seed}")),
        fixtures::noise(seed, 50_000),
    )
    .unwrap();
    let f = machine.join("var/random.bin");
    let mut d = std::fs::read(&f).unwrap();
    let n = d.len();
    d[n / 2..n / 2 + 1000].copy_from_slice(&fixtures::noise(seed + 7, 1000));
    std::fs::write(&f, d).unwrap();
}

pub fn all() -> CopyOptions {
    CopyOptions {
        selection: Selection {
            points: PointsSpec::All,
            ..Default::default()
        },
        ..Default::default()
    }
}

pub async fn run(src: &Arc<Repository>, dst: &Arc<Repository>, opts: &CopyOptions) -> CopyReport {
    copy::run(vec![src.clone()], dst.clone(), opts, &Progress::hidden())
        .await
        .unwrap()
}

/// Every target point restores to exactly what its source point restores to.
pub async fn assert_same_restores(src: &Repository, dst: &Repository) {
    let points = dst.load_points().await.unwrap();
    assert!(!points.is_empty());
    for (id, p) in points {
        let prov = p
            .source
            .clone()
            .expect("copied points carry their provenance");
        assert_eq!(prov.repository, src.config.id);
        let sp = src.load_point(&prov.point).await.unwrap();
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        restore::run(src, &prov.point, &sp, a.path(), &Progress::hidden())
            .await
            .unwrap();
        restore::run(dst, &id, &p, b.path(), &Progress::hidden())
            .await
            .unwrap();
        assert_eq!(
            fixtures::digest(a.path()),
            fixtures::digest(b.path()),
            "point {id}"
        );
    }
}

fn copied(r: &CopyReport) -> BTreeSet<(String, Id)> {
    r.chains
        .iter()
        .flat_map(|c| c.copied.iter().map(|p| (p.machine.clone(), p.source_point)))
        .collect()
}

/// Full copy, then nothing new, then an incremental copy that reads about what changed.
pub async fn copy_full_then_incremental(mk: &MakeLocation) {
    let (src, dir) = source(mk).await;
    let dst = init_target(mk).await;
    let r = run(&src, &dst, &all()).await;
    assert_eq!(r.points_copied(), 4, "{r:#?}");
    assert!(!r.has_failures());
    let full_read: u64 = r.chains.iter().map(|c| c.bytes_read).sum();
    assert!(check(&dst, true).await.is_ok());
    assert_same_restores(&src, &dst).await;
    // The target has its own key: the source password does not open it.
    assert!(Repository::open(dst.loc.clone(), PW).await.is_err());
    // Points keep their order and chain through the target's own ids.
    let pts = dst.load_points().await.unwrap();
    let web: Vec<_> = pts.iter().filter(|(_, p)| p.machine == "web01").collect();
    assert_eq!(web[1].1.parent, Some(web[0].0));

    let again = run(&src, &dst, &all()).await;
    assert_eq!(again.points_copied(), 0);
    assert!(
        again
            .chains
            .iter()
            .all(|c| c.status == ChainStatus::UpToDate),
        "{again:#?}"
    );
    assert_eq!(
        again.chains.iter().map(|c| c.already_copied).sum::<u64>(),
        4
    );

    // One more point of web01 with ~60 KB changed: the copy reads what the backup
    // stored (the changed chunks, up to a few MiB depending on where the random chunk
    // boundaries fall) and little more: the bound is 1.2x.
    change(&dir.path().join("web01"), 3);
    let (_, p) = backup_dir(&src, "web01", &dir.path().join("web01")).await;
    let inc = run(&src, &dst, &all()).await;
    assert_eq!(inc.points_copied(), 1);
    let read: u64 = inc.chains.iter().map(|c| c.bytes_read).sum();
    assert!(read < full_read, "incremental read {read} of {full_read}");
    assert!(
        read as f64 <= p.summary.bytes_added as f64 * 1.2 + (128 << 10) as f64,
        "read {read}, changed {}",
        p.summary.bytes_added
    );
    assert!(check(&dst, true).await.is_ok());
}

/// Recompression to another level and pass-through both restore identically.
pub async fn copy_recompress_and_keep(mk: &MakeLocation) {
    let (src, _dir) = source(mk).await;
    for c in [
        Compression::Zstd(1),
        Compression::Keep,
        Compression::Zstd(0),
    ] {
        let dst = init_target(mk).await;
        let mut opts = all();
        opts.transfer.compression = c;
        let r = run(&src, &dst, &opts).await;
        assert_eq!(r.points_copied(), 4);
        assert!(check(&dst, true).await.is_ok());
        assert_same_restores(&src, &dst).await;
    }
}

/// Shards together copy exactly what one unsharded run copies.
pub async fn copy_shards_partition(mk: &MakeLocation) {
    let repo = init(mk()).await;
    let dir = tempfile::tempdir().unwrap();
    for i in 0..6 {
        let m = format!("host{i}");
        let p = dir.path().join(&m);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("f"), fixtures::noise(i, 10_000)).unwrap();
        backup_dir(&repo, &m, &p).await;
    }
    let whole = run(&repo, &init_target(mk).await, &all()).await;
    let sharded_target = init_target(mk).await;
    let mut union = BTreeSet::new();
    for i in 0..3 {
        let mut o = all();
        o.selection.shard = Some(Shard { index: i, count: 3 });
        let r = run(&repo, &sharded_target, &o).await;
        for c in copied(&r) {
            assert!(union.insert(c), "a machine was copied by two shards");
        }
    }
    assert_eq!(union, copied(&whole));
    assert_eq!(union.len(), 6);
    assert!(check(&sharded_target, true).await.is_ok());
}

/// A bit flip in a source blob fails the points that need it, naming point, pack and
/// blob; the other machine's copy finishes; nothing damaged reaches the target. The
/// same when the damaged point is alone in its chain (its needs are not listed then).
pub async fn copy_corrupt_source(mk: &MakeLocation) {
    let (src, _dir) = source(mk).await;
    let points = src.load_points().await.unwrap();
    let db01 = points.iter().filter(|(_, p)| p.machine == "db01");
    let (db_id, db) = db01.max_by_key(|(_, p)| p.time).unwrap();
    let (pname, victim) = super::damage_a_data_blob(&src, db).await;

    let alone = init_target(mk).await;
    let r = run(&src, &alone, &CopyOptions::default()).await;
    let db_chain = r.chains.iter().find(|c| c.chain == "db01").unwrap();
    assert_eq!(db_chain.status, ChainStatus::Failed, "{r:#?}");
    assert!(db_chain.failed[0].reason.contains(&victim.to_hex()));
    let web = r.chains.iter().find(|c| c.chain == "web01").unwrap();
    assert_eq!(web.status, ChainStatus::Copied);
    assert!(check(&alone, true).await.is_ok());

    let dst = init_target(mk).await;
    let r = run(&src, &dst, &all()).await;
    assert!(r.has_failures());
    let db_chain = r.chains.iter().find(|c| c.chain == "db01").unwrap();
    assert!(!db_chain.failed.is_empty(), "{r:#?}");
    let f = db_chain
        .failed
        .iter()
        .find(|f| &f.source_point == db_id)
        .unwrap();
    assert!(
        f.reason.contains(&pname) && f.reason.contains(&victim.to_hex()),
        "{}",
        f.reason
    );
    assert!(
        matches!(&f.failure, Failure::Corrupt { object, blob, .. } if object == &pname && blob == &victim),
        "{:?}",
        f.failure
    );
    let web = r.chains.iter().find(|c| c.chain == "web01").unwrap();
    assert_eq!(web.status, ChainStatus::Copied);
    assert_eq!(web.copied.len(), 2);
    // What did land in the target is sound, and restores.
    assert!(check(&dst, true).await.is_ok());
    assert_same_restores(&src, &dst).await;
}

/// A killed copy leaves packs without index or points; the rerun adopts them.
pub async fn copy_adopts_after_crash(mk: &MakeLocation) {
    let (src, _dir) = source(mk).await;
    let dst = init_target(mk).await;
    let full = run(&src, &dst, &all()).await;
    let full_written: u64 = full.chains.iter().map(|c| c.bytes_written).sum();
    // Simulate the kill: everything after the pack uploads is gone.
    for dir in [offsite::format::INDEX, offsite::format::POINTS] {
        for m in dst.list(dir).await.unwrap() {
            dst.loc.store.delete(&m.location).await.unwrap();
        }
    }
    let rerun = run(&src, &dst, &all()).await;
    assert!(rerun.adopted_packs > 0);
    assert_eq!(rerun.points_copied(), 4);
    let rewritten: u64 = rerun.chains.iter().map(|c| c.bytes_written).sum();
    assert!(
        rewritten < full_written / 4,
        "re-uploaded {rewritten} of {full_written}"
    );
    assert!(check(&dst, true).await.is_ok());
    assert_same_restores(&src, &dst).await;
}

/// A point being written in the source is waited for, then skipped with a warning; a
/// second copy of the same chain stops with a clear message.
pub async fn copy_respects_locks(mk: &MakeLocation) {
    let (src, _dir) = source(mk).await;
    let dst = init_target(mk).await;
    let writer = LockGuard::acquire(&src, LockKind::Shared, Purpose::Backup, Some("db01".into()))
        .await
        .unwrap();
    let opts = CopyOptions {
        source_wait: Duration::from_millis(600),
        ..all()
    };
    let r = run(&src, &dst, &opts).await;
    let db = r.chains.iter().find(|c| c.chain == "db01").unwrap();
    assert_eq!(db.status, ChainStatus::Skipped);
    assert!(
        db.warnings[0].contains("being written"),
        "{:?}",
        db.warnings
    );
    assert_eq!(
        r.chains
            .iter()
            .find(|c| c.chain == "web01")
            .unwrap()
            .copied
            .len(),
        2
    );
    writer.release().await.unwrap();

    // Another copy of db01 holds the chain lock in the target.
    let other = LockGuard::acquire(&dst, LockKind::Shared, Purpose::Copy, Some("db01".into()))
        .await
        .unwrap();
    let r = run(&src, &dst, &all()).await;
    let db = r.chains.iter().find(|c| c.chain == "db01").unwrap();
    assert_eq!(db.status, ChainStatus::Failed);
    assert!(
        matches!(db.failure, Some(Failure::LockTimeout { .. })),
        "{:?}",
        db.failure
    );
    assert!(
        db.warnings[0].contains("another copy of db01"),
        "{:?}",
        db.warnings
    );
    other.release().await.unwrap();
    let r = run(&src, &dst, &all()).await;
    assert_eq!(r.points_copied(), 2);
    assert!(check(&dst, true).await.is_ok());
}

/// A dry run reports the plan and writes nothing; per-job chains copy the same points.
pub async fn copy_dry_run_and_per_job(mk: &MakeLocation) {
    let (src, _dir) = source(mk).await;
    let dst = init_target(mk).await;
    let before = snapshot(&dst.loc).await;
    let opts = CopyOptions {
        dry_run: true,
        ..all()
    };
    let plan = run(&src, &dst, &opts).await;
    assert_eq!(
        snapshot(&dst.loc).await,
        before,
        "a dry run wrote to the target"
    );
    let p = plan
        .chains
        .iter()
        .map(|c| c.plan.clone().unwrap())
        .fold((0, 0, 0), |a, p| {
            (a.0 + p.points, a.1 + p.blobs, a.2 + p.get_requests)
        });
    assert_eq!(p.0, 4);
    assert!(p.1 > 0 && p.2 > 0);

    let opts = CopyOptions {
        chain: ChainMode::PerJob,
        ..all()
    };
    let r = run(&src, &dst, &opts).await;
    assert_eq!(r.chains.len(), 1);
    assert_eq!(r.chains[0].chain, "job:nightly");
    assert_eq!(r.points_copied(), 4);
    assert_same_restores(&src, &dst).await;
}

/// Seeding: a copy into one location, its objects carried to another (as a plain object
/// tool would), then `--map` continues there and moves only the increments.
pub async fn copy_seed_and_map(mk: &MakeLocation) {
    let (src, dir) = source(mk).await;
    let seed = init_target(mk).await;
    run(&src, &seed, &all()).await;
    let far = mk();
    for (name, bytes) in snapshot(&seed.loc).await {
        if !name.starts_with("locks/") {
            far.store.put(&far.path(&name), bytes.into()).await.unwrap();
        }
    }
    let far = Arc::new(Repository::open(far, TARGET_PW).await.unwrap());
    change(&dir.path().join("db01"), 9);
    let (_, p) = backup_dir(&src, "db01", &dir.path().join("db01")).await;
    let opts = CopyOptions { map: true, ..all() };
    let r = run(&src, &far, &opts).await;
    assert_eq!(r.points_copied(), 1);
    assert_eq!(r.chains.iter().map(|c| c.already_copied).sum::<u64>(), 4);
    let written: u64 = r.chains.iter().map(|c| c.bytes_written).sum();
    // Only the increment travels: what the backup stored, plus an index and a point.
    assert!(
        written < p.summary.bytes_added + (256 << 10),
        "wrote {written} for an increment of {}",
        p.summary.bytes_added
    );
    assert!(check(&far, true).await.is_ok());
    assert_same_restores(&src, &far).await;

    // A target holding points from elsewhere is refused without --map.
    let (other, _d2) = source(mk).await;
    let e = copy::run(
        vec![other.clone()],
        far.clone(),
        &all(),
        &Progress::hidden(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("--map"), "{e}");
}
