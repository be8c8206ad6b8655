//! Copies through in-process appliances (the real HTTP service on 127.0.0.1, the real
//! client and pool) over in-memory repositories.

use std::sync::Arc;
use std::time::Duration;

use super::api::{TaskPoint, TaskRequest};
use super::client::{Appliance, RemoteError, Submitted};
use super::pool::{Pool, PoolOptions, Redispatch};
use super::server::{router, token_hash};
use super::tasks::Tasks;
use super::workshop::{RepoSpec, Workshop};
use crate::clock::{Clock, SystemClock};
use crate::copy::{ChainMode, Compression, CopyOptions, PointsSpec, Selection};
use crate::job::Secret;
use crate::progress::Progress;
use crate::repo::{InitOptions, Repository};
use crate::{Id, testkit};

const TOKEN: &str = "a-long-random-token-for-tests";

/// A new repository at `memory://NAME` (reachable by URL, as an appliance opens it).
async fn repo_at(name: &str) -> (Arc<Repository>, String) {
    let url = format!(
        "memory://{name}-{}",
        hex::encode(crate::crypto::random_bytes::<4>())
    );
    let loc = crate::store::open(&url, true).unwrap();
    let opts = InitOptions {
        pack_size: 256 << 10,
        kdf: crate::keys::DRY_RUN_KDF,
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
        },
        RepoSpec {
            name: "offsite".into(),
            url: dst_url,
            password: secret,
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
    let tasks = Tasks::new(slots, Arc::new(Workshop::new(specs, clock.clone())), clock);
    let hash = super::server::parse_token_hash(&token_hash(TOKEN)).unwrap();
    let app = router(tasks, vec![hash]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, served)
}

fn fast() -> PoolOptions {
    PoolOptions {
        poll: Duration::from_millis(20),
        lost_after: 3,
        redispatch: Redispatch::Pool,
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
    let report = crate::copy::run(
        vec![f.source.clone()],
        f.target.clone(),
        &via(pool),
        &Progress::hidden(),
    )
    .await
    .unwrap();
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
    let again = crate::copy::run(
        vec![f.source.clone()],
        f.target.clone(),
        &via(pool),
        &Progress::hidden(),
    )
    .await
    .unwrap();
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
        (Some(TOKEN), vec![b' '; super::api::MAX_BODY + 1], 413, ""),
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
    let data = f.target.list(crate::format::DATA).await.unwrap();
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
        let st = app.status(&first, 0).await.unwrap();
        assert!(st.state.is_finished(), "two tasks ran in one slot");
    }
    let st = loop {
        let st = app.status(&first, 0).await.unwrap();
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
    let later = app.status(&first, st.packs_done).await.unwrap();
    assert!(
        later.packs.is_empty(),
        "packs_from skips what was collected"
    );
    assert!(
        st.plan.unwrap().reads.is_empty(),
        "the plan's reads stay home"
    );
    let e = app.status("no-such-task", 0).await.unwrap_err();
    assert!(matches!(e, RemoteError::Gone { .. }), "{e}");
    let health = app.health().await.unwrap();
    assert_eq!((health.slots, health.busy), (1, 0));
}
