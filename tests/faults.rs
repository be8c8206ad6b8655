//! A copy through a fault-injecting proxy in front of the real local S3 server: about one
//! request in eight fails — 503 SlowDown, 500, 429, a connection reset, a body cut
//! short, or a write that lands but answers 500. The copy must finish, and the target
//! must restore exactly like the target of a fault-free run.

mod conformance;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::{BackoffConfig, RetryConfig};
use wiremock::{Match, Mock, MockServer, Request, Respond, ResponseTemplate};

use conformance::copy::{all, assert_same_restores, run};
use conformance::proxy::Upstream;
use conformance::{backup_dir, check, fixtures, init};
use offsite::repo::Repository;
use offsite::store::{self, Location, StoreKind};

/// A seeded generator shared by the proxy's parts (tests must be repeatable).
struct Dice(AtomicU64);

impl Dice {
    fn roll(&self) -> u64 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.store(x, Ordering::Relaxed);
        x % 1000
    }
}

/// Matches about 3% of requests: they get a connection reset.
struct Resets {
    dice: Arc<Dice>,
    count: Arc<AtomicU64>,
}

impl Match for Resets {
    fn matches(&self, _: &Request) -> bool {
        let hit = self.dice.roll() < 30;
        if hit {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }
}

/// Forwards to the real server, except when the dice say otherwise.
struct FaultyProxy {
    upstream: Upstream,
    dice: Arc<Dice>,
    faults: Arc<AtomicU64>,
}

impl Respond for FaultyProxy {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let roll = self.dice.roll();
        let fault = |t: ResponseTemplate| {
            self.faults.fetch_add(1, Ordering::Relaxed);
            t
        };
        match roll {
            0..30 => fault(ResponseTemplate::new(503).set_body_string(
                "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
            )),
            30..50 => fault(ResponseTemplate::new(500).set_body_string(
                "<Error><Code>InternalError</Code><Message>injected</Message></Error>",
            )),
            50..60 => fault(ResponseTemplate::new(429)),
            60..80 => {
                // The write happens, but the client hears a failure.
                let _ = self.upstream.forward(req);
                fault(ResponseTemplate::new(500).set_body_string("<Error><Code>InternalError</Code></Error>"))
            }
            80..100 if req.method.as_str() == "GET" && req.headers.contains_key("range") => {
                // A ranged read whose body comes back short.
                let mut body = self.upstream.forward_raw(req);
                body.truncate(body.len() / 2);
                fault(ResponseTemplate::new(206).set_body_bytes(body))
            }
            _ => self.upstream.forward(req),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_through_faults_matches_a_clean_copy() {
    let (Ok(endpoint), Ok(base)) = (
        std::env::var("AWS_ENDPOINT_URL"),
        std::env::var("OFFSITE_TEST_S3"),
    ) else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("no S3 server under CI: run through localstack/run-tests.sh");
        }
        eprintln!("skipping: no S3 server configured");
        return;
    };
    let bucket = base
        .trim_start_matches("s3://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let server = MockServer::start().await;
    let dice = Arc::new(Dice(AtomicU64::new(0x9E3779B97F4A7C15)));
    let (faults, resets) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    Mock::given(Resets {
        dice: dice.clone(),
        count: resets.clone(),
    })
    .respond_with_err(|_: &Request| {
        std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset")
    })
    .with_priority(1)
    .mount(&server)
    .await;
    Mock::given(wiremock::matchers::any())
        .respond_with(FaultyProxy {
            upstream: Upstream::new(&endpoint),
            dice: dice.clone(),
            faults: faults.clone(),
        })
        .with_priority(2)
        .mount(&server)
        .await;

    // The source: two machines in memory.
    let src =
        init(store::open(&format!("memory://faults-{}/src", std::process::id()), true).unwrap())
            .await;
    let dir = tempfile::tempdir().unwrap();
    for (i, m) in ["web01", "db01"].iter().enumerate() {
        fixtures::machine_tree(&dir.path().join(m), 60 + i as u64);
        backup_dir(&src, m, &dir.path().join(m)).await;
    }

    let prefix = format!(
        "faults-{}",
        hex::encode(offsite::crypto::random_bytes::<6>())
    );
    let s3 = AmazonS3Builder::from_env()
        .with_bucket_name(&bucket)
        .with_endpoint(server.uri())
        .with_allow_http(true)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(5),
                max_backoff: Duration::from_millis(100),
                base: 2.0,
            },
            max_retries: 10,
            retry_timeout: Duration::from_secs(120),
        })
        .build()
        .unwrap();
    let faulty_loc = Location::new(
        Arc::new(s3),
        &format!("{prefix}/faulty"),
        "s3 via faulty proxy",
        StoreKind::S3,
    );
    let opts = offsite::repo::InitOptions {
        pack_size: 128 << 10,
        ..conformance::fast_init()
    };
    let faulty = Arc::new(
        Repository::init(faulty_loc, b"t", opts.clone())
            .await
            .unwrap(),
    );
    let clean_loc = store::open(&format!("{base}/{prefix}/clean"), false).unwrap();
    let clean = Arc::new(Repository::init(clean_loc, b"t", opts).await.unwrap());

    let r = run(&src, &faulty, &all()).await;
    assert!(!r.has_failures(), "{r:#?}");
    assert_eq!(r.points_copied(), 2);
    let c = run(&src, &clean, &all()).await;
    assert_eq!(c.points_copied(), 2);
    // Reading through the faults too: check every blob, and restore.
    let report = check(&faulty, true).await;
    assert!(report.is_ok(), "{:?}", report.errors);
    assert_same_restores(&src, &faulty).await;
    let (f, k) = (
        faults.load(Ordering::Relaxed),
        resets.load(Ordering::Relaxed),
    );
    assert!(f + k >= 10, "only {f} faults and {k} resets were injected");
    eprintln!("injected {f} faults and {k} connection resets");

    // Read back directly: the faulty run's target checks clean and restores like the clean one.
    let direct = Repository::open(
        store::open(&format!("{base}/{prefix}/faulty"), false).unwrap(),
        b"t",
    )
    .await
    .unwrap();
    let report = check(&direct, true).await;
    assert!(report.is_ok(), "{:?}", report.errors);
    assert_same_restores(&src, &direct).await;
    assert_same_restores(&src, &clean).await;
    let sources = |pts: Vec<(offsite::Id, offsite::format::point::Point)>| {
        let mut v: Vec<_> = pts
            .into_iter()
            .map(|(_, p)| (p.source.unwrap().point, p.tree))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        sources(direct.load_points().await.unwrap()),
        sources(clean.load_points().await.unwrap())
    );
}
