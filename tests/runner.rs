//! The job runner as an operator meets it, through the binary: a source lost for a
//! day, a run outside the copy window, a wrong password caught by `job validate`, what
//! a killed runner leaves behind.

mod conformance;

use std::path::PathBuf;

use conformance::bin::*;
use conformance::fixtures;

/// Two folder sources (web01 in the first, app01 in the second) and a jobs file for a
/// job copying both into a folder target, with a report folder, a post-job script that
/// writes what it is told, and `extra` keys of the job.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    src: [String; 2],
    jobs: String,
}

impl Setup {
    fn new(extra: &str) -> Setup {
        Setup::build(extra, None, "")
    }

    /// [`Setup::new`] with the second source at `second` (not made here) when given,
    /// and `report` keys added to `[job.report]`.
    fn build(extra: &str, second: Option<&str>, report: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let mut src = ["src1", "src2"].map(|s| root.join(s).to_str().unwrap().to_string());
        if let Some(url) = second {
            src[1] = url.to_string();
        }
        for s in &src[..if second.is_some() { 1 } else { 2 }] {
            ok(&["init", s]);
        }
        let post = root.join("post.log");
        let text = format!(
            r#"[[job]]
name = "nightly"
max_tasks = 2
{extra}

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
keep = 5

[job.post_script]
command = ["sh", "-c", "echo \"$OFFSITE_RESULT unprotected=$OFFSITE_UNPROTECTED copied=$OFFSITE_POINTS_COPIED\" >> {}"]

[job.report]
dir = "{}"
{report}
"#,
            src[0],
            src[1],
            root.join("copies").display(),
            post.display(),
            root.join("reports").display(),
        );
        let jobs = root.join("jobs.toml");
        std::fs::write(&jobs, text).unwrap();
        let jobs = jobs.to_str().unwrap().to_string();
        Setup {
            _dir: dir,
            root,
            src,
            jobs,
        }
    }

    /// A new point of `machine` in source `i`, its files made from `seed`.
    fn backup(&self, i: usize, machine: &str, seed: u64) {
        let files = self.root.join("files");
        let m = files.join(machine);
        let _ = std::fs::remove_dir_all(&m);
        fixtures::machine_tree(&m, seed);
        let (b, p) = (files.to_str().unwrap(), m.to_str().unwrap());
        ok(&["backup", &self.src[i], "--machine", machine, "--base", b, p]);
    }

    /// `job run --once --json`: the exit code and the job's report.
    fn run(&self) -> (i32, serde_json::Value) {
        let o = offsite(
            &["job", "run", "--config", &self.jobs, "--once", "--json"],
            Some("pw"),
        );
        let out = String::from_utf8_lossy(&o.stdout);
        let v: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{e}: {out}\n{}", String::from_utf8_lossy(&o.stderr)));
        (o.status.code().unwrap_or(-1), v[0].clone())
    }

    fn post_log(&self) -> String {
        std::fs::read_to_string(self.root.join("post.log")).unwrap_or_default()
    }

    fn reports(&self) -> Vec<PathBuf> {
        let dir = self.root.join("reports/nightly");
        let mut all: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        all.retain(|p| p.extension().is_some_and(|e| e == "json"));
        all.sort();
        all
    }
}

fn row<'a>(r: &'a serde_json::Value, machine: &str) -> &'a serde_json::Value {
    let rows = r["machines"].as_array().unwrap();
    rows.iter()
        .find(|m| m["machine"] == machine)
        .unwrap_or_else(|| panic!("no row for {machine}: {r}"))
}

fn moved(from: &str) -> String {
    let to = format!("{from}.away");
    std::fs::rename(from, &to).unwrap();
    to
}

