//! The repository conformance suite: plain async functions, each given a maker of fresh,
//! empty locations, run against memory, a folder, the local S3 server and Azurite.

#![allow(dead_code)]

pub mod bin;
pub mod concurrency;
pub mod copy;
#[allow(unused_imports)]
pub use concurrency::{
    copy_during_backup, copy_during_check, two_backups_one_source, two_copies_different_machines,
    two_copies_overlapping, two_copies_same_machines,
};
#[allow(unused_imports)]
pub use copy::{
    copy_adopts_after_crash, copy_corrupt_source, copy_dry_run_and_per_job,
    copy_full_then_incremental, copy_recompress_and_keep, copy_respects_locks, copy_seed_and_map,
    copy_shards_partition,
};
pub mod fixtures;
pub mod many_files;
pub mod proxy;
#[allow(unused_imports)]
pub use many_files::restore_100k_files;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};

use offsite::backup::{self, BackupOptions};
use offsite::check::{self, CheckOptions, CheckReport};
use offsite::clock::{Clock, ManualClock};
use offsite::format::keyfile::KdfParams;
use offsite::format::lock::{Holder, LockKind, Purpose};
use offsite::format::{self, pack_name};
use offsite::progress::Progress;
use offsite::repo::lock::{LockGuard, list_locks, remove_locks};
use offsite::repo::{InitOptions, Repository};
use offsite::store::Location;
use offsite::{Error, Id, restore};

pub type MakeLocation = dyn Fn() -> Location + Send + Sync;

pub const PW: &[u8] = b"correct horse";
/// Cheap Argon2 costs: the suite tests the format, not the KDF's cost.
pub const FAST_KDF: KdfParams = KdfParams {
    m_cost_kib: 256,
    t_cost: 1,
    p_cost: 1,
};

pub fn fast_init() -> InitOptions {
    InitOptions {
        kdf: FAST_KDF,
        ..Default::default()
    }
}

pub async fn init(loc: Location) -> Arc<Repository> {
    Arc::new(Repository::init(loc, PW, fast_init()).await.unwrap())
}

/// Every object name and its bytes: to prove an operation wrote nothing.
pub async fn snapshot(loc: &Location) -> BTreeMap<String, Bytes> {
    let metas: Vec<_> = loc
        .store
        .list(Some(&loc.prefix))
        .try_collect()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for m in metas {
        let b = loc
            .store
            .get(&m.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        out.insert(loc.name_of(&m.location), b);
    }
    out
}

pub async fn backup_dir(
    repo: &Arc<Repository>,
    machine: &str,
    dir: &std::path::Path,
) -> (Id, offsite::format::point::Point) {
    let opts = BackupOptions {
        machine: machine.to_string(),
        job: Some("nightly".into()),
        paths: vec![dir.to_path_buf()],
        base: Some(dir.parent().unwrap().to_path_buf()),
        ..Default::default()
    };
    backup::run(repo.clone(), opts, Progress::hidden())
        .await
        .unwrap()
}

pub async fn check(repo: &Repository, read_data: bool) -> CheckReport {
    check::run(repo, &CheckOptions { read_data }, &Progress::hidden())
        .await
        .unwrap()
}

/// init, open, wrong password, second init: the repository's front door.
pub async fn init_and_open(mk: &MakeLocation) {
    let loc = mk();
    let repo = init(loc.clone()).await;
    let again = Repository::open(loc.clone(), PW).await.unwrap();
    assert_eq!(again.config, repo.config);

    let before = snapshot(&loc).await;
    let e = Repository::open(loc.clone(), b"wrong").await.unwrap_err();
    assert!(matches!(e, Error::WrongPassword { keys: 1, .. }), "{e}");
    assert!(e.to_string().contains("wrong password"), "{e}");
    let e = Repository::init(loc.clone(), PW, fast_init())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AlreadyInitialized { .. }), "{e}");
    assert_eq!(
        snapshot(&loc).await,
        before,
        "a refused operation wrote something"
    );

    let empty = mk();
    let e = Repository::open(empty, PW).await.unwrap_err();
    assert!(matches!(e, Error::NoRepository { .. }), "{e}");
}

