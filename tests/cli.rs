//! End-to-end tests: drive the built `offsite` binary as a user would, on a folder
//! repository and on the local S3 and Azure servers.

mod conformance;

use std::path::Path;
use std::process::Command;

use conformance::fixtures;

use conformance::bin::*;

/// The whole user journey against one repository URL.
fn journey(repo: &str) {
    let src = tempfile::tempdir().unwrap();
    let web = src.path().join("web01");
    fixtures::machine_tree(&web, 5);
    let base = src.path().to_str().unwrap();

    let init = json(&["init", repo, "--json"]);
    assert_eq!(init["config"]["compression"], 3);
    let (code, err) = fails(&["init", repo], Some("pw"));
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");

    let b = json(&[
        "backup",
        repo,
        "--machine",
        "web01",
        "--job",
        "nightly",
        "--tag",
        "env=prod",
        "--base",
        base,
        web.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(b["summary"]["files"], 6);
    let point = b["point"].as_str().unwrap().to_string();
    ok(&[
        "backup",
        repo,
        "--machine",
        "db01",
        "--base",
        base,
        web.join("etc").to_str().unwrap(),
    ]);

    let pts = json(&["points", repo, "--json"]);
    assert_eq!(pts["points"].as_array().unwrap().len(), 2);
    let only = json(&["points", repo, "--machine", "web01", "--json"]);
    let p0 = &only["points"][0];
    assert_eq!(p0["id"], point.as_str());
    assert_eq!(p0["job"], "nightly");
    assert_eq!(p0["tags"]["env"], "prod");
    let table = ok(&["points", repo]);
    assert!(
        table.contains("web01") && table.contains("env=prod"),
        "{table}"
    );

    let out = tempfile::tempdir().unwrap();
    ok(&[
        "restore",
        repo,
        "latest",
        "--machine",
        "web01",
        "--to",
        out.path().to_str().unwrap(),
    ]);
    assert_eq!(
        fixtures::digest(&out.path().join("web01")),
        fixtures::digest(&web)
    );
    let out2 = tempfile::tempdir().unwrap();
    ok(&[
        "restore",
        repo,
        &point[..10],
        "--to",
        out2.path().to_str().unwrap(),
    ]);
    assert_eq!(
        fixtures::digest(&out2.path().join("web01")),
        fixtures::digest(&web)
    );

    // A subset: only etc/, and only what it needs is read.
    let part = tempfile::tempdir().unwrap();
    ok(&[
        "restore",
        repo,
        &point[..10],
        "--include",
        "web01/etc",
        "--exclude",
        "*/hostname",
        "--to",
        part.path().to_str().unwrap(),
    ]);
    let mut want = fixtures::digest(&web.join("etc"));
    want.retain(|k, _| !k.ends_with(b"hostname"));
    assert_eq!(fixtures::digest(&part.path().join("web01/etc")), want);
    assert!(!part.path().join("web01/var").exists());

    // ls: every node of the point, or those under a path; nothing restored.
    let all = ok(&["ls", repo, "latest", "--machine", "web01", "--json"]);
    let nodes: Vec<serde_json::Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        nodes.iter().filter(|n| n["kind"] == "file").count(),
        6,
        "{all}"
    );
    let etc = ok(&["ls", repo, &point[..10], "web01/etc"]);
    assert!(etc.lines().all(|l| l.contains("web01/etc")), "{etc}");
    assert!(etc.lines().count() >= 2, "{etc}");
    let (code, err) = fails(&["ls", repo, &point[..10], "web01/nope"], Some("pw"));
    assert_eq!(code, 1);
    assert!(err.contains("no path"), "{err}");

    let c = json(&["check", repo, "--read-data", "--json"]);
    assert_eq!(c["errors"].as_array().unwrap().len(), 0, "{c}");

    // Wrong or missing password: clear message, non-zero exit.
    let (code, err) = fails(&["points", repo], Some("nope"));
    assert_eq!(code, 1);
    assert!(err.contains("wrong password"), "{err}");
    let (_, err) = fails(&["points", repo], None);
    assert!(err.contains("OFFSITE_PASSWORD"), "{err}");

    // Keys: add a second password, use it, remove the first.
    let newpw = src.path().join("newpw");
    std::fs::write(&newpw, "second\n").unwrap();
    ok(&[
        "key",
        "add",
        repo,
        "--new-password-file",
        newpw.to_str().unwrap(),
    ]);
    let keys = json(&["key", "list", repo, "--json"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let first = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, err) = fails(&["key", "remove", repo, &first[..12]], Some("pw"));
    assert!(err.contains("opened the repository with"), "{err}");
    let o = Command::new(BIN)
        .args([
            "key",
            "remove",
            "--password-file",
            newpw.to_str().unwrap(),
            repo,
            &first[..12],
        ])
        .env_remove("OFFSITE_PASSWORD")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, err) = fails(&["points", repo], Some("pw"));
    assert!(err.contains("wrong password"), "{err}");
    assert!(offsite(&["points", repo], Some("second")).status.success());

    // Bad input: a path that does not exist, a point that does not exist.
    let (code, err) = fails(
        &["backup", repo, "--machine", "x", "/nonexistent/offsite"],
        Some("second"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/offsite"), "{err}");
    let (_, err) = fails(
        &["restore", repo, "deadbeef", "--to", "/tmp/x"],
        Some("second"),
    );
    assert!(err.contains("no restore point matches"), "{err}");
}

#[test]
fn journey_on_a_folder() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    journey(repo.to_str().unwrap());
    journey(&format!("file://{}", d.path().join("repo2").display()));
}

fn remote(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(format!(
            "{v}/cli-{}",
            hex::encode(offsite::crypto::random_bytes::<6>())
        )),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set under CI: run the tests through localstack/run-tests.sh")
        }
        Err(_) => None,
    }
}

