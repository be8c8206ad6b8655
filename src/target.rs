//! Target preparation: creates or checks the bucket or container a target lives in with
//! what offsite needs — versioning and object lock (S3) or version-level immutability
//! (Azure) when asked, and on S3 a lifecycle rule that aborts multipart uploads a killed
//! writer left (they are invisible and billed; Azure discards uncommitted blocks by
//! itself) — and says in words what is missing.

use crate::store::Location;
use crate::store::cloud::Provider;
pub use crate::store::cloud::{ABORT_AFTER_DAYS, Verdict, Wants};
use crate::{Error, Result};

fn provider_of(loc: &Location) -> Result<&Provider> {
    loc.extra.as_ref().ok_or_else(|| {
        Error::Invalid(format!(
            "{}: `offsite target create|verify` prepares S3 buckets and Azure containers; \
             a folder needs nothing",
            loc.url
        ))
    })
}

/// Reads the bucket's or container's settings and lists what is missing for `wants`.
pub async fn verify(loc: &Location, wants: Wants) -> Result<Verdict> {
    provider_of(loc)?.verify(&loc.url, wants).await
}

/// Creates the bucket or container if missing and adds what `wants` asks (and, on S3,
/// the abort rule); what cannot be added afterwards stays in `missing`.
pub async fn create(loc: &Location, wants: Wants) -> Result<Verdict> {
    provider_of(loc)?.create(&loc.url, wants).await
}