/// A machine's files, folders, symlinks, modes, times and a disk image come back bit
/// for bit; check --read-data passes.
pub async fn backup_restore_bit_exact(mk: &MakeLocation) {
    let repo = init(mk()).await;
    let src = tempfile::tempdir().unwrap();
    let machine = src.path().join("web01");
    fixtures::machine_tree(&machine, 1);
    let (id, point) = backup_dir(&repo, "web01", &machine).await;
    assert_eq!(point.machine, "web01");
    assert_eq!(point.summary.files, 6);
    assert_eq!(point.summary.symlinks, 2);

    let reopened = Repository::open(repo.loc.clone(), PW).await.unwrap();
    let (found, p) = reopened.find_point("latest", Some("web01")).await.unwrap();
    assert_eq!(found, id);
    let out = tempfile::tempdir().unwrap();
    restore::run(&reopened, &id, &p, out.path(), &Progress::hidden())
        .await
        .unwrap();
    assert_eq!(
        fixtures::digest(&out.path().join("web01")),
        fixtures::digest(&machine)
    );

    let r = check(&reopened, true).await;
    assert!(r.is_ok(), "{:?}", r.errors);
    assert!(r.bytes_read > 0);
}

/// A point of many small files — some sharing content, an empty one, odd names — is
/// restored pack by pack: bit for bit, no partial files left, and no more GETs than twice
/// the packs the point touches (one request per file would be thousands).
pub async fn restore_reads_pack_wise(mk: &MakeLocation) {
    let repo = init(mk()).await;
    let src = tempfile::tempdir().unwrap();
    let m = src.path().join("many");
    for d in 0..30 {
        let dir = m.join(format!("dir{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            let len = 500 + (d * 100 + f) * 37 % 6000;
            std::fs::write(
                dir.join(format!("f{f:03}")),
                fixtures::noise((d * 1000 + f) as u64, len),
            )
            .unwrap();
        }
        // The same content under several names: its blob is read once, written thrice.
        std::fs::write(dir.join("copy-a"), fixtures::noise(7, 3000)).unwrap();
        std::fs::write(dir.join("copy-b"), fixtures::noise(7, 3000)).unwrap();
        std::fs::write(dir.join("copy c \u{e9}"), fixtures::noise(7, 3000)).unwrap();
    }
    std::fs::write(m.join("empty"), b"").unwrap();
    let (id, point) = backup_dir(&repo, "many", &m).await;
    assert_eq!(point.summary.files, 30 * 103 + 1);

    let index = repo.load_index().await.unwrap();
    let mut packs = std::collections::HashSet::new();
    for t in &point.tree {
        packs.insert(index.pack_id(index.get(t).unwrap().pack));
    }
    offsite::repo::tree::for_each_node(&repo, &index, "p", &point, async |n| {
        for b in &n.blobs {
            packs.insert(index.pack_id(index.get(b).unwrap().pack));
        }
        Ok(())
    })
    .await
    .unwrap();

    let out = tempfile::tempdir().unwrap();
    let before = repo.loc.requests.snapshot();
    let stats = restore::run(&repo, &id, &point, out.path(), &Progress::hidden())
        .await
        .unwrap();
    let gets = repo.loc.requests.snapshot().since(&before).get;
    assert_eq!(stats.files, point.summary.files);
    assert!(
        gets <= 2 * packs.len() as u64,
        "{gets} GETs for a point in {} packs",
        packs.len()
    );
    assert_eq!(
        fixtures::digest(&out.path().join("many")),
        fixtures::digest(&m)
    );
    let partial = walk_names(out.path())
        .into_iter()
        .filter(|n| n.ends_with(".offsite-partial"))
        .count();
    assert_eq!(partial, 0);
}

/// Flips a byte of one of the point's larger data blobs, in place in its pack (as disk
/// rot or tampering would); returns the pack's name and the blob.
pub async fn damage_a_data_blob(
    repo: &Repository,
    point: &offsite::format::point::Point,
) -> (String, Id) {
    let index = repo.load_index().await.unwrap();
    let mut blobs = Vec::new();
    offsite::repo::tree::for_each_node(repo, &index, "p", point, async |n| {
        blobs.extend(n.blobs);
        Ok(())
    })
    .await
    .unwrap();
    let victim = *blobs
        .iter()
        .find(|b| index.get(b).unwrap().length > 100_000)
        .unwrap();
    let loc = index.get(&victim).unwrap();
    let pname = pack_name(&index.pack_id(loc.pack));
    let path = repo.loc.path(&pname);
    let got = repo.loc.store.get(&path).await.unwrap();
    let mut bytes = got.bytes().await.unwrap().to_vec();
    bytes[loc.offset as usize + 300] ^= 1;
    repo.loc.store.put(&path, bytes.into()).await.unwrap();
    (pname, victim)
}

/// A restore that meets a damaged blob fails naming the pack and the blob, and leaves no
/// file under its own name that is not whole, and no partial file at all.
pub async fn restore_failure_leaves_no_half_files(mk: &MakeLocation) {
    let repo = init(mk()).await;
    let src = tempfile::tempdir().unwrap();
    let m = src.path().join("web01");
    fixtures::machine_tree(&m, 9);
    let (id, point) = backup_dir(&repo, "web01", &m).await;
    let (pname, victim) = damage_a_data_blob(&repo, &point).await;

    let out = tempfile::tempdir().unwrap();
    let e = restore::run(&repo, &id, &point, out.path(), &Progress::hidden())
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&pname) && msg.contains(&victim.short()),
        "{msg}"
    );
    let want = fixtures::digest(&m);
    let got = fixtures::digest(&out.path().join("web01"));
    for (name, digest) in &got {
        assert!(
            !String::from_utf8_lossy(name).ends_with(".offsite-partial"),
            "a partial file was left: {}",
            String::from_utf8_lossy(name)
        );
        // Files under their own names are whole (folders get their times only at the end).
        if digest.starts_with("file") {
            assert_eq!(
                want.get(name),
                Some(digest),
                "{} is not whole",
                String::from_utf8_lossy(name)
            );
        }
    }
}

