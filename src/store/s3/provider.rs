//! S3 as a [`CloudProvider`]: the requests of [`S3Extra`], and the bucket a target
//! needs — checked (versioning, object lock, the lifecycle rule aborting forgotten
//! multipart uploads) and created.

use async_trait::async_trait;

// The client's helpers and the SDK's types, as the parent module names them.
use super::*;
use crate::store::cloud::{ABORT_AFTER_DAYS, CloudProvider, PartReader, Verdict, Wants};

#[async_trait]
impl CloudProvider for S3Extra {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn bucket(&self) -> &str {
        &self.bucket
    }

    /// HEAD: size, class, restore and lock state.
    async fn state(&self, key: &str) -> Result<ObjectState> {
        let out = self
            .client()
            .await
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                return Err(Error::NotFound {
                    object: key.to_string(),
                });
            }
            Err(e) => return Err(sdk_err(key, "HEAD", e)),
        };
        let lock = match (out.object_lock_mode(), out.object_lock_retain_until_date()) {
            (Some(m), Some(d)) => {
                let mode = match m {
                    ObjectLockMode::Compliance => LockMode::Compliance,
                    _ => LockMode::Governance,
                };
                chrono_time(d).map(|d| (mode, d))
            }
            _ => None,
        };
        Ok(ObjectState {
            size: out.content_length().unwrap_or(0).max(0) as u64,
            class: out
                .storage_class()
                .map(|c| c.as_str().to_string())
                .filter(|c| c != "STANDARD"),
            restore: parse_restore(out.restore()),
            lock,
        })
    }

    /// Asks for a readable copy of an archived object for `days` days.
    async fn restore(&self, key: &str, tier: RetrievalTier, days: i32) -> Result<RestoreAsked> {
        let tier = match tier {
            RetrievalTier::Bulk => Tier::Bulk,
            RetrievalTier::Standard => Tier::Standard,
            RetrievalTier::Expedited => Tier::Expedited,
        };
        let params = GlacierJobParameters::builder()
            .tier(tier)
            .build()
            .map_err(|e| Error::Internal(format!("restore request: {e}")))?;
        let req = RestoreRequest::builder()
            .days(days)
            .glacier_job_parameters(params)
            .build();
        let r = self
            .client()
            .await
            .restore_object()
            .bucket(&self.bucket)
            .key(key)
            .restore_request(req)
            .send()
            .await;
        match r {
            Ok(_) => Ok(RestoreAsked::Started),
            Err(e) if e.code() == Some("RestoreAlreadyInProgress") => {
                Ok(RestoreAsked::AlreadyUnderway)
            }
            Err(e) => Err(sdk_err(key, "RestoreObject", e)),
        }
    }

    /// Creates `key` with `body`, locked until `until` in `mode`, in `class`; never
    /// over an existing object (`AlreadyExists`).
    async fn put_locked(
        &self,
        key: &str,
        body: Vec<u8>,
        class: Option<&str>,
        mode: LockMode,
        until: DateTime<Utc>,
    ) -> Result<()> {
        let mut req = self
            .client()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .if_none_match("*")
            .object_lock_mode(lock_mode(mode))
            .object_lock_retain_until_date(smithy_time(until));
        if let Some(c) = class {
            req = req.storage_class(StorageClass::from(c));
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                Err(Error::AlreadyExists {
                    object: key.to_string(),
                })
            }
            Err(e) => Err(sdk_err(key, "PutObject with object lock", e)),
        }
    }

    /// A multipart upload locked with its creation; `part(i)` gives part `i` (0-based) of
    /// `parts`. Aborted on any failure.
    async fn put_locked_multipart(
        &self,
        key: &str,
        parts: usize,
        part: PartReader<'_>,
        class: Option<&str>,
        mode: LockMode,
        until: DateTime<Utc>,
    ) -> Result<()> {
        let client = self.client().await;
        let mut req = client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .object_lock_mode(lock_mode(mode))
            .object_lock_retain_until_date(smithy_time(until));
        if let Some(c) = class {
            req = req.storage_class(StorageClass::from(c));
        }
        let created = req
            .send()
            .await
            .map_err(|e| sdk_err(key, "CreateMultipartUpload with object lock", e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| Error::Internal(format!("{key}: multipart upload without an id")))?
            .to_string();
        let abort = || async {
            let _ = client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        };
        let mut done = Vec::with_capacity(parts);
        for i in 0..parts {
            let body = match part(i) {
                Ok(b) => b,
                Err(e) => {
                    abort().await;
                    return Err(Error::io(std::env::temp_dir(), e));
                }
            };
            let n = i as i32 + 1;
            let r = client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(n)
                .body(ByteStream::from(body))
                .send()
                .await;
            match r {
                Ok(o) => done.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(o.e_tag().map(str::to_string))
                        .build(),
                ),
                Err(e) => {
                    abort().await;
                    return Err(sdk_err(key, "UploadPart", e));
                }
            }
        }
        let r = client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(done))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = r {
            abort().await;
            return Err(sdk_err(key, "CompleteMultipartUpload", e));
        }
        Ok(())
    }

    /// Moves the object's retain-until date to `until` (a lock is only ever extended:
    /// the caller asks only for later dates, and the provider refuses shorter ones in
    /// compliance mode).
    async fn extend_lock(&self, key: &str, mode: LockMode, until: DateTime<Utc>) -> Result<()> {
        let retention = ObjectLockRetention::builder()
            .mode(retention_mode(mode))
            .retain_until_date(smithy_time(until))
            .build();
        self.client()
            .await
            .put_object_retention()
            .bucket(&self.bucket)
            .key(key)
            .retention(retention)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk_err(key, "PutObjectRetention", e))
    }

    // A bucket without object lock refuses the first locked write at once, naming it;
    // its configuration may not be readable with a runner's grants: no look first.

    async fn verify(&self, url: &str, wants: Wants) -> Result<Verdict> {
        let settings = self.bucket_settings().await?;
        let b = &self.bucket;
        let mut missing = Vec::new();
        if !settings.exists {
            missing.push(format!(
                "bucket {b} does not exist: `offsite target create {}`",
                url
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
                    url
                ));
            }
            if settings.abort_incomplete_multipart_days.is_none() {
                missing.push(format!(
                    "bucket {b} has no lifecycle rule aborting incomplete multipart uploads (a \
                     killed copy leaves them, invisible and billed): `offsite target create {}` \
                     adds one ({ABORT_AFTER_DAYS} days)",
                    url
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
    async fn create(&self, url: &str, wants: Wants) -> Result<Verdict> {
        let before = self.bucket_settings().await?;
        let mut changed = Vec::new();
        if !before.exists {
            self.create_bucket(wants.object_lock).await?;
            changed.push(match wants.object_lock {
                true => format!("created bucket {} with object lock", self.bucket),
                false => format!("created bucket {}", self.bucket),
            });
        }
        let now = self.bucket_settings().await?;
        if (wants.versioning || wants.object_lock) && !now.versioning {
            self.enable_versioning().await?;
            changed.push("turned versioning on".to_string());
        }
        if now.abort_incomplete_multipart_days.is_none() {
            self.add_abort_rule(ABORT_AFTER_DAYS).await?;
            changed.push(format!(
                "added a lifecycle rule aborting multipart uploads incomplete after {ABORT_AFTER_DAYS} days"
            ));
        }
        let mut v = self.verify(url, wants).await?;
        v.changed = changed;
        Ok(v)
    }
}