/// A source that cannot be read for an interval: the other source's machines are
/// copied, the lost one's machine is unprotected with the reason, the run exits 3,
/// and the report file, the post-job script, the webhook (on problems: that run only)
/// and `job status` all say so. With the source back, the next run copies what it
/// missed.
#[test]
fn an_unreachable_source_leaves_the_others_copied() {
    let (hook, sent) = webhook_receiver();
    let s = Setup::build(
        "",
        None,
        &format!("webhook_url = \"{hook}\"\nwebhook_on = \"problems\""),
    );
    s.backup(0, "web01", 1);
    s.backup(1, "app01", 2);
    let (code, r) = s.run();
    assert_eq!((code, r["outcome"].as_str()), (0, Some("success")), "{r}");

    let away = moved(&s.src[1]);
    s.backup(0, "web01", 3);
    let (code, r) = s.run();
    assert_eq!(code, 3, "{r}");
    assert_eq!(r["outcome"], "warning", "{r}");
    assert_eq!(row(&r, "web01")["result"], "copied", "{r}");
    let app = row(&r, "app01");
    assert_eq!(app["result"], "unprotected", "{r}");
    let why = app["reason"].as_str().unwrap();
    assert!(why.contains(&s.src[1]), "names the source: {why}");
    assert!(r["errors"][0].as_str().unwrap().contains(&s.src[1]), "{r}");
    assert_eq!(s.reports().len(), 2, "a report file for each run");
    let body = sent
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the webhook");
    let hooked: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        hooked["outcome"], "warning",
        "the problem run's report: {hooked}"
    );
    assert!(
        s.post_log()
            .ends_with("warning unprotected=app01 copied=1\n"),
        "{}",
        s.post_log()
    );
    let status = offsite(
        &["job", "status", "--config", &s.jobs, "--json"],
        Some("pw"),
    );
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(
        status.status.code(),
        Some(3),
        "job status works with a source down: {text}"
    );
    let st: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(st[0]["last_result"], "warning", "{st}");
    let down = &st[0]["sources"][1];
    assert!(down["error"].is_string(), "{st}");
    let app = st[0]["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["machine"] == "app01");
    assert!(app.is_some_and(|m| m["source_error"].is_string()), "{st}");

    // Back, with two points made meanwhile: both are copied (oldest first).
    std::fs::rename(&away, &s.src[1]).unwrap();
    s.backup(1, "app01", 4);
    s.backup(1, "app01", 5);
    let (code, r) = s.run();
    assert_eq!((code, r["outcome"].as_str()), (0, Some("success")), "{r}");
    assert_eq!(row(&r, "app01")["result"], "copied", "{r}");
    assert_eq!(row(&r, "app01")["points_copied"], 2, "caught up: {r}");
}

/// A target that cannot be reached: nothing can be copied, the run fails (exit 1),
/// and the report is still written locally with every machine unprotected.
#[test]
fn an_unreachable_target_still_writes_the_report() {
    let s = Setup::new("");
    s.backup(0, "web01", 1);
    s.backup(1, "app01", 2);
    // The target's parent is a file: no folder can be made there.
    std::fs::write(s.root.join("copies"), "not a folder").unwrap();
    let (code, r) = s.run();
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["outcome"], "failed", "{r}");
    assert!(r["not_started"].as_str().unwrap().contains("copies"), "{r}");
    for m in ["web01", "app01"] {
        assert_eq!(row(&r, m)["result"], "unprotected", "{r}");
    }
    let files = s.reports();
    assert_eq!(files.len(), 1, "{files:?}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
    assert_eq!(written["outcome"], "failed");
}

/// Outside the copy window: deferred (exit 3), every machine in the table with when
/// the window opens, and the post-job script is told.
#[test]
fn a_run_outside_the_window_is_deferred() {
    // A window of one minute, twelve hours from now: closed now, whatever the clock.
    let now = chrono::Local::now() + chrono::Duration::hours(12);
    let from = now.format("%H:%M").to_string();
    let to = (now + chrono::Duration::minutes(1))
        .format("%H:%M")
        .to_string();
    let s = Setup::new(&format!("windows = [\"daily {from}-{to}\"]"));
    s.backup(0, "web01", 1);
    s.backup(1, "app01", 2);
    let (code, r) = s.run();
    assert_eq!(code, 3, "{r}");
    assert_eq!(r["outcome"], "deferred", "{r}");
    for m in ["web01", "app01"] {
        let m = row(&r, m);
        assert_eq!(m["result"], "deferred", "{r}");
        assert!(
            m["reason"].as_str().unwrap().contains("the next opens at"),
            "{r}"
        );
    }
    assert!(
        s.post_log()
            .starts_with("deferred unprotected=app01,web01 copied=0"),
        "{}",
        s.post_log()
    );
}

/// Every file under `dir` whose name ends in `#DIGITS` (a folder store's staging file).
fn staging_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(staging_files(&p));
        } else if p.file_name().unwrap().to_string_lossy().contains('#') {
            out.push(p);
        }
    }
    out
}

