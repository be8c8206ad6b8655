//! What a new user trips over, said once and clearly: the first line of the message
//! names what is missing or refused and what to set or grant. Against the local S3 and
//! Azure servers; denied access is injected by a proxy in front of the real S3 server.

mod conformance;

use std::process::{Command, Output};

use conformance::proxy::Upstream;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const BIN: &str = env!("CARGO_BIN_EXE_offsite");

/// Runs offsite with the test environment, minus `unset`, plus `set`.
fn run(args: &[&str], unset: &[&str], set: &[(&str, &str)]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env("OFFSITE_KDF", "256,1,1")
        .env("OFFSITE_PASSWORD", "pw");
    for k in unset {
        c.env_remove(k);
    }
    for (k, v) in set {
        c.env(k, v);
    }
    c.output().expect("offsite runs")
}

/// The first line of the error, after checking the command failed and said it once.
fn first_line(o: &Output) -> String {
    assert!(!o.status.success(), "the command should have failed");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    let errors = err.lines().filter(|l| l.starts_with("error:")).count();
    assert_eq!(errors, 1, "one error, said once:\n{err}");
    assert!(
        err.lines().count() <= 3,
        "the raw cause goes on one line:\n{err}"
    );
    err.lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default()
        .to_string()
}

fn server(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} is not set under CI: run the tests through localstack/run-tests.sh")
        }
        Err(_) => None,
    }
}

fn unique() -> String {
    hex::encode(offsite::crypto::random_bytes::<6>())
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn s3_without_credentials() {
    let Some(base) = server("OFFSITE_TEST_S3") else {
        return;
    };
    // Where the instance metadata service would be, nothing answers: as on a laptop.
    let metadata = format!("http://127.0.0.1:{}", closed_port());
    let o = run(
        &["points", &format!("{base}/{}", unique())],
        &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ],
        &[("AWS_METADATA_ENDPOINT", &metadata)],
    );
    let line = first_line(&o);
    assert!(line.contains("no S3 credentials"), "{line}");
    assert!(line.contains("AWS_ACCESS_KEY_ID"), "{line}");
}

#[test]
fn s3_bucket_that_does_not_exist() {
    let Some(_) = server("OFFSITE_TEST_S3") else {
        return;
    };
    let o = run(
        &["points", &format!("s3://no-such-bucket-{}/x", unique())],
        &[],
        &[],
    );
    let line = first_line(&o);
    assert!(line.contains("bucket does not exist"), "{line}");
    let o = run(
        &["init", &format!("s3://no-such-bucket-{}/x", unique())],
        &[],
        &[],
    );
    let line = first_line(&o);
    assert!(line.contains("bucket does not exist"), "{line}");
}

#[test]
fn s3_endpoint_refused_or_unknown() {
    let Some(base) = server("OFFSITE_TEST_S3") else {
        return;
    };
    let repo = format!("{base}/{}", unique());
    let refused = format!("http://127.0.0.1:{}", closed_port());
    let o = run(&["points", &repo], &[], &[("AWS_ENDPOINT_URL", &refused)]);
    let line = first_line(&o);
    assert!(
        line.contains("connection refused") && line.contains(&refused),
        "{line}"
    );
    assert!(line.contains("AWS_ENDPOINT_URL"), "{line}");
    let o = run(
        &["points", &repo],
        &[],
        &[("AWS_ENDPOINT_URL", "http://no-such-host.invalid:4566")],
    );
    let line = first_line(&o);
    assert!(line.contains("host") && line.contains("unknown"), "{line}");
}

#[test]
fn azure_without_account_with_wrong_key_and_without_container() {
    let Some(base) = server("OFFSITE_TEST_AZURE") else {
        return;
    };
    let repo = format!("{base}/{}", unique());
    let o = run(
        &["points", &repo],
        &[
            "AZURE_STORAGE_USE_EMULATOR",
            "AZURE_STORAGE_ACCOUNT_NAME",
            "AZURE_STORAGE_ACCOUNT_KEY",
        ],
        &[],
    );
    let line = first_line(&o);
    assert!(line.contains("no Azure storage account"), "{line}");
    assert!(line.contains("AZURE_STORAGE_ACCOUNT_NAME"), "{line}");

    let endpoint = std::env::var("AZURITE_BLOB_STORAGE_URL").unwrap();
    let o = run(
        &["points", &repo],
        &["AZURE_STORAGE_USE_EMULATOR"],
        &[
            ("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "d3Jvbmcga2V5"),
            (
                "AZURE_STORAGE_ENDPOINT",
                &format!("{endpoint}/devstoreaccount1"),
            ),
            ("AZURE_ALLOW_HTTP", "true"),
        ],
    );
    let line = first_line(&o);
    assert!(line.contains("refused the credentials"), "{line}");
    assert!(line.contains("AZURE_STORAGE_ACCOUNT_KEY"), "{line}");

    let o = run(
        &["points", &format!("az://no-such-container-{}/x", unique())],
        &[],
        &[],
    );
    let line = first_line(&o);
    assert!(line.contains("container does not exist"), "{line}");
}

/// Answers 403 AccessDenied to requests of one method, forwards the rest.
struct Deny {
    methods: &'static [&'static str],
    upstream: Upstream,
}

impl Respond for Deny {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        if self.methods.contains(&req.method.as_str()) {
            return ResponseTemplate::new(403).set_body_string(
                "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>",
            );
        }
        self.upstream.forward(req)
    }
}

async fn denying(endpoint: &str, methods: &'static [&'static str]) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(Deny {
            methods,
            upstream: Upstream::new(endpoint),
        })
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_access_denied_on_write_and_on_read() {
    let Some(base) = server("OFFSITE_TEST_S3") else {
        return;
    };
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let repo = format!("{base}/{}", unique());

    let writes = denying(&endpoint, &["PUT", "POST", "DELETE"]).await;
    let uri = writes.uri();
    let o = tokio::task::spawn_blocking({
        let repo = repo.clone();
        move || run(&["init", &repo], &[], &[("AWS_ENDPOINT_URL", &uri)])
    })
    .await
    .unwrap();
    let line = first_line(&o);
    assert!(line.contains("access denied writing"), "{line}");
    assert!(line.contains("s3:PutObject"), "{line}");

    let made = run(&["init", &repo], &[], &[]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let reads = denying(&endpoint, &["GET", "HEAD"]).await;
    let uri = reads.uri();
    let o = tokio::task::spawn_blocking(move || {
        run(&["points", &repo], &[], &[("AWS_ENDPOINT_URL", &uri)])
    })
    .await
    .unwrap();
    let line = first_line(&o);
    assert!(line.contains("access denied reading"), "{line}");
    assert!(line.contains("s3:GetObject"), "{line}");
}
