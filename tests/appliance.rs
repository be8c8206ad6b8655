//! Copies through in-process appliances (the real HTTP service on 127.0.0.1, the real
//! client and pool) over in-memory repositories.

use std::sync::Arc;
use std::time::Duration;

use offsite::clock::{Clock, SystemClock};
use offsite::copy::{ChainMode, Compression, CopyOptions, PointsSpec, Selection};
use offsite::progress::Progress;
use offsite::remote::api::{TaskPoint, TaskRequest};
use offsite::remote::client::{Appliance, RemoteError, Submitted};
use offsite::remote::pool::{Pool, PoolOptions, Redispatch};
use offsite::remote::server::{router, token_hash};
use offsite::remote::tasks::Tasks;
use offsite::remote::workshop::{RepoSpec, Role, Workshop};
use offsite::repo::{InitOptions, Repository};
use offsite::secret::Secret;
use offsite::store::gated::{GatedStore, Op};
use offsite::store::{Location, StoreKind};
use offsite::{Id, testkit};

const TOKEN: &str = "a-long-random-token-for-tests";
/// How long a test waits for an answer.
const T: Duration = Duration::from_secs(10);

/// A new repository at `memory://NAME` (reachable by URL, as an appliance opens it).
async fn repo_at(name: &str) -> (Arc<Repository>, String) {
    let url = format!(
        "memory://{name}-{}",
        hex::encode(offsite::crypto::random_bytes::<4>())
    );
    let loc = offsite::store::open(&url, true).unwrap();
    let opts = InitOptions {
        pack_size: 256 << 10,
        kdf: offsite::keys::DRY_RUN_KDF,
        ..Default::default()
    };
    let r = Repository::init(loc, testkit::PW, opts).await.unwrap();
    (Arc::new(r), url)
}

struct Fixture {
    source: Arc<Repository>,
    target: Arc<Repository>,
    specs: Vec<RepoSpec>,
    _files: tempfile::TempDir,
    _pw: tempfile::NamedTempFile,
}

/// A source of three machines and an empty target, and the specs an appliance needs.
async fn fixture() -> Fixture {
    let (source, src_url) = repo_at("src").await;
    let files = testkit::backups(&source, &["web", "db", "mail"]).await;
    let (target, dst_url) = repo_at("dst").await;
    let pw = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pw.path(), testkit::PW).unwrap();
    let secret = Secret::File(pw.path().to_path_buf());
    let specs = vec![
        RepoSpec {
            name: "primary".into(),
            url: src_url,
            password: secret.clone(),
            role: Role::Source,
        },
        RepoSpec {
            name: "offsite".into(),
            url: dst_url,
            password: secret,
            role: Role::Target,
        },
    ];
    Fixture {
        source,
        target,
        specs,
        _files: files,
        _pw: pw,
    }
}

/// An appliance serving on 127.0.0.1 with `slots`; returns its URL and the task that
/// serves it (abort it to make the appliance vanish).
async fn appliance(specs: Vec<RepoSpec>, slots: usize) -> (String, tokio::task::JoinHandle<()>) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    serve(Workshop::new(specs, clock), slots).await
}

async fn serve(workshop: Workshop, slots: usize) -> (String, tokio::task::JoinHandle<()>) {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    serve_tasks(Tasks::new(slots, Arc::new(workshop), clock)).await
}

/// The routes over `tasks` on a free loopback port.
async fn serve_tasks(tasks: Arc<Tasks>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    serve_on(tasks, listener)
}

/// The routes over `tasks` on `listener`; aborting the task ends every connection.
fn serve_on(
    tasks: Arc<Tasks>,
    listener: tokio::net::TcpListener,
) -> (String, tokio::task::JoinHandle<()>) {
    let hash = offsite::remote::server::parse_token_hash(&token_hash(TOKEN)).unwrap();
    let app = router(tasks, vec![hash]);
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Not axum::serve: its connections outlive an aborted server task, so a runner
    // polling over a kept-alive connection would never see the appliance vanish. Here
    // the connections live in the task's own set and die with it, as with a killed
    // process.
    let served = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = hyper_util::service::TowerToHyperService::new(app.clone());
            conns.spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
            while conns.try_join_next().is_some() {}
        }
    });
    (url, served)
}

