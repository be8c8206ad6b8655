//! What `object_store` cannot do on S3, through `aws-sdk-s3`: an object's class,
//! archive and lock state (HEAD), restores from archive classes, writes locked with the
//! write (Object Lock headers on PutObject / CreateMultipartUpload), lock extensions,
//! and the bucket's settings (versioning, object lock, the lifecycle rule that aborts
//! forgotten multipart uploads).
//!
//! The client is built on first use from the same environment object_store reads
//! (`AWS_*`, `AWS_ENDPOINT_URL`, path-style unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`),
//! through aws-config's default chain (environment, profile, web identity, ECS, IMDS).

pub mod info;
mod provider;

use std::sync::Arc;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    CompletedMultipartUpload, CompletedPart, ExpirationStatus, GlacierJobParameters, LifecycleRule,
    LifecycleRuleFilter, ObjectLockEnabled, ObjectLockMode, ObjectLockRetention,
    ObjectLockRetentionMode, RestoreRequest, StorageClass, Tier, VersioningConfiguration,
};
use chrono::{DateTime, Utc};
use tokio::sync::OnceCell;

use super::cloud::{
    ABORT_RULE_ID, BucketSettings, ObjectState, Restore, RestoreAsked, RetrievalTier,
};
use crate::format::config::LockMode;
use crate::{Error, Result};

/// The provider client of one S3 bucket, made on first use.
#[derive(Clone, Debug)]
pub struct S3Extra {
    pub bucket: String,
    client: Arc<OnceCell<aws_sdk_s3::Client>>,
}

fn env_true(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"))
}

fn lock_mode(m: LockMode) -> ObjectLockMode {
    match m {
        LockMode::Governance => ObjectLockMode::Governance,
        LockMode::Compliance => ObjectLockMode::Compliance,
    }
}

fn retention_mode(m: LockMode) -> ObjectLockRetentionMode {
    match m {
        LockMode::Governance => ObjectLockRetentionMode::Governance,
        LockMode::Compliance => ObjectLockRetentionMode::Compliance,
    }
}

/// Whole seconds, rounded up: a lock never ends before the date asked for.
fn smithy_time(t: DateTime<Utc>) -> aws_sdk_s3::primitives::DateTime {
    let up = i64::from(t.timestamp_subsec_nanos() > 0);
    aws_sdk_s3::primitives::DateTime::from_secs(t.timestamp() + up)
}

fn chrono_time(t: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), 0)
}

/// An SDK failure as the library's error: the object, the operation, the provider's
/// code and message, and what to do when the code says.
fn sdk_err<E, R>(object: &str, op: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().unwrap_or("").to_string();
    // The provider's code and message, or (no answer) the cause in one line; the whole
    // response with -v.
    let said = match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        _ => DisplayErrorContext(&e).to_string(),
    };
    tracing::debug!("{object}: {op}: {}", DisplayErrorContext(&e));
    let hint = match code.as_str() {
        "AccessDenied" => {
            "; the credentials lack this permission (grant it to the runner's identity)"
        }
        "NoSuchBucket" => "; create it with `offsite target create`",
        "InvalidRequest" if op.contains("lock") || op.contains("Retention") => {
            "; is object lock enabled on the bucket? `offsite target verify` tells"
        }
        _ => "",
    };
    Error::Cloud {
        object: object.to_string(),
        what: format!("{op} failed: {said}{hint}"),
        code,
    }
}

impl S3Extra {
    pub fn new(bucket: &str) -> S3Extra {
        S3Extra {
            bucket: bucket.to_string(),
            client: Arc::default(),
        }
    }

    async fn client(&self) -> &aws_sdk_s3::Client {
        self.client
            .get_or_init(|| async {
                let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
                let mut b = aws_sdk_s3::config::Builder::from(&shared);
                // object_store reads AWS_ENDPOINT too, and uses path-style addressing
                // unless told otherwise: so must this client, to reach the same bucket.
                if let Ok(e) = std::env::var("AWS_ENDPOINT") {
                    b = b.endpoint_url(e);
                }
                if shared.region().is_none() {
                    b = b.region(aws_sdk_s3::config::Region::new("us-east-1"));
                }
                b = b.force_path_style(!env_true("AWS_VIRTUAL_HOSTED_STYLE_REQUEST"));
                aws_sdk_s3::Client::from_conf(b.build())
            })
            .await
    }