fn walk_names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_names(&e.path()));
        }
    }
    out
}

/// A second backup of unchanged data stores (almost) nothing; zero runs cost nothing;
/// a changed file stores only its changed chunks; the parent is recorded.
pub async fn dedupe_and_zero_runs(mk: &MakeLocation) {
    let repo = init(mk()).await;
    let src = tempfile::tempdir().unwrap();
    let m = src.path().join("db01");
    fixtures::machine_tree(&m, 2);
    let (id1, p1) = backup_dir(&repo, "db01", &m).await;
    // 16 MiB of image zeros and ~3.5 MiB of random data: zeros must not be stored.
    assert!(p1.summary.bytes > 18 << 20);
    assert!(
        p1.summary.bytes_added < 6 << 20,
        "stored {}",
        p1.summary.bytes_added
    );

    let (_, p2) = backup_dir(&repo, "db01", &m).await;
    assert_eq!(p2.parent, Some(id1));
    assert_eq!(p2.summary.blobs_added, 0, "unchanged data was stored again");

    // A backup killed after its uploads leaves packs but no index or point: the next
    // backup adopts them and stores nothing again.
    let other = src.path().join("db02");
    fixtures::machine_tree(&other, 3);
    let names = |v: Vec<object_store::ObjectMeta>| -> Vec<_> {
        v.into_iter().map(|m| m.location).collect()
    };
    let before = names(repo.list(format::INDEX).await.unwrap());
    let (_, first) = backup_dir(&repo, "db02", &other).await;
    assert!(first.summary.blobs_added > 0);
    for l in names(repo.list(format::INDEX).await.unwrap()) {
        if !before.contains(&l) {
            repo.loc.store.delete(&l).await.unwrap();
        }
    }
    let (_, again) = backup_dir(&repo, "db02", &other).await;
    assert_eq!(
        again.summary.blobs_added, 0,
        "the orphaned packs were not adopted"
    );

    // Append to the big random file: only its tail chunk(s) and some tree change.
    let f = m.join("var/random.bin");
    let mut data = std::fs::read(&f).unwrap();
    data.extend(fixtures::noise(99, 100_000));
    std::fs::write(&f, data).unwrap();
    let (_, p3) = backup_dir(&repo, "db01", &m).await;
    assert!(
        p3.summary.bytes_added < 3 << 20,
        "stored {}",
        p3.summary.bytes_added
    );
    assert!(p3.summary.blobs_added >= 1);
}

