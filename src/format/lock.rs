//! Lock objects (`locks/<random>`): who is writing, until when. A writer creates its lock
//! with a conditional create and refreshes the expiry while it works; a lock past its
//! expiry is stale — its writer died — and is reported, never silently trusted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAGIC_LOCK, envelope};
use crate::crypto::SecretKey;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// Writers that only add (backup, copy) and readers: any number at once.
    Shared,
    /// Writers that delete (prune, unlock of live locks): alone.
    Exclusive,
}

/// What a lock's holder is doing. Stored as its word (`"backup"`, `"copy-read"`, …); a
/// word this version does not know — a newer writer's — is kept as it is (`Other`), and
/// shown and respected like any other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Purpose {
    /// Writing a restore point of its holder's machine.
    Backup,
    /// Writing a copy chain's packs and points (its holder: the chain).
    Copy,
    /// Reading a copy's source (nothing may be deleted under it).
    CopyRead,
    Check,
    Forget,
    Prune,
    HealthCheck,
    ActiveFull,
    /// A job runner's interval (its holder: the job).
    Job,
    Other(String),
}

impl Purpose {
    pub fn as_str(&self) -> &str {
        match self {
            Purpose::Backup => "backup",
            Purpose::Copy => "copy",
            Purpose::CopyRead => "copy-read",
            Purpose::Check => "check",
            Purpose::Forget => "forget",
            Purpose::Prune => "prune",
            Purpose::HealthCheck => "health-check",
            Purpose::ActiveFull => "active-full",
            Purpose::Job => "job",
            Purpose::Other(s) => s,
        }
    }
}

impl From<String> for Purpose {
    fn from(s: String) -> Purpose {
        let known = [
            Purpose::Backup,
            Purpose::Copy,
            Purpose::CopyRead,
            Purpose::Check,
            Purpose::Forget,
            Purpose::Prune,
            Purpose::HealthCheck,
            Purpose::ActiveFull,
            Purpose::Job,
        ];
        known
            .into_iter()
            .find(|p| p.as_str() == s)
            .unwrap_or(Purpose::Other(s))
    }
}

impl From<Purpose> for String {
    fn from(p: Purpose) -> String {
        p.as_str().to_string()
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom a lock is held for: a machine (whose points are written), or a job (a job
/// runner's interval, or a per-job copy chain). Stored as the machine's name, or
/// `job:NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Holder {
    Machine(String),
    Job(String),
}

impl From<String> for Holder {
    fn from(s: String) -> Holder {
        match s.strip_prefix("job:") {
            Some(job) => Holder::Job(job.to_string()),
            None => Holder::Machine(s),
        }
    }
}

impl From<&str> for Holder {
    fn from(s: &str) -> Holder {
        Holder::from(s.to_string())
    }
}

impl From<Holder> for String {
    fn from(h: Holder) -> String {
        h.to_string()
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Machine(m) => f.write_str(m),
            Holder::Job(j) => write!(f, "job:{j}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub kind: LockKind,
    /// What the holder is doing (stored as `operation`).
    pub operation: Purpose,
    /// Whom it holds for, if anyone (stored as `machine`: a machine's name or `job:NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Holder>,
    pub host: String,
    pub pid: u32,
    pub created: DateTime<Utc>,
    pub expires: DateTime<Utc>,
}

impl Lock {
    /// Stale: past its expiry, or held by a process of this host that no longer
    /// exists (a writer killed moments ago need not block anyone for the whole TTL).
    pub fn is_stale(&self, now: DateTime<Utc>) -> bool {
        self.expires < now || self.holder_is_gone()
    }

    /// Whether the holder ran on this host and its process is gone. Only Linux can
    /// tell (through /proc); elsewhere a lock lives until it expires.
    pub fn holder_is_gone(&self) -> bool {
        cfg!(target_os = "linux")
            && self.pid != std::process::id()
            && self.host == gethostname::gethostname().to_string_lossy()
            && std::path::Path::new("/proc/self").exists()
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    pub fn seal(&self, key: &SecretKey) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("lock serialises");
        envelope::seal_file(key, MAGIC_LOCK, 0, &json)
    }

    pub fn open(key: &SecretKey, object: &str, bytes: &[u8]) -> Result<Lock> {
        let plain = envelope::open_file(key, object, MAGIC_LOCK, bytes)?;
        serde_json::from_slice(&plain)
            .map_err(|e| Error::corrupt(object, format!("unreadable lock: {e}")))
    }
}
