//! The memory budget holds: under a small `--memory`, a copy's peak memory does not grow
//! with the blobs it copies — the source index, the plan's sets and its reads spill to
//! the cache directory — and nothing is left there afterwards. Repositories of tiny
//! blobs are generated straight through the library (`testkit::genrepo`), and each copy
//! runs as its own process so its peak resident memory can be read when it ends.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use offsite::repo::{InitOptions, Repository};
use offsite::testkit::genrepo;

const BIN: &str = env!("CARGO_BIN_EXE_offsite");

/// A folder repository of `blobs` tiny blobs in one point, written by a process of its
/// own ([`generate_helper`]): a child's peak memory counts its parent's at the time it
/// was started (Linux carries the high-water mark across exec), so the test process
/// stays small.
fn generated(dir: &Path, blobs: u64) -> String {
    let url = dir.to_str().unwrap().to_string();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "generate_helper", "--ignored", "--nocapture"])
        .env("GENREPO_DIR", &url)
        .env("GENREPO_BLOBS", blobs.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("config").exists(), "nothing generated at {url}");
    url
}

/// Writes the repository [`generated`] asks for (nothing without its variables).
#[test]
#[ignore = "run by the memory-budget test as a process of its own"]
fn generate_helper() {
    let (Ok(url), Ok(blobs)) = (std::env::var("GENREPO_DIR"), std::env::var("GENREPO_BLOBS"))
    else {
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let loc = offsite::store::open(&url, true).unwrap();
        let opts = InitOptions {
            kdf: offsite::keys::DRY_RUN_KDF,
            ..Default::default()
        };
        let repo = Arc::new(Repository::init(loc, b"pw", opts).await.unwrap());
        let blobs = blobs.parse().unwrap();
        genrepo::generate(&repo, blobs, 1, 7, |_, _| {})
            .await
            .unwrap();
    });
}

/// Runs `offsite ARGS` (it must succeed) and returns its peak resident memory in KiB.
// Reaped by wait4 below, which also gives its resource usage (std's wait does not).
#[allow(clippy::zombie_processes)]
fn peak_kib(args: &[&str]) -> i64 {
    // Its errors go to a file: a pipe nobody reads could fill and stop it.
    let mut err = tempfile::tempfile().unwrap();
    let child = Command::new(BIN)
        .args(args)
        .env("OFFSITE_PASSWORD", "pw")
        .env("OFFSITE_TARGET_PASSWORD", "pw")
        .env("OFFSITE_KDF", "1024,1,1")
        .stdout(std::process::Stdio::null())
        .stderr(err.try_clone().unwrap())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: `rusage` is plain data that wait4 fills in; `child` is ours and waited
    // for nowhere else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        use std::io::{Read, Seek};
        let mut text = String::new();
        err.rewind().unwrap();
        err.read_to_string(&mut text).unwrap();
        panic!("offsite {args:?} failed ({status}): {text}");
    }
    usage.ru_maxrss
}

/// Measured here: 150,000 → 450,000 blobs at `--memory 8MiB` 60 → 62 MiB; with a budget
/// of 4 GiB (nothing spills) 71 → 115 MiB, which fails this test. The copies read one
/// range at a time into packs of 1 MiB, so what else they hold is small and steady.
#[test]
fn a_copy_under_a_small_budget_does_not_grow_with_its_blobs() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let mut peaks = Vec::new();
    for (name, blobs) in [("small", 150_000), ("large", 450_000)] {
        let src = generated(&d.path().join(name), blobs);
        let dst = d.path().join(format!("{name}-copy"));
        let dst = dst.to_str().unwrap();
        peak_kib(&["init", dst, "--pack-size", "1MiB"]);
        let peak = peak_kib(&[
            "--memory",
            "8MiB",
            "--cache-dir",
            cache.to_str().unwrap(),
            "copy",
            "--from",
            &src,
            "--to",
            dst,
            "--connections",
            "1",
        ]);
        peaks.push(peak);
        assert!(
            std::fs::read_dir(&cache).unwrap().next().is_none(),
            "spill files are unlinked as they are made"
        );
        // Every blob arrived: the copy checks clean, reading all of it.
        peak_kib(&["check", dst, "--read-data"]);
    }
    let grown = peaks[1] - peaks[0];
    assert!(
        grown < 20 << 10,
        "300,000 more blobs took {grown} KiB more ({} → {} KiB) under an 8 MiB budget",
        peaks[0],
        peaks[1]
    );
}