/// An appliance (one slot) whose target uploads stop after `passing` packs: the gate
/// holds the rest until the test opens it.
async fn gated_appliance(
    f: &Fixture,
    passing: usize,
) -> (
    String,
    tokio::task::JoinHandle<()>,
    Arc<offsite::store::gated::Gate>,
) {
    let dst_url = &f.specs[1].url;
    let under = offsite::store::open(dst_url, false).unwrap().store;
    let gated = Arc::new(GatedStore::new(under));
    let uploads = gated.gate(Op::Put, "data/");
    uploads.release(passing);
    let loc = Location::new(gated, "", dst_url, StoreKind::Memory);
    let stuck = Arc::new(Repository::open(loc, testkit::PW).await.unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let workshop = Workshop::new(vec![f.specs[0].clone()], clock).with_opened("offsite", stuck);
    let (url, served) = serve(workshop, 1).await;
    (url, served, uploads)
}

/// The fixture's source copied into its target with `opts`.
async fn copy(f: &Fixture, opts: &CopyOptions) -> offsite::copy::CopyReport {
    let (s, t) = (f.source.clone(), f.target.clone());
    offsite::copy::run(vec![s], t, opts, &Progress::hidden())
        .await
        .unwrap()
}

/// Backs up machine `name` of `files` incompressible files of 100 KiB into the
/// fixture's source: each file one blob (under the chunker's minimum), so a copy's
/// pack count is the same on every run — unlike the fixture's machines, whose large
/// file is cut where each new repository's gear seed says (one blob or four), which
/// once left a test waiting for a third pack that never came.
async fn files_machine(f: &Fixture, name: &str, files: u64) -> (Id, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join(name);
    std::fs::create_dir_all(&root).unwrap();
    for n in 0..files {
        let body = testkit::bytes(900 + n, 100 << 10);
        std::fs::write(root.join(format!("f{n}")), body).unwrap();
    }
    let opts = offsite::backup::BackupOptions {
        machine: name.into(),
        paths: vec![root],
        base: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let (point, _) = offsite::backup::run(f.source.clone(), opts, Progress::hidden())
        .await
        .unwrap();
    (point, dir)
}

fn fast() -> PoolOptions {
    PoolOptions {
        poll: Duration::from_millis(20),
        lost_after: 3,
        redispatch: Redispatch::Pool,
        ..PoolOptions::default()
    }
}

async fn pool(urls: &[&str], opts: PoolOptions) -> Arc<Pool> {
    let apps = urls
        .iter()
        .map(|u| Appliance::new(u, TOKEN, None).unwrap())
        .collect();
    Arc::new(
        Pool::connect(apps, opts, Arc::new(SystemClock))
            .await
            .unwrap(),
    )
}

fn via(pool: Arc<Pool>) -> CopyOptions {
    CopyOptions {
        selection: Selection {
            points: PointsSpec::All,
            ..Default::default()
        },
        via: Some(pool),
        ..Default::default()
    }
}

/// Three chains over two appliances: every point copied, each chain's transfer done by
/// an appliance, the runner reading no source pack, and the target reads whole.
#[tokio::test]
async fn chains_spread_over_two_appliances_copy_whole_without_source_reads() {
    let f = fixture().await;
    let (a, _sa) = appliance(f.specs.clone(), 1).await;
    let (b, _sb) = appliance(f.specs.clone(), 1).await;
    let pool = pool(&[&a, &b], fast()).await;
    let report = copy(&f, &via(pool)).await;
    assert_eq!(report.points_copied(), 3, "{report:#?}");
    let used: std::collections::HashSet<&str> = report
        .chains
        .iter()
        .map(|c| c.appliance.as_deref().expect("an appliance ran the chain"))
        .collect();
    assert_eq!(used.len(), 2, "both appliances had work: {used:?}");
    for c in &report.chains {
        assert_eq!(
            c.requests_source.get, 0,
            "{}: the runner read the source",
            c.chain
        );
        assert!(c.bytes_written > 0, "{c:?}");
    }
    let check = testkit::check_read_data(&f.target).await;
    assert!(check.is_ok(), "{:?}", check.errors);

    // Again: nothing left to copy, and no task needed.
    let pool = self::pool(&[&a, &b], fast()).await;
    let again = copy(&f, &via(pool)).await;
    assert_eq!(again.points_copied(), 0);
}

fn request(point: Id) -> TaskRequest {
    TaskRequest {
        chain: "web".into(),
        mode: ChainMode::PerMachine,
        sources: vec!["primary".into()],
        target: "offsite".into(),
        points: vec![TaskPoint {
            source: 0,
            id: point,
        }],
        pack_size: 1 << 20,
        compression: Compression::Target,
        map: false,
        reads_in_flight: None,
        uploads_in_flight: 2,
        lease_secs: None,
    }
}

/// What the API refuses, with which status, before anything is written.
#[tokio::test]
async fn the_api_refuses_what_it_must_and_writes_nothing() {
    let f = fixture().await;
    let (url, _s) = appliance(f.specs.clone(), 1).await;
    let point = f.source.point_ids().await.unwrap()[0];
    let http = reqwest::Client::new();
    let post = |token: Option<&str>, body: Vec<u8>| {
        let mut r = http
            .post(format!("{url}/v1/tasks"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let body = |r: &TaskRequest| serde_json::to_vec(r).unwrap();
    let cases: Vec<(Option<&str>, Vec<u8>, u16, &str)> = vec![
        (None, body(&request(point)), 401, "bearer token"),
        (Some("wrong"), body(&request(point)), 401, "bearer token"),
        (
            Some(TOKEN),
            body(&TaskRequest {
                target: "elsewhere".into(),
                ..request(point)
            }),
            404,
            "no repository named \\\"elsewhere",
        ),
        (
            Some(TOKEN),
            body(&TaskRequest {
                target: "../offsite".into(),
                ..request(point)
            }),
            400,
            "repository name",
        ),
        (Some(TOKEN), b"{\"chain\": 1".to_vec(), 400, "malformed task"),
        (
            Some(TOKEN),
            br#"{"chain":"web","mode":"per-machine","sources":["primary"],"target":"offsite","points":"all"}"#.to_vec(),
            400,
            "malformed task",
        ),
        (Some(TOKEN), vec![b' '; offsite::remote::api::MAX_BODY + 1], 413, ""),
    ];
    for (token, b, status, says) in cases {
        let resp = post(token, b).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{says}");
        let text = resp.text().await.unwrap();
        assert!(text.contains(says), "{status}: {text}");
        assert!(!text.contains(std::str::from_utf8(testkit::PW).unwrap()));
    }
    // Every other route wants the token too.
    for path in [
        "/v1/health",
        "/v1/tasks",
        "/v1/repositories",
        "/metrics",
        "/v1/tasks/x",
    ] {
        let r = http.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{path}");
    }
    // But readiness, for orchestrators' probes, says only "ready" and needs none.
    let r = http.get(format!("{url}/v1/ready")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "ready\n");
    let data = f.target.list(offsite::format::DATA).await.unwrap();
    assert!(data.is_empty(), "a refused request wrote to the target");
    // The repositories' list names them and gives ids, never URLs or passwords.
    let app = Appliance::new(&url, TOKEN, None).unwrap();
    let repos = app.repositories().await.unwrap();
    let text = serde_json::to_string(&repos).unwrap();
    assert!(
        !text.contains("memory://") && !text.contains("unit test"),
        "{text}"
    );
    assert_eq!(repos.len(), 2);
    assert!(repos.iter().all(|r| r.id.is_some()));
}

/// A task past the appliance's slots is refused with 429 until one is free; a task can
/// be followed to its end and its outcome lists the packs it reported.
#[tokio::test]
async fn slots_bound_tasks_and_status_reports_packs_as_they_land() {
    let f = fixture().await;
    let (url, _s) = appliance(f.specs.clone(), 1).await;
    let app = Appliance::new(&url, TOKEN, None).unwrap();
    let ids = f.source.point_ids().await.unwrap();
    let Submitted::Taken(first) = app.submit(&request(ids[0])).await.unwrap() else {
        panic!("the first task is taken");
    };
    let second = app.submit(&request(ids[1])).await.unwrap();
    // The first may have finished already on a fast machine; either way, no error.
    if let Submitted::Taken(_) = second {
        let st = app.status(&first, 0, T).await.unwrap();
        assert!(st.state.is_finished(), "two tasks ran in one slot");
    }
    let st = loop {
        let st = app.status(&first, 0, T).await.unwrap();
        if st.state.is_finished() {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(st.error, None);
    assert!(
        st.packs_done > 0 && st.packs.len() == st.packs_done,
        "{st:?}"
    );
    let later = app.status(&first, st.packs_done, T).await.unwrap();
    assert!(
        later.packs.is_empty(),
        "packs_from skips what was collected"
    );
    let result = st.result.expect("a done task answers its result");
    assert!(!result.points.is_empty());
    assert!(result.points.iter().all(|p| p.failure.is_none()));
    let e = app.status("no-such-task", 0, T).await.unwrap_err();
    assert!(matches!(e, RemoteError::Gone { .. }), "{e}");
    let health = app.health().await.unwrap();
    assert_eq!((health.slots, health.busy), (1, 0));
    assert_eq!(health.api, offsite::remote::api::API_VERSION);
}

/// An appliance whose target uploads stop after two packs, and whose service then
/// vanishes: the two packs it reported are kept (indexed), and the chain goes on where
/// `policy` says — another appliance, this process, or nowhere.
async fn lose_an_appliance(policy: Redispatch) -> (Fixture, offsite::copy::CopyReport, String) {
    let f = fixture().await;
    // 24 blobs of 100 KiB in 256 KiB packs: 8 data packs, so a third always comes.
    let (_, _dir) = files_machine(&f, "many", 24).await;
    let (a, served_a, uploads) = gated_appliance(&f, 2).await;
    let (b, _sb) = appliance(f.specs.clone(), 1).await;
    let opts = PoolOptions {
        redispatch: policy,
        ..fast()
    };
    let pool = pool(&[&a, &b], opts).await;
    let one_machine = CopyOptions {
        selection: Selection {
            machines: vec!["many".into()],
            points: PointsSpec::All,
            ..Default::default()
        },
        pack_size: Some(256 << 10),
        ..via(pool)
    };
    let run = copy(&f, &one_machine);
    let lose_a = async {
        // Two packs landed and a third is held: A is mid-task. Let its runner see both.
        testkit::within(
            30,
            "a third pack upload at the appliance",
            uploads.wait_for(3),
        )
        .await;
        let app = Appliance::new(&a, TOKEN, None).unwrap();
        let reported = async {
            loop {
                let t = app.tasks().await.unwrap();
                if t.first().is_some_and(|t| t.packs_done == 2) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        testkit::within(30, "the appliance reporting two packs", reported).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        served_a.abort();
    };
    let (report, ()) = testkit::within(120, "the copy", async { tokio::join!(run, lose_a) }).await;
    uploads.open();
    (f, report, a)
}

/// Blobs indexed in more than one pack: what was uploaded twice.
async fn indexed_twice(repo: &Repository) -> usize {
    let names = repo.index_names().await.unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut twice = 0;
    for (_, f) in repo.load_index_files(names).await.unwrap() {
        for p in &f.packs {
            for e in &p.entries {
                twice += usize::from(!seen.insert(e.id));
            }
        }
    }
    twice
}

#[tokio::test]
async fn a_lost_appliances_chain_goes_to_another_and_its_packs_are_kept() {
    let (f, report, a) = lose_an_appliance(Redispatch::Pool).await;
    let c = &report.chains[0];
    assert_eq!(report.points_copied(), 1, "{report:#?}");
    assert_eq!(c.lost_appliances.len(), 1, "{c:#?}");
    assert_eq!(c.lost_appliances[0].appliance, a);
    assert_eq!(c.lost_appliances[0].packs_kept, 2);
    assert!(c.appliance.as_deref().is_some_and(|b| b != a), "{c:#?}");
    assert_eq!(
        indexed_twice(&f.target).await,
        0,
        "kept packs were sent again"
    );
    let check = testkit::check_read_data(&f.target).await;
    assert!(check.is_ok(), "{:?}", check.errors);
}

#[tokio::test]
async fn with_redispatch_local_the_runner_finishes_the_chain_itself() {
    let (f, report, _) = lose_an_appliance(Redispatch::Local).await;
    let c = &report.chains[0];
    assert_eq!(report.points_copied(), 1, "{report:#?}");
    assert_eq!((c.lost_appliances.len(), c.appliance.as_deref()), (1, None));
    assert!(c.requests_source.get > 0, "this process read the rest");
    // Said, but chosen: not a problem for the exit code.
    let fallback = c
        .fallback
        .as_ref()
        .expect("the report says the runner copied it");
    assert!(fallback.chosen, "{fallback:?}");
    assert!(!report.has_failures(), "{report:#?}");
    assert_eq!(indexed_twice(&f.target).await, 0);
    let check = testkit::check_read_data(&f.target).await;
    assert!(check.is_ok(), "{:?}", check.errors);
}

#[tokio::test]
async fn with_redispatch_fail_the_chain_fails_and_keeps_what_arrived() {
    let (f, report, _) = lose_an_appliance(Redispatch::Fail).await;
    let c = &report.chains[0];
    assert_eq!(report.points_copied(), 0);
    let why = c
        .failure
        .as_ref()
        .map(|f| f.to_string())
        .unwrap_or_default();
    assert!(why.contains("redispatch = fail"), "{c:#?}");
    let kept = f.target.index_names().await.unwrap();
    assert!(!kept.is_empty(), "the lost appliance's packs are indexed");
}

/// One interval of a daily job copying the fixture's source into its target through
/// `pools`.
async fn job_through(
    f: &Fixture,
    pools: offsite::job::archivers::ArchiversSpec,
) -> offsite::job::interval::IntervalReport {
    use offsite::job::config::{Job, SourceSpec, TargetSpec};
    let source = SourceSpec::plain(&f.specs[0].url, f.specs[0].password.clone());
    let target = TargetSpec {
        map: true,
        ..TargetSpec::plain(&f.specs[1].url, f.specs[1].password.clone())
    };
    let job = Job {
        archivers: Some(pools),
        ..Job::plain("nightly", vec![source], target)
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let stop = offsite::stop::Stop::new();
    offsite::job::run::run_once(&job, clock, &chrono::Utc, &Progress::hidden(), &stop).await
}

/// A job whose `[job.archivers]` pool is ephemeral: the start command prints the
/// appliance's URL, the transfer runs there, and the stop command gets the URLs.
#[tokio::test]
async fn a_job_runs_its_transfer_on_an_ephemeral_pool() {
    use offsite::job::archivers::ArchiversSpec;
    use offsite::job::script::{OnFailure, ScriptSpec};

    let f = fixture().await;
    let (url, _s) = appliance(f.specs.clone(), 2).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let stopped = dir.path().join("stopped");
    let sh = |c: String| ScriptSpec {
        command: vec!["sh".into(), "-c".into(), c],
        timeout: Duration::from_secs(20),
        on_failure: OnFailure::Fail,
    };
    let pools = ArchiversSpec {
        urls: Vec::new(),
        token: Secret::File(token),
        ca_file: None,
        redispatch: Redispatch::Fail,
        start: Some(sh(format!("echo starting the pool >&2; echo {url}"))),
        stop: Some(sh(format!(
            "echo \"$OFFSITE_ARCHIVERS\" > {}",
            stopped.display()
        ))),
        ready_timeout: Duration::from_secs(10),
        lease: Duration::from_secs(15),
    };
    let r = job_through(&f, pools).await;
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let a = r.archivers.as_ref().expect("the pool is in the report");
    assert_eq!((a.urls.clone(), a.ready), (vec![url.clone()], 1));
    let chains = r.copies.iter().flat_map(|c| &c.chains);
    let mut n = 0;
    for c in chains {
        assert_eq!(c.appliance.as_deref(), Some(url.as_str()), "{c:?}");
        n += 1;
    }
    assert_eq!(n, 3);
    assert_eq!(std::fs::read_to_string(&stopped).unwrap().trim(), url);
    assert_eq!(a.scripts.len(), 2);
}

/// An appliance that knows the source by two names cannot be told which one a task
/// means: it gets none of its chains, and the runner copies them itself, saying why.
#[tokio::test]
async fn a_repository_known_by_two_names_is_not_guessed() {
    let f = fixture().await;
    let mut specs = f.specs.clone();
    specs.push(RepoSpec {
        name: "primary-replica".into(),
        ..specs[0].clone()
    });
    let (url, _s) = appliance(specs, 2).await;
    let pool = pool(&[&url], fast()).await;
    let report = copy(&f, &via(pool)).await;
    assert_eq!(report.points_copied(), 3);
    for c in &report.chains {
        assert_eq!(c.appliance, None, "{c:?}");
        let fallback = c.fallback.as_ref().expect("the fallback is reported");
        assert!(!fallback.chosen, "{fallback:?}");
        assert_eq!(
            fallback.why,
            "no live archiver knows the chain's repositories"
        );
    }
    // The machines are protected, but the pool did not do its work: a problem (exit 3).
    assert!(report.has_failures(), "{report:#?}");
}

/// `DELETE /v1/tasks/{id}` stops a task at a pack boundary: it ends `cancelled`, with
/// an outcome whose packs are whole and whose points say they were interrupted; and
/// `/metrics` counts it.
#[tokio::test]
async fn a_cancelled_task_stops_at_a_pack_boundary() {
    let f = fixture().await;
    let (url, _s, uploads) = gated_appliance(&f, 1).await;
    // (the packer holds at most a few packs while two uploads wait at the gate)
    let app = Appliance::new(&url, TOKEN, None).unwrap();
    // 40 blobs, about 16 packs.
    let (many, _dir) = files_machine(&f, "many", 40).await;
    let req = TaskRequest {
        chain: "many".into(),
        pack_size: 256 << 10,
        ..request(many)
    };
    let Submitted::Taken(id) = app.submit(&req).await.unwrap() else {
        panic!("taken");
    };
    uploads.wait_for(2).await;
    app.cancel(&id, T).await.unwrap();
    // The task's own thread takes the stop at its next wake-up; only then let the held
    // upload go (else the rest could pack in one go before it looks).
    tokio::time::sleep(Duration::from_millis(200)).await;
    uploads.open();
    let st = loop {
        let st = app.status(&id, 0, T).await.unwrap();
        if st.state.is_finished() {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        st.state,
        offsite::remote::api::TaskState::Cancelled,
        "{st:?}"
    );
    let result = st.result.clone().unwrap();
    assert!(
        matches!(
            result.points[0].failure,
            Some(offsite::copy::Failure::Interrupted { .. })
        ),
        "{:?}",
        result.points
    );
    assert!(st.packs_done >= 1 && st.packs.len() == st.packs_done);
    for p in &st.packs {
        assert!(
            f.target
                .exists(&offsite::format::pack_name(&p.id))
                .await
                .unwrap()
        );
    }
    let e = app.cancel("no-such-task", T).await.unwrap_err();
    assert!(matches!(e, RemoteError::Gone { .. }), "{e}");
    let metrics = reqwest::Client::new()
        .get(format!("{url}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("offsite_archiver_tasks_cancelled_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("offsite_archiver_task_slots 1"),
        "{metrics}"
    );
}

/// One appliance with one slot and three chains side by side: the pool waits for the
/// slot instead of overfilling it or giving up, and every chain is transferred there.
#[tokio::test]
async fn chains_wait_for_a_free_slot() {
    let f = fixture().await;
    let (url, _s) = appliance(f.specs.clone(), 1).await;
    let pool = pool(&[&url], fast()).await;
    assert_eq!(pool.slots(), 1);
    let opts = CopyOptions {
        tasks: 3,
        ..via(pool)
    };
    let report = copy(&f, &opts).await;
    assert_eq!(report.points_copied(), 3);
    for c in &report.chains {
        assert_eq!(c.appliance.as_deref(), Some(url.as_str()), "{c:?}");
        assert!(c.warnings.is_empty(), "{c:?}");
    }
    let tasks = Appliance::new(&url, TOKEN, None)
        .unwrap()
        .tasks()
        .await
        .unwrap();
    assert_eq!(
        tasks.len(),
        3,
        "one task per chain, none refused and sent again"
    );
}

/// Readiness needs no token and turns 503 once the appliance is stopping, so an
/// orchestrator stops sending it work while its tasks finish their packs.
#[tokio::test]
async fn readiness_needs_no_token_and_fails_while_stopping() {
    let f = fixture().await;
    let tasks = tasks_of(&f, 1);
    let (base, _served) = serve_tasks(tasks.clone()).await;
    let url = format!("{base}/v1/ready");
    let http = reqwest::Client::new();
    assert_eq!(http.get(&url).send().await.unwrap().status().as_u16(), 200);
    tasks.stopping.stop();
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.headers()[offsite::remote::api::INSTANCE_HEADER],
        tasks.instance.as_str()
    );
    let body: offsite::remote::api::ApiError =
        serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body.error, "stopping");
}

/// An appliance of another API version is left out of the pool, by name: the runner
/// would misread its answers.
#[tokio::test]
async fn an_appliance_of_another_api_version_is_left_out() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let f = fixture().await;
    let (good, _served) = appliance(f.specs.clone(), 1).await;
    let old = MockServer::start().await;
    let health = serde_json::json!({
        "version": "0.0.1", "api": offsite::remote::api::API_VERSION + 1,
        "format": offsite::format::VERSION, "slots": 4, "busy": 0, "stopping": false,
    });
    Mock::given(method("GET"))
        .and(path("/v1/health"))
        .respond_with(ResponseTemplate::new(200).set_body_json(health))
        .mount(&old)
        .await;
    let apps = [good, old.uri()]
        .iter()
        .map(|u| Appliance::new(u, TOKEN, None).unwrap())
        .collect();
    let pool = Pool::connect(apps, fast(), Arc::new(SystemClock))
        .await
        .unwrap();
    assert_eq!(pool.len(), 1);
    let urls = format!("{pool:?}");
    assert!(!urls.contains(&old.uri()), "{urls}");
}

/// Packs in the target that no index names (what a lost or unfinished task leaves).
async fn unindexed(repo: &Repository) -> usize {
    let names = repo.index_names().await.unwrap();
    let mut indexed = std::collections::HashSet::new();
    for (_, f) in repo.load_index_files(names).await.unwrap() {
        indexed.extend(f.packs.iter().map(|p| p.id));
    }
    let stored = repo.list(offsite::format::DATA).await.unwrap();
    stored
        .iter()
        .filter_map(|m| m.location.as_ref().rsplit('/').next()?.parse::<Id>().ok())
        .filter(|id| !indexed.contains(id))
        .count()
}

/// The routes over `tasks` at `addr`; as `serve_tasks`.
async fn serve_at(tasks: Arc<Tasks>, addr: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    let hash = offsite::remote::server::parse_token_hash(&token_hash(TOKEN)).unwrap();
    let app = router(tasks, vec![hash]);
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let svc = hyper_util::service::TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    })
}

/// A per-connection balancer: each connection it accepts goes to the next of
/// `backends` (`host:port`), round robin — a Kubernetes Service or a cloud load
/// balancer in front of replicas.
async fn balancer(backends: Vec<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((mut down, _)) = listener.accept().await else {
                continue;
            };
            let to = backends[n % backends.len()].clone();
            tokio::spawn(async move {
                if let Ok(mut up) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                }
            });
        }
    });
    url
}

/// One address in front of two appliances loses tasks (a poll reaches the other): the
/// pool refuses it when it is made, saying what to do, and nothing is copied — not
/// even by the runner.
#[tokio::test]
async fn one_address_in_front_of_two_appliances_is_refused_by_name() {
    let f = fixture().await;
    let (a, _sa) = appliance(f.specs.clone(), 2).await;
    let (b, _sb) = appliance(f.specs.clone(), 2).await;
    let hosts = [&a, &b].map(|u| u.trim_start_matches("http://").to_string());
    let front = balancer(hosts.to_vec()).await;
    let apps = vec![Appliance::new(&front, TOKEN, None).unwrap()];
    let e = Pool::connect(apps, fast(), Arc::new(SystemClock))
        .await
        .unwrap_err();
    let said = e.to_string();
    assert!(said.contains(&front), "{said}");
    assert!(said.contains("reaches several appliances"), "{said}");
    assert!(said.contains("dns+https://"), "{said}");
    assert!(f.target.point_ids().await.unwrap().is_empty());
}

/// `dns+http://NAME:PORT` with NAME resolving to two loopback addresses: one appliance
/// each, and the chains spread over both.
#[tokio::test]
async fn a_dns_name_is_every_appliance_it_resolves_to() {
    struct Two(Vec<std::net::SocketAddr>);
    #[async_trait::async_trait]
    impl offsite::remote::address::Resolve for Two {
        async fn resolve(&self, host: &str, _: u16) -> std::io::Result<Vec<std::net::SocketAddr>> {
            assert_eq!(host, "archivers.backup.svc");
            Ok(self.0.clone())
        }
    }
    let f = fixture().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let tasks = || tasks_of(&f, 1);
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let addrs: Vec<std::net::SocketAddr> = ["127.0.0.1", "127.0.0.2"]
        .iter()
        .map(|ip| format!("{ip}:{port}").parse().unwrap())
        .collect();
    let _a = serve_at(tasks(), addrs[0]).await;
    let _b = serve_at(tasks(), addrs[1]).await;
    let name = format!("dns+http://archivers.backup.svc:{port}");
    let apps = offsite::remote::address::appliances(&[name], TOKEN, None, &Two(addrs))
        .await
        .unwrap();
    assert_eq!(apps.len(), 2);
    let pool = Arc::new(Pool::connect(apps, fast(), clock.clone()).await.unwrap());
    assert_eq!(pool.len(), 2);
    let report = copy(&f, &via(pool)).await;
    assert_eq!(report.points_copied(), 3, "{report:#?}");
    let used: std::collections::HashSet<&str> = (report.chains.iter())
        .map(|c| c.appliance.as_deref().expect("an appliance ran the chain"))
        .collect();
    assert_eq!(used.len(), 2, "both addresses had work: {used:?}");
    assert!(report.chains.iter().all(|c| c.fallback.is_none()));
    let check = testkit::check_read_data(&f.target).await;
    assert!(check.is_ok(), "{:?}", check.errors);
}

/// A runner asked to stop mid-task cancels the appliance's task, indexes every pack it
/// wrote, reports the chain interrupted; nothing is left unindexed, and the next run
/// brings the rest without sending a blob twice.
#[tokio::test]
async fn a_stopped_runner_cancels_its_task_and_keeps_what_it_wrote() {
    let f = fixture().await;
    let (_, _dir) = files_machine(&f, "many", 24).await;
    let (a, _sa, uploads) = gated_appliance(&f, 2).await;
    let pool = pool(&[&a], fast()).await;
    let stop = offsite::stop::Stop::new();
    let mut opts = CopyOptions {
        selection: Selection {
            machines: vec!["many".into()],
            points: PointsSpec::All,
            ..Default::default()
        },
        pack_size: Some(256 << 10),
        ..via(pool)
    };
    opts.transfer.stop = stop.clone();
    let run = copy(&f, &opts);
    let stop_it = async {
        testkit::within(30, "a third pack upload", uploads.wait_for(3)).await;
        stop.stop();
        // The runner's cancel arrives while the third upload is held; let it land.
        let app = Appliance::new(&a, TOKEN, None).unwrap();
        let cancelled = async {
            loop {
                let t = app.tasks().await.unwrap();
                if t.first().is_some_and(|t| t.state.is_finished()) {
                    return t[0].state;
                }
                uploads.open();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        testkit::within(30, "the task to end", cancelled).await
    };
    let (report, state) =
        testkit::within(60, "the copy", async { tokio::join!(run, stop_it) }).await;
    assert_eq!(state, offsite::remote::api::TaskState::Cancelled);
    let c = &report.chains[0];
    assert!(
        matches!(c.failure, Some(offsite::copy::Failure::Interrupted { .. })),
        "{c:#?}"
    );
    assert_eq!(report.points_copied(), 0);
    assert_eq!(
        unindexed(&f.target).await,
        0,
        "a pack the task wrote is in no index"
    );
    assert!(testkit::check_read_data(&f.target).await.is_ok());

    let (b, _sb) = appliance(f.specs.clone(), 1).await;
    let mut next = opts.clone();
    next.transfer.stop = offsite::stop::Stop::new();
    next.via = Some(self::pool(&[&b], fast()).await);
    let again = copy(&f, &next).await;
    assert_eq!(again.points_copied(), 1, "{again:#?}");
    assert_eq!(indexed_twice(&f.target).await, 0, "a blob was sent twice");
    assert_eq!(unindexed(&f.target).await, 0);
}

/// A task whose runner stops polling (killed, or it lost the address) is stopped by
/// the appliance once its lease runs out, at a pack boundary.
#[tokio::test]
async fn a_task_nobody_polls_is_cancelled_when_its_lease_runs_out() {
    let f = fixture().await;
    let (many, _dir) = files_machine(&f, "many", 24).await;
    let (a, _sa, uploads) = gated_appliance(&f, 1).await;
    let app = Appliance::new(&a, TOKEN, None).unwrap();
    let req = TaskRequest {
        chain: "many".into(),
        pack_size: 256 << 10,
        lease_secs: Some(2),
        ..request(many)
    };
    let Submitted::Taken(id) = app.submit(&req).await.unwrap() else {
        panic!("busy")
    };
    testkit::within(30, "a second pack upload", uploads.wait_for(2)).await;
    // Nobody polls (listing tasks renews nothing): the lease runs out, the appliance
    // counts it, and the task stops at its pack boundary once the held upload lands.
    let http = reqwest::Client::new();
    let expired = async {
        loop {
            let m = (http.get(format!("{a}/metrics")).bearer_auth(TOKEN))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if m.contains("offsite_archiver_leases_expired_total 1") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    testkit::within(20, "the lease to run out", expired).await;
    uploads.open();
    let ended = async {
        loop {
            let t = app.tasks().await.unwrap();
            if let Some(t) = t.into_iter().find(|t| t.id == id && t.state.is_finished()) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let t = testkit::within(20, "the task to stop", ended).await;
    assert_eq!(t.state, offsite::remote::api::TaskState::Cancelled, "{t:?}");
    let all = 8;
    assert!(t.packs_done < all, "the task ran to its end: {t:?}");
}

/// A job whose archiver cannot take its chains (it knows the source by two names):
/// the runner copies them, and the interval says so — a warning, not a success.
#[tokio::test]
async fn a_job_whose_chains_fall_back_to_the_runner_warns() {
    use offsite::job::archivers::ArchiversSpec;
    use offsite::job::interval::Outcome;

    let f = fixture().await;
    let mut specs = f.specs.clone();
    specs.push(RepoSpec {
        name: "primary-replica".into(),
        ..specs[0].clone()
    });
    let (url, _s) = appliance(specs, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let pools = ArchiversSpec {
        urls: vec![url],
        token: Secret::File(token),
        ca_file: None,
        redispatch: Redispatch::Pool,
        start: None,
        stop: None,
        ready_timeout: Duration::from_secs(10),
        lease: Duration::from_secs(15),
    };
    let r = job_through(&f, pools).await;
    assert_eq!(r.outcome, Outcome::Warning, "{r:#?}");
    assert_eq!(r.warnings.len(), 3, "one per chain: {:?}", r.warnings);
    let copied: usize = r.copies.iter().map(|c| c.points_copied()).sum();
    assert_eq!(copied, 3, "the machines are protected all the same");
}

/// 300 idle and slow connections (no request, or half a request head) do not keep a
/// runner out: its `/v1/health` is answered within a second; the oldest of them are
/// closed to make room, a half head is cut at the header deadline, and each refusal is
/// counted by reason in `/metrics`.
#[tokio::test]
async fn a_crowd_of_idle_and_slow_connections_does_not_keep_a_runner_out() {
    use offsite::remote::listen::{self, Guard, Limits};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let f = fixture().await;
    let guard = Guard::new(Limits {
        header_read: Duration::from_secs(2),
        max_unauthenticated: 32,
        ..Limits::default()
    });
    let addr = serve_guarded(tasks_of(&f, 1), vec![unscoped()], guard.clone()).await;

    let mut crowd = Vec::new();
    for n in 0..300 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        if n % 2 == 0 {
            // Half a request head, and nothing more.
            c.write_all(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
                .await
                .unwrap();
        }
        crowd.push(c);
    }
    let app = Appliance::new(&format!("http://{addr}"), TOKEN, None).unwrap();
    let started = std::time::Instant::now();
    let health = app.health().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "health took {:?}",
        started.elapsed()
    );
    assert_eq!(health.slots, 1);
    // The last connection of the crowd, half a head sent, is cut at the deadline.
    let mut last = crowd.pop().unwrap();
    last.write_all(b"GET /v1/health HTTP/1.1\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let cut = tokio::time::timeout(Duration::from_secs(6), last.read(&mut buf)).await;
    assert!(matches!(cut, Ok(Ok(0)) | Ok(Err(_))), "{cut:?}");
    let refused = guard.refusals();
    let count = |why| refused.get(&why).copied().unwrap_or(0);
    assert!(
        count(listen::TurnedAway::Evicted) >= 300 - 32,
        "{refused:?}"
    );
    assert!(count(listen::TurnedAway::HeaderTimeout) >= 1, "{refused:?}");
    let metrics = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("offsite_archiver_refusals_total{reason=\"evicted\"}"),
        "{metrics}"
    );
}

/// Failed authentications are limited per peer: past the budget, 429.
#[tokio::test]
async fn guessing_tokens_is_limited_per_peer() {
    use offsite::remote::listen::{Guard, Limits};
    let f = fixture().await;
    let guard = Guard::new(Limits {
        failed_auth_burst: 5.0,
        failed_auth_rate: 0.1,
        ..Limits::default()
    });
    let addr = serve_guarded(tasks_of(&f, 1), vec![unscoped()], guard).await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for n in 0..8 {
        let r = http
            .get(format!("http://{addr}/v1/health"))
            .bearer_auth(format!("guess-{n}"))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    // The right token still works (a runner is not locked out by a guesser).
    let ok = http
        .get(format!("http://{addr}/v1/health"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
}

/// The routes over `tasks` with these tokens, on a free loopback port, through the
/// appliance's own accept loop bounded by `guard`.
async fn serve_guarded(
    tasks: Arc<Tasks>,
    tokens: Vec<offsite::remote::tokens::TokenSpec>,
    guard: Arc<offsite::remote::listen::Guard>,
) -> std::net::SocketAddr {
    use offsite::remote::listen::{self, Plain};
    let tokens = offsite::remote::tokens::Tokens::new(tokens);
    let app = offsite::remote::server::router_with(tasks, tokens, guard.clone());
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(listen::serve(
        tcp,
        Plain,
        app,
        guard,
        std::future::pending(),
    ));
    addr
}

/// A task table of `slots` over the fixture's repositories (a new appliance process).
fn tasks_of(f: &Fixture, slots: usize) -> Arc<Tasks> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Tasks::new(
        slots,
        Arc::new(Workshop::new(f.specs.clone(), clock.clone())),
        clock,
    )
}

/// The test token, unscoped.
fn unscoped() -> offsite::remote::tokens::TokenSpec {
    let hash = offsite::remote::server::parse_token_hash(&token_hash(TOKEN)).unwrap();
    offsite::remote::tokens::TokenSpec::unscoped(1, hash)
}

fn named(
    name: &str,
    token: &str,
    repositories: Option<&[&str]>,
) -> offsite::remote::tokens::TokenSpec {
    offsite::remote::tokens::TokenSpec {
        name: name.into(),
        hash: offsite::remote::server::parse_token_hash(&token_hash(token)).unwrap(),
        repositories: repositories.map(|r| r.iter().map(|s| s.to_string()).collect()),
        admin: false,
    }
}

/// A task naming a source as its target (with `map`, which would let it write there)
/// is refused with 403, and the source is not touched.
#[tokio::test]
async fn nothing_is_ever_written_into_a_source() {
    let f = fixture().await;
    let (url, _s) = appliance(f.specs.clone(), 1).await;
    let app = Appliance::new(&url, TOKEN, None).unwrap();
    let before = f.source.list(offsite::format::DATA).await.unwrap().len();
    let target_point = f.target.point_ids().await.unwrap();
    let any = f.source.point_ids().await.unwrap()[0];
    let reversed = TaskRequest {
        sources: vec!["offsite".into()],
        target: "primary".into(),
        map: true,
        ..request(any)
    };
    let e = app.submit(&reversed).await.unwrap_err();
    assert!(matches!(e, RemoteError::Refused { status: 403, .. }), "{e}");
    assert!(e.to_string().contains("never writes into a source"), "{e}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        f.source.list(offsite::format::DATA).await.unwrap().len(),
        before
    );
    assert_eq!(f.target.point_ids().await.unwrap(), target_point);
}

/// Named tokens: one limited to other repositories cannot name these (403) nor see
/// them listed; a token sees and cancels only its own tasks; an admin sees them all.
#[tokio::test]
async fn a_token_sees_only_its_own_tasks_and_repositories() {
    let f = fixture().await;
    let tasks = tasks_of(&f, 2);
    let mut admin = named("ops", "ops-token-0123456789abcdef", None);
    admin.admin = true;
    let tokens = vec![
        named(
            "eu",
            "eu-token-0123456789abcdef",
            Some(&["primary", "offsite"]),
        ),
        named("us", "us-token-0123456789abcdef", Some(&["elsewhere"])),
        admin,
    ];
    let guard = offsite::remote::listen::Guard::new(Default::default());
    let url = format!("http://{}", serve_guarded(tasks, tokens, guard).await);
    let as_ = |t: &str| Appliance::new(&url, t, None).unwrap();
    let (eu, us, ops) = (
        as_("eu-token-0123456789abcdef"),
        as_("us-token-0123456789abcdef"),
        as_("ops-token-0123456789abcdef"),
    );
    let point = f.source.point_ids().await.unwrap()[0];
    let e = us.submit(&request(point)).await.unwrap_err();
    assert!(matches!(e, RemoteError::Refused { status: 403, .. }), "{e}");
    assert!(us.repositories().await.unwrap().is_empty());
    assert_eq!(eu.repositories().await.unwrap().len(), 2);
    let Submitted::Taken(id) = eu.submit(&request(point)).await.unwrap() else {
        panic!("busy")
    };
    assert_eq!(eu.tasks().await.unwrap().len(), 1);
    assert!(us.tasks().await.unwrap().is_empty());
    assert!(matches!(
        us.status(&id, 0, T).await,
        Err(RemoteError::Gone { .. })
    ));
    assert!(us.cancel(&id, T).await.is_err());
    assert_eq!(ops.tasks().await.unwrap().len(), 1);
    assert!(ops.status(&id, 0, T).await.is_ok());
}

/// A repository whose password is wrong: `/v1/health` says `degraded` and which, the
/// appliance does not derive keys again on every request (the last error stands until
/// its backoff ends), and a copy through it falls back to the runner saying why.
#[tokio::test]
async fn a_repository_that_does_not_open_is_reported_not_hidden() {
    use offsite::remote::api::{HealthStatus, RepositoryState};
    let f = fixture().await;
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "not the password").unwrap();
    let mut specs = f.specs.clone();
    specs[1].password = Secret::File(wrong.path().to_path_buf());
    let (url, _s) = appliance(specs, 1).await;
    let app = Appliance::new(&url, TOKEN, None).unwrap();
    let first = app.repositories().await.unwrap();
    let offsite = first.iter().find(|r| r.name == "offsite").unwrap();
    assert!(offsite.id.is_none() && offsite.error.is_some(), "{first:?}");
    let again = app.repositories().await.unwrap();
    let said = again
        .iter()
        .find(|r| r.name == "offsite")
        .unwrap()
        .error
        .clone();
    assert!(
        said.unwrap().contains("does not open (since"),
        "the last error stands"
    );
    let health = app.health().await.unwrap();
    assert_eq!(health.status, HealthStatus::Degraded);
    let state = |n: &str| {
        health
            .repositories
            .iter()
            .find(|r| r.name == n)
            .unwrap()
            .state
    };
    assert_eq!(
        (state("primary"), state("offsite")),
        (RepositoryState::Open, RepositoryState::Failing)
    );

    let pool = pool(&[&url], fast()).await;
    let report = copy(&f, &via(pool)).await;
    assert_eq!(report.points_copied(), 3);
    for c in &report.chains {
        let fallback = c.fallback.as_ref().expect("the fallback is reported");
        assert!(!fallback.chosen);
        assert!(fallback.why.contains("not open there"), "{fallback:?}");
    }
    assert!(report.has_failures());
}

/// An appliance that was lost and comes back at its address (restarted: a new instance)
/// takes tasks again once asked anew, instead of staying lost for the rest of the run.
#[tokio::test]
async fn a_restarted_appliance_rejoins_the_pool() {
    let f = fixture().await;
    let tasks = || tasks_of(&f, 2);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (url, first) = serve_on(tasks(), listener);
    let pool = pool(&[&url], fast()).await;
    first.abort();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Down: the chains go to the runner, saying why.
    let web = CopyOptions {
        selection: Selection {
            machines: vec!["web".into()],
            points: PointsSpec::All,
            ..Default::default()
        },
        ..via(pool.clone())
    };
    let report = copy(&f, &web).await;
    assert!(
        report.chains.iter().all(|c| c.fallback.is_some()),
        "{report:#?}"
    );
    // Back, as a new process at the same address.
    let (_, _second) = serve_on(tasks(), tokio::net::TcpListener::bind(addr).await.unwrap());
    tokio::time::sleep(offsite::remote::pool::REVIVE_AFTER + Duration::from_millis(200)).await;
    let rest = copy(&f, &via(pool.clone())).await;
    assert_eq!(rest.points_copied(), 2, "{rest:#?}");
    for c in rest.chains.iter().filter(|c| !c.copied.is_empty()) {
        assert_eq!(c.appliance.as_deref(), Some(url.as_str()), "{c:#?}");
        assert!(c.fallback.is_none(), "{c:#?}");
    }
    assert_eq!(pool.alive(), 1);
}