#[test]
fn journey_on_s3() {
    if let Some(r) = remote("OFFSITE_TEST_S3") {
        journey(&r);
    }
}

#[test]
fn journey_on_azure() {
    if let Some(r) = remote("OFFSITE_TEST_AZURE") {
        journey(&r);
    }
}

/// check on damaged data: exit 1, names the object, writes nothing.
#[test]
fn check_exit_code_names_damage() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    let r = repo.to_str().unwrap();
    let src = d.path().join("m1");
    fixtures::machine_tree(&src, 8);
    ok(&["init", r]);
    ok(&[
        "backup",
        r,
        "--machine",
        "m1",
        "--base",
        d.path().to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    let pack = first_file(&repo.join("data"));
    std::fs::remove_file(&pack).unwrap();
    let o = offsite(&["check", r], Some("pw"));
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let name = pack.file_name().unwrap().to_str().unwrap();
    assert!(out.contains(name) && out.contains("missing"), "{out}");
    assert!(out.contains("ERROR"), "{out}");
}

fn first_file(dir: &Path) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                return p;
            }
        }
    }
    panic!("no file under {}", dir.display())
}

fn copy_ok(args: &[&str]) -> serde_json::Value {
    let o = with_env(
        args,
        &[
            ("OFFSITE_PASSWORD", "pw"),
            ("OFFSITE_TARGET_PASSWORD", "tpw"),
        ],
    );
    assert!(
        o.status.success(),
        "offsite {args:?}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

/// A backup copy job from the command line: full copy with --init, nothing new, an
/// incremental copy, dry runs that write nothing, and restores from the copy.
fn copy_journey(target: &str) {
    let d = tempfile::tempdir().unwrap();
    let src_repo = d.path().join("primary");
    let s = src_repo.to_str().unwrap();
    let base = d.path().to_str().unwrap();
    ok(&["init", s]);
    for (i, m) in ["web01", "db01"].iter().enumerate() {
        let p = d.path().join(m);
        fixtures::machine_tree(&p, 40 + i as u64);
        ok(&[
            "backup",
            s,
            "--machine",
            m,
            "--job",
            "nightly",
            "--base",
            base,
            p.to_str().unwrap(),
        ]);
    }

    // A dry run against a target that does not exist yet creates nothing.
    let plan = copy_ok(&[
        "copy",
        "--from",
        s,
        "--to",
        target,
        "--init",
        "--dry-run",
        "--json",
    ]);
    assert_eq!(plan["dry_run"], true);
    let planned: u64 = plan["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["plan"]["points"].as_u64().unwrap())
        .sum();
    assert_eq!(planned, 2);
    let o = with_env(&["points", target], &[("OFFSITE_PASSWORD", "tpw")]);
    assert!(!o.status.success(), "the dry run created the target");

    let r = copy_ok(&["copy", "--from", s, "--to", target, "--init", "--json"]);
    let chains = r["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 2);
    for c in chains {
        assert_eq!(c["status"], "copied", "{c}");
        assert!(c["requests_source"]["get"].as_u64().unwrap() > 0);
        assert!(c["requests_target"]["put"].as_u64().unwrap() > 0);
        assert!(c["bottleneck"]["limiting"].is_string());
    }
    // Nothing new: says so, copies nothing.
    let o = with_env(
        &["copy", "--from", s, "--to", target],
        &[
            ("OFFSITE_PASSWORD", "pw"),
            ("OFFSITE_TARGET_PASSWORD", "tpw"),
        ],
    );
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("nothing new to copy"), "{out}");

    // The copy is its own repository: its password, its points, bit-exact restores.
    let pts: serde_json::Value = serde_json::from_slice(
        &with_env(
            &["points", target, "--json"],
            &[("OFFSITE_PASSWORD", "tpw")],
        )
        .stdout,
    )
    .unwrap();
    let pts = pts["points"].as_array().unwrap();
    assert_eq!(pts.len(), 2);
    assert!(pts.iter().all(|p| p["source"]["point"].is_string()));
    let out = tempfile::tempdir().unwrap();
    let o = with_env(
        &[
            "restore",
            target,
            "latest",
            "--machine",
            "web01",
            "--to",
            out.path().to_str().unwrap(),
        ],
        &[("OFFSITE_PASSWORD", "tpw")],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        fixtures::digest(&out.path().join("web01")),
        fixtures::digest(&d.path().join("web01"))
    );
    let o = with_env(
        &["check", target, "--read-data"],
        &[("OFFSITE_PASSWORD", "tpw")],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));

    // Wrong target password: clear error, exit 1.
    let o = with_env(
        &["copy", "--from", s, "--to", target],
        &[
            ("OFFSITE_PASSWORD", "pw"),
            ("OFFSITE_TARGET_PASSWORD", "nope"),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wrong password"));
    // A target that does not exist, without --init: refused with advice.
    let o = with_env(
        &[
            "copy",
            "--from",
            s,
            "--to",
            d.path().join("nowhere").to_str().unwrap(),
        ],
        &[
            ("OFFSITE_PASSWORD", "pw"),
            ("OFFSITE_TARGET_PASSWORD", "tpw"),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--init"));
}

#[test]
fn copy_journey_to_a_folder() {
    let d = tempfile::tempdir().unwrap();
    copy_journey(d.path().join("offsite").to_str().unwrap());
}

#[test]
fn copy_journey_to_s3() {
    if let Some(r) = remote("OFFSITE_TEST_S3") {
        copy_journey(&r);
    }
}

#[test]
fn copy_journey_to_azure() {
    if let Some(r) = remote("OFFSITE_TEST_AZURE") {
        copy_journey(&r);
    }
}

/// Seeding: copy into a local folder, upload that folder's objects into the bucket with
/// a plain S3 tool (boto3), then `copy --map` to the bucket after new source points:
/// only the increments travel.
#[test]
fn seed_a_folder_upload_it_then_map() {
    let Some(bucket_url) = remote("OFFSITE_TEST_S3") else {
        return;
    };
    let tools = std::env::var("OFFSITE_TOOLS")
        .unwrap_or_else(|_| format!("{}/.cache/offsite-tools", std::env::var("HOME").unwrap()));
    let python = format!("{tools}/py-tools/bin/python");
    let d = tempfile::tempdir().unwrap();
    let s = d.path().join("primary");
    let s = s.to_str().unwrap();
    let base = d.path().to_str().unwrap();
    ok(&["init", s]);
    let web = d.path().join("web01");
    fixtures::machine_tree(&web, 70);
    ok(&[
        "backup",
        s,
        "--machine",
        "web01",
        "--base",
        base,
        web.to_str().unwrap(),
    ]);
    let seed = d.path().join("seed");
    copy_ok(&[
        "copy",
        "--from",
        s,
        "--to",
        seed.to_str().unwrap(),
        "--init",
    ]);

    let up = Command::new(&python)
        .args([
            concat!(env!("CARGO_MANIFEST_DIR"), "/localstack/upload_dir.py"),
            seed.to_str().unwrap(),
            &bucket_url,
        ])
        .output()
        .expect("the py-tools venv from localstack/install.sh");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );

    // A new point of web01; the mapped copy moves only what changed.
    std::fs::write(web.join("etc/new.conf"), fixtures::noise(71, 30_000)).unwrap();
    ok(&[
        "backup",
        s,
        "--machine",
        "web01",
        "--base",
        base,
        web.to_str().unwrap(),
    ]);
    let r = copy_ok(&[
        "copy",
        "--from",
        s,
        "--to",
        &bucket_url,
        "--map",
        "--points",
        "all",
        "--json",
    ]);
    let c = &r["chains"][0];
    assert_eq!(c["copied"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(c["already_copied"], 1);
    assert!(c["bytes_written"].as_u64().unwrap() < 1 << 20, "{r}");
    let o = with_env(
        &["check", &bucket_url, "--read-data"],
        &[("OFFSITE_PASSWORD", "tpw")],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

/// Retention end to end: three days of a machine, `forget --keep 1` (dry run first, then
/// for real), `prune` frees what only the forgotten days used, the repository checks
/// clean and the kept point restores bit for bit.
fn retention_journey(repo: &str) {
    let src = tempfile::tempdir().unwrap();
    let web = src.path().join("web01");
    let base = src.path().to_str().unwrap();
    ok(&["init", repo]);
    for day in 1..=3 {
        let _ = std::fs::remove_dir_all(&web);
        fixtures::machine_tree(&web, day);
        let w = web.to_str().unwrap();
        ok(&["backup", repo, "--machine", "web01", "--base", base, w]);
    }
    let (code, err) = fails(&["forget", repo], Some("pw"));
    assert_eq!(code, 1);
    assert!(err.contains("--keep"), "{err}");

    let dry = json(&["forget", repo, "--keep", "1", "--dry-run", "--json"]);
    assert_eq!(dry["machines"][0]["forgotten"].as_array().unwrap().len(), 2);
    assert_eq!(
        json(&["points", repo, "--json"])["points"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let done = json(&["forget", repo, "--keep", "1", "--json"]);
    let kept = &done["machines"][0]["kept"][0];
    assert_eq!(kept["reasons"][0]["kind"], "newest", "{done}");
    assert_eq!(
        json(&["points", repo, "--json"])["points"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let plan = json(&["prune", repo, "--grace-hours", "0", "--dry-run", "--json"]);
    let pruned = json(&["prune", repo, "--grace-hours", "0", "--json"]);
    assert!(pruned["bytes_freed"].as_u64().unwrap() > 0, "{pruned}");
    assert_eq!(
        plan["bytes_freed"], pruned["bytes_freed"],
        "the dry run said what prune did"
    );
    let check = json(&["check", repo, "--read-data", "--json"]);
    assert_eq!(check["errors"].as_array().unwrap().len(), 0, "{check}");
    let out = tempfile::tempdir().unwrap();
    let to = out.path().to_str().unwrap();
    ok(&["restore", repo, "latest", "--machine", "web01", "--to", to]);
    assert_eq!(
        fixtures::digest(&out.path().join("web01")),
        fixtures::digest(&web)
    );
}

#[test]
fn retention_on_a_folder() {
    let d = tempfile::tempdir().unwrap();
    retention_journey(d.path().join("repo").to_str().unwrap());
}

#[test]
fn retention_on_s3() {
    if let Some(r) = remote("OFFSITE_TEST_S3") {
        retention_journey(&r);
    }
}

#[test]
fn retention_on_azure() {
    if let Some(r) = remote("OFFSITE_TEST_AZURE") {
        retention_journey(&r);
    }
}

/// `job validate` names each mistake with its line and exits 1; it reaches every
/// repository (a source that is not a repository is a problem, a target base that does
/// not exist yet is not); fixed, the file is valid and `job list` shows the job.
#[test]
fn job_validate_reaches_repositories_and_names_lines() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    ok(&["init", src.to_str().unwrap()]);
    let jobs = d.path().join("jobs.toml");
    let write = |source: &Path, extra: &str| {
        let text = format!(
            "[[job]]\nname = \"nightly\"\n{extra}\n[[job.sources]]\nurl = \"{}\"\npassword_env = \"OFFSITE_PASSWORD\"\n\n[job.target]\nurl = \"{}\"\npassword_env = \"OFFSITE_PASSWORD\"\n",
            source.display(),
            d.path().join("copies").display()
        );
        std::fs::write(&jobs, text).unwrap();
    };
    let cfg = jobs.to_str().unwrap();
    write(&d.path().join("nothing-here"), "copy_every = \"soon\"");
    let (code, _) = fails(&["job", "validate", "--config", cfg], Some("pw"));
    assert_eq!(code, 1);
    let o = offsite(&["job", "validate", "--config", cfg, "--json"], Some("pw"));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["line"], 3, "{report}");

    write(&d.path().join("nothing-here"), "copy_every = \"6h\"");
    let o = offsite(&["job", "validate", "--config", cfg], Some("pw"));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() && out.contains(":5: ") && out.contains("no repository there"),
        "{out}"
    );

    write(&src, "copy_every = \"6h\"");
    assert!(ok(&["job", "validate", "--config", cfg]).contains("valid"));
    // Reaching is not enough: each key opens with the password the job gives.
    let o = offsite(
        &["job", "validate", "--config", cfg],
        Some("not the password"),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() && out.contains(":5: ") && out.contains("wrong password"),
        "{out}"
    );
    let list = ok(&["job", "list", "--config", cfg]);
    assert!(
        list.contains("every 6h from 00:00") && list.contains("copies/nightly"),
        "{list}"
    );
}

/// `job run --once` end to end: two sources (one on `second_source`), three machines,
/// the target under `target_base`. A first runner is killed mid-interval and a second
/// one finishes the interval: it creates the job's repository (or continues it) and
/// copies every machine's newest point; the next intervals copy only what is new;
/// retention keeps two points per machine; prune runs once an hour at most; the target
/// checks clean and restores bit for bit.
fn job_journey(target_base: &str, second_source: &str) {
    let d = tempfile::tempdir().unwrap();
    let src1 = d.path().join("src1");
    ok(&["init", src1.to_str().unwrap()]);
    let src1 = src1.to_str().unwrap().to_string();
    let src2 = second_source.to_string();
    ok(&["init", &src2]);
    let files = d.path().join("files");
    let backup = |repo: &str, machine: &str, seed: u64| {
        let m = files.join(machine);
        let _ = std::fs::remove_dir_all(&m);
        fixtures::machine_tree(&m, seed);
        let (b, p) = (files.to_str().unwrap(), m.to_str().unwrap());
        ok(&["backup", repo, "--machine", machine, "--base", b, p]);
    };
    backup(&src1, "web01", 1);
    backup(&src1, "db01", 2);
    backup(&src2, "app01", 3);
    let jobs = d.path().join("jobs.toml");
    let text = format!(
        r#"[[job]]
name = "nightly"
max_tasks = 2

[[job.sources]]
url = "{}"
password_env = "OFFSITE_PASSWORD"

[[job.sources]]
url = "{}"
password_env = "OFFSITE_PASSWORD"

[job.target]
url = "{}"
password_env = "OFFSITE_PASSWORD"
pack_size = "4MiB"

[job.retention]
keep = 2

[job.prune]
every = "1h"
grace = "0s"
"#,
        src1, src2, target_base
    );
    std::fs::write(&jobs, text).unwrap();
    let cfg = jobs.to_str().unwrap();
    // Killed mid-interval (wherever it is by then): the next runner is not blocked by
    // its lock (its process is gone) and adopts what it left.
    let mut first = Command::new(BIN)
        .args(["job", "run", "--config", cfg, "--once", "--json"])
        .env("OFFSITE_KDF", "256,1,1")
        .env("OFFSITE_PASSWORD", "pw")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(250));
    let _ = first.kill();
    let _ = first.wait();
    let run = || {
        let r = json(&["job", "run", "--config", cfg, "--once", "--json"]);
        assert_eq!(r[0]["outcome"], "success", "{r}");
        r[0].clone()
    };
    let result_of = |r: &serde_json::Value, m: &str| {
        r["machines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["machine"] == m)
            .map(|x| x["result"].as_str().unwrap().to_string())
    };

    // Whatever the killed runner finished counts: every machine is protected now.
    let first = run();
    for m in ["web01", "db01", "app01"] {
        let r = result_of(&first, m);
        assert!(
            matches!(r.as_deref(), Some("copied" | "up-to-date")),
            "{first}"
        );
    }
    let pruned = |r: &serde_json::Value| r["prune"].is_object();
    assert!(
        pruned(&first)
            || first["machines"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["result"] == "up-to-date"),
        "the first finished interval prunes: {first}"
    );
    let target = format!("{target_base}/nightly");
    let t = target.as_str();
    assert_eq!(
        json(&["points", t, "--json"])["points"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    for seed in [11, 12] {
        backup(&src1, "web01", seed);
        let again = run();
        assert_eq!(
            result_of(&again, "web01").as_deref(),
            Some("copied"),
            "{again}"
        );
        assert_eq!(
            result_of(&again, "db01").as_deref(),
            Some("up-to-date"),
            "{again}"
        );
        assert!(
            again.get("prune").is_none(),
            "prune is not due again within the hour: {again}"
        );
    }
    // Three points of web01 copied, two kept.
    let pts = json(&["points", t, "--machine", "web01", "--json"]);
    assert_eq!(pts["points"].as_array().unwrap().len(), 2, "{pts}");
    let check = json(&["check", t, "--read-data", "--json"]);
    assert_eq!(check["errors"].as_array().unwrap().len(), 0, "{check}");
    let out = tempfile::tempdir().unwrap();
    let to = out.path().to_str().unwrap();
    ok(&["restore", t, "latest", "--machine", "web01", "--to", to]);
    assert_eq!(
        fixtures::digest(&out.path().join("web01")),
        fixtures::digest(&files.join("web01"))
    );
    let (code, err) = fails(
        &["job", "run", "--config", cfg, "--once", "--job", "nope"],
        Some("pw"),
    );
    assert_eq!(code, 1);
    assert!(err.contains("no job named"), "{err}");
}

#[test]
fn job_run_once_on_folders() {
    let d = tempfile::tempdir().unwrap();
    let copies = d.path().join("copies");
    let src2 = d.path().join("src2");
    job_journey(copies.to_str().unwrap(), src2.to_str().unwrap());
}

#[test]
fn job_run_once_on_s3() {
    if let (Some(t), Some(s)) = (remote("OFFSITE_TEST_S3"), remote("OFFSITE_TEST_S3")) {
        job_journey(&t, &s);
    }
}

#[test]
fn job_run_once_on_azure() {
    if let (Some(t), Some(s)) = (remote("OFFSITE_TEST_AZURE"), remote("OFFSITE_TEST_AZURE")) {
        job_journey(&t, &s);
    }
}

/// GETs `url` until `ready` accepts the body (the runner updates its metrics just
/// after it prints a report).
fn get_until(url: &str, ready: impl Fn(&str) -> bool) -> (u16, String) {
    let mut last = (0, String::new());
    for _ in 0..100 {
        last = match ureq::get(url).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
            Err(_) => (0, String::new()),
        };
        if ready(&last.1) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    last
}

/// The continuous runner copies at once (an immediate job), keeps polling, serves
/// metrics (copy lag 0 once copied) and health, writes the report file, posts the
/// webhook, and stops on SIGTERM with exit 0.
#[test]
fn job_run_continuous_reports_and_stops_on_sigterm() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    ok(&["init", src.to_str().unwrap()]);
    let web = d.path().join("files/web01");
    fixtures::machine_tree(&web, 4);
    let base = d.path().join("files");
    ok(&[
        "backup",
        src.to_str().unwrap(),
        "--machine",
        "web01",
        "--base",
        base.to_str().unwrap(),
        web.to_str().unwrap(),
    ]);
    let copies = d.path().join("copies");
    let reports = d.path().join("reports");
    let (hook, received) = webhook_receiver();
    let jobs = d.path().join("jobs.toml");
    std::fs::write(
        &jobs,
        format!(
            "[[job]]\nname = \"live\"\nmode = \"immediate\"\npoll_every = \"10s\"\n[[job.sources]]\nurl = \"{}\"\npassword_env = \"OFFSITE_PASSWORD\"\n[job.target]\nurl = \"{}\"\npassword_env = \"OFFSITE_PASSWORD\"\n[job.report]\ndir = \"{}\"\nwebhook_url = \"{hook}\"\n",
            src.display(),
            copies.display(),
            reports.display(),
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(BIN)
        .args(["job", "run", "--config", jobs.to_str().unwrap(), "--json"])
        .args(["--metrics-listen", &listen])
        .env("OFFSITE_KDF", "256,1,1")
        .env("OFFSITE_PASSWORD", "pw")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    let report: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(report["outcome"], "success", "{report}");
    assert_eq!(report["machines"][0]["result"], "copied", "{report}");

    let lag = r#"offsite_copy_lag_seconds{job="live",machine="web01"} 0.0"#;
    let has = |t: &str, series: &str| t.lines().any(|l| l == series);
    let (code, text) = get_until(&format!("http://{listen}/metrics"), |t| has(t, lag));
    assert_eq!(code, 200);
    assert!(has(&text, lag), "{text}");
    let success = r#"offsite_job_intervals_total{job="live",outcome="success"} 1"#;
    assert!(has(&text, success), "{text}");
    assert!(text.contains(r#"offsite_job_requests_total{job="live",store="source",kind="get"}"#));
    let (code, body) = get_until(&format!("http://{listen}/health"), |_| true);
    assert_eq!(code, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        health["jobs"]["live"]["last_outcome"], "success",
        "{health}"
    );

    let sent = received
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the webhook is called");
    let sent: serde_json::Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(sent["job"], "live");
    let files: Vec<_> = std::fs::read_dir(reports.join("live"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(files.iter().any(|f| f.ends_with(".json")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with(".txt")), "{files:?}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let t = copies.join("live");
    assert_eq!(
        json(&["points", t.to_str().unwrap(), "--json"])["points"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// `--log-format json` writes every log line as a JSON object with its time and level
/// (for log collectors); text logs carry no colour codes when not on a terminal.
#[test]
fn logs_as_json_lines() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("repo");
    let r = repo.to_str().unwrap();
    ok(&["init", r]);
    let o = offsite(&["-vvv", "--log-format", "json", "points", r], Some("pw"));
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty());
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{v}");
    }
    let o = offsite(&["-vvv", "points", r], Some("pw"));
    assert!(
        !String::from_utf8_lossy(&o.stderr).contains('\u{1b}'),
        "no colour codes in a pipe"
    );
}

/// The container's entrypoint and default arguments are a command line the binary
/// accepts: run as written, it gets as far as reading the jobs file (exit 1 naming it,
/// not a usage error).
#[test]
fn the_dockerfile_runs_a_command_the_binary_accepts() {
    let dockerfile = include_str!("../Dockerfile");
    let array = |key: &str| -> Vec<String> {
        let line = dockerfile
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in the Dockerfile"));
        serde_json::from_str(line[key.len()..].trim()).unwrap()
    };
    let entry = array("ENTRYPOINT");
    assert_eq!(entry[0], "offsite");
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("jobs.toml");
    let mut args: Vec<String> = entry[1..].to_vec();
    for a in array("CMD") {
        args.push(match a.as_str() {
            "/etc/offsite/jobs.toml" => config.display().to_string(),
            // Any free port: the file is read before the endpoint starts.
            "0.0.0.0:9184" => "127.0.0.1:0".to_string(),
            _ => a,
        });
    }
    let o = Command::new(BIN).args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("jobs.toml"), "{err}");
}

/// `copy --via`: the chains go to an archiver (here one served in this test process),
/// the report names it, and the copy restores.
#[test]
fn copy_via_an_archiver() {
    use offsite::remote::server::{parse_token_hash, serve, token_hash};
    use offsite::remote::tasks::Tasks;
    use offsite::remote::workshop::{RepoSpec, Workshop};

    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("primary"), d.path().join("copy"));
    let (s, t) = (src.to_str().unwrap(), dst.to_str().unwrap());
    let base = d.path().to_str().unwrap();
    ok(&["init", s]);
    for (i, m) in ["web01", "db01"].iter().enumerate() {
        let p = d.path().join(m);
        fixtures::machine_tree(&p, 70 + i as u64);
        ok(&[
            "backup",
            s,
            "--machine",
            m,
            "--base",
            base,
            p.to_str().unwrap(),
        ]);
    }
    // The target exists before the archiver is asked for it.
    let made = with_env(&["init", t], &[("OFFSITE_PASSWORD", "tpw")]);
    assert!(made.status.success());
    let (spw, tpw) = (d.path().join("spw"), d.path().join("tpw"));
    std::fs::write(&spw, "pw").unwrap();
    std::fs::write(&tpw, "tpw").unwrap();
    let token = "cli-test-token-0123456789abcdef";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let url = rt.block_on(async {
        let specs = vec![
            RepoSpec {
                name: "primary".into(),
                url: s.into(),
                password: offsite::secret::Secret::File(spw.clone()),
                role: offsite::remote::workshop::Role::Source,
            },
            RepoSpec {
                name: "copy".into(),
                url: t.into(),
                password: offsite::secret::Secret::File(tpw.clone()),
                role: offsite::remote::workshop::Role::Target,
            },
        ];
        let clock: std::sync::Arc<dyn offsite::clock::Clock> =
            std::sync::Arc::new(offsite::clock::SystemClock);
        let tasks = Tasks::new(
            2,
            std::sync::Arc::new(Workshop::new(specs, clock.clone())),
            clock,
        );
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", tcp.local_addr().unwrap());
        let hash = parse_token_hash(&token_hash(token)).unwrap();
        tokio::spawn(serve(tcp, tasks, vec![hash]));
        url
    });
    let env = [
        ("OFFSITE_PASSWORD", "pw"),
        ("OFFSITE_TARGET_PASSWORD", "tpw"),
        ("OFFSITE_ARCHIVER_TOKEN", token),
    ];
    let o = with_env(
        &["copy", "--from", s, "--to", t, "--via", &url, "--json"],
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for c in r["chains"].as_array().unwrap() {
        assert_eq!(c["appliance"], url.as_str(), "{c}");
        assert_eq!(c["requests_source"]["get"], 0, "{c}");
        assert_eq!(c["copied"].as_array().unwrap().len(), 1, "{c}");
    }
    // Without the token: a clear refusal, nothing copied.
    let o = with_env(&["copy", "--from", s, "--to", t, "--via", &url], &env[..2]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("OFFSITE_ARCHIVER_TOKEN"));
    let o = with_env(&["check", t, "--read-data"], &[("OFFSITE_PASSWORD", "tpw")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    drop(rt);
}

/// SIGTERM on `offsite copy --via` mid-task: the runner cancels its appliance's task,
/// indexes what it wrote, prints its report (the chain interrupted) and exits with a
/// code of its own, not killed; no lock is left in the target; the next copy finishes
/// and leaves no pack in no index.
#[test]
fn sigterm_on_a_copy_through_an_appliance_cancels_its_task() {
    use offsite::remote::client::Appliance;
    use offsite::remote::server::{parse_token_hash, serve, token_hash};
    use offsite::remote::tasks::Tasks;
    use offsite::remote::workshop::{RepoSpec, Role, Workshop};
    use offsite::store::gated::{GatedStore, Op};

    let d = tempfile::tempdir().unwrap();
    let (src, dst) = (d.path().join("primary"), d.path().join("copy"));
    let (s, t) = (src.to_str().unwrap(), dst.to_str().unwrap());
    ok(&["init", s]);
    // 24 incompressible files of 100 KiB: one blob each, several packs of 256 KiB.
    let files = d.path().join("many");
    std::fs::create_dir_all(&files).unwrap();
    for n in 0..24u64 {
        let mut body = vec![0u8; 100 << 10];
        let mut h = blake3::Hasher::new();
        h.update(&n.to_le_bytes());
        h.finalize_xof().fill(&mut body);
        std::fs::write(files.join(format!("f{n}")), body).unwrap();
    }
    let base = d.path().to_str().unwrap();
    ok(&[
        "backup",
        s,
        "--machine",
        "many",
        "--base",
        base,
        files.to_str().unwrap(),
    ]);
    let made = with_env(&["init", t], &[("OFFSITE_PASSWORD", "tpw")]);
    assert!(made.status.success());
    let spw = d.path().join("spw");
    std::fs::write(&spw, "pw").unwrap();
    let token = "cli-sigterm-token-0123456789abcdef";
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The appliance's target uploads stop after one pack until the test opens them.
    let (url, uploads) = rt.block_on(async {
        let loc = offsite::store::open(t, false).unwrap();
        let gated = std::sync::Arc::new(GatedStore::new(loc.store.clone()));
        let uploads = gated.gate(Op::Put, "data/");
        uploads.release(1);
        let loc = offsite::store::Location::new(gated, "", t, offsite::store::StoreKind::File);
        let target =
            std::sync::Arc::new(offsite::repo::Repository::open(loc, b"tpw").await.unwrap());
        let specs = vec![RepoSpec {
            name: "primary".into(),
            url: s.into(),
            password: offsite::secret::Secret::File(spw.clone()),
            role: Role::Source,
        }];
        let clock: std::sync::Arc<dyn offsite::clock::Clock> =
            std::sync::Arc::new(offsite::clock::SystemClock);
        let workshop = Workshop::new(specs, clock.clone()).with_opened("copy", target);
        let tasks = Tasks::new(1, std::sync::Arc::new(workshop), clock);
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", tcp.local_addr().unwrap());
        let hash = parse_token_hash(&token_hash(token)).unwrap();
        tokio::spawn(serve(tcp, tasks, vec![hash]));
        (url, uploads)
    });
    let child = Command::new(BIN)
        .args([
            "copy",
            "--from",
            s,
            "--to",
            t,
            "--via",
            &url,
            "--pack-size",
            "256KiB",
            "--json",
        ])
        .env("OFFSITE_KDF", "256,1,1")
        .env("OFFSITE_PASSWORD", "pw")
        .env("OFFSITE_TARGET_PASSWORD", "tpw")
        .env("OFFSITE_ARCHIVER_TOKEN", token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let app = Appliance::new(&url, token, None).unwrap();
    rt.block_on(async {
        let second = uploads.wait_for(2);
        tokio::time::timeout(std::time::Duration::from_secs(60), second)
            .await
            .expect("the appliance's second upload");
        // Let the runner's poll see the first pack.
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    });
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    rt.block_on(async {
        // The cancel reaches the task while its upload is held; then let it land.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        uploads.open();
    });
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code().is_some(), "killed by a signal: {err}");
    assert_ne!(out.status.code(), Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a report");
    let chain = &r["chains"][0];
    assert_eq!(chain["failure"]["kind"], "interrupted", "{chain}");
    let task = rt.block_on(app.tasks()).unwrap();
    assert_eq!(
        task[0].state,
        offsite::remote::api::TaskState::Cancelled,
        "{task:?}"
    );
    let locks: Vec<_> = std::fs::read_dir(dst.join("locks"))
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(locks.is_empty(), "a lock was left: {locks:?}");
    // The next run (in-process) brings the rest; nothing is left in no index.
    let env = [
        ("OFFSITE_PASSWORD", "pw"),
        ("OFFSITE_TARGET_PASSWORD", "tpw"),
    ];
    let again = with_env(&["copy", "--from", s, "--to", t, "--json"], &env);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let o = with_env(
        &["prune", t, "--dry-run", "--json"],
        &[("OFFSITE_PASSWORD", "tpw")],
    );
    let p: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        p["unindexed_deleted"].as_u64().unwrap() + p["unindexed_left"].as_u64().unwrap(),
        0,
        "{p}"
    );
    let o = with_env(&["check", t, "--read-data"], &[("OFFSITE_PASSWORD", "tpw")]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    drop(rt);
}
