//! The runner's client for one appliance: the `/v1` calls as typed functions. Errors
//! say whether the appliance is unreachable (worth trying again, then giving up on it),
//! refused the request (a 4xx: the same request will not do better), or does not know
//! the task any more (it restarted).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use super::api::{Accepted, ApiError, Health, RepositoryInfo, TaskRequest, TaskStatus};

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
    url: String,
    token: String,
    http: reqwest::Client,
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
        let bad = |why: String| crate::Error::Invalid(format!("archiver {url}: {why}"));
        let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(bad("use http:// or https://".into()));
        }
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        if let Some(pem) = ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| bad(format!("certificate authority: {e}")))?;
            b = b.tls_certs_merge(certs);
        }
        let http = b.build().map_err(|e| bad(e.to_string()))?;
        Ok(Appliance {
            url: url.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Option<T>), RemoteError> {
        let unreachable = |what: String| RemoteError::Unreachable {
            url: self.url.clone(),
            what,
        };
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = req.send().await.map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| unreachable(e.to_string()))?;
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

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        match self.call(Method::GET, path, None).await? {
            (_, Some(v)) => Ok(v),
            (s, None) => Err(RemoteError::Unreachable {
                url: self.url.clone(),
                what: format!("{s} with no answer"),
            }),
        }
    }

    pub async fn health(&self) -> Result<Health, RemoteError> {
        self.get("/v1/health").await
    }

    pub async fn repositories(&self) -> Result<Vec<RepositoryInfo>, RemoteError> {
        self.get("/v1/repositories").await
    }

    pub async fn tasks(&self) -> Result<Vec<TaskStatus>, RemoteError> {
        self.get("/v1/tasks").await
    }

    pub async fn submit(&self, req: &TaskRequest) -> Result<Submitted, RemoteError> {
        let body = serde_json::to_vec(req).map_err(|e| RemoteError::Refused {
            url: self.url.clone(),
            status: 0,
            what: e.to_string(),
        })?;
        match self
            .call::<Accepted>(Method::POST, "/v1/tasks", Some(body))
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

    pub async fn status(&self, id: &str, packs_from: usize) -> Result<TaskStatus, RemoteError> {
        self.get(&format!("/v1/tasks/{id}?packs_from={packs_from}"))
            .await
    }

    pub async fn cancel(&self, id: &str) -> Result<(), RemoteError> {
        self.call::<serde_json::Value>(Method::DELETE, &format!("/v1/tasks/{id}"), None)
            .await
            .map(|_| ())
    }
}

/// The `error` of an API error body, or the body's start.
fn reason(body: &[u8]) -> String {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(e) => e.error,
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}