    /// The bucket's versioning, object lock and multipart clean-up, or `exists: false`.
    pub async fn bucket_settings(&self) -> Result<BucketSettings> {
        let c = self.client().await;
        let b = &self.bucket;
        match c.head_bucket().bucket(b).send().await {
            Ok(_) => {}
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                return Ok(BucketSettings::default());
            }
            Err(e) => return Err(sdk_err(b, "HeadBucket", e)),
        }
        let versioning = c
            .get_bucket_versioning()
            .bucket(b)
            .send()
            .await
            .map_err(|e| sdk_err(b, "GetBucketVersioning", e))?
            .status()
            == Some(&BucketVersioningStatus::Enabled);
        let object_lock = match c.get_object_lock_configuration().bucket(b).send().await {
            Ok(o) => {
                o.object_lock_configuration()
                    .and_then(|l| l.object_lock_enabled())
                    == Some(&ObjectLockEnabled::Enabled)
            }
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => false,
            Err(e) => return Err(sdk_err(b, "GetObjectLockConfiguration", e)),
        };
        let abort = match c
            .get_bucket_lifecycle_configuration()
            .bucket(b)
            .send()
            .await
        {
            Ok(o) => o
                .rules()
                .iter()
                .filter(|r| r.status() == &ExpirationStatus::Enabled)
                .filter_map(|r| r.abort_incomplete_multipart_upload())
                .filter_map(|a| a.days_after_initiation())
                .min(),
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => None,
            Err(e) => return Err(sdk_err(b, "GetBucketLifecycleConfiguration", e)),
        };
        Ok(BucketSettings {
            exists: true,
            versioning,
            object_lock,
            abort_incomplete_multipart_days: abort,
        })
    }

    /// Creates the bucket, with object lock (which turns versioning on) when asked.
    pub async fn create_bucket(&self, object_lock: bool) -> Result<()> {
        let c = self.client().await;
        let mut req = c.create_bucket().bucket(&self.bucket);
        if object_lock {
            req = req.object_lock_enabled_for_bucket(true);
        }
        // Outside us-east-1 S3 wants the region as the location constraint.
        let region = c.config().region().map(|r| r.as_ref().to_string());
        if let Some(r) = region.filter(|r| r != "us-east-1") {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        r.as_str(),
                    ))
                    .build(),
            );
        }
        req.send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_err(&self.bucket, "CreateBucket", e))
    }

    pub async fn enable_versioning(&self) -> Result<()> {
        self.client()
            .await
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_err(&self.bucket, "PutBucketVersioning", e))
    }

    /// Adds offsite's rule aborting multipart uploads left incomplete for `days`,
    /// keeping the bucket's other rules.
    pub async fn add_abort_rule(&self, days: i32) -> Result<()> {
        let c = self.client().await;
        let b = &self.bucket;
        let mut rules: Vec<LifecycleRule> = match c
            .get_bucket_lifecycle_configuration()
            .bucket(b)
            .send()
            .await
        {
            Ok(o) => o.rules().to_vec(),
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Vec::new(),
            Err(e) => return Err(sdk_err(b, "GetBucketLifecycleConfiguration", e)),
        };
        rules.retain(|r| r.id() != Some(ABORT_RULE_ID));
        let rule = LifecycleRule::builder()
            .id(ABORT_RULE_ID)
            .status(ExpirationStatus::Enabled)
            .filter(LifecycleRuleFilter::builder().prefix("").build())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(days)
                    .build(),
            )
            .build()
            .map_err(|e| Error::Internal(format!("lifecycle rule: {e}")))?;
        rules.push(rule);
        let conf = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| Error::Internal(format!("lifecycle configuration: {e}")))?;
        c.put_bucket_lifecycle_configuration()
            .bucket(b)
            .lifecycle_configuration(conf)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_err(b, "PutBucketLifecycleConfiguration", e))
    }
}

/// `x-amz-restore`: `ongoing-request="true"`, or `ongoing-request="false",
/// expiry-date="Fri, 21 Dec 2012 00:00:00 GMT"`.
fn parse_restore(h: Option<&str>) -> Restore {
    let Some(h) = h else {
        return Restore::None;
    };
    if h.contains("ongoing-request=\"true\"") {
        return Restore::InProgress;
    }
    let until = h
        .split("expiry-date=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
        .map(|d| d.with_timezone(&Utc));
    Restore::Ready { until }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_header_is_read() {
        assert_eq!(parse_restore(None), Restore::None);
        assert_eq!(
            parse_restore(Some("ongoing-request=\"true\"")),
            Restore::InProgress
        );
        let r = parse_restore(Some(
            "ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2012 00:00:00 GMT\"",
        ));
        let Restore::Ready { until: Some(d) } = r else {
            panic!("{r:?}")
        };
        assert_eq!(d.to_rfc3339(), "2012-12-21T00:00:00+00:00");
    }
}
