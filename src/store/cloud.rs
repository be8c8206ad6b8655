//! What `object_store` cannot do, through each provider's own SDK: the shared words
//! (an object's class, restore and lock state; retrieval tiers; a bucket's settings)
//! and [`Provider`], which sends each request to the S3 ([`super::s3`]) or Azure
//! ([`super::azure`]) client of a location.

use chrono::{DateTime, Utc};

use super::azure::AzureExtra;
use super::s3::S3Extra;
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

/// The provider client of a location: what object_store cannot do there.
#[derive(Clone, Debug)]
pub enum Provider {
    S3(S3Extra),
    Azure(AzureExtra),
}

impl Provider {
    /// The bucket or container, for messages.
    pub fn bucket(&self) -> &str {
        match self {
            Provider::S3(s) => &s.bucket,
            Provider::Azure(a) => &a.container,
        }
    }

    /// Size, class or tier, restore and lock state of `key`.
    pub async fn state(&self, key: &str) -> Result<ObjectState> {
        match self {
            Provider::S3(s) => s.state(key).await,
            Provider::Azure(a) => a.state(key).await,
        }
    }

    /// Asks for a readable copy of the archived `key` (kept `days` on S3; Azure
    /// rehydrates the blob itself to the hot tier).
    pub async fn restore(&self, key: &str, tier: RetrievalTier, days: i32) -> Result<RestoreAsked> {
        match self {
            Provider::S3(s) => s.restore(key, tier, days).await,
            Provider::Azure(a) => a.restore(key, tier).await,
        }
    }

    /// Creates `key` locked with the write; never over an existing object.
    pub async fn put_locked(
        &self,
        key: &str,
        body: Vec<u8>,
        class: Option<&str>,
        mode: LockMode,
        until: DateTime<Utc>,
    ) -> Result<()> {
        match self {
            Provider::S3(s) => s.put_locked(key, body, class, mode, until).await,
            Provider::Azure(a) => a.put_locked(key, body, class, mode, until).await,
        }
    }

    /// A large object in parts, locked with the write; `part(i)` gives part `i`.
    pub async fn put_locked_multipart<F>(
        &self,
        key: &str,
        parts: usize,
        part: F,
        class: Option<&str>,
        mode: LockMode,
        until: DateTime<Utc>,
    ) -> Result<()>
    where
        F: Fn(usize) -> std::io::Result<Vec<u8>>,
    {
        match self {
            Provider::S3(s) => {
                s.put_locked_multipart(key, parts, part, class, mode, until)
                    .await
            }
            Provider::Azure(a) => {
                a.put_locked_multipart(key, parts, part, class, mode, until)
                    .await
            }
        }
    }

    /// Moves the lock of `key` to the later date `until`.
    pub async fn extend_lock(&self, key: &str, mode: LockMode, until: DateTime<Utc>) -> Result<()> {
        match self {
            Provider::S3(s) => s.extend_lock(key, mode, until).await,
            Provider::Azure(a) => a.extend_lock(key, mode, until).await,
        }
    }
}

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
