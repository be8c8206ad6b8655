//! Writes under object lock: a pack or point of a repository whose storage policy locks
//! is created through the provider's client with its retain-until date in the same
//! request (some S3 services refuse an extension made right after the put), and locks
//! are later only ever extended.
//!
//! A new object is locked for the policy's `days` + `margin_days` from now (a job sets
//! `days` from its retention, `keep` × interval); `retention::forget` extends the points
//! a GFS flag keeps longer, and their packs, to the flag's date + margin.

use chrono::{DateTime, Utc};

use super::Repository;
use super::packer::PackData;
use super::retry::retry;
use crate::format::config::{LockMode, StoragePolicy};
use crate::store::Location;
use crate::store::cloud::Provider;
use crate::{Error, Result};

/// Provider requests (HEADs, restores, lock extensions) in flight at once.
pub const LOOKS_IN_FLIGHT: usize = 16;

/// A lock to set: mode and retain-until date.
pub type Lock = (LockMode, DateTime<Utc>);

/// The provider client at `loc` (S3 or Azure); an error naming `what` elsewhere (a
/// folder or memory store has no classes, restores or locks).
fn provider<'a>(loc: &'a Location, what: &str) -> Result<&'a Provider> {
    loc.extra.as_ref().ok_or_else(|| {
        Error::Invalid(format!(
            "{}: offsite {what} on S3 and Azure Blob only",
            loc.url
        ))
    })
}

/// The provider client that sets locks at `loc`; an error where offsite cannot lock.
fn lock_client(loc: &Location) -> Result<&Provider> {
    provider(loc, "sets object lock").map_err(|e| {
        Error::Invalid(format!(
            "{e} (`offsite target set {} --no-lock` turns locks off for a repository \
             that asks for them)",
            loc.url
        ))
    })
}

/// `storage` as the store at `loc` can keep it: the class spelt as the provider spells
/// it; an error for a class the store has not, or a lock it cannot set. `init` and
/// `set_storage` both go through here.
pub(super) fn storage_for(loc: &Location, mut storage: StoragePolicy) -> Result<StoragePolicy> {
    if let Some(c) = &storage.data_class {
        storage.data_class = Some(crate::store::class::check(loc.kind, c).map_err(Error::Invalid)?);
    }
    if storage.lock.is_some() {
        lock_client(loc)?;
    }
    Ok(storage)
}

/// Refuses a lock the store would not keep: an Azure container without version-level
/// immutability accepts (Azurite) or refuses each locked write only later, mid-copy.
/// (An S3 bucket without object lock refuses the first locked write at once, naming
/// it; its configuration may not be readable with a runner's grants.)
pub(super) async fn check_lock_support(loc: &Location) -> Result<()> {
    lock_client(loc)?.check_lock_support(&loc.url).await
}

impl Repository {
    /// The lock an object written now gets, if the repository locks; an error if it
    /// asks for locks on a store offsite cannot lock.
    pub fn new_lock(&self) -> Result<Option<Lock>> {
        let Some(l) = self.config.storage.lock else {
            return Ok(None);
        };
        self.lock_client()?;
        let days = i64::from(l.days) + i64::from(l.margin_days);
        Ok(Some((
            l.mode,
            self.clock().now() + chrono::Duration::days(days),
        )))
    }

    /// The provider client that sets locks.
    pub(crate) fn lock_client(&self) -> Result<&Provider> {
        lock_client(&self.loc)
    }

    /// Creates object `name` locked with the write; never overwrites (the same bytes
    /// already there, from an attempt whose answer was lost, are success).
    pub async fn put_new_locked(
        &self,
        name: &str,
        bytes: Vec<u8>,
        class: Option<&str>,
        (mode, until): Lock,
    ) -> Result<()> {
        let p = self.lock_client()?;
        let key = self.loc.path(name).to_string();
        let len = bytes.len() as u64;
        let r = retry(self.clock(), name, || {
            p.put_locked(&key, bytes.clone(), class, mode, until)
        })
        .await;
        self.count_put(1, len);
        match r {
            Err(Error::AlreadyExists { .. }) => match self.get(name).await {
                Ok(b) if b.as_ref() == bytes.as_slice() => Ok(()),
                _ => Err(Error::AlreadyExists {
                    object: name.to_string(),
                }),
            },
            r => r,
        }
    }

    /// A large pack as a locked multipart upload: looked for first (a pack already
    /// there is never rewritten), parts read from the spool one at a time.
    pub(super) async fn save_pack_locked_multipart(
        &self,
        name: &str,
        data: &PackData,
        class: Option<&str>,
        (mode, until): Lock,
    ) -> Result<()> {
        if self.exists(name).await? {
            return Ok(());
        }
        let p = self.lock_client()?;
        let key = self.loc.path(name).to_string();
        let len = data.len();
        let part = super::MULTIPART_PART as u64;
        let parts = len.div_ceil(part) as usize;
        let read = |i: usize| {
            let at = i as u64 * part;
            data.read_at(at, (len - at).min(part) as usize)
        };
        let r = retry(self.clock(), name, || {
            p.put_locked_multipart(&key, parts, &read, class, mode, until)
        })
        .await;
        self.count_put(parts as u64 + 2, len);
        if r.is_err() && self.exists(name).await.unwrap_or(false) {
            return Ok(());
        }
        r
    }

    /// Extends the lock of `name` to `until` (never shortens: the caller knows it is
    /// later than the current date).
    pub async fn extend_lock(&self, name: &str, (mode, until): Lock) -> Result<()> {
        let p = self.lock_client()?;
        let key = self.loc.path(name).to_string();
        let r = retry(self.clock(), name, || p.extend_lock(&key, mode, until)).await;
        self.count_put(1, 0);
        r
    }

    /// What the provider says of `name`: class, restore and lock state.
    pub async fn object_state(&self, name: &str) -> Result<crate::store::cloud::ObjectState> {
        let p = provider(&self.loc, "reads object classes and locks")?;
        let key = self.loc.path(name).to_string();
        let r = retry(self.clock(), name, || p.state(&key)).await;
        self.loc
            .requests
            .head
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        r
    }

    /// [`Repository::object_state`] of each of `names`, in their order, several at a
    /// time: every caller that looks at classes, restores or locks goes through here.
    pub async fn object_states(
        &self,
        names: &[String],
    ) -> Result<Vec<crate::store::cloud::ObjectState>> {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(names.iter().map(|n| self.object_state(n)))
            .buffered(LOOKS_IN_FLIGHT)
            .try_collect()
            .await
    }

    /// Asks for a readable copy of the archived object `name` for `days` days.
    pub async fn restore_object(
        &self,
        name: &str,
        tier: crate::store::cloud::RetrievalTier,
        days: u32,
    ) -> Result<crate::store::cloud::RestoreAsked> {
        let p = provider(&self.loc, "retrieves archived objects")?;
        let key = self.loc.path(name).to_string();
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        let r = retry(self.clock(), name, || p.restore(&key, tier, days)).await;
        self.count_put(1, 0);
        r
    }

    /// Counts requests made through the provider's client (they bypass the metered
    /// store), so reports and projections see them.
    fn count_put(&self, n: u64, bytes: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.loc.requests.put.fetch_add(n, Relaxed);
        self.loc.requests.bytes_out.fetch_add(bytes, Relaxed);
    }
}