/// What a runner killed with SIGKILL leaves — its lock, a half-written staging file in
/// the folder target — is gone after the next run, which says so; prune finds and
/// removes a stray staging file too.
#[test]
fn the_next_run_clears_up_after_a_killed_runner() {
    let s = Setup::new("");
    s.backup(0, "web01", 1);
    s.backup(1, "app01", 2);
    assert_eq!(s.run().0, 0);
    s.backup(0, "web01", 3);
    let mut killed = std::process::Command::new(BIN)
        .args(["job", "run", "--config", &s.jobs, "--once"])
        .env("OFFSITE_KDF", "256,1,1")
        .env("OFFSITE_PASSWORD", "pw")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    killed.kill().unwrap();
    killed.wait().unwrap();
    // As a write cut short leaves it (whether or not the kill landed mid-write).
    let target = s.root.join("copies/nightly");
    let stray = target.join(format!("data/00/{}#7", "0".repeat(64)));
    std::fs::create_dir_all(stray.parent().unwrap()).unwrap();
    std::fs::write(&stray, vec![1u8; 1 << 20]).unwrap();

    let (code, r) = s.run();
    assert_eq!(code, 0, "{r}");
    assert!(r["swept"]["staging_files"].as_u64().unwrap() >= 1, "{r}");
    assert!(
        staging_files(&target).is_empty(),
        "{:?}",
        staging_files(&target)
    );
    let locks: Vec<_> = std::fs::read_dir(target.join("locks")).unwrap().collect();
    assert!(locks.is_empty(), "no lock left: {locks:?}");

    std::fs::write(&stray, vec![1u8; 1 << 20]).unwrap();
    // Written ten minutes ago (prune leaves one a disagreeing clock makes look new).
    let ago = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    let f = std::fs::File::options().write(true).open(&stray).unwrap();
    f.set_modified(ago).unwrap();
    drop(f);
    let t = target.to_str().unwrap();
    let dry = json(&["prune", t, "--dry-run", "--json"]);
    assert_eq!(dry["staging_files"], 1, "{dry}");
    assert!(stray.exists(), "a dry run removes nothing");
    let done = json(&["prune", t, "--json"]);
    assert_eq!(
        (
            done["staging_files"].as_u64(),
            done["staging_bytes"].as_u64()
        ),
        (Some(1), Some(1 << 20)),
        "{done}"
    );
    assert!(!stray.exists());
}

/// A source behind a dead S3 endpoint (nothing listens there): the folder source's
/// machine is copied, the run warns (exit 3) and names the S3 source.
#[test]
fn a_dead_s3_endpoint_leaves_the_other_source_copied() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let s = Setup::build("", Some("s3://offsite-test/dead-endpoint"), "");
    s.backup(0, "web01", 1);
    let env = [
        ("OFFSITE_PASSWORD", "pw"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let o = with_env(
        &["job", "run", "--config", &s.jobs, "--once", "--json"],
        &env,
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let r: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let r = &r[0];
    assert_eq!(o.status.code(), Some(3), "{r}");
    assert_eq!(row(r, "web01")["result"], "copied", "{r}");
    let errors = r["errors"].to_string();
    assert!(errors.contains("s3://offsite-test/dead-endpoint"), "{r}");
}

/// `-q`: the commands that act print nothing when all went well.
#[test]
fn quiet_means_quiet() {
    let s = Setup::new("");
    let files = s.root.join("files");
    fixtures::machine_tree(&files.join("web01"), 1);
    let (b, p) = (files.to_str().unwrap(), files.join("web01"));
    let p = p.to_str().unwrap();
    for args in [
        vec![
            "backup",
            &s.src[0],
            "--machine",
            "web01",
            "--base",
            b,
            p,
            "-q",
        ],
        vec!["job", "run", "--config", &s.jobs, "--once", "-q"],
        vec!["prune", &s.src[0], "-q"],
    ] {
        let o = offsite(&args, Some("pw"));
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&o.stdout), "", "{args:?} printed");
    }
}

/// `job run --once --metrics-file`: the run's metrics for a textfile collector; a run
/// that does not succeed keeps the last success from the file it replaces.
#[test]
fn a_scheduled_run_writes_its_metrics_file() {
    let s = Setup::new("");
    s.backup(0, "web01", 1);
    s.backup(1, "app01", 2);
    let prom = s.root.join("offsite.prom");
    let p = prom.to_str().unwrap();
    let run = || {
        offsite(
            &[
                "job",
                "run",
                "--config",
                &s.jobs,
                "--once",
                "--metrics-file",
                p,
                "-q",
            ],
            Some("pw"),
        )
    };
    let value = |series: &str| -> f64 {
        let text = std::fs::read_to_string(&prom).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(run().status.success());
    let success = value("offsite_job_last_success_timestamp_seconds{job=\"nightly\"}");
    assert_eq!(value("offsite_job_last_outcome{job=\"nightly\"}"), 0.0);
    assert_eq!(
        value("offsite_machine_protected{job=\"nightly\",machine=\"app01\"}"),
        1.0
    );

    moved(&s.src[1]);
    assert_eq!(run().status.code(), Some(3));
    assert_eq!(value("offsite_job_last_outcome{job=\"nightly\"}"), 1.0);
    assert_eq!(
        value("offsite_job_last_success_timestamp_seconds{job=\"nightly\"}"),
        success,
        "carried over"
    );
}
