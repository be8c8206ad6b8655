//! Crash safety of `offsite copy`: SIGKILL at random moments, again and again. After
//! every kill the target passes `check --read-data`, every point in it restores bit for
//! bit, and a rerun adopts what the killed run uploaded instead of uploading it again.

mod conformance;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use conformance::fixtures;

const BIN: &str = env!("CARGO_BIN_EXE_offsite");
const MACHINES: [&str; 3] = ["alpha", "beta", "gamma"];

fn cmd(args: &[&str], password: &str) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("OFFSITE_KDF", "256,1,1")
        .env("OFFSITE_PASSWORD", password)
        .env("OFFSITE_TARGET_PASSWORD", "tpw");
    c
}

fn run_ok(args: &[&str], password: &str) -> String {
    let o = cmd(args, password).output().unwrap();
    assert!(
        o.status.success(),
        "offsite {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A source repository with three machines of ~16 MiB each (mostly incompressible).
fn source(dir: &Path) -> (String, PathBuf) {
    let repo = dir.join("source").to_str().unwrap().to_string();
    let data = dir.join("data");
    run_ok(&["init", &repo], "pw");
    for (i, m) in MACHINES.iter().enumerate() {
        let p = data.join(m);
        std::fs::create_dir_all(p.join("etc")).unwrap();
        std::fs::write(
            p.join("disk.img"),
            fixtures::noise(100 + i as u64, 16 << 20),
        )
        .unwrap();
        for f in 0..20 {
            std::fs::write(
                p.join(format!("etc/f{f}")),
                format!("{m} file {f}\n").repeat(100),
            )
            .unwrap();
        }
        run_ok(
            &[
                "backup",
                &repo,
                "--machine",
                m,
                "--base",
                data.to_str().unwrap(),
                p.to_str().unwrap(),
            ],
            "pw",
        );
    }
    (repo, data)
}

fn new_target(dir: &Path, n: usize) -> String {
    let t = dir.join(format!("target{n}")).to_str().unwrap().to_string();
    run_ok(&["init", &t, "--pack-size", "1MiB"], "tpw");
    t
}

fn copy(src: &str, dst: &str) -> Child {
    cmd(
        &[
            "copy", "--from", src, "--to", dst, "--points", "all", "--json",
        ],
        "pw",
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap()
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            // A staging file renamed into place between the listing and this look.
            let Ok(m) = e.metadata() else { continue };
            n += if m.is_dir() {
                dir_size(&e.path())
            } else {
                m.len()
            };
        }
    }
    n
}

/// Bytes of the whole packs in a folder repository's `data/`: objects named as packs
/// are (64 hex digits), not the staging files a killed upload leaves.
fn whole_packs(data: &Path) -> u64 {
    let mut n = 0;
    for sub in std::fs::read_dir(data).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name();
            let name = name.to_string_lossy();
            if name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit()) {
                n += f.metadata().unwrap().len();
            }
        }
    }
    n
}

/// The machines whose points are in `target`, restored and compared with their source.
fn verify(target: &str, data: &Path, verified: &mut BTreeMap<String, ()>) -> usize {
    run_ok(&["check", target, "--read-data"], "tpw");
    let pts: serde_json::Value =
        serde_json::from_str(&run_ok(&["points", target, "--json"], "tpw")).unwrap();
    let pts = pts["points"].as_array().unwrap();
    for p in pts {
        let key = format!("{target} {}", p["id"].as_str().unwrap());
        if verified.contains_key(&key) {
            continue;
        }
        let m = p["machine"].as_str().unwrap();
        let out = tempfile::tempdir().unwrap();
        run_ok(
            &[
                "restore",
                target,
                p["id"].as_str().unwrap(),
                "--to",
                out.path().to_str().unwrap(),
            ],
            "tpw",
        );
        assert_eq!(
            fixtures::digest(&out.path().join(m)),
            fixtures::digest(&data.join(m)),
            "{m} in {target}"
        );
        verified.insert(key, ());
    }
    pts.len()
}

fn written(report: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(report).unwrap();
    v["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["bytes_written"].as_u64().unwrap())
        .sum()
}

#[test]
fn twenty_kills_never_corrupt_the_target() {
    let d = tempfile::tempdir().unwrap();
    let (src, data) = source(d.path());
    // How long an undisturbed copy takes on this machine, to spread the kills over it.
    let t0 = new_target(d.path(), 0);
    let started = Instant::now();
    let full = copy(&src, &t0).wait_with_output().unwrap();
    assert!(full.status.success());
    let full_time = started.elapsed();

    let mut seed = 0x2545F4914F6CDD1Du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 1000) as f64 / 1000.0
    };
    let mut verified = BTreeMap::new();
    let (mut n, mut target) = (1, new_target(d.path(), 1));
    let mut kills = 0;
    while kills < 20 {
        let mut child = copy(&src, &target);
        std::thread::sleep(full_time.mul_f64(0.05 + 1.1 * rand()));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        if verify(&target, &data, &mut verified) == MACHINES.len() {
            n += 1;
            target = new_target(d.path(), n);
        }
    }
    // Every target finishes on a rerun and restores whole.
    for i in 1..=n {
        let t = d.path().join(format!("target{i}"));
        let t = t.to_str().unwrap();
        assert!(copy(&src, t).wait().unwrap().success());
        assert_eq!(verify(t, &data, &mut verified), MACHINES.len());
    }
    assert!(n >= 2, "the kills never let a copy finish");
}

/// Killed at about 80 % of the data, the rerun keeps every whole pack the killed copy
/// left — indexed by the killed copy's commits or adopted now, whatever the timing — and
/// uploads only the rest: at most what was not in those packs, plus a little for index,
/// points and pack headers. A bound on bytes, not on a share of a timing-dependent total.
#[test]
fn a_rerun_after_a_kill_uploads_only_what_no_whole_pack_holds() {
    let d = tempfile::tempdir().unwrap();
    let (src, data) = source(d.path());
    let t1 = new_target(d.path(), 1);
    let full = copy(&src, &t1).wait_with_output().unwrap();
    assert!(full.status.success());
    let total = written(&String::from_utf8(full.stdout).unwrap());
    let data_bytes = dir_size(&Path::new(&t1).join("data"));

    // Kill at 80% of the data; a copy that outruns the polling is tried again afresh.
    let mut t2 = String::new();
    for attempt in 2..6 {
        t2 = new_target(d.path(), attempt);
        let mut child = copy(&src, &t2);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut finished = false;
        while dir_size(&Path::new(&t2).join("data")) < data_bytes * 8 / 10 {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_micros(500));
        }
        if !finished {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        if !finished {
            break;
        }
        assert!(
            attempt < 5,
            "every copy finished before the kill at 80% could land"
        );
    }
    let left = whole_packs(&Path::new(&t2).join("data"));
    assert!(left > 0, "the kill left no whole pack to adopt");
    let rerun = copy(&src, &t2).wait_with_output().unwrap();
    assert!(rerun.status.success());
    let again = written(&String::from_utf8(rerun.stdout).unwrap());
    assert!(
        again <= total - left.min(total) + total / 20,
        "the rerun uploaded {again} bytes of {total}, though {left} were in whole packs"
    );
    let mut verified = BTreeMap::new();
    assert_eq!(verify(&t2, &data, &mut verified), MACHINES.len());
}
