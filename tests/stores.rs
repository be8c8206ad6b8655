//! Runs the conformance suite against every store: memory, the file system, the local S3
//! server (LocalStack or moto) and Azurite. The S3 and Azure suites need the servers that
//! `localstack/start.sh` starts; under CI (CI=true) a missing server is a failure, not a skip.

mod conformance;

use offsite::store::{self, Location};

fn unique() -> String {
    format!("t-{}", hex::encode(offsite::crypto::random_bytes::<8>()))
}

fn memory() -> Location {
    store::open(&format!("memory://{}/repo", unique()), true).unwrap()
}

/// Folder repositories live under one directory; each run first removes those older
/// than an hour (earlier runs': a test cannot tell when its repository is done with).
fn folder() -> Location {
    static SWEEP: std::sync::Once = std::sync::Once::new();
    let root = std::env::temp_dir().join("offsite-tests");
    SWEEP.call_once(|| {
        let old = |e: &std::fs::DirEntry| {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(3600))
        };
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            if old(&e) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
    let dir = root.join(unique());
    store::open(dir.to_str().unwrap(), true).unwrap()
}

fn remote(var: &str) -> Option<Location> {
    match std::env::var(var) {
        Ok(base) => Some(store::open(&format!("{base}/{}", unique()), false).unwrap()),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set under CI: run the tests through localstack/test.sh")
        }
        Err(_) => {
            eprintln!("skipping: {var} not set (run localstack/start.sh and source its env)");
            None
        }
    }
}

fn s3() -> Option<Location> {
    remote("OFFSITE_TEST_S3")
}

fn azure() -> Option<Location> {
    remote("OFFSITE_TEST_AZURE")
}

macro_rules! suite {
    ($store:ident, $make:expr) => {
        mod $store {
            use super::*;
            suite!(@each $make, init_and_open, backup_restore_bit_exact, dedupe_and_zero_runs,
                multipart_packs, check_finds_damage, hostile_objects, keys, locks,
                restore_reads_pack_wise, restore_failure_leaves_no_half_files,
                restore_100k_files);
            suite!(@each $make, copy_full_then_incremental, copy_recompress_and_keep,
                copy_shards_partition, copy_corrupt_source, copy_adopts_after_crash,
                copy_respects_locks, copy_dry_run_and_per_job, copy_seed_and_map);
            suite!(@each $make, two_copies_same_machines, two_copies_different_machines,
                two_copies_overlapping, copy_during_backup, copy_during_check,
                two_backups_one_source);
        }
    };
    (@each $make:expr, $($test:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                let make: fn() -> Option<Location> = $make;
                if make().is_none() {
                    return;
                }
                conformance::$test(&move || make().expect("store available")).await;
            }
        )*
    };
}

suite!(memory_store, || Some(memory()));
suite!(file_store, || Some(folder()));
suite!(s3_store, s3);
suite!(azure_store, azure);
