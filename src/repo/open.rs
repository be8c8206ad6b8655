//! Opening a repository by URL with a password named by a [`Secret`] — how the job
//! runner and the archiver appliance open theirs: on an injected clock, optionally
//! throttled, reading ahead what a [`WarmSpec`] names, and telling "no repository there
//! yet" (`None`) from a failure.

use std::sync::Arc;

use super::{Repository, WarmSpec};
use crate::clock::Clock;
use crate::secret::Secret;
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