/// Packs above the multipart threshold go up in parts and read back whole.
pub async fn multipart_packs(mk: &MakeLocation) {
    let loc = mk();
    let opts = InitOptions {
        pack_size: 12 << 20,
        compression: 0,
        ..fast_init()
    };
    let mut repo = Repository::init(loc, PW, opts).await.unwrap();
    repo.multipart_threshold = 5 << 20;
    let repo = Arc::new(repo);
    let src = tempfile::tempdir().unwrap();
    let m = src.path().join("img");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("disk.raw"), fixtures::noise(7, 30 << 20)).unwrap();
    let (id, p) = backup_dir(&repo, "img", &m).await;
    let packs = repo.list(format::DATA).await.unwrap();
    assert!(
        packs.iter().any(|m| m.size > 5 << 20),
        "no pack went multipart"
    );
    let out = tempfile::tempdir().unwrap();
    restore::run(&repo, &id, &p, out.path(), &Progress::hidden())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(out.path().join("img/disk.raw")).unwrap(),
        fixtures::noise(7, 30 << 20)
    );
    assert!(check(&repo, true).await.is_ok());
}

async fn put_raw(loc: &Location, name: &str, bytes: Vec<u8>) {
    loc.store
        .put(&loc.path(name), PutPayload::from(bytes))
        .await
        .unwrap();
}

async fn get_raw(loc: &Location, name: &str) -> Vec<u8> {
    loc.store
        .get(&loc.path(name))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

fn errors_about<'a>(r: &'a CheckReport, object: &str) -> Vec<&'a str> {
    r.errors
        .iter()
        .filter(|f| f.object == object)
        .map(|f| f.message.as_str())
        .collect()
}

