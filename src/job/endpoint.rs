//! The runner's HTTP endpoint (`job run --metrics-listen ADDR`): `GET /metrics` for
//! Prometheus (OpenMetrics text) and `GET /health` for an orchestrator's probe — 200
//! while the runner runs (with each job's last outcome, so a dashboard can show it),
//! 503 once it is stopping. Read-only: nothing here changes a job.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::interval::{IntervalReport, Outcome};
use super::metrics::Metrics;
use crate::stop::Stop;

/// What `/health` says of one job.
#[derive(Clone, Debug, Default, Serialize)]
pub struct JobHealth {
    pub running: bool,
    pub last_run: Option<DateTime<Utc>>,
    pub last_outcome: Option<Outcome>,
    pub unprotected: Vec<String>,
}

/// The runner's health, shared with the runner that updates it.
#[derive(Clone, Debug, Default)]
pub struct Health(Arc<Mutex<BTreeMap<String, JobHealth>>>);

impl Health {
    fn with(&self, job: &str, f: impl FnOnce(&mut JobHealth)) {
        let mut all = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(all.entry(job.to_string()).or_default());
    }

    pub fn add_job(&self, job: &str) {
        self.with(job, |_| {});
    }

    pub fn started(&self, job: &str) {
        self.with(job, |h| h.running = true);
    }

    pub fn interval(&self, r: &IntervalReport) {
        self.with(&r.job, |h| {
            h.running = false;
            h.last_run = Some(r.started);
            h.last_outcome = Some(r.outcome);
            h.unprotected = r
                .machines
                .iter()
                .filter(|m| m.result == super::interval::MachineResult::Unprotected)
                .map(|m| m.machine.clone())
                .collect();
        });
    }

    /// Each job's health now.
    pub fn snapshot(&self) -> BTreeMap<String, JobHealth> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[derive(Clone)]
struct Shared {
    metrics: Metrics,
    health: Health,
    stop: Stop,
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn health(State(s): State<Shared>) -> Response {
    let stopping = s.stop.is_stopped();
    let jobs = s.health.snapshot();
    let degraded = jobs.values().any(|j| {
        j.last_outcome
            .is_some_and(|o| matches!(o, Outcome::Warning | Outcome::Failed))
    });
    let status = match (stopping, degraded) {
        (true, _) => "stopping",
        (false, true) => "degraded",
        (false, false) => "ok",
    };
    let body = serde_json::json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "jobs": jobs,
    });
    let code = match stopping {
        true => StatusCode::SERVICE_UNAVAILABLE,
        false => StatusCode::OK,
    };
    (code, axum::Json(body)).into_response()
}

/// Serves `/metrics` and `/health` on `listener` until `done` completes; once `stop`
/// is asked, `/health` answers 503 (the runner is finishing its packs).
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics_: Metrics,
    health_: Health,
    stop: Stop,
    done: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Shared {
        metrics: metrics_,
        health: health_,
        stop,
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(done)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    async fn get_text(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
        let path = path.to_string();
        tokio::task::spawn_blocking(move || {
            match ureq::get(&format!("http://{addr}{path}")).call() {
                Ok(r) => (r.status(), r.into_string().unwrap()),
                Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
                Err(e) => panic!("{e}"),
            }
        })
        .await
        .unwrap()
    }

    /// The endpoint answers on loopback: metrics in the OpenMetrics format, health 200
    /// with the jobs, 503 while the runner is stopping, then it closes.
    #[tokio::test]
    async fn metrics_and_health_are_served() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let m = Metrics::new(clock);
        let h = Health::default();
        let job = crate::job::JobsFile::parse_with(
            "[[job]]\nname = \"nightly\"\nmax_tasks = 3\n[[job.sources]]\nurl = \"memory://s\"\npassword_env = \"P\"\n[job.target]\nurl = \"memory://t\"\npassword_env = \"P\"\n",
            &|_| Some("pw".into()),
        )
        .unwrap()
        .jobs
        .remove(0);
        m.add_job(&job);
        h.add_job("nightly");
        let (stop, done) = (Stop::new(), Stop::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ended = done.clone();
        let ended = async move { ended.stopped().await };
        let server = tokio::spawn(serve(listener, m.clone(), h.clone(), stop.clone(), ended));
        let (code, text) = get_text(addr, "/metrics").await;
        assert_eq!(code, 200);
        assert!(
            text.contains("# TYPE offsite_job_task_slots gauge"),
            "{text}"
        );
        assert!(
            text.contains("offsite_job_task_slots{job=\"nightly\"} 3"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        let (code, body) = get_text(addr, "/health").await;
        assert_eq!(code, 200);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "ok");
        assert!(v["jobs"]["nightly"].is_object(), "{v}");
        let (code, _) = get_text(addr, "/nothing").await;
        assert_eq!(code, 404);
        stop.stop();
        let (code, body) = get_text(addr, "/health").await;
        assert_eq!(code, 503, "{body}");
        done.stop();
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
