//! Target preparation: creates or checks the bucket or container a target lives in with
//! what offsite needs — versioning and object lock (S3) or version-level immutability
//! (Azure) when asked, and on S3 a lifecycle rule that aborts multipart uploads a killed
//! writer left (they are invisible and billed; Azure discards uncommitted blocks by
//! itself) — and says in words what is missing.

use crate::store::Location;
use crate::store::cloud::{BucketSettings, Provider};
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
    match provider_of(loc)? {
        Provider::S3(s3) => verify_s3(loc, s3, wants).await,
        Provider::Azure(az) => verify_azure(loc, az, wants).await,
    }
}

async fn verify_azure(
    loc: &Location,
    az: &crate::store::azure::AzureExtra,
    wants: Wants,
) -> Result<Verdict> {
    let settings = az.container_settings().await?;
    let c = &az.container;
    let mut missing = Vec::new();
    if !settings.exists {
        missing.push(format!(
            "container {c} does not exist: `offsite target create {}`",
            loc.url
        ));
    } else if (wants.object_lock || wants.versioning) && !settings.object_lock {
        missing.push(format!(
            "container {c} has no version-level immutability (which needs blob versioning \
             on the account): it is set on the storage account or when the container is \
             created, through Azure Resource Manager, not the blob API — terraform/azure \
             does both (`immutable_storage_with_versioning`, `versioning_enabled`), or \
             `az storage container-rm create --enable-vlw`"
        ));
    }
    Ok(Verdict {
        bucket: c.clone(),
        settings,
        missing,
        changed: Vec::new(),
    })
}

async fn verify_s3(
    loc: &Location,
    s3: &crate::store::s3::S3Extra,
    wants: Wants,
) -> Result<Verdict> {
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
    let s3 = match provider_of(loc)? {
        Provider::S3(s3) => s3,
        Provider::Azure(az) => {
            let mut changed = Vec::new();
            if !az.container_settings().await?.exists {
                az.create_container().await?;
                changed.push(format!("created container {}", az.container));
            }
            let mut v = verify(loc, wants).await?;
            v.changed = changed;
            return Ok(v);
        }
    };
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