/// check names a missing pack, a pack whose bytes do not match its name, a blob that
/// fails authentication, an index entry pointing nowhere and a point referencing a
/// missing blob — each with the points it breaks — exits with errors and changes nothing.
pub async fn check_finds_damage(mk: &MakeLocation) {
    let loc = mk();
    let repo = init(loc.clone()).await;
    let src = tempfile::tempdir().unwrap();
    for (i, name) in ["a1", "b2"].iter().enumerate() {
        let m = src.path().join(name);
        fixtures::machine_tree(&m, 10 + i as u64);
        backup_dir(&repo, name, &m).await;
    }
    assert!(check(&repo, true).await.is_ok());
    let index = repo.load_index().await.unwrap();

    // The data pack of a1 (holding its random file) gets one bit flipped inside a blob.
    let points = repo.load_points().await.unwrap();
    let a1 = &points.iter().find(|(_, p)| p.machine == "a1").unwrap().1;
    let mut a1_blobs = Vec::new();
    let rp = Repository::open(loc.clone(), PW).await.unwrap();
    offsite::repo::tree::for_each_node(&rp, &index, "points/a1", a1, async |n| {
        a1_blobs.extend(n.blobs);
        Ok(())
    })
    .await
    .unwrap();
    let victim = a1_blobs
        .iter()
        .find(|b| index.get(b).unwrap().length > 100_000)
        .unwrap();
    let vloc = index.get(victim).unwrap();
    let flipped_pack = index.pack_id(vloc.pack);
    let flipped_name = pack_name(&flipped_pack);
    let mut bytes = get_raw(&loc, &flipped_name).await;
    bytes[vloc.offset as usize + 500] ^= 0x10;
    put_raw(&loc, &flipped_name, bytes).await;

    // b2's tree pack disappears.
    let b2 = &points.iter().find(|(_, p)| p.machine == "b2").unwrap().1;
    let b2_tree_pack = index.pack_id(index.get(&b2.tree[0]).unwrap().pack);
    assert_ne!(b2_tree_pack, flipped_pack);
    loc.store
        .delete(&loc.path(&pack_name(&b2_tree_pack)))
        .await
        .unwrap();

    // An index entry pointing nowhere, and a point referencing a blob no index has.
    let ghost_pack = Id::hash(b"ghost pack");
    let ghost = offsite::format::index::IndexFile {
        packs: vec![offsite::format::index::IndexedPack {
            id: ghost_pack,
            size: 1000,
            entries: vec![offsite::format::pack::PackEntry {
                kind: offsite::format::pack::BlobKind::Data,
                id: Id::hash(b"ghost blob"),
                offset: 8,
                length: 100,
                raw_length: 50,
            }],
        }],
    };
    repo.save_index(&ghost).await.unwrap();
    let mut orphan = a1.clone();
    orphan.machine = "c3".into();
    orphan.tree = vec![Id::hash(b"no such tree blob")];
    let orphan_id = repo.save_point(&orphan).await.unwrap();

    let before = snapshot(&loc).await;
    let r = check(&repo, true).await;
    assert_eq!(snapshot(&loc).await, before, "check changed the repository");
    assert!(!r.is_ok());
    let all = format!("{:#?}", r.errors);

    let flipped = errors_about(&r, &flipped_name);
    assert!(
        flipped.iter().any(|m| m.contains("not to its name")),
        "{all}"
    );
    assert!(
        flipped
            .iter()
            .any(|m| m.contains(&victim.to_hex()) && m.contains("authentication")),
        "{all}"
    );
    let missing = errors_about(&r, &pack_name(&b2_tree_pack));
    assert!(missing.iter().any(|m| m.contains("missing")), "{all}");
    assert!(
        errors_about(&r, &pack_name(&ghost_pack))
            .iter()
            .any(|m| m.contains("missing")),
        "{all}"
    );
    let a1_name = format!(
        "points/{}",
        points.iter().find(|(_, p)| p.machine == "a1").unwrap().0
    );
    assert!(
        errors_about(&r, &a1_name)
            .iter()
            .any(|m| m.contains(&victim.short())),
        "{all}"
    );
    let b2_name = format!(
        "points/{}",
        points.iter().find(|(_, p)| p.machine == "b2").unwrap().0
    );
    assert!(
        errors_about(&r, &b2_name)
            .iter()
            .any(|m| m.contains("tree blob")),
        "{all}"
    );
    assert!(
        errors_about(&r, &format!("points/{orphan_id}"))
            .iter()
            .any(|m| m.contains("in no index")),
        "{all}"
    );

    // Without --read-data, the structural faults are still found.
    let r = check(&repo, false).await;
    assert!(!errors_about(&r, &pack_name(&b2_tree_pack)).is_empty());
    assert!(!errors_about(&r, &b2_name).is_empty());
}

