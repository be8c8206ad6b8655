//! Many writers, one repository: copies, backups and checks interleaved on purpose. A
//! gated store holds one writer's request (its index write, its point write, a pack
//! read) until the test lets it go, so each interleaving below is forced rather than
//! hoped for. Every scenario ends the same way: no source point copied twice, every
//! target point restores bit for bit, `check --read-data` clean, and no pack that was
//! there before deleted or changed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use offsite::copy::{self, ChainMode, ChainStatus, CopyOptions, CopyReport, Failure};
use offsite::progress::Progress;
use offsite::repo::Repository;
use offsite::store::Location;
use offsite::store::gated::{Gate, GatedStore, Op};
use offsite::{Id, Result};

use super::copy::{TARGET_PW, all, assert_same_restores, change, init_target, source};
use super::{MakeLocation, PW, backup_dir, check, fixtures, init};

/// The same location seen through a gated store: a second process on the same bucket.
fn gated(loc: &Location) -> (Location, GatedStore) {
    let g = GatedStore::new(loc.store.clone());
    let l = Location::new(Arc::new(g.clone()), loc.prefix.as_ref(), &loc.url, loc.kind);
    (l, g)
}

/// Opens `dst`'s repository again through a gate on requests `op` for names with `name`.
async fn through_gate(
    dst: &Repository,
    pw: &[u8],
    op: Op,
    name: &str,
) -> (Arc<Repository>, Arc<Gate>) {
    let (loc, store) = gated(&dst.loc);
    let gate = store.gate(op, name);
    (Arc::new(Repository::open(loc, pw).await.unwrap()), gate)
}

fn machines(names: &[&str]) -> CopyOptions {
    let mut o = all();
    o.selection.machines = names.iter().map(|m| m.to_string()).collect();
    o
}

async fn run_copy(
    src: &Arc<Repository>,
    dst: &Arc<Repository>,
    opts: CopyOptions,
) -> Result<CopyReport> {
    copy::run(vec![src.clone()], dst.clone(), &opts, &Progress::hidden()).await
}

fn chain<'a>(r: &'a CopyReport, name: &str) -> &'a copy::ChainReport {
    r.chains
        .iter()
        .find(|c| c.chain == name)
        .unwrap_or_else(|| panic!("no chain {name} in {r:#?}"))
}

/// Pack names and sizes.
async fn packs(repo: &Repository) -> BTreeMap<String, u64> {
    repo.list(offsite::format::DATA)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (repo.loc.name_of(&m.location), m.size))
        .collect()
}

/// The end state every scenario must reach.
async fn assert_sound(src: &Repository, dst: &Repository, packs_before: &BTreeMap<String, u64>) {
    let points = dst.load_points().await.unwrap();
    let mut seen: HashMap<(Id, Id), Id> = HashMap::new();
    for (id, p) in &points {
        let s = p.source.as_ref().expect("copied points carry provenance");
        if let Some(other) = seen.insert((s.repository, s.point), *id) {
            panic!(
                "source point {} copied twice: target points {other} and {id}",
                s.point
            );
        }
    }
    let r = check(dst, true).await;
    assert!(r.is_ok(), "{:?}", r.errors);
    let now = packs(dst).await;
    for (name, size) in packs_before {
        assert_eq!(
            now.get(name),
            Some(size),
            "pack {name} was deleted or changed"
        );
    }
    assert_same_restores(src, dst).await;
}

/// The duplicate-point run, replayed: copy A holds the db01 chain (its packs landed, its
/// index not yet written) while copy B runs. B leaves db01 to A (locked) and does not
/// adopt A's packs (A is alive); it copies web01. A then finds web01 copied by B, under
/// the lock, and writes it no second time.
pub async fn two_copies_same_machines(mk: &MakeLocation) {
    let (src, _dir) = source(mk).await;
    let dst = init_target(mk).await;
    let (dst_a, gate) = through_gate(&dst, TARGET_PW, Op::Put, "index/").await;
    // The copies run side by side in this task: A stops at the gate, B runs meanwhile.
    // A copies one chain at a time, so it holds db01 alone at the gate.
    let one_at_a_time = CopyOptions { tasks: 1, ..all() };
    let a = run_copy(&src, &dst_a, one_at_a_time);
    let b = async {
        gate.wait_for(1).await;
        let b = run_copy(&src, &dst, all()).await.unwrap();
        gate.open();
        b
    };
    let (a, b) = tokio::join!(a, b);
    let a = a.unwrap();
    assert_eq!(b.adopted_packs, 0, "B adopted the packs of a live copy");
    let b_db = chain(&b, "db01");
    assert_eq!(b_db.status, ChainStatus::Failed);
    assert!(
        matches!(b_db.failure, Some(Failure::LockTimeout { .. })),
        "{b_db:?}"
    );
    assert_eq!(chain(&b, "web01").copied.len(), 2);
    assert_eq!(chain(&a, "db01").copied.len(), 2);
    let a_web = chain(&a, "web01");
    assert_eq!(a_web.status, ChainStatus::UpToDate, "{a_web:?}");
    assert_eq!(a_web.already_copied, 2);
    assert_eq!(dst.load_points().await.unwrap().len(), 4);
    assert_sound(&src, &dst, &BTreeMap::new()).await;
}

