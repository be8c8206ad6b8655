//! The appliance as a process: two `offsite-archiver serve` processes next to a source
//! in the local S3 server copy into Azurite for a runner (the library's copy with
//! `via`); one is SIGKILLed mid-task and the copy still finishes. Also: TLS, the refusal
//! to serve plain HTTP beyond loopback, and no secret in logs or answers.
//!
//! Needs the servers `localstack/start.sh` starts; under CI (CI=true) a missing server
//! is a failure, not a skip.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use offsite::backup::{self, BackupOptions};
use offsite::clock::SystemClock;
use offsite::copy::{CopyOptions, PointsSpec, Selection};
use offsite::format::DATA;
use offsite::progress::Progress;
use offsite::remote::client::Appliance;
use offsite::remote::pool::{Pool, PoolOptions};
use offsite::remote::server::token_hash;
use offsite::repo::{InitOptions, Repository};

const TOKEN: &str = "appliance-test-token-0123456789abcdef";
const SOURCE_PW: &str = "source password 7f3a";
const TARGET_PW: &str = "target password 91c2";

fn base(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(b) => Some(b),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set under CI: run the tests through localstack/run-tests.sh")
        }
        Err(_) => {
            eprintln!("skipping: {var} not set (run localstack/start.sh and source its env)");
            None
        }
    }
}

fn unique() -> String {
    format!("arch-{}", hex::encode(offsite::crypto::random_bytes::<6>()))
}

/// A running appliance: its process, URL and log file.
struct Proc {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a configuration into `dir` and starts an appliance on it; `extra` is added
/// before the repositories.
fn start(dir: &Path, name: &str, repos: &[(&str, &str, &Path)], extra: &str) -> Proc {
    let mut cfg = format!(
        "listen = \"127.0.0.1:0\"\ntokens = [\"{}\"]\n{extra}\n",
        token_hash(TOKEN)
    );
    for (n, url, pw) in repos {
        cfg.push_str(&format!(
            "[[repository]]\nname = \"{n}\"\nrole = \"{}\"\nurl = \"{url}\"\npassword_file = \"{}\"\n",
            if *n == "primary" { "source" } else { "target" },
            pw.display()
        ));
    }
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, cfg).unwrap();
    spawn(&path, name, &[])
}

