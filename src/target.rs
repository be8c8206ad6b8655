//! Target preparation: creates or checks the bucket a target lives in with what offsite
//! needs — versioning and object lock when asked, and a lifecycle rule that aborts
//! multipart uploads a killed writer left (they are invisible and billed) — and says in
//! words what is missing.

use crate::store::Location;
use crate::store::cloud::BucketSettings;
use crate::{Error, Result};

/// Days after which offsite's lifecycle rule aborts an incomplete multipart upload.
pub const ABORT_AFTER_DAYS: i32 = 7;

/// What the target should have.
#[derive(Clone, Copy, Debug, Default)]
pub struct Wants {
    pub object_lock: bool,
    pub versioning: bool,
}

/// The bucket's settings and what is missing, in words.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Verdict {
    pub bucket: String,
    pub settings: BucketSettings,
    /// What to do about each missing setting; empty when the bucket is ready.
    pub missing: Vec<String>,
    /// What `create` changed.
    pub changed: Vec<String>,
}

fn bucket_of(loc: &Location) -> Result<&crate::store::cloud::S3Extra> {
    loc.extra.as_ref().ok_or_else(|| {
        Error::Invalid(format!(
            "{}: `offsite target create|verify` prepares S3 buckets; for an Azure container \
             use terraform/azure (versioning, version-level immutability) or `az storage \
             container create`, and a folder needs nothing",
            loc.url
        ))
    })
}

/// Reads the bucket's settings and lists what is missing for `wants`.
pub async fn verify(loc: &Location, wants: Wants) -> Result<Verdict> {
    let s3 = bucket_of(loc)?;
    let settings = s3.bucket_settings().await?;
    let b = &s3.bucket;
    let mut missing = Vec::new();
    if !settings.exists {
        missing.push(format!(
            "bucket {b} does not exist: `offsite target create {}`",
            loc.url
        ));
    } else {
        if wants.object_lock && !settings.object_lock {
            missing.push(format!(
                "bucket {b} has no object lock; S3 turns it on only when a bucket is created \
                 (or through AWS support): create a new bucket with `offsite target create \
                 URL --object-lock governance`"
            ));
        }
        if (wants.versioning || wants.object_lock) && !settings.versioning {
            missing.push(format!(
                "bucket {b} has no versioning: `offsite target create {} --versioning` turns it on",
                loc.url
            ));
        }
        if settings.abort_incomplete_multipart_days.is_none() {
            missing.push(format!(
                "bucket {b} has no lifecycle rule aborting incomplete multipart uploads (a \
                 killed copy leaves them, invisible and billed): `offsite target create {}` \
                 adds one ({ABORT_AFTER_DAYS} days)",
                loc.url
            ));
        }
    }
    Ok(Verdict {
        bucket: b.clone(),
        settings,
        missing,
        changed: Vec::new(),
    })
}

/// Creates the bucket if missing and adds what `wants` asks and the abort rule; what
/// cannot be added afterwards (object lock on an existing bucket) stays in `missing`.
pub async fn create(loc: &Location, wants: Wants) -> Result<Verdict> {
    let s3 = bucket_of(loc)?;
    let before = s3.bucket_settings().await?;
    let mut changed = Vec::new();
    if !before.exists {
        s3.create_bucket(wants.object_lock).await?;
        changed.push(match wants.object_lock {
            true => format!("created bucket {} with object lock", s3.bucket),
            false => format!("created bucket {}", s3.bucket),
        });
    }
    let now = s3.bucket_settings().await?;
    if (wants.versioning || wants.object_lock) && !now.versioning {
        s3.enable_versioning().await?;
        changed.push("turned versioning on".to_string());
    }
    if now.abort_incomplete_multipart_days.is_none() {
        s3.add_abort_rule(ABORT_AFTER_DAYS).await?;
        changed.push(format!(
            "added a lifecycle rule aborting multipart uploads incomplete after {ABORT_AFTER_DAYS} days"
        ));
    }
    let mut v = verify(loc, wants).await?;
    v.changed = changed;
    Ok(v)
}
