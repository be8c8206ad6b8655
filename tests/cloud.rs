//! The cloud side on the local servers. LocalStack emulates S3 archive classes, restores
//! and object lock: a bucket prepared by `offsite target create`, a target whose data
//! packs go to DEEP_ARCHIVE under governance lock, planning that never reads an archived
//! object, and a restore that shows its retrieval plan before asking, then retrieves.
//! Azurite keeps Azure's Archive tier and rehydrates: the same planning and retrieval
//! there (its missing immutability is covered by request shapes in `store::azure`).

mod conformance;

use std::path::Path;
use std::process::{Command, Output};

use chrono::Utc;
use conformance::fixtures;
use offsite::format::config::LockMode;

const BIN: &str = env!("CARGO_BIN_EXE_offsite");

fn run(args: &[&str], password: &str) -> Output {
    Command::new(BIN)
        .args(args)
        .env("OFFSITE_KDF", "256,1,1")
        .env("OFFSITE_PASSWORD", password)
        .env("OFFSITE_TARGET_PASSWORD", "target-pw")
        .output()
        .expect("offsite runs")
}

fn ok(args: &[&str], password: &str) -> String {
    let o = run(args, password);
    assert!(
        o.status.success(),
        "offsite {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A new bucket name on the test server, or `None` when no server is configured (a
/// failure under CI).
fn new_bucket() -> Option<String> {
    match std::env::var("OFFSITE_TEST_S3") {
        Ok(_) => Some(format!(
            "offsite-lock-{}",
            hex::encode(offsite::crypto::random_bytes::<6>())
        )),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "OFFSITE_TEST_S3 is not set under CI: run the tests through localstack/run-tests.sh"
            )
        }
        Err(_) => None,
    }
}

/// A new bucket with object lock, prepared by `offsite target create`, and the URL of
/// `prefix` in it; `None` without a test server.
fn locked_target(prefix: &str) -> Option<String> {
    let target = format!("s3://{}/{prefix}", new_bucket()?);
    ok(
        &["target", "create", &target, "--object-lock", "governance"],
        "",
    );
    Some(target)
}

/// A folder source repository in `d`: its URL, and the folder machines live under.
fn source(d: &Path) -> (String, std::path::PathBuf) {
    let src = d.join("src").to_str().unwrap().to_string();
    ok(&["init", &src], "pw");
    (src, d.join("machines"))
}

/// Backs up `base/machine` into `src` as `machine`.
fn backup(src: &str, base: &Path, machine: &str) {
    let dir = base.join(machine);
    ok(
        &[
            "backup",
            src,
            "--machine",
            machine,
            "--base",
            base.to_str().unwrap(),
            dir.to_str().unwrap(),
        ],
        "pw",
    );
}