/// Two copies of different machines into one target, both held before their commits,
/// committed in the other order than they started.
pub async fn two_copies_different_machines(mk: &MakeLocation) {
    let (src, _dir) = source(mk).await;
    let dst = init_target(mk).await;
    let (dst_a, gate_a) = through_gate(&dst, TARGET_PW, Op::Put, "index/").await;
    let (dst_b, gate_b) = through_gate(&dst, TARGET_PW, Op::Put, "index/").await;
    let a = run_copy(&src, &dst_a, machines(&["web01"]));
    let b = async {
        gate_a.wait_for(1).await;
        run_copy(&src, &dst_b, machines(&["db01"])).await
    };
    let order = async {
        gate_a.wait_for(1).await;
        gate_b.wait_for(1).await;
        // Both hold packs without an index; B commits first.
        gate_b.open();
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate_a.open();
    };
    let (a, b, ()) = tokio::join!(a, b, order);
    for r in [a.unwrap(), b.unwrap()] {
        assert_eq!(r.adopted_packs, 0);
        assert_eq!(r.points_copied(), 2, "{r:#?}");
    }
    assert_sound(&src, &dst, &BTreeMap::new()).await;
}

/// Overlapping selections: B waits for A's chain lock on db01, then finds it copied. And a
/// per-job copy (another chain name, so another lock) of the same points, committing
/// while a per-machine copy holds its commit: the later commit reads the target again and
/// does not write the points twice.
pub async fn two_copies_overlapping(mk: &MakeLocation) {
    let (src, _dir) = source(mk).await;
    let dst = init_target(mk).await;
    let (dst_a, gate) = through_gate(&dst, TARGET_PW, Op::Put, "index/").await;
    let a = run_copy(&src, &dst_a, machines(&["db01", "web01"]));
    let mut waits = machines(&["db01"]);
    waits.lock_wait = Duration::from_secs(60);
    let b_done = std::sync::atomic::AtomicBool::new(false);
    let b = async {
        gate.wait_for(1).await;
        let r = run_copy(&src, &dst, waits).await;
        b_done.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    };
    let release = async {
        gate.wait_for(1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !b_done.load(std::sync::atomic::Ordering::SeqCst),
            "B did not wait for the chain lock"
        );
        gate.open();
    };
    let (a, b, ()) = tokio::join!(a, b, release);
    assert_eq!(a.unwrap().points_copied(), 4);
    let b = b.unwrap();
    let b_db = chain(&b, "db01");
    assert_eq!(b_db.status, ChainStatus::UpToDate, "{b_db:?}");
    assert_eq!(b_db.already_copied, 2);
    assert_sound(&src, &dst, &BTreeMap::new()).await;

    // Per-machine and per-job chains of the same points take different locks.
    let dst2 = init_target(mk).await;
    let (dst2_a, gate) = through_gate(&dst2, TARGET_PW, Op::Put, "index/").await;
    let a = run_copy(&src, &dst2_a, machines(&["db01"]));
    let mut per_job = all();
    per_job.chain = ChainMode::PerJob;
    let b = async {
        gate.wait_for(1).await;
        let b = run_copy(&src, &dst2, per_job).await.unwrap();
        gate.open();
        b
    };
    let (a, b) = tokio::join!(a, b);
    assert_eq!(b.points_copied(), 4);
    let a = a.unwrap();
    let a_db = chain(&a, "db01");
    assert_eq!(a_db.copied.len(), 0, "{a_db:?}");
    assert_eq!(a_db.already_copied, 2);
    assert!(
        a_db.warnings
            .iter()
            .any(|w| w.contains("already copied by another run"))
    );
    assert_sound(&src, &dst2, &BTreeMap::new()).await;
}

