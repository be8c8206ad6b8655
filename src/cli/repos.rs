//! Opening repositories named on the command line, with their passwords; and the exit
//! code every command uses for "finished, but not everything".

use std::sync::Arc;

use offsite::repo::{Repository, WarmSpec};
use offsite::store;

use super::password;

/// Exit code for "finished, but not everything": skipped entries, damaged objects.
pub const PARTIAL: u8 = 3;

/// The repository password: `--password-file`, else `OFFSITE_PASSWORD`, else a prompt.
pub fn repo_password(args_file: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    password::get(
        args_file,
        "OFFSITE_PASSWORD",
        "--password-file",
        "Repository password: ",
        false,
    )
}

/// Opens the repository at `url` with the repository password.
pub async fn open(url: &str, pw_file: Option<&std::path::Path>) -> anyhow::Result<Arc<Repository>> {
    let pw = repo_password(pw_file)?;
    open_with(url, &pw).await
}

/// Opens the repository at `url` with `pw`.
pub async fn open_with(url: &str, pw: &[u8]) -> anyhow::Result<Arc<Repository>> {
    let loc = store::open(url, false)?;
    Ok(Arc::new(Repository::open(loc, pw).await?))
}

/// Opens the repository at `url` and reads ahead what `spec` names while the key is
/// derived (see `offsite::repo::warm` for which operations may).
pub async fn open_warm(
    url: &str,
    pw_file: Option<&std::path::Path>,
    spec: WarmSpec,
) -> anyhow::Result<Arc<Repository>> {
    let pw = repo_password(pw_file)?;
    open_warm_with(url, &pw, spec).await
}

/// [`open_warm`] with the password given.
pub async fn open_warm_with(
    url: &str,
    pw: &[u8],
    spec: WarmSpec,
) -> anyhow::Result<Arc<Repository>> {
    let loc = store::open(url, false)?;
    Ok(Arc::new(Repository::open_warm(loc, pw, spec).await?))
}
