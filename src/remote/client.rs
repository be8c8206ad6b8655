//! The runner's client for one appliance: the `/v1` calls as typed functions. Errors
//! say whether the appliance is unreachable (worth trying again, then giving up on it),
//! refused the request (a 4xx: the same request will not do better), or does not know
//! the task any more (it restarted) — and whether the answer came from another appliance
//! than the one this client first reached (one address in front of several).
//!
//! A failure to reach it says which: the connection refused, no answer within the
//! time, the TLS handshake failed, the token refused.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::api::{
    Accepted, ApiError, Health, INSTANCE_HEADER, RepositoryInfo, TaskRequest, TaskStatus,
};

/// How long a request may take by default (a listing of repositories may derive keys).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What went wrong talking to an appliance.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RemoteError {
    /// No answer, a lost connection, a timeout or a 5xx.
    #[error("{url}: {what}")]
    Unreachable { url: String, what: String },
    /// The appliance refused the request (4xx), with its reason.
    #[error("{url}: refused ({status}): {what}")]
    Refused {
        url: String,
        status: u16,
        what: String,
    },
    /// The task is not known there (the appliance restarted or forgot it).
    #[error("{url}: the task is gone")]
    Gone { url: String },
    /// The answer came from another appliance than the one first reached at this
    /// address: it is a balancer in front of several.
    #[error(
        "{url} reaches several appliances (answered by {expected} and by {got}): list each \
         appliance's own address, or use dns+https://NAME:PORT with a name that resolves to \
         every appliance (a headless Service, multi-value DNS records)"
    )]
    Elsewhere {
        url: String,
        expected: String,
        got: String,
    },
}

/// Whether a task was taken.
#[derive(Debug, Clone)]
pub enum Submitted {
    Taken(String),
    /// Every slot is busy (429).
    Busy,
}

/// One appliance, as the runner reaches it.
#[derive(Clone)]
pub struct Appliance {
    /// As reports name it: the URL, with the address when a name was resolved.
    url: String,
    /// Where requests go.
    base: String,
    token: String,
    http: reqwest::Client,
    /// A client that opens a new connection for each request: a balancer picks a
    /// backend per connection, so probes through it meet each backend.
    fresh: reqwest::Client,
    /// The instance that first answered; every later answer must come from it.
    instance: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for Appliance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Appliance").field("url", &self.url).finish()
    }
}

impl Appliance {
    /// An appliance at `url` (`http(s)://host:port`), reached with bearer `token`;
    /// `ca` adds a PEM certificate authority to trust (a private CA's certificates).
    pub fn new(url: &str, token: &str, ca: Option<&[u8]>) -> crate::Result<Appliance> {
        Appliance::make(url, None, token, ca)
    }

    /// The appliance at `addr`, reached as `url` says (its host name sent, and its
    /// certificate verified against that name): one of several a name resolves to.
    pub fn pinned(
        url: &str,
        addr: SocketAddr,
        token: &str,
        ca: Option<&[u8]>,
    ) -> crate::Result<Appliance> {
        Appliance::make(url, Some(addr), token, ca)
    }