/// A backup writing a new point of web01 (its point not yet written) while a copy runs:
/// the copy skips web01 — never copying a point half-way — and copies db01; the next copy
/// takes web01's points, the new one included.
pub async fn copy_during_backup(mk: &MakeLocation) {
    let (src, dir) = source(mk).await;
    let dst = init_target(mk).await;
    let (src_b, gate) = through_gate(&src, PW, Op::Put, "points/").await;
    change(&dir.path().join("web01"), 3);
    let web = dir.path().join("web01");
    let backup = backup_dir(&src_b, "web01", &web);
    let mut quick = all();
    quick.source_wait = Duration::ZERO;
    let copying = async {
        gate.wait_for(1).await;
        let r = run_copy(&src, &dst, quick.clone()).await.unwrap();
        gate.open();
        r
    };
    let (_, r) = tokio::join!(backup, copying);
    assert_eq!(chain(&r, "web01").status, ChainStatus::Skipped);
    assert!(chain(&r, "web01").warnings[0].contains("still being written"));
    assert_eq!(chain(&r, "db01").copied.len(), 2);

    let before = packs(&dst).await;
    let r = run_copy(&src, &dst, quick).await.unwrap();
    assert_eq!(chain(&r, "web01").copied.len(), 3);
    assert_sound(&src, &dst, &before).await;
}

/// `check --read-data` on the target while a copy adds to it: the check, held at its
/// first pack read, still finds no error, and neither does one after.
pub async fn copy_during_check(mk: &MakeLocation) {
    let (src, dir) = source(mk).await;
    let dst = init_target(mk).await;
    run_copy(&src, &dst, all()).await.unwrap();
    let (dst_c, gate) = through_gate(&dst, TARGET_PW, Op::Get, "data/").await;
    change(&dir.path().join("db01"), 4);
    backup_dir(&src, "db01", &dir.path().join("db01")).await;
    let before = packs(&dst).await;
    let checking = check(&dst_c, true);
    let copying = async {
        gate.wait_for(1).await;
        let r = run_copy(&src, &dst, all()).await.unwrap();
        gate.open();
        r
    };
    let (report, r) = tokio::join!(checking, copying);
    assert_eq!(r.points_copied(), 1);
    assert!(report.is_ok(), "{:?}", report.errors);
    assert_sound(&src, &dst, &before).await;
}

/// Two backups into one source: B runs whole while A's packs have landed unindexed (A's
/// index write held). B does not adopt A's packs; both points end whole and restorable.
pub async fn two_backups_one_source(mk: &MakeLocation) {
    let src = init(mk()).await;
    let dir = tempfile::tempdir().unwrap();
    for (i, m) in ["web01", "db01"].iter().enumerate() {
        fixtures::machine_tree(&dir.path().join(m), 40 + i as u64);
    }
    let (src_a, gate) = through_gate(&src, PW, Op::Put, "index/").await;
    let (web, db) = (dir.path().join("web01"), dir.path().join("db01"));
    let a = backup_dir(&src_a, "web01", &web);
    let b = async {
        gate.wait_for(1).await;
        let a_packs = packs(&src).await;
        assert!(!a_packs.is_empty());
        let b = backup_dir(&src, "db01", &db).await;
        let index = src.load_index().await.unwrap();
        for name in a_packs.keys() {
            let id = offsite::format::parse_pack_name(name).unwrap();
            assert!(
                index.pack(&id).is_none(),
                "B adopted {name}, a pack of the live backup A"
            );
        }
        gate.open();
        b
    };
    let ((a_id, _), (b_id, _)) = tokio::join!(a, b);
    let r = check(&src, true).await;
    assert!(r.is_ok(), "{:?}", r.errors);
    assert!(
        r.warnings
            .iter()
            .all(|w| !w.message.contains("in no index")),
        "{:?}",
        r.warnings
    );
    for (id, m) in [(a_id, "web01"), (b_id, "db01")] {
        let p = src.load_point(&id).await.unwrap();
        let out = tempfile::tempdir().unwrap();
        offsite::restore::run(&src, &id, &p, out.path(), &Progress::hidden())
            .await
            .unwrap();
        assert_eq!(
            fixtures::digest(&out.path().join(m)),
            fixtures::digest(&dir.path().join(m))
        );
    }
}
