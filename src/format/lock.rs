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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub kind: LockKind,
    /// What the holder is doing, e.g. "backup".
    pub operation: String,
    /// The machine whose restore point is being written, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
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
