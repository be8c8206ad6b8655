//! What `object_store` cannot do, through each provider's own SDK: the shared words
//! (an object's class, restore and lock state; retrieval tiers; a bucket's settings and
//! what a target wants of it) and the [`CloudProvider`] trait, which the S3
//! ([`super::s3`]) and Azure ([`super::azure`]) clients implement.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::Result;
use crate::format::config::LockMode;

/// The id of the lifecycle rule offsite adds to abort forgotten multipart uploads.
pub const ABORT_RULE_ID: &str = "offsite-abort-incomplete-multipart";

/// What the provider says of one stored object beyond its size.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ObjectState {
    pub size: u64,
    /// As the provider spells it; `None` is the default class.
    pub class: Option<String>,
    pub restore: Restore,
    pub lock: Option<(LockMode, DateTime<Utc>)>,
}

impl ObjectState {
    /// Whether a GET would be refused now (archived and not restored).
    pub fn needs_retrieval(&self) -> bool {
        self.class.as_deref().is_some_and(super::class::is_archived)
            && !matches!(self.restore, Restore::Ready { .. })
    }

    /// The date the object is locked until, if it is.
    pub fn locked_until(&self) -> Option<DateTime<Utc>> {
        self.lock.map(|(_, d)| d)
    }
}

/// Where a restore from an archive class stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Restore {
    #[default]
    None,
    InProgress,
    /// A readable copy exists until `until` (when the provider says).
    Ready {
        until: Option<DateTime<Utc>>,
    },
}

/// The retrieval tier of a restore: cheapest and slowest first.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum RetrievalTier {
    Bulk,
    Standard,
    Expedited,
}

impl RetrievalTier {
    pub const ALL: [RetrievalTier; 3] = [
        RetrievalTier::Bulk,
        RetrievalTier::Standard,
        RetrievalTier::Expedited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RetrievalTier::Bulk => "bulk",
            RetrievalTier::Standard => "standard",
            RetrievalTier::Expedited => "expedited",
        }
    }
}

/// What `restore` answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreAsked {
    /// The restore was started now.
    Started,
    /// One is already running, or the copy is already readable.
    AlreadyUnderway,
}

/// The bucket's settings that offsite cares about.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BucketSettings {
    pub exists: bool,
    pub versioning: bool,
    pub object_lock: bool,
    /// Days after which incomplete multipart uploads are aborted, by any rule.
    pub abort_incomplete_multipart_days: Option<i32>,
}

/// Days after which offsite's lifecycle rule aborts an incomplete multipart upload.
pub const ABORT_AFTER_DAYS: i32 = 7;

/// What a target's bucket or container should have.
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

/// One part of a multipart upload, by its 0-based number.
pub type PartReader<'a> = &'a (dyn Fn(usize) -> std::io::Result<Vec<u8>> + Sync);

/// What `object_store` cannot do on one provider, through the provider's own SDK. Each
/// provider lives in a folder of its own under `store/` (`s3/`, `azure/`) and is made
/// for a location in one place (`store::open`); callers hold a [`Provider`].
#[async_trait]
pub trait CloudProvider: Send + Sync + std::fmt::Debug {
    /// The provider's name, as the price table keys it (`s3`, `azure`).
    fn name(&self) -> &'static str;

    /// The bucket or container, for messages.
    fn bucket(&self) -> &str;

    /// Size, class or tier, restore and lock state of `key`.
    async fn state(&self, key: &str) -> Result<ObjectState>;

    /// Asks for a readable copy of the archived `key` (kept `days` where the provider
    /// keeps a temporary copy; Azure rehydrates the blob itself to the hot tier).
    async fn restore(&self, key: &str, tier: RetrievalTier, days: i32) -> Result<RestoreAsked>;

    /// Creates `key` locked with the write; never over an existing object.
    async fn put_locked(
        &self,
        key: &str,
        body: Vec<u8>,
        class: Option<&str>,
        mode: LockMode,
        until: DateTime<Utc>,
    ) -> Result<()>;

    /// A large object in `parts` parts, locked with the write; `part(i)` gives part `i`.
    async fn put_locked_multipart(
        &self,
        key: &str,
        parts: usize,
        part: PartReader<'_>,
        class: Option<&str>,
        mode: LockMode,
        until: DateTime<Utc>,
    ) -> Result<()>;

    /// Moves the lock of `key` to the later date `until`.
    async fn extend_lock(&self, key: &str, mode: LockMode, until: DateTime<Utc>) -> Result<()>;

    /// Refuses a lock the store would not keep, before anything is written (`url`
    /// names the repository in the message).
    async fn check_lock_support(&self, url: &str) -> Result<()> {
        let _ = url;
        Ok(())
    }

    /// Reads the bucket's or container's settings and lists what is missing for `wants`.
    async fn verify(&self, url: &str, wants: Wants) -> Result<Verdict>;

    /// Creates the bucket or container if missing and adds what `wants` asks; what
    /// cannot be added afterwards stays in `missing`.
    async fn create(&self, url: &str, wants: Wants) -> Result<Verdict>;
}

/// The provider client of a location.
pub type Provider = std::sync::Arc<dyn CloudProvider>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archived_and_not_restored_needs_retrieval() {
        let s = ObjectState {
            class: Some("DEEP_ARCHIVE".into()),
            ..Default::default()
        };
        assert!(s.needs_retrieval());
        let s = ObjectState {
            restore: Restore::Ready { until: None },
            ..s
        };
        assert!(!s.needs_retrieval());
        let s = ObjectState {
            class: Some("Archive".into()),
            restore: Restore::InProgress,
            ..Default::default()
        };
        assert!(s.needs_retrieval());
    }
}
