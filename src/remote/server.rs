//! The appliance's HTTP service (axum): every route behind a bearer token, bodies size
//! limited and validated before anything is touched, answers in JSON. Tokens are kept
//! only as BLAKE3 hashes and compared in constant time; errors never echo a secret.
//!
//! | route | answer |
//! |---|---|
//! | `POST /v1/tasks` | 202 `{id}`; 400 malformed or invalid; 404 unknown repository; 413 too large; 429 no free slot; 503 stopping |
//! | `GET /v1/tasks` | every task (no packs) |
//! | `GET /v1/tasks/{id}?packs_from=N` | [`TaskStatus`](super::api::TaskStatus); 404 unknown |
//! | `DELETE /v1/tasks/{id}` | 202: it stops at a pack boundary; 404 unknown |
//! | `GET /v1/health` | [`Health`] |
//! | `GET /v1/ready` | 200 `ready`, 503 `stopping`; the one route without a token (orchestrators probe it) |
//! | `GET /v1/repositories` | the names a task may use, with their ids |
//! | `GET /metrics` | Prometheus (OpenMetrics text) |
//!
//! Every answer carries the appliance's instance id ([`INSTANCE_HEADER`]), and every
//! error answer — the router's own 404, 405 and 413 included — is a JSON [`ApiError`].

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;

use super::api::{API_VERSION, Accepted, ApiError, Health, INSTANCE_HEADER, MAX_BODY, TaskRequest};
use super::tasks::{NotTaken, Tasks};
use super::workshop::Refusal;

/// A token's hash, as the appliance holds it.
pub type TokenHash = blake3::Hash;

/// A token as the appliance keeps it: `blake3:<hex>` of the token's bytes.
pub fn token_hash(token: &str) -> String {
    format!("blake3:{}", blake3::hash(token.trim().as_bytes()).to_hex())
}

/// Parses a stored `blake3:<hex>` hash.
pub fn parse_token_hash(s: &str) -> Option<TokenHash> {
    let hex = s.trim().strip_prefix("blake3:")?;
    blake3::Hash::from_hex(hex).ok()
}

#[derive(Clone)]
struct Shared {
    tasks: Arc<Tasks>,
    tokens: Arc<Vec<blake3::Hash>>,
}

/// The service's routes over `tasks`, accepting the tokens whose hashes are `tokens`.
pub fn router(tasks: Arc<Tasks>, tokens: Vec<TokenHash>) -> Router {
    let shared = Shared {
        tasks,
        tokens: Arc::new(tokens),
    };
    Router::new()
        .route("/v1/tasks", get(list).post(submit))
        .route("/v1/tasks/{id}", get(status).delete(cancel))
        .route("/v1/health", get(health))
        .route("/v1/repositories", get(repositories))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        // Added after the token layer, so outside it: an orchestrator's readiness probe
        // has no token. It says only ready (200) or stopping (503).
        .route("/v1/ready", get(ready))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), every_answer))
        .with_state(shared)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}

/// Marks every answer with the instance id, and makes an error answer that is not JSON
/// yet (the router's 405, a body over the limit, a query that does not parse) JSON.
async fn every_answer(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let status = r.status();
    let json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if (status.is_client_error() || status.is_server_error()) && !json {
        let said = axum::body::to_bytes(std::mem::take(r.body_mut()), 4096)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        let what = match said.is_empty() {
            true => status.canonical_reason().unwrap_or("error").to_lowercase(),
            false => said,
        };
        let headers = std::mem::take(r.headers_mut());
        r = error(status, what);
        for (k, v) in headers.iter() {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                r.headers_mut().insert(k.clone(), v.clone());
            }
        }
    }
    if let Ok(v) = HeaderValue::from_str(&s.tasks.instance) {
        r.headers_mut().insert(INSTANCE_HEADER, v);
    }
    r
}

/// Serves the routes over `tasks` on `tcp` (plain HTTP) until the task is dropped.
pub async fn serve(
    tcp: tokio::net::TcpListener,
    tasks: Arc<Tasks>,
    tokens: Vec<TokenHash>,
) -> std::io::Result<()> {
    axum::serve(tcp, router(tasks, tokens)).await
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    let body = ApiError { error: msg.into() };
    (status, axum::Json(body)).into_response()
}