fn spawn(config: &Path, name: &str, args: &[&str]) -> Proc {
    let log = config.with_file_name(format!("{name}.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_offsite-archiver"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("OFFSITE_LOG", "offsite=debug,offsite_archiver=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let stdout = child.stdout.take().unwrap();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http"))
        .unwrap_or_else(|| {
            panic!(
                "{name} did not start: {line:?} {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
        .to_string();
    Proc { child, url, log }
}

/// `files[i]` bytes of incompressible data per machine, backed up into `repo`; returns
/// the folder and each machine's files.
async fn backups(repo: &Arc<Repository>, sizes: &[(&str, usize)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (n, (m, size)) in sizes.iter().enumerate() {
        let root = dir.path().join(m);
        std::fs::create_dir_all(&root).unwrap();
        let mut data = vec![0u8; *size];
        let mut h = blake3::Hasher::new();
        h.update(&(n as u64).to_le_bytes());
        h.finalize_xof().fill(&mut data);
        std::fs::write(root.join("data.bin"), &data).unwrap();
        std::fs::write(root.join("name"), m).unwrap();
        let opts = BackupOptions {
            machine: m.to_string(),
            paths: vec![root],
            base: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        backup::run(repo.clone(), opts, Progress::hidden())
            .await
            .unwrap();
    }
    dir
}

async fn init(url: &str, pw: &str, pack_size: u64) -> Arc<Repository> {
    let loc = offsite::store::open(url, true).unwrap();
    let opts = InitOptions {
        pack_size,
        kdf: offsite::keys::DRY_RUN_KDF,
        ..Default::default()
    };
    Arc::new(Repository::init(loc, pw.as_bytes(), opts).await.unwrap())
}

/// Bytes the target holds twice: packs no index lists (a dead writer's, whose blobs
/// went again) and blobs indexed in more than one pack.
async fn sent_twice(target: &Repository) -> u64 {
    let mut indexed: HashSet<offsite::Id> = HashSet::new();
    let mut seen: HashSet<offsite::Id> = HashSet::new();
    let mut twice = 0u64;
    let names = target.index_names().await.unwrap();
    for (_, f) in target.load_index_files(names).await.unwrap() {
        for p in &f.packs {
            if !indexed.insert(p.id) {
                continue;
            }
            for e in &p.entries {
                if !seen.insert(e.id) {
                    twice += u64::from(e.length);
                }
            }
        }
    }
    for m in target.list(DATA).await.unwrap() {
        let name = m.location.to_string();
        let id = name.rsplit('/').next().and_then(|n| n.parse().ok());
        if id.is_some_and(|id: offsite::Id| !indexed.contains(&id)) {
            twice += m.size;
        }
    }
    twice
}

/// A source in the local S3 server holding `machines`, an empty target in Azurite, and
/// two appliances next to them: A slow (its uploads capped at 3 MB/s, one slot, so it
/// is caught mid-task), B not. With the copy of every point through both, ready to run.
struct TwoAppliances {
    source: Arc<Repository>,
    target: Arc<Repository>,
    files: tempfile::TempDir,
    _dir: tempfile::TempDir,
    a: Proc,
    b: Proc,
    copy: CopyOptions,
}

async fn two_appliances(s3: &str, az: &str, machines: &[(&str, usize)]) -> TwoAppliances {
    let run = unique();
    let (src_url, dst_url) = (format!("{s3}/{run}/src"), format!("{az}/{run}/dst"));
    let source = init(&src_url, SOURCE_PW, 16 << 20).await;
    let files = backups(&source, machines).await;
    let target = init(&dst_url, TARGET_PW, 512 << 10).await;
    let dir = tempfile::tempdir().unwrap();
    let (spw, tpw) = (dir.path().join("src.pw"), dir.path().join("dst.pw"));
    std::fs::write(&spw, SOURCE_PW).unwrap();
    std::fs::write(&tpw, TARGET_PW).unwrap();
    let repos = [
        ("primary", src_url.as_str(), spw.as_path()),
        ("offsite", dst_url.as_str(), tpw.as_path()),
    ];
    let a = start(
        dir.path(),
        "a",
        &repos,
        "task_slots = 1\n[throttle]\nwrite = \"3MB/s\"",
    );
    let b = start(dir.path(), "b", &repos, "task_slots = 2");
    let apps = vec![
        Appliance::new(&a.url, TOKEN, None).unwrap(),
        Appliance::new(&b.url, TOKEN, None).unwrap(),
    ];
    let opts = PoolOptions {
        poll: Duration::from_millis(100),
        ..Default::default()
    };
    let pool = Pool::connect(apps, opts, Arc::new(SystemClock))
        .await
        .unwrap();
    let copy = CopyOptions {
        selection: Selection {
            points: PointsSpec::All,
            ..Default::default()
        },
        pack_size: Some(512 << 10),
        via: Some(Arc::new(pool)),
        ..Default::default()
    };
    TwoAppliances {
        source,
        target,
        files,
        _dir: dir,
        a,
        b,
        copy,
    }
}

/// A task running on `app` that has written two packs, waited for (at most two
/// minutes: A, one slot next to B's two, takes one of three chains).
async fn mid_task(app: &Appliance) -> offsite::remote::api::TaskStatus {
    let found = async {
        loop {
            let tasks = app.tasks().await.unwrap();
            if let Some(t) = tasks
                .into_iter()
                .find(|t| !t.state.is_finished() && t.packs_done >= 2)
            {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(120), found)
        .await
        .expect("appliance A running a task with two packs written")
}

/// Two appliances next to an S3 source copy three machines into Azurite; the one with a
/// task is SIGKILLed once two of its packs landed. The copy finishes on the other,
/// sends again under a quarter of the killed task's bytes, the runner reads no source
/// pack, and the target checks clean and restores bit for bit. No password or token
/// shows in the appliances' logs or answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_survives_an_appliance_killed_mid_task() {
    let (Some(s3), Some(az)) = (base("OFFSITE_TEST_S3"), base("OFFSITE_TEST_AZURE")) else {
        return;
    };
    let machines = [("big", 12 << 20), ("db", 6 << 20), ("web", 6 << 20)];
    let TwoAppliances {
        source,
        target,
        files,
        _dir,
        mut a,
        b,
        copy,
    } = two_appliances(&s3, &az, &machines).await;
    let hidden = Progress::hidden();
    let copying = offsite::copy::run(vec![source.clone()], target.clone(), &copy, &hidden);
    let a_client = Appliance::new(&a.url, TOKEN, None).unwrap();
    let kill_a = async {
        let t = mid_task(&a_client).await;
        // Let the runner's next poll collect the packs that landed.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = a_client
            .status(&t.id, 0, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(!t.state.is_finished(), "A finished before it was killed");
        a.child.kill().unwrap();
        let _ = a.child.wait();
        t
    };
    let (report, killed) = tokio::join!(copying, kill_a);
    let report = report.unwrap();

    assert_eq!(report.points_copied(), 3, "{report:#?}");
    let chain = report
        .chains
        .iter()
        .find(|c| c.chain == killed.chain)
        .unwrap();
    assert_eq!(chain.lost_appliances.len(), 1, "{chain:#?}");
    assert!(chain.lost_appliances[0].packs_kept >= 2, "{chain:#?}");
    assert_eq!(chain.appliance.as_deref(), Some(b.url.as_str()));
    for c in &report.chains {
        assert!(
            c.appliance.is_some(),
            "{}: transferred by the runner",
            c.chain
        );
        assert_eq!(
            c.requests_source.get, 0,
            "{}: the runner read the source",
            c.chain
        );
    }
    let again = sent_twice(&target).await;
    assert!(
        again * 4 < killed.bytes_total,
        "sent again {again} of the killed task's {} bytes",
        killed.bytes_total
    );

    let check = offsite::check::run(
        &target,
        &offsite::check::CheckOptions { read_data: true },
        &hidden,
    )
    .await
    .unwrap();
    assert!(check.is_ok(), "{:?}", check.errors);
    for (id, p) in target.load_points().await.unwrap() {
        let to = tempfile::tempdir().unwrap();
        offsite::restore::run(&target, &id, &p, to.path(), &hidden)
            .await
            .unwrap();
        for f in ["data.bin", "name"] {
            let want = std::fs::read(files.path().join(&p.machine).join(f)).unwrap();
            let got = std::fs::read(to.path().join(&p.machine).join(f)).unwrap();
            assert!(want == got, "{} {f} restores bit for bit", p.machine);
        }
    }

    // No secret in what the appliances said or logged.
    let b_client = Appliance::new(&b.url, TOKEN, None).unwrap();
    let mut said = format!(
        "{:?}{:?}{:?}",
        b_client.repositories().await.unwrap(),
        b_client.tasks().await.unwrap(),
        b_client.health().await.unwrap()
    );
    for p in [&a.log, &b.log] {
        said.push_str(&std::fs::read_to_string(p).unwrap());
    }
    assert!(said.contains("taken"), "the logs say what happened");
    for secret in [SOURCE_PW, TARGET_PW, TOKEN] {
        assert!(!said.contains(secret), "{secret:?} leaked");
    }
}

/// An appliance told to stop (SIGTERM) mid-task drains: `/v1/ready` answers 503 at
/// once (it does not refuse connections), its task stops at a pack boundary, and it
/// answers status until the runner has every pack it wrote; the runner keeps them and
/// the chain finishes on the other appliance. Nothing is orphaned or sent twice, and
/// the stopped appliance exits by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopping_appliance_hands_every_pack_to_its_runner() {
    let (Some(s3), Some(az)) = (base("OFFSITE_TEST_S3"), base("OFFSITE_TEST_AZURE")) else {
        return;
    };
    let machines = [("big", 12 << 20), ("db", 6 << 20), ("web", 6 << 20)];
    let TwoAppliances {
        source,
        target,
        _dir,
        mut a,
        b,
        copy,
        ..
    } = two_appliances(&s3, &az, &machines).await;
    let hidden = Progress::hidden();
    let copying = offsite::copy::run(vec![source.clone()], target.clone(), &copy, &hidden);
    let a_client = Appliance::new(&a.url, TOKEN, None).unwrap();
    let http = reqwest::Client::new();
    let stop_a = async {
        let t = mid_task(&a_client).await;
        let pid = a.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let ready = http.get(format!("{}/v1/ready", a.url)).send().await;
        let status = ready.expect("a stopping appliance still answers").status();
        (t.chain.clone(), status.as_u16())
    };
    let (report, (chain, ready)) = tokio::join!(copying, stop_a);
    let report = report.unwrap();
    assert_eq!(ready, 503, "/v1/ready while stopping");
    assert_eq!(report.points_copied(), 3, "{report:#?}");
    let c = report.chains.iter().find(|c| c.chain == chain).unwrap();
    assert_eq!(c.lost_appliances.len(), 1, "{c:#?}");
    assert!(c.lost_appliances[0].why.contains("shutting down"), "{c:#?}");
    assert!(c.lost_appliances[0].packs_kept >= 2, "{c:#?}");
    assert_eq!(c.appliance.as_deref(), Some(b.url.as_str()));
    assert_eq!(
        sent_twice(&target).await,
        0,
        "a pack orphaned or a blob sent twice"
    );
    let check = offsite::check::run(
        &target,
        &offsite::check::CheckOptions { read_data: true },
        &hidden,
    )
    .await
    .unwrap();
    assert!(check.is_ok(), "{:?}", check.errors);
    // Drained: it exits by itself, successfully.
    let mut exited = None;
    for _ in 0..100 {
        if let Some(st) = a.child.try_wait().unwrap() {
            exited = Some(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = exited.expect("the stopped appliance exits once drained");
    assert!(st.success(), "{st:?}");
    let log = std::fs::read_to_string(&a.log).unwrap();
    assert!(log.contains("drained"), "{log}");
}

/// An appliance refuses plain HTTP beyond loopback unless told, and serves HTTPS with
/// the configured certificate (a client trusting it gets in; plain HTTP does not).
#[tokio::test]
async fn tls_or_loopback_unless_told_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "x").unwrap();
    let repo = format!(
        "[[repository]]\nname = \"r\"\nrole = \"source\"\nurl = \"{}\"\npassword_file = \"{}\"\n",
        dir.path().join("repo").display(),
        pw.display()
    );
    let head = format!("tokens = [\"{}\"]\n", token_hash(TOKEN));

    let open = dir.path().join("open.toml");
    std::fs::write(&open, format!("listen = \"0.0.0.0:0\"\n{head}{repo}")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_offsite-archiver"))
        .args(["serve", "--config"])
        .arg(&open)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--insecure-http") && err.contains("[tls]"),
        "{err}"
    );
    let told = spawn(&open, "open", &["--insecure-http"]);
    assert!(told.url.starts_with("http://0.0.0.0:"), "{}", told.url);
    drop(told);

    // A private CA, and a certificate for 127.0.0.1 it signs.
    let p = |n: &str| dir.path().join(n);
    let (cert, key) = (p("cert.pem"), p("key.pem"));
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir.path())
            .args(args)
            .output()
            .expect("openssl makes the test certificates");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=offsite test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=offsite-archiver",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
    ]);
    std::fs::write(
        p("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext",
        "-out",
        "cert.pem",
    ]);
    let tls = dir.path().join("tls.toml");
    std::fs::write(
        &tls,
        format!(
            "listen = \"127.0.0.1:0\"\n{head}[tls]\ncert = \"{}\"\nkey = \"{}\"\n{repo}",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let served = spawn(&tls, "tls", &[]);
    assert!(
        served.url.starts_with("https://127.0.0.1:"),
        "{}",
        served.url
    );
    let ca = std::fs::read(p("ca.pem")).unwrap();
    let app = Appliance::new(&served.url, TOKEN, Some(&ca)).unwrap();
    let h = app.health().await.unwrap();
    assert_eq!(h.slots, 4);
    let untrusted = Appliance::new(&served.url, TOKEN, None).unwrap();
    assert!(
        untrusted.health().await.is_err(),
        "an unknown certificate is trusted"
    );
    let plain = Appliance::new(&served.url.replace("https", "http"), TOKEN, None).unwrap();
    assert!(plain.health().await.is_err(), "plain HTTP got through");
    let mut by_name: HashMap<String, Option<offsite::Id>> = HashMap::new();
    for r in app.repositories().await.unwrap() {
        by_name.insert(r.name, r.id);
    }
    assert_eq!(by_name.len(), 1, "{by_name:?}");

    // The container probe: the appliance's readiness over its TLS, without a token.
    let probe = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_offsite-archiver"))
            .args(["probe", "--url", url])
            .output()
            .unwrap()
    };
    let ready = format!("{}/v1/ready", served.url.trim_end_matches('/'));
    let out = probe(&ready);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(served);
    let out = probe(&ready);
    assert_eq!(out.status.code(), Some(1), "nothing listens any more");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unhealthy"));
}

/// The container's entrypoint and default arguments are a command line the binary
/// accepts: run as written, it gets as far as reading the configuration (exit 1 naming
/// it, not a usage error).
#[test]
fn the_dockerfile_runs_a_command_the_binary_accepts() {
    let dockerfile = include_str!("../Dockerfile");
    let array = |key: &str| -> Vec<String> {
        let line = dockerfile
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} in the Dockerfile"));
        let inner = line[key.len()..]
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']');
        inner
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect()
    };
    let entry = array("ENTRYPOINT");
    assert_eq!(entry[0], "offsite-archiver");
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("archiver.toml");
    let mut args: Vec<String> = entry[1..].to_vec();
    for a in array("CMD") {
        args.push(match a.as_str() {
            "/etc/offsite-archiver/archiver.toml" => config.display().to_string(),
            _ => a,
        });
    }
    let o = Command::new(env!("CARGO_BIN_EXE_offsite-archiver"))
        .args(&args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("archiver.toml"), "{err}");
}

/// `hash-token` prints the hash a configuration holds for a token read on stdin, and
/// refuses a short one.
#[test]
fn hash_token_prints_what_the_configuration_holds() {
    use std::io::Write;
    let run = |token: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_offsite-archiver"))
            .arg("hash-token")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(token.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let o = run(&format!("{TOKEN}\n"));
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), token_hash(TOKEN));
    let short = run("abc");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 16"));
}

/// `check` opens each repository and says which does not; a running appliance takes new
/// tokens on SIGHUP (a task submitted before the reload still finishes and is
/// collected); and every request is in the access log, refusals included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reload_and_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let (src_url, dst_url) = (
        p("src").display().to_string(),
        p("dst").display().to_string(),
    );
    let source = init(&src_url, SOURCE_PW, 1 << 20).await;
    let _files = backups(&source, &[("web", 300 << 10)]).await;
    init(&dst_url, TARGET_PW, 1 << 20).await;
    std::fs::write(p("src.pw"), SOURCE_PW).unwrap();
    std::fs::write(p("dst.pw"), TARGET_PW).unwrap();
    std::fs::write(p("bad.pw"), "wrong").unwrap();
    let (t1, t2) = (
        "first-token-0123456789abcdef",
        "second-token-0123456789abcdef",
    );
    let config = |tokens: &str, dst_pw: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\n{tokens}\n\
             [[repository]]\nname = \"primary\"\nrole = \"source\"\nurl = \"{src_url}\"\npassword_file = \"{}\"\n\
             [[repository]]\nname = \"offsite\"\nrole = \"target\"\nurl = \"{dst_url}\"\npassword_file = \"{}\"\n",
            p("src.pw").display(),
            p(dst_pw).display()
        )
    };
    let only = |t: &str| format!("tokens = [\"{}\"]", token_hash(t));
    let cfg = p("archiver.toml");
    let check = || {
        Command::new(env!("CARGO_BIN_EXE_offsite-archiver"))
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    std::fs::write(&cfg, config(&only(t1), "bad.pw")).unwrap();
    let out = check();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("repository offsite (target): does not open"),
        "{said}"
    );
    assert!(
        said.contains("repository primary (source): opens"),
        "{said}"
    );
    // Offline (deployment files checked without the cloud): the keys only — the same
    // file passes, a bad key does not.
    let offline = |cfg: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_offsite-archiver"))
            .args(["check", "--offline", "--config"])
            .arg(cfg)
            .output()
            .unwrap()
    };
    let out = offline(&cfg);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("stores not checked"), "{said}");
    let bad = p("bad.toml");
    std::fs::write(
        &bad,
        format!("task_slots = 0\n{}", config(&only(t1), "dst.pw")),
    )
    .unwrap();
    let out = offline(&bad);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("task_slots"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(&cfg, config(&only(t1), "dst.pw")).unwrap();
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let a = spawn(&cfg, "a", &[]);
    let client = |t: &str| Appliance::new(&a.url, t, None).unwrap();
    assert!(client(t1).health().await.is_ok());
    assert!(client(t2).health().await.is_err());
    // A task before the reload.
    let point = source.point_ids().await.unwrap()[0];
    let req = offsite::remote::api::TaskRequest {
        chain: "web".into(),
        mode: offsite::copy::ChainMode::PerMachine,
        sources: vec!["primary".into()],
        target: "offsite".into(),
        points: vec![offsite::remote::api::TaskPoint {
            source: 0,
            id: point,
        }],
        pack_size: 1 << 20,
        compression: offsite::copy::Compression::Target,
        map: false,
        reads_in_flight: None,
        uploads_in_flight: 2,
        lease_secs: None,
    };
    let offsite::remote::client::Submitted::Taken(id) = client(t1).submit(&req).await.unwrap()
    else {
        panic!("busy")
    };
    let both = format!(
        "{}\n[[token]]\nname = \"rotated\"\nhash = \"{}\"\nrepositories = [\"primary\", \"offsite\"]\n",
        only(t1),
        token_hash(t2)
    );
    std::fs::write(&cfg, config(&both, "dst.pw")).unwrap();
    let hup = |pid: u32| {
        let s = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(s.success());
    };
    hup(a.child.id());
    let mut took = false;
    for _ in 0..50 {
        if client(t2).health().await.is_ok() {
            took = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(took, "the new token works after SIGHUP");
    let mut done = None;
    for _ in 0..100 {
        let st = client(t1)
            .status(&id, 0, Duration::from_secs(5))
            .await
            .unwrap();
        if st.state.is_finished() {
            done = Some(st.state);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(done, Some(offsite::remote::api::TaskState::Done));
    // Only the new token now.
    let rotated = format!(
        "[[token]]\nname = \"rotated\"\nhash = \"{}\"\n",
        token_hash(t2)
    );
    std::fs::write(&cfg, config(&rotated, "dst.pw")).unwrap();
    hup(a.child.id());
    let mut refused = false;
    for _ in 0..50 {
        if client(t1).health().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refused, "the old token is refused after the second SIGHUP");
    assert!(client(t2).health().await.is_ok());
    let log = std::fs::read_to_string(&a.log).unwrap();
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("offsite::access"))
        .collect();
    assert!(access.iter().any(|l| l.contains("status=401")), "{log}");
    assert!(access.iter().any(|l| l.contains("token=rotated")), "{log}");
    assert!(log.contains("reloaded"), "{log}");
}