    fn make(
        url: &str,
        addr: Option<SocketAddr>,
        token: &str,
        ca: Option<&[u8]>,
    ) -> crate::Result<Appliance> {
        let bad = |why: String| crate::Error::Invalid(format!("archiver {url}: {why}"));
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("use http://, https:// or dns+https://".into()));
        }
        let certs = match ca {
            Some(pem) => Some(certificate_authority(pem).map_err(bad)?),
            None => None,
        };
        let client = |fresh: bool| {
            let mut b = reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT);
            if fresh {
                b = b.pool_max_idle_per_host(0);
            }
            if let (Some(addr), Some(host)) = (addr, parsed.host_str()) {
                b = b.resolve(host, addr);
            }
            if let Some(c) = &certs {
                b = b.tls_certs_merge(c.clone());
            }
            b.build().map_err(|e| bad(e.to_string()))
        };
        let base = url.trim_end_matches('/').to_string();
        Ok(Appliance {
            url: match addr {
                Some(a) => format!("{base} ({a})"),
                None => base.clone(),
            },
            base,
            token: token.trim().to_string(),
            http: client(false)?,
            fresh: client(true)?,
            instance: Arc::default(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The instance that answered first (after a first call).
    pub fn instance(&self) -> Option<String> {
        self.instance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the instance that answered so far: the next answer's becomes this
    /// appliance's (one that restarted is a new instance at the same address).
    pub fn forget_instance(&self) {
        *self.instance.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The instance ids `probes` health requests meet, each on a new connection (with
    /// the first answer's, they say whether one address reaches several appliances).
    pub async fn probe(&self, probes: usize) -> Result<Vec<String>, RemoteError> {
        let mut seen = Vec::new();
        for _ in 0..probes {
            let resp = (self.fresh.get(format!("{}/v1/health", self.base)))
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| self.unreachable(describe(&e)))?;
            if let Some(i) = instance_of(&resp)
                && !seen.contains(&i)
            {
                seen.push(i);
            }
        }
        Ok(seen)
    }

    fn unreachable(&self, what: String) -> RemoteError {
        RemoteError::Unreachable {
            url: self.url.clone(),
            what,
        }
    }

    /// Notes the instance that answered: the first becomes this appliance's, a later
    /// other one is an error.
    fn answered_by(&self, got: Option<String>) -> Result<(), RemoteError> {
        let Some(got) = got else { return Ok(()) };
        let mut known = self.instance.lock().unwrap_or_else(|e| e.into_inner());
        match &*known {
            None => {
                *known = Some(got);
                Ok(())
            }
            Some(expected) if *expected == got => Ok(()),
            Some(expected) => Err(RemoteError::Elsewhere {
                url: self.url.clone(),
                expected: expected.clone(),
                got,
            }),
        }
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        timeout: Option<Duration>,
    ) -> Result<(StatusCode, Option<T>), RemoteError> {
        let unreachable = |what: String| self.unreachable(what);
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| unreachable(describe(&e)))?;
        self.answered_by(instance_of(&resp))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| unreachable(describe(&e)))?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(RemoteError::Refused {
                url: self.url.clone(),
                status: status.as_u16(),
                what: "the token was refused: give the token whose hash the appliance's \
                       configuration holds"
                    .into(),
            });
        }
        if status.is_server_error() {
            return Err(unreachable(format!("{status}: {}", reason(&bytes))));
        }
        if status.is_client_error() {
            return match status {
                StatusCode::TOO_MANY_REQUESTS => Ok((status, None)),
                StatusCode::NOT_FOUND if path.starts_with("/v1/tasks/") => Err(RemoteError::Gone {
                    url: self.url.clone(),
                }),
                _ => Err(RemoteError::Refused {
                    url: self.url.clone(),
                    status: status.as_u16(),
                    what: reason(&bytes),
                }),
            };
        }
        if bytes.is_empty() {
            return Ok((status, None));
        }
        let v = serde_json::from_slice(&bytes)
            .map_err(|e| unreachable(format!("an answer that does not parse: {e}")))?;
        Ok((status, Some(v)))
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        timeout: Option<Duration>,
    ) -> Result<T, RemoteError> {
        match self.call(Method::GET, path, None, timeout).await? {
            (_, Some(v)) => Ok(v),
            (s, None) => Err(RemoteError::Unreachable {
                url: self.url.clone(),
                what: format!("{s} with no answer"),
            }),
        }
    }

    pub async fn health(&self) -> Result<Health, RemoteError> {
        self.get("/v1/health", None).await
    }

    pub async fn repositories(&self) -> Result<Vec<RepositoryInfo>, RemoteError> {
        self.get("/v1/repositories", None).await
    }

    pub async fn tasks(&self) -> Result<Vec<TaskStatus>, RemoteError> {
        self.get("/v1/tasks", None).await
    }

    pub async fn submit(&self, req: &TaskRequest) -> Result<Submitted, RemoteError> {
        let body = serde_json::to_vec(req).map_err(|e| RemoteError::Refused {
            url: self.url.clone(),
            status: 0,
            what: e.to_string(),
        })?;
        match self
            .call::<Accepted>(Method::POST, "/v1/tasks", Some(body), None)
            .await?
        {
            (StatusCode::TOO_MANY_REQUESTS, _) => Ok(Submitted::Busy),
            (_, Some(a)) => Ok(Submitted::Taken(a.id)),
            (s, None) => Err(RemoteError::Unreachable {
                url: self.url.clone(),
                what: format!("{s} with no task id"),
            }),
        }
    }

    /// A task's state with its packs from `packs_from` on, answered within `timeout`.
    pub async fn status(
        &self,
        id: &str,
        packs_from: usize,
        timeout: Duration,
    ) -> Result<TaskStatus, RemoteError> {
        let path = format!("/v1/tasks/{id}?packs_from={packs_from}");
        self.get(&path, Some(timeout)).await
    }

    /// Asks the task to stop at its next pack boundary.
    pub async fn cancel(&self, id: &str, timeout: Duration) -> Result<(), RemoteError> {
        let path = format!("/v1/tasks/{id}");
        (self.call::<serde_json::Value>(Method::DELETE, &path, None, Some(timeout)))
            .await
            .map(|_| ())
    }
}

fn instance_of(resp: &reqwest::Response) -> Option<String> {
    let v = resp.headers().get(INSTANCE_HEADER)?.to_str().ok()?;
    Some(v.to_string())
}

/// A PEM bundle of at least one certificate (a file holding only a key, or nothing
/// PEM, is refused: it would trust nothing and fail later, at the handshake).
fn certificate_authority(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    let text = String::from_utf8_lossy(pem);
    if !text.contains("-----BEGIN CERTIFICATE-----") {
        return Err("the certificate authority file holds no PEM certificate \
                    (-----BEGIN CERTIFICATE-----)"
            .into());
    }
    reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("certificate authority: {e}"))
}

/// What went wrong reaching an appliance, in the words an operator acts on.
fn describe(e: &reqwest::Error) -> String {
    let mut chain = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = cur {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        cur = s.source();
    }
    let lower = chain.to_lowercase();
    let why = if e.is_timeout() {
        "no answer in time (timed out): the appliance is hung, overloaded or unreachable"
    } else if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake")
    {
        "the TLS handshake failed: check the appliance's certificate and --via-ca / ca_file"
    } else if lower.contains("connection refused") {
        "connection refused: nothing listens there (the appliance is down or restarting)"
    } else if lower.contains("dns error") || lower.contains("failed to lookup") {
        "the host name does not resolve"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() || lower.contains("connection closed") {
        "the connection was lost mid-answer"
    } else {
        "the request failed"
    };
    format!("{why} ({})", crate::store::diagnose::one_line(&chain))
}

/// The `error` of an API error body, or the body's start.
fn reason(body: &[u8]) -> String {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}