/// Lets through requests whose bearer token hashes to a configured hash. `blake3::Hash`
/// compares in constant time, and every hash is compared, so timing says nothing of
/// which (or how much of one) matched.
async fn authenticate(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(|t| blake3::hash(t.trim().as_bytes()));
    let ok = given.is_some_and(|h| s.tokens.iter().fold(false, |any, t| any | (*t == h)));
    if !ok {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is needed (Authorization: Bearer TOKEN)",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme's name is not case
/// sensitive (RFC 7235).
fn bearer(v: &str) -> Option<&str> {
    let (scheme, token) = v.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

async fn submit(State(s): State<Shared>, body: Bytes) -> Response {
    let req: TaskRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed task: {e}")),
    };
    match s.tasks.submit(req) {
        Ok(id) => (StatusCode::ACCEPTED, axum::Json(Accepted { id })).into_response(),
        Err(e @ NotTaken::Busy(_)) => error(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        Err(e @ NotTaken::Stopping) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(NotTaken::Refused(e @ Refusal::UnknownRepository(_))) => {
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(NotTaken::Refused(e)) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

#[derive(Deserialize)]
struct PacksFrom {
    #[serde(default)]
    packs_from: usize,
}

async fn status(
    State(s): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<PacksFrom>,
) -> Response {
    match s.tasks.status(&id, q.packs_from) {
        Some(st) => axum::Json(st).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such task"),
    }
}

async fn cancel(State(s): State<Shared>, Path(id): Path<String>) -> Response {
    match s.tasks.cancel(&id) {
        true => StatusCode::ACCEPTED.into_response(),
        false => error(StatusCode::NOT_FOUND, "no such task"),
    }
}

async fn list(State(s): State<Shared>) -> Response {
    axum::Json(s.tasks.list()).into_response()
}

async fn health(State(s): State<Shared>) -> Response {
    axum::Json(Health {
        instance: s.tasks.instance.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        api: API_VERSION,
        format: crate::format::VERSION,
        slots: s.tasks.slots(),
        busy: s.tasks.busy(),
        stopping: s.tasks.stopping.is_stopped(),
    })
    .into_response()
}

async fn ready(State(s): State<Shared>) -> Response {
    match s.tasks.stopping.is_stopped() {
        false => (StatusCode::OK, "ready\n").into_response(),
        true => (StatusCode::SERVICE_UNAVAILABLE, "stopping\n").into_response(),
    }
}

async fn repositories(State(s): State<Shared>) -> Response {
    axum::Json(s.tasks.workshop().repositories().await).into_response()
}

/// Metrics made at scrape from the task table's counters.
async fn metrics(State(s): State<Shared>) -> Response {
    let t = s.tasks.totals();
    let mut reg = Registry::with_prefix("offsite_archiver");
    let counter = |reg: &mut Registry, name: &str, help: &str, v: u64| {
        reg.register(name, help, ConstCounter::new(v));
    };
    counter(&mut reg, "tasks_done", "Tasks finished whole", t.done);
    counter(
        &mut reg,
        "tasks_failed",
        "Tasks failed as a whole",
        t.failed,
    );
    counter(
        &mut reg,
        "tasks_cancelled",
        "Tasks cancelled or stopped",
        t.cancelled,
    );
    counter(
        &mut reg,
        "source_bytes",
        "Source bytes (uncompressed) processed",
        t.bytes,
    );
    counter(
        &mut reg,
        "packs_written",
        "Packs uploaded to targets",
        t.packs,
    );
    counter(
        &mut reg,
        "pack_bytes_written",
        "Bytes of packs uploaded",
        t.pack_bytes,
    );
    counter(
        &mut reg,
        "leases_expired",
        "Tasks stopped because their runner stopped polling",
        t.leases_expired,
    );
    reg.register(
        "task_slots",
        "Task slots",
        ConstGauge::new(s.tasks.slots() as i64),
    );
    reg.register(
        "task_slots_busy",
        "Task slots busy",
        ConstGauge::new(s.tasks.busy() as i64),
    );
    let mut out = String::new();
    if encode(&mut out, &reg).is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "metrics did not encode");
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