/// Truncated, bit-flipped, foreign and future-version objects give errors naming them.
pub async fn hostile_objects(mk: &MakeLocation) {
    let loc = mk();
    let repo = init(loc.clone()).await;
    let src = tempfile::tempdir().unwrap();
    let m = src.path().join("m");
    fixtures::machine_tree(&m, 3);
    let (id, _) = backup_dir(&repo, "m", &m).await;
    let pname = format!("points/{id}");
    let good = get_raw(&loc, &pname).await;

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("foreign", b"<html>not a point</html>".to_vec()),
        ("future", {
            let mut v = good.clone();
            v[6] = 7;
            v
        }),
        ("flipped", {
            let mut v = good.clone();
            let n = v.len();
            v[n - 20] ^= 4;
            v
        }),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        put_raw(&loc, &pname, bytes).await;
        let e = repo.load_point(&id).await.unwrap_err();
        assert!(e.to_string().contains(&pname), "{what}: {e}");
        if what == "future" {
            assert!(
                matches!(e, Error::UnsupportedVersion { found: 7, .. }),
                "{e}"
            );
        }
        let r = check(&repo, false).await;
        assert!(
            errors_about(&r, &pname).len() == 1,
            "{what}: {:?}",
            r.errors
        );
    }
    put_raw(&loc, &pname, good).await;

    // A damaged config or key file: open fails with a clear error, no panic.
    let cfg = get_raw(&loc, "config").await;
    put_raw(&loc, "config", cfg[..10].to_vec()).await;
    let e = Repository::open(loc.clone(), PW).await.unwrap_err();
    assert!(e.to_string().contains("config"), "{e}");
    put_raw(&loc, "config", cfg).await;
    let key = repo.key_name.clone();
    let kb = get_raw(&loc, &key).await;
    put_raw(&loc, &key, kb[..kb.len() - 3].to_vec()).await;
    let e = Repository::open(loc.clone(), PW).await.unwrap_err();
    assert!(matches!(e, Error::WrongPassword { .. }), "{e}");
    put_raw(&loc, &key, kb).await;
    Repository::open(loc.clone(), PW).await.unwrap();
}

/// Passwords come and go without touching data.
pub async fn keys(mk: &MakeLocation) {
    let loc = mk();
    let repo = init(loc.clone()).await;
    let new_key = repo.add_key(b"second", FAST_KDF).await.unwrap();
    let r2 = Repository::open(loc.clone(), b"second").await.unwrap();
    assert_eq!(r2.key_name, new_key);
    assert_eq!(r2.config, repo.config);
    repo.delete(&repo.key_name).await.unwrap();
    assert!(Repository::open(loc.clone(), PW).await.is_err());
    Repository::open(loc.clone(), b"second").await.unwrap();
}

/// Locks: a writer's lock shows who writes; an expired one is stale, reported by check
/// and removable; an exclusive lock excludes everyone.
pub async fn locks(mk: &MakeLocation) {
    let loc = mk();
    init(loc.clone()).await;
    let t0 = chrono::Utc::now();
    let clock = Arc::new(ManualClock::new(t0));
    let repo = Arc::new(
        Repository::open(loc.clone(), PW)
            .await
            .unwrap()
            .with_clock(clock.clone()),
    );

    let g = LockGuard::acquire(
        &repo,
        LockKind::Shared,
        Purpose::Backup,
        Some("web01".into()),
    )
    .await
    .unwrap();
    let found = list_locks(&repo).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].lock.machine, Some(Holder::Machine("web01".into())));
    assert!(!found[0].lock.is_stale(clock.now()));
    // A second shared lock is fine; an exclusive one is refused, naming the holder.
    let g2 = LockGuard::acquire(
        &repo,
        LockKind::Shared,
        Purpose::Backup,
        Some("db01".into()),
    )
    .await
    .unwrap();
    let e = LockGuard::acquire(&repo, LockKind::Exclusive, Purpose::Prune, None)
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("backup of web01"), "{e}");
    g2.release().await.unwrap();

    // The writer dies: dropping a guard stops its refreshes but leaves the lock object,
    // as a killed process does. Ten minutes later (on the lock's clock) it is stale.
    drop(g);
    clock.advance(chrono::Duration::minutes(10));
    let r = check(&repo, false).await;
    assert!(r.is_ok());
    assert!(
        r.warnings.iter().any(|w| w.message.contains("STALE")),
        "{:?}",
        r.warnings
    );
    LockGuard::acquire(&repo, LockKind::Exclusive, Purpose::Prune, None)
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
    let removed = remove_locks(&repo, false).await.unwrap();
    assert_eq!(removed.len(), 1);
    assert!(list_locks(&repo).await.unwrap().is_empty());
}
