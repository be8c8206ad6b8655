//! Where an interval's report goes besides the runner's output: files (JSON and the
//! readable summary) in a folder per job, and a webhook POST of the JSON — retried with
//! backoff on the injected clock, in the background, so a slow or dead receiver never
//! holds a job up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::interval::{IntervalReport, Outcome};
use crate::clock::Clock;

/// When the webhook is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOn {
    Always,
    /// Only for intervals that need a human: a warning or a failure (not a transfer
    /// the copy windows deferred).
    Problems,
}

impl std::str::FromStr for SendOn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(SendOn::Always),
            "problems" => Ok(SendOn::Problems),
            other => Err(format!("webhook_on = {other:?}: always or problems")),
        }
    }
}

/// A webhook as the jobs file gives it (the token's value is read when sending).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub url: String,
    /// The environment variable holding a bearer token, if the receiver wants one.
    pub token_env: Option<String>,
    pub on: SendOn,
}

/// A job's `[job.report]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportSpec {
    /// Reports are written to `DIR/JOB/…` when set.
    pub dir: Option<PathBuf>,
    pub webhook: Option<Webhook>,
}

/// Attempts per webhook call, and the first pause between them (doubling).
pub const WEBHOOK_TRIES: u32 = 5;
const WEBHOOK_BACKOFF: Duration = Duration::from_secs(2);

/// Writes `report` as `DIR/JOB/YYYYmmddTHHMMSSZ.json` and `.txt` (the summary; `-2`,
/// `-3`… after the time for more intervals begun in the same second); returns the JSON
/// file's path.
pub fn write_files(dir: &Path, report: &IntervalReport, summary: &str) -> std::io::Result<PathBuf> {
    let folder = dir.join(&report.job);
    std::fs::create_dir_all(&folder)?;
    // Two intervals begun in the same second (`--once` twice) keep both reports.
    let second = report.started.format("%Y%m%dT%H%M%SZ").to_string();
    let mut stem = second.clone();
    let mut n = 1;
    while folder.join(format!("{stem}.json")).exists() {
        n += 1;
        stem = format!("{second}-{n}");
    }
    let json = folder.join(format!("{stem}.json"));
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    // Written aside and renamed, so a reader never sees half a report.
    let tmp = folder.join(format!(".{stem}.json.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &json)?;
    std::fs::write(folder.join(format!("{stem}.txt")), summary)?;
    Ok(json)
}

/// Whether `hook` wants this report.
pub fn wants(hook: &Webhook, report: &IntervalReport) -> bool {
    hook.on == SendOn::Always || matches!(report.outcome, Outcome::Warning | Outcome::Failed)
}

/// POSTs `body` (JSON) to the webhook, trying up to [`WEBHOOK_TRIES`] times with
/// doubling pauses on `clock`; a 2xx answer ends it. Returns the attempts made and the
/// last problem if none succeeded. Meant to be spawned: it never fails the job.
pub async fn send(
    hook: &Webhook,
    body: String,
    clock: &Arc<dyn Clock>,
    env: &(dyn Fn(&str) -> Option<String> + Send + Sync),
) -> (u32, Option<String>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build();
    let client = match client {
        Ok(c) => c,
        Err(e) => return (0, Some(format!("webhook {}: {e}", hook.url))),
    };
    let token = hook.token_env.as_deref().and_then(env);
    let mut pause = WEBHOOK_BACKOFF;
    let mut last = None;
    for attempt in 1..=WEBHOOK_TRIES {
        let mut req = client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => return (attempt, None),
            Ok(r) => last = Some(format!("webhook {} answered {}", hook.url, r.status())),
            Err(e) => last = Some(format!("webhook {}: {e}", hook.url)),
        }
        if attempt < WEBHOOK_TRIES {
            clock.sleep(pause).await;
            pause *= 2;
        }
    }
    (WEBHOOK_TRIES, last)
}

/// Sends an interval's report where `spec` wants it besides the runner's output: the
/// report files (`summary` is their readable text) and the webhook — in the background;
/// its task is returned so a one-shot run can wait for it before exiting.
pub fn deliver(
    job: &str,
    spec: &ReportSpec,
    r: &IntervalReport,
    summary: &str,
    clock: &Arc<dyn Clock>,
) -> Option<tokio::task::JoinHandle<()>> {
    if let Some(dir) = &spec.dir {
        match write_files(dir, r, summary) {
            Ok(path) => tracing::debug!("{job}: report written to {}", path.display()),
            Err(e) => tracing::warn!("{job}: cannot write the report into {}: {e}", dir.display()),
        }
    }
    let hook = spec.webhook.clone().filter(|h| wants(h, r))?;
    let body = serde_json::to_string(r).ok()?;
    let (clock, job) = (clock.clone(), job.to_string());
    Some(tokio::spawn(async move {
        let env = |v: &str| std::env::var(v).ok();
        match send(&hook, body, &clock, &env).await {
            (_, None) => tracing::debug!("{job}: report sent to {}", hook.url),
            (tries, Some(e)) => {
                tracing::warn!("{job}: report not delivered after {tries} tries: {e}")
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::clock::ManualClock;

    /// A receiver that fails twice gets the report on the third try; the pauses
    /// between tries pass on the clock, not in real time.
    #[tokio::test]
    async fn the_webhook_is_retried_until_the_receiver_takes_it() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/hook"))
            .and(header("authorization", "Bearer s3cret"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        let hook = Webhook {
            url: format!("{}/hook", server.uri()),
            token_env: Some("HOOK_TOKEN".into()),
            on: SendOn::Always,
        };
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::auto_advance(chrono::Utc::now()));
        let env = |v: &str| (v == "HOOK_TOKEN").then(|| "s3cret".to_string());
        let (tries, problem) = send(&hook, r#"{"job":"j"}"#.into(), &clock, &env).await;
        assert_eq!((tries, problem), (3, None));
        let got = server.received_requests().await.unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].body, br#"{"job":"j"}"#);
    }

    /// A receiver that never takes it costs the tries and a message, not the job.
    #[tokio::test]
    async fn a_dead_receiver_gives_up_with_the_reason() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .mount(&server)
            .await;
        let hook = Webhook {
            url: server.uri(),
            token_env: None,
            on: SendOn::Problems,
        };
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::auto_advance(chrono::Utc::now()));
        let (tries, problem) = send(&hook, "{}".into(), &clock, &|_| None).await;
        assert_eq!(tries, WEBHOOK_TRIES);
        assert!(problem.unwrap().contains("500"));
    }
}
