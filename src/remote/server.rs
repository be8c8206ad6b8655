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
use axum::extract::{DefaultBodyLimit, Extension, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;

use super::api::{
    API_VERSION, Accepted, ApiError, Health, HealthStatus, INSTANCE_HEADER, MAX_BODY,
    RepositoryHealth, RepositoryState, TaskRequest,
};
use super::listen::{Connection, Guard, Limits, TurnedAway};
use super::tasks::{NotTaken, Tasks};
use super::tokens::{TokenSpec, Tokens};
use super::workshop::Refusal;

pub use super::tokens::{TokenHash, parse_token_hash, token_hash};

#[derive(Clone)]
struct Shared {
    tasks: Arc<Tasks>,
    tokens: Tokens,
    guard: Arc<Guard>,
}

/// The service's routes over `tasks`, accepting the tokens whose hashes are `tokens`
/// (unscoped), with the default limits.
pub fn router(tasks: Arc<Tasks>, tokens: Vec<TokenHash>) -> Router {
    let specs = (tokens.into_iter().enumerate())
        .map(|(n, h)| TokenSpec::unscoped(n + 1, h))
        .collect();
    router_with(tasks, Tokens::new(specs), Guard::new(Limits::default()))
}

/// The routes, accepting `tokens` (replaceable while serving), counting refusals in
/// `guard` (the one [`super::listen::serve`] keeps the connections with).
pub fn router_with(tasks: Arc<Tasks>, tokens: Tokens, guard: Arc<Guard>) -> Router {
    let shared = Shared {
        tasks,
        tokens,
        guard,
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
        .layer(middleware::from_fn_with_state(shared.clone(), within_time))
        .layer(middleware::from_fn_with_state(shared.clone(), every_answer))
        .with_state(shared)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}

/// Answers 503 to a request not answered within the limit (its body read included).
async fn within_time(State(s): State<Shared>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(s.guard.limits.request, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            s.guard.refuse(TurnedAway::RequestTimeout);
            error(StatusCode::SERVICE_UNAVAILABLE, "the request took too long")
        }
    }
}

/// What the token layer found, for the access log: the token's name, or why none.
#[derive(Clone, Debug)]
struct TokenSeen(String);

/// Marks every answer with the instance id, makes an error answer that is not JSON yet
/// (the router's 405, a body over the limit, a query that does not parse) JSON, and
/// writes the access log: one line per request.
async fn every_answer(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req.extensions().get::<Connection>().map(|c| c.peer);
    let mut r = match peer.is_none_or(|p| s.guard.request(p.ip())) {
        true => next.run(req).await,
        false => error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from this address; slow down",
        ),
    };
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
    let token = r
        .extensions()
        .get::<TokenSeen>()
        .map_or("-", |t| t.0.as_str());
    tracing::info!(
        target: "offsite::access",
        peer = %peer.map_or("-".to_string(), |p| p.to_string()),
        method = %method,
        path = %route(&path),
        status = r.status().as_u16(),
        token = %token,
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    r
}

/// The path as the log shows it: a task's id kept (it names the task), anything
/// else unknown cut short.
fn route(path: &str) -> &str {
    match path.len() > 80 {
        true => &path[..path.floor_char_boundary(80)],
        false => path,
    }
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

/// Lets through requests whose bearer token is one of the tokens, with that token (its
/// name and scope) as the request's `TokenSpec` extension.
async fn authenticate(State(s): State<Shared>, mut req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .map(str::to_string);
    let caller = given.as_deref().and_then(|t| s.tokens.find(t));
    let conn = req.extensions().get::<Connection>().copied();
    let Some(caller) = caller else {
        let within = conn.is_none_or(|c| s.guard.failed_auth(c.peer.ip()));
        let mut r = match within {
            true => error(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is needed (Authorization: Bearer TOKEN)",
            ),
            false => error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed authentications from this address; wait",
            ),
        };
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        let seen = if given.is_some() { "refused" } else { "none" };
        r.extensions_mut().insert(TokenSeen(seen.into()));
        return r;
    };
    if let Some(c) = conn {
        s.guard.authenticated(c.id);
    }
    let name = caller.name.clone();
    req.extensions_mut().insert(caller);
    let mut r = next.run(req).await;
    r.extensions_mut().insert(TokenSeen(name));
    r
}

/// The token of an `Authorization: Bearer TOKEN` value; the scheme's name is not case
/// sensitive (RFC 7235).
fn bearer(v: &str) -> Option<&str> {
    let (scheme, token) = v.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

async fn submit(
    State(s): State<Shared>,
    Extension(caller): Extension<TokenSpec>,
    body: Bytes,
) -> Response {
    let req: TaskRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("malformed task: {e}")),
    };
    match s.tasks.submit(req, &caller) {
        Ok(id) => (StatusCode::ACCEPTED, axum::Json(Accepted { id })).into_response(),
        Err(e @ NotTaken::Busy(_)) => error(StatusCode::TOO_MANY_REQUESTS, e.to_string()),
        Err(e @ NotTaken::Stopping) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(NotTaken::Refused(e @ Refusal::UnknownRepository(_))) => {
            error(StatusCode::NOT_FOUND, e.to_string())
        }
        Err(NotTaken::Refused(e @ (Refusal::NotATarget(_) | Refusal::NotAllowed(_)))) => {
            error(StatusCode::FORBIDDEN, e.to_string())
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
    Extension(caller): Extension<TokenSpec>,
    Path(id): Path<String>,
    Query(q): Query<PacksFrom>,
) -> Response {
    match s.tasks.status(&id, q.packs_from, &caller) {
        Some(st) => axum::Json(st).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such task"),
    }
}

async fn cancel(
    State(s): State<Shared>,
    Extension(caller): Extension<TokenSpec>,
    Path(id): Path<String>,
) -> Response {
    match s.tasks.cancel(&id, &caller) {
        true => StatusCode::ACCEPTED.into_response(),
        false => error(StatusCode::NOT_FOUND, "no such task"),
    }
}

async fn list(State(s): State<Shared>, Extension(caller): Extension<TokenSpec>) -> Response {
    axum::Json(s.tasks.list(&caller)).into_response()
}

async fn health(State(s): State<Shared>) -> Response {
    let repositories = s.tasks.workshop().states();
    let failing = |r: &RepositoryHealth| r.state == RepositoryState::Failing;
    let status = match repositories.iter().any(failing) {
        true => HealthStatus::Degraded,
        false => HealthStatus::Ok,
    };
    axum::Json(Health {
        status,
        repositories,
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

async fn repositories(
    State(s): State<Shared>,
    Extension(caller): Extension<TokenSpec>,
) -> Response {
    let mut all = s.tasks.workshop().repositories().await;
    all.retain(|r| caller.may_use(&r.name));
    axum::Json(all).into_response()
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
    let refused = prometheus_client::metrics::family::Family::<
        Vec<(&'static str, &'static str)>,
        prometheus_client::metrics::counter::Counter,
    >::default();
    let by_reason = s.guard.refusals();
    for why in TurnedAway::ALL {
        let n = by_reason.get(&why).copied().unwrap_or(0);
        refused
            .get_or_create(&vec![("reason", why.label())])
            .inc_by(n);
    }
    reg.register(
        "refusals",
        "Connections and requests turned away, by reason",
        refused,
    );
    let open = prometheus_client::metrics::family::Family::<
        Vec<(&'static str, String)>,
        prometheus_client::metrics::gauge::Gauge,
    >::default();
    for r in s.tasks.workshop().states() {
        let up = i64::from(r.state == RepositoryState::Open);
        open.get_or_create(&vec![("repository", r.name)]).set(up);
    }
    reg.register(
        "repository_open",
        "1 when the repository is open, 0 when it is not (yet)",
        open,
    );
    reg.register(
        "connections_open",
        "Connections open",
        ConstGauge::new(s.guard.open() as i64),
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