fn same_tree(a: &Path, b: &Path) {
    let o = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Each pack of the repository at `loc`: its name, what the provider says of it, and
/// whether it holds tree blobs only.
async fn pack_states(
    loc: &offsite::store::Location,
    index: &offsite::repo::MasterIndex,
) -> Vec<(String, offsite::store::cloud::ObjectState, bool)> {
    let provider = loc.extra.clone().unwrap();
    let mut out = Vec::new();
    for p in index.packs() {
        let name = offsite::format::pack_name(&p.id);
        let st = provider.state(loc.path(&name).as_ref()).await.unwrap();
        let only_trees = index
            .blobs()
            .filter(|(_, l)| index.pack_id(l.pack) == p.id)
            .all(|(_, l)| l.kind == offsite::format::pack::BlobKind::Tree);
        out.push((name, st, only_trees));
    }
    out
}

#[test]
fn target_create_and_verify_say_what_a_bucket_lacks() {
    let Some(bucket) = new_bucket() else { return };
    let url = format!("s3://{bucket}/copies");
    let o = run(&["target", "verify", &url], "");
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("does not exist") && out.contains("target create"),
        "{out}"
    );

    let out = ok(
        &["target", "create", &url, "--object-lock", "governance"],
        "",
    );
    assert!(
        out.contains("created bucket") && out.contains("ready for offsite"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(
        &[
            "target",
            "verify",
            &url,
            "--object-lock",
            "governance",
            "--json",
        ],
        "",
    ))
    .unwrap();
    assert_eq!(v["settings"]["object_lock"], true);
    assert_eq!(v["settings"]["versioning"], true);
    assert_eq!(v["settings"]["abort_incomplete_multipart_days"], 7);
    assert_eq!(v["missing"].as_array().unwrap().len(), 0);

    // A bucket made without object lock cannot get it afterwards: verify says so and
    // create explains instead of pretending.
    let plain = new_bucket().unwrap();
    let purl = format!("s3://{plain}");
    ok(&["target", "create", &purl], "");
    let o = run(
        &["target", "create", &purl, "--object-lock", "compliance"],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("turned versioning on"), "{out}");
    assert!(
        out.contains("no object lock") && out.contains("new bucket"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_locked_target_plans_without_reading_archives_and_restores_after_retrieval() {
    let Some(target) = locked_target("copy") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let (src, base) = source(d.path());
    let src_url = src.as_str();
    for (i, m) in ["web01", "db01", "mail01"].iter().enumerate() {
        fixtures::machine_tree(&base.join(m), i as u64);
        backup(src_url, &base, m);
    }
    ok(&["init", &target, "--pack-size", "256KiB"], "target-pw");
    let set = ok(
        &[
            "target",
            "set",
            &target,
            "--data-class",
            "deep_archive",
            "--lock",
            "governance",
            "--lock-days",
            "30d",
            "--lock-margin",
            "2d",
        ],
        "target-pw",
    );
    assert!(
        set.contains("DEEP_ARCHIVE") && set.contains("30 days"),
        "{set}"
    );
    // The dry run prices the copy in the target's class before anything is spent.
    let dry: serde_json::Value = serde_json::from_str(&ok(
        &[
            "copy",
            "--from",
            src_url,
            "--to",
            &target,
            "--dry-run",
            "--json",
        ],
        "pw",
    ))
    .unwrap();
    assert_eq!(dry["cost"]["target_class"], "DEEP_ARCHIVE", "{dry}");
    assert!(dry["cost"]["requests_usd"].as_f64().unwrap() > 0.0, "{dry}");
    assert!(
        dry["cost"]["storage_month_usd"].as_f64().unwrap() > 0.0,
        "{dry}"
    );
    // A folder source costs no transfer.
    assert_eq!(dry["cost"]["transfer_usd"].as_f64().unwrap(), 0.0, "{dry}");
    let before = Utc::now();
    ok(&["copy", "--from", src_url, "--to", &target], "pw");

    // Every pack and point is locked with its write for 32 days; data packs are in
    // DEEP_ARCHIVE, tree packs in the default class.
    let loc = offsite::store::open(&target, false).unwrap();
    let repo = offsite::repo::Repository::open(loc.clone(), b"target-pw")
        .await
        .unwrap();
    let index = repo.load_index().await.unwrap();
    let s3 = loc.extra.clone().unwrap();
    let (mut data, mut trees) = (0, 0);
    for (name, st, only_trees) in pack_states(&loc, &index).await {
        if only_trees {
            trees += 1;
            assert_eq!(st.class, None, "tree pack {name} is in {:?}", st.class);
        } else {
            data += 1;
            assert_eq!(st.class.as_deref(), Some("DEEP_ARCHIVE"), "{name}");
        }
        let (mode, until) = st.lock.unwrap_or_else(|| panic!("{name} is not locked"));
        assert_eq!(mode, LockMode::Governance);
        let days = (until - before).num_hours() as f64 / 24.0;
        assert!(
            (31.9..32.1).contains(&days),
            "{name} locked for {days} days"
        );
    }
    assert!(
        data >= 3 && trees >= 1,
        "{data} data packs, {trees} tree packs"
    );
    for (id, _) in repo.load_points().await.unwrap() {
        let name = offsite::format::point_name(&id);
        let st = s3.state(loc.path(&name).as_ref()).await.unwrap();
        assert!(st.lock.is_some(), "point {name} is not locked");
    }

    // Planning and listing never read an archived object (the server refuses reads of
    // them): points, ls, check without --read-data, an incremental copy.
    ok(&["points", &target], "target-pw");
    let ls = ok(&["ls", &target, "latest"], "target-pw");
    assert!(ls.contains("etc/hostname"), "{ls}");
    ok(&["check", &target], "target-pw");
    let m = base.join("web01");
    std::fs::write(m.join("etc/new-file"), b"added after the first copy\n").unwrap();
    backup(src_url, &base, "web01");
    ok(&["copy", "--from", src_url, "--to", &target], "pw");

    // A restore shows the plan and asks nothing without --retrieve; nothing is written.
    let to = d.path().join("restored");
    let o = run(
        &[
            "restore",
            &target,
            "latest",
            "--machine",
            "web01",
            "--to",
            to.to_str().unwrap(),
        ],
        "target-pw",
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("retrieval plan:") && err.contains("are archived"),
        "{err}"
    );
    assert!(
        err.contains("--retrieve bulk") && err.contains("hours"),
        "{err}"
    );
    assert!(err.contains("nothing was asked, read or written"), "{err}");
    assert!(!to.exists(), "a refused restore wrote {}", to.display());
    let data_packs: Vec<String> = index
        .packs()
        .iter()
        .map(|p| offsite::format::pack_name(&p.id))
        .collect();
    let restores = async || {
        let mut n = 0;
        for name in &data_packs {
            let st = s3.state(loc.path(name).as_ref()).await.unwrap();
            n += usize::from(st.restore != offsite::store::cloud::Restore::None);
        }
        n
    };
    assert_eq!(restores().await, 0, "the plan asked for a retrieval");

    // With --retrieve the packs are asked for, waited on, and the point restores whole.
    ok(
        &[
            "restore",
            &target,
            "latest",
            "--machine",
            "web01",
            "--to",
            to.to_str().unwrap(),
            "--retrieve",
            "bulk",
            "--retrieve-poll",
            "1s",
        ],
        "target-pw",
    );
    same_tree(&m, &to.join("web01"));
    // Only what web01's point reads was retrieved: not every data pack.
    let asked = restores().await;
    assert!(
        asked >= 1 && asked < data,
        "{asked} of {data} data packs retrieved"
    );
}

/// Forget and prune keep what is locked, GFS flags lock their point's packs for the
/// flag's period, and `target check-immutable` finds (and `--extend` fixes) an object a
/// point needs locked longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locks_follow_retention_and_forget_and_prune_wait_for_them() {
    use offsite::clock::ManualClock;
    use offsite::repo::Repository;
    use offsite::retention::{ForgetOptions, Policy};
    use std::sync::Arc;

    let Some(target) = locked_target("t") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let (src, base) = source(d.path());
    let src_url = src.as_str();
    let m = base.join("web01");
    ok(&["init", &target, "--pack-size", "128KiB"], "target-pw");
    ok(
        &[
            "target",
            "set",
            &target,
            "--lock",
            "governance",
            "--lock-days",
            "1d",
            "--lock-margin",
            "0d",
        ],
        "target-pw",
    );
    fixtures::machine_tree(&m, 0);
    // One copy per point, so each point's own data sits in packs of its own.
    for i in 0..3u64 {
        // Each point has data of its own, so forgetting one frees packs.
        std::fs::write(m.join(format!("etc/only-{i}")), offsite_bytes(i, 300 << 10)).unwrap();
        if i > 0 {
            std::fs::remove_file(m.join(format!("etc/only-{}", i - 1))).unwrap();
        }
        backup(src_url, &base, "web01");
        let copied: serde_json::Value = serde_json::from_str(&ok(
            &["copy", "--from", src_url, "--to", &target, "--json"],
            "pw",
        ))
        .unwrap();
        // The first copy wrote every pack and point locked: nothing to look at; later
        // ones look at the older packs their points reuse, and only those.
        let looked = copied["locks"]["looked"].as_u64().unwrap();
        assert_eq!(looked == 0, i == 0, "{copied}");
    }

    let open = async |clock: Option<Arc<ManualClock>>| {
        let loc = offsite::store::open(&target, false).unwrap();
        let r = Repository::open(loc, b"target-pw").await.unwrap();
        Arc::new(match clock {
            Some(c) => r.with_clock(c),
            None => r,
        })
    };
    let repo = open(None).await;
    let points = repo.load_points().await.unwrap();
    assert_eq!(points.len(), 3);
    let (first, middle) = (points[0].0, points[1].0);
    let policy = Policy {
        keep: 1,
        weekly: 52,
        ..Policy::default()
    };
    let opts = ForgetOptions {
        policy,
        ..Default::default()
    };

    // Now: the newest is kept, the first is flagged for the week (52 weeks), the middle
    // one is let go but still locked: kept, and said so.
    let r = offsite::retention::forget(&repo, &opts, &chrono::Utc)
        .await
        .unwrap();
    let mr = &r.machines[0];
    assert_eq!(mr.forgotten.len(), 0, "{r:?}");
    assert_eq!(mr.locked.iter().map(|l| l.id).collect::<Vec<_>>(), [middle]);
    let hold = r.locks.clone().expect("the flag's packs were held");
    assert!(hold.extended >= 2, "{hold:?}");
    let s3 = repo.loc.extra.clone().unwrap();
    let state = |name: String| {
        let (s3, key) = (s3.clone(), repo.loc.path(&name).to_string());
        async move { s3.state(&key).await.unwrap() }
    };
    let year = Utc::now() + chrono::Duration::days(300);
    assert!(
        state(offsite::format::point_name(&first))
            .await
            .locked_until()
            .unwrap()
            > year
    );
    let index = repo.load_index().await.unwrap();
    let first_tree = points[0].1.tree[0];
    let pack = offsite::format::pack_name(&index.pack_id(index.get(&first_tree).unwrap().pack));
    assert!(
        state(pack).await.locked_until().unwrap() > year,
        "the flagged point's tree pack"
    );

    // Three days on, the middle point's lock is over: forget deletes it.
    let later = Arc::new(ManualClock::new(Utc::now() + chrono::Duration::days(3)));
    let r = offsite::retention::forget(&open(Some(later.clone())).await, &opts, &chrono::Utc)
        .await
        .unwrap();
    assert_eq!(
        r.machines[0]
            .forgotten
            .iter()
            .map(|f| f.id)
            .collect::<Vec<_>>(),
        [middle]
    );

    // Prune today: what only the middle point used is still locked, so it stays.
    let popts = offsite::prune::PruneOptions {
        grace: std::time::Duration::ZERO,
        ..Default::default()
    };
    let progress = offsite::progress::Progress::hidden();
    let p = offsite::prune::prune(&repo, &popts, &progress)
        .await
        .unwrap();
    assert!(p.packs_locked >= 1, "{p:?}");
    assert_eq!(p.packs_deleted + p.packs_rewritten, 0, "{p:?}");
    let unlock = p.next_unlock.unwrap();
    assert!(
        unlock > Utc::now() && unlock < Utc::now() + chrono::Duration::days(2),
        "{unlock}"
    );
    // Three days on, it goes.
    let p = offsite::prune::prune(&open(Some(later)).await, &popts, &progress)
        .await
        .unwrap();
    assert_eq!(p.packs_locked, 0, "{p:?}");
    assert!(p.packs_deleted + p.packs_rewritten >= 1, "{p:?}");
    ok(&["check", &target], "target-pw");

    // Every remaining point's objects are locked long enough...
    ok(&["target", "check-immutable", &target], "target-pw");
    // ...until the newest point needs longer (a flag set by hand): then the check names
    // what is short, and --extend fixes it.
    let newest = repo.load_points().await.unwrap().last().unwrap().0;
    repo.set_flag(&offsite::format::mark::Mark {
        point: newest,
        kind: offsite::format::mark::MarkKind::Monthly,
        detail: "2026-11".into(),
        set_at: Utc::now(),
        until: Some(Utc::now() + chrono::Duration::days(60)),
    })
    .await
    .unwrap();
    let o = run(&["target", "check-immutable", &target], "target-pw");
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("locked only until") && out.contains("not locked long enough"),
        "{out}"
    );
    ok(
        &["target", "check-immutable", &target, "--extend"],
        "target-pw",
    );
    ok(&["target", "check-immutable", &target], "target-pw");
    // A flag whose hold never happened (a forget that died after writing it) is held by
    // the next forget, which looks at each flagged point's own lock.
    repo.set_flag(&offsite::format::mark::Mark {
        point: newest,
        kind: offsite::format::mark::MarkKind::Yearly,
        detail: "2026".into(),
        set_at: Utc::now(),
        until: Some(Utc::now() + chrono::Duration::days(400)),
    })
    .await
    .unwrap();
    let short = run(&["target", "check-immutable", &target], "target-pw");
    assert_eq!(short.status.code(), Some(1));
    let r = offsite::retention::forget(&repo, &opts, &chrono::Utc)
        .await
        .unwrap();
    assert!(
        r.locks.as_ref().is_some_and(|h| h.extended >= 1),
        "{:?}",
        r.locks
    );
    ok(&["target", "check-immutable", &target], "target-pw");
    // And a forget with nothing short looks at the flagged points only, extends nothing.
    let r = offsite::retention::forget(&repo, &opts, &chrono::Utc)
        .await
        .unwrap();
    assert!(r.locks.is_none(), "{:?}", r.locks);
}

fn offsite_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A pack above the multipart threshold goes up locked too (CreateMultipartUpload with
/// the lock, parts, completion), and a second upload of it is not made again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_pack_is_locked_with_its_multipart_upload() {
    use offsite::format::config::{LockPolicy, StoragePolicy};
    use offsite::repo::Repository;
    use offsite::repo::packer::PackData;

    let Some(target) = locked_target("big") else {
        return;
    };
    ok(&["init", &target], "target-pw");
    let loc = offsite::store::open(&target, false).unwrap();
    let mut repo = Repository::open(loc.clone(), b"target-pw").await.unwrap();
    repo.set_storage(StoragePolicy {
        data_class: Some("GLACIER".into()),
        lock: Some(LockPolicy {
            mode: LockMode::Governance,
            days: 3,
            margin_days: 1,
        }),
    })
    .await
    .unwrap();
    repo.multipart_threshold = 1 << 20;
    let bytes = offsite_bytes(7, 20 << 20);
    let id = offsite::Id::hash(&bytes);
    repo.save_pack(&id, PackData::Memory(bytes.clone()), Some("GLACIER"))
        .await
        .unwrap();
    let name = offsite::format::pack_name(&id);
    let st = loc
        .extra
        .clone()
        .unwrap()
        .state(loc.path(&name).as_ref())
        .await
        .unwrap();
    assert_eq!(st.size, bytes.len() as u64);
    assert_eq!(st.class.as_deref(), Some("GLACIER"));
    let (mode, until) = st.lock.expect("the multipart pack is locked");
    assert_eq!(mode, LockMode::Governance);
    let days = (until - Utc::now()).num_hours() as f64 / 24.0;
    assert!((3.9..4.1).contains(&days), "{days}");
    // Already there: looked at, not uploaded again.
    let puts = repo.loc.requests.snapshot().put;
    repo.save_pack(&id, PackData::Memory(bytes), Some("GLACIER"))
        .await
        .unwrap();
    assert_eq!(repo.loc.requests.snapshot().put, puts);
}

/// The Azure test container's URL with a new prefix, or `None` when no Azurite is
/// configured (a failure under CI).
fn azure_target(prefix: &str) -> Option<String> {
    match std::env::var("OFFSITE_TEST_AZURE") {
        Ok(base) => Some(format!(
            "{}/{prefix}-{}",
            base.trim_end_matches('/'),
            hex::encode(offsite::crypto::random_bytes::<6>())
        )),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "OFFSITE_TEST_AZURE is not set under CI: run the tests through localstack/run-tests.sh"
            )
        }
        Err(_) => None,
    }
}

