//! A job's archiver pool (`[job.archivers]`): the appliances its transfers run on. A
//! long-running pool is only a list of URLs; an **ephemeral** one is started for the
//! interval's transfer by a command (which runs an ECS task or a Container Apps job, say,
//! and prints the appliances' URLs, one per line), waited for on `/v1/health`, and
//! stopped by another command after the last task. The token comes from an environment
//! variable or a file, never the jobs file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::Secret;
use super::script::{self, ScriptReport, ScriptSpec};
use crate::clock::Clock;
use crate::remote::address::{self, SystemResolver};
use crate::remote::pool::{Pool, PoolOptions, Redispatch};
use crate::{Error, Result};

/// `[job.archivers]` as the jobs file gives it.
#[derive(Clone, Debug, PartialEq)]
pub struct ArchiversSpec {
    /// Appliances that run all the time.
    pub urls: Vec<String>,
    pub token: Secret,
    /// A PEM certificate authority for their HTTPS.
    pub ca_file: Option<PathBuf>,
    pub redispatch: Redispatch,
    /// Starts an ephemeral pool and prints its URLs (one per line).
    pub start: Option<ScriptSpec>,
    /// Stops it, with the URLs in `OFFSITE_ARCHIVERS`.
    pub stop: Option<ScriptSpec>,
    /// How long the pool has to answer `/v1/health` once started.
    pub ready_timeout: Duration,
    /// How long an appliance keeps a task the runner stopped asking for.
    pub lease: Duration,
}

/// What the pool was, for the interval's report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ArchiversReport {
    pub urls: Vec<String>,
    /// Appliances that answered and took part.
    pub ready: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<ScriptReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Starts the pool when it is ephemeral, waits until at least one appliance answers
/// (every configured one, or `ready_timeout`), and connects to it.
pub async fn open(
    spec: &ArchiversSpec,
    env: &[(String, String)],
    clock: &Arc<dyn Clock>,
    report: &mut ArchiversReport,
) -> Result<Arc<Pool>> {
    let mut urls = spec.urls.clone();
    if let Some(start) = &spec.start {
        let r = script::run(start, "archivers-start", env).await;
        let ok = r.ok;
        let printed: Vec<String> = r
            .output
            .lines()
            .map(str::trim)
            .filter(|l| {
                ["http://", "https://", "dns+http://", "dns+https://"]
                    .iter()
                    .any(|p| l.starts_with(p))
            })
            .map(String::from)
            .collect();
        let why = r.error.clone();
        report.scripts.push(r);
        if !ok {
            return Err(Error::Invalid(format!(
                "the archivers' start command failed: {}",
                why.unwrap_or_default()
            )));
        }
        urls.extend(printed);
    }
    report.urls = urls.clone();
    if urls.is_empty() {
        return Err(Error::Invalid(
            "no archiver: [job.archivers] has no urls and its start command printed none".into(),
        ));
    }
    let token = spec
        .token
        .read()
        .map_err(|e| Error::Invalid(format!("archivers' token: {e}")))?;
    let token = String::from_utf8_lossy(&token).into_owned();
    let ca = match &spec.ca_file {
        Some(f) => Some(std::fs::read(f).map_err(|e| Error::io(f, e))?),
        None => None,
    };
    let apps = address::appliances(&urls, &token, ca.as_deref(), &SystemResolver).await?;
    // Ready: every appliance answers, or the time is up and at least one does.
    let deadline = clock.now() + chrono::Duration::from_std(spec.ready_timeout).unwrap_or_default();
    loop {
        let mut up = 0;
        for a in &apps {
            up += usize::from(a.health().await.is_ok());
        }
        if up == apps.len() || (up > 0 && clock.now() >= deadline) {
            break;
        }
        if clock.now() >= deadline {
            return Err(Error::Invalid(format!(
                "no archiver answered within {:?}: {}",
                spec.ready_timeout,
                urls.join(", ")
            )));
        }
        clock.sleep(Duration::from_secs(1)).await;
    }
    let opts = PoolOptions {
        redispatch: spec.redispatch,
        lease: spec.lease,
        ..Default::default()
    };
    let pool = Pool::connect(apps, opts, clock.clone()).await?;
    report.ready = pool.alive();
    Ok(Arc::new(pool))
}

/// Stops an ephemeral pool (the URLs in `OFFSITE_ARCHIVERS`, space-separated).
pub async fn close(spec: &ArchiversSpec, env: &[(String, String)], report: &mut ArchiversReport) {
    let Some(stop) = &spec.stop else {
        return;
    };
    let mut env = env.to_vec();
    env.push(("OFFSITE_ARCHIVERS".into(), report.urls.join(" ")));
    let r = script::run(stop, "archivers-stop", &env).await;
    if !r.ok {
        tracing::warn!(
            "the archivers' stop command failed: {}",
            r.error.clone().unwrap_or_default()
        );
    }
    report.scripts.push(r);
}
