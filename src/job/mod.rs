//! Backup copy jobs: a jobs file ([`config`]) names each job's sources, target,
//! schedule ([`schedule`]: intervals and copy windows), retention and prune; the runner
//! keeps each job's copy current from it.

pub mod archivers;
pub mod config;
pub mod endpoint;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod run;
pub mod runner;
pub mod schedule;
pub mod script;
pub mod state;
pub mod status;
pub mod toml_walk;

pub use config::{Job, JobsFile, Mode, Secret};
pub use toml_walk::Problem;

use std::sync::Arc;

use crate::clock::Clock;
use crate::repo::{Repository, WarmSpec};
use crate::{Error, Result, store};

/// Opens the repository a job names at `url`, with the password `secret` names, on
/// `clock`, reading ahead what `spec` names; `None` when no repository is there yet.
pub async fn open_repository(
    url: &str,
    secret: &Secret,
    clock: &Arc<dyn Clock>,
    spec: WarmSpec,
) -> Result<Option<Repository>> {
    open_repository_with(url, secret, clock, spec, None).await
}

/// [`open_repository`] with its HTTP traffic through `throttle`.
pub async fn open_repository_with(
    url: &str,
    secret: &Secret,
    clock: &Arc<dyn Clock>,
    spec: WarmSpec,
    throttle: Option<&Arc<store::throttle::Throttle>>,
) -> Result<Option<Repository>> {
    let pw = secret
        .read()
        .map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    let loc = match store::open_throttled(url, false, throttle.cloned()) {
        Ok(l) => l.with_clock(clock.clone()),
        Err(Error::NoRepository { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    match Repository::open_warm(loc, &pw, spec).await {
        Ok(r) => Ok(Some(r)),
        Err(Error::NoRepository { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