/// Azure Blob on Azurite (which keeps the Archive tier, refuses reads of archived blobs
/// and rehydrates at once): data packs in Archive, planning without reading them, a
/// restore that shows its plan, then rehydrates only what it reads; a lock the
/// container cannot keep is refused up front; `target create|verify` on a container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_tier_azure_target_plans_without_reading_archives_and_rehydrates() {
    let Some(target) = azure_target("archive") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let (src, base) = source(d.path());
    for (i, m) in ["web01", "db01", "mail01"].iter().enumerate() {
        fixtures::machine_tree(&base.join(m), i as u64);
        backup(&src, &base, m);
    }
    ok(&["init", &target, "--pack-size", "256KiB"], "target-pw");
    let set = ok(
        &["target", "set", &target, "--data-class", "archive"],
        "target-pw",
    );
    assert!(set.contains("Archive"), "{set}");
    ok(&["copy", "--from", &src, "--to", &target], "pw");

    let loc = offsite::store::open(&target, false).unwrap();
    let repo = offsite::repo::Repository::open(loc.clone(), b"target-pw")
        .await
        .unwrap();
    let index = repo.load_index().await.unwrap();
    let (mut data, mut trees) = (0, 0);
    for (name, st, only_trees) in pack_states(&loc, &index).await {
        if only_trees {
            trees += 1;
            assert_eq!(st.class, None, "tree pack {name} is in {:?}", st.class);
        } else {
            data += 1;
            assert_eq!(st.class.as_deref(), Some("Archive"), "{name}");
            assert!(st.needs_retrieval(), "{name}: {st:?}");
        }
    }
    assert!(
        data >= 3 && trees >= 1,
        "{data} data packs, {trees} tree packs"
    );

    // The health check reads the trees and looks at the archived packs (one HEAD each)
    // instead of reading them; a pack that is gone is fetched again from the source.
    let target_repo = std::sync::Arc::new(repo);
    let source_repo = std::sync::Arc::new(
        offsite::repo::Repository::open(offsite::store::open(&src, false).unwrap(), b"pw")
            .await
            .unwrap(),
    );
    let health = |t: std::sync::Arc<offsite::repo::Repository>| {
        let s = vec![source_repo.clone()];
        async move {
            offsite::health::check_and_heal(&t, &s, &offsite::progress::Progress::hidden())
                .await
                .unwrap()
        }
    };
    let h = health(target_repo.clone()).await;
    assert!(h.is_healthy() && h.blobs_bad == 0, "{h:?}");
    assert!(h.archived_packs >= 3 && h.archived_suspect == 0, "{h:?}");
    assert!(!h.retrieval.clone().unwrap_or_default().is_empty(), "{h:?}");
    let gone = index
        .packs()
        .iter()
        .map(|p| offsite::format::pack_name(&p.id))
        .find(|n| {
            index.blobs().any(|(_, l)| {
                offsite::format::pack_name(&index.pack_id(l.pack)) == *n
                    && l.kind == offsite::format::pack::BlobKind::Data
            })
        })
        .unwrap();
    use object_store::ObjectStoreExt;
    loc.store.delete(&loc.path(&gone)).await.unwrap();
    let h = health(target_repo.clone()).await;
    assert!(h.blobs_healed >= 1 && h.is_healthy(), "{h:?}");
    assert_eq!(h.archived_packs + 1, data, "{h:?}");
    let index = target_repo.load_index().await.unwrap();
    // The healed blobs went into new packs: one, or two when re-sealed they pass the
    // pack size (which pack was deleted depends on the random pack ids). Count again.
    let states = pack_states(&loc, &index).await;
    let data = states.iter().filter(|(_, _, t)| !t).count();
    for (name, st, only_trees) in &states {
        assert!(
            *only_trees || st.needs_retrieval(),
            "data pack {name}: {st:?}"
        );
    }

    // Azurite refuses reads of archived blobs: none of these reads one.
    ok(&["points", &target], "target-pw");
    let ls = ok(&["ls", &target, "latest"], "target-pw");
    assert!(ls.contains("etc/hostname"), "{ls}");
    ok(&["check", &target], "target-pw");

    // The plan first, in Azure's priorities; nothing asked or written.
    let to = d.path().join("restored");
    let o = run(
        &[
            "restore",
            &target,
            "latest",
            "--machine",
            "web01",
            "--to",
            to.to_str().unwrap(),
        ],
        "target-pw",
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("retrieval plan:")
            && err.contains("--retrieve standard")
            && err.contains("--retrieve expedited")
            && !err.contains("--retrieve bulk"),
        "{err}"
    );
    assert!(!to.exists(), "a refused restore wrote {}", to.display());
    let archived = async || {
        pack_states(&loc, &index)
            .await
            .iter()
            .filter(|(_, st, _)| st.needs_retrieval())
            .count()
    };
    assert_eq!(archived().await, data, "the plan rehydrated something");

    ok(
        &[
            "restore",
            &target,
            "latest",
            "--machine",
            "web01",
            "--to",
            to.to_str().unwrap(),
            "--retrieve",
            "expedited",
            "--retrieve-poll",
            "1s",
        ],
        "target-pw",
    );
    same_tree(&base.join("web01"), &to.join("web01"));
    let rehydrated = data - archived().await;
    assert!(
        rehydrated >= 1 && rehydrated < data,
        "{rehydrated} of {data} data packs rehydrated"
    );

    // check --read-data reads every pack: the rest are planned and priced first, then
    // rehydrated with --retrieve, and every byte checks.
    let o = run(&["check", &target, "--read-data"], "target-pw");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{} of {} pack(s) are archived",
            data - rehydrated,
            data + trees
        )) && err.contains("check --read-data reads"),
        "{err}"
    );
    assert_eq!(archived().await, data - rehydrated);
    let out = ok(
        &[
            "check",
            &target,
            "--read-data",
            "--retrieve",
            "standard",
            "--retrieve-poll",
            "1s",
        ],
        "target-pw",
    );
    assert!(out.contains("no errors"), "{out}");
    assert_eq!(archived().await, 0);

    // Azurite has no version-level immutability: a lock is refused before anything is
    // written, and the container's check says how to get one.
    let o = run(
        &[
            "target",
            "set",
            &target,
            "--lock",
            "governance",
            "--lock-days",
            "30d",
        ],
        "target-pw",
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("version-level immutability") && err.contains("Nothing was changed"),
        "{err}"
    );
    let repo = offsite::repo::Repository::open(loc.clone(), b"target-pw")
        .await
        .unwrap();
    assert!(repo.config.storage.lock.is_none());
    let container = format!(
        "az://offsite-new-{}",
        hex::encode(offsite::crypto::random_bytes::<4>())
    );
    let out = ok(&["target", "create", &container], "");
    assert!(
        out.contains("created container") && out.contains("ready for offsite"),
        "{out}"
    );
    let o = run(
        &[
            "target",
            "verify",
            &container,
            "--object-lock",
            "governance",
        ],
        "",
    );
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("no version-level immutability") && out.contains("terraform/azure"),
        "{out}"
    );
}
