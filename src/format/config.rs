//! The repository's `config`: its id and the parameters every writer must agree on
//! (chunker, compression, pack size), fixed at `init`, and the storage policy (the class
//! of data packs, object lock), which `offsite target set` may change. Sealed with the
//! master key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAGIC_CONFIG, envelope};
use crate::crypto::SecretKey;
use crate::{Error, Id, Result};

/// FastCDC parameters. The seed permutes the gear table, so chunk boundaries do not
/// reveal content to someone who does not hold the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
    pub seed: u64,
}

impl ChunkerParams {
    pub fn data_default(seed: u64) -> Self {
        ChunkerParams {
            min: 256 << 10,
            avg: 1 << 20,
            max: 4 << 20,
            seed,
        }
    }

    /// Smaller chunks for the tree stream, so a few changed files re-store little metadata.
    pub fn tree_default(seed: u64) -> Self {
        ChunkerParams {
            min: 16 << 10,
            avg: 64 << 10,
            max: 256 << 10,
            seed,
        }
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        use fastcdc::v2020::*;
        let (min, avg, max) = (self.min as usize, self.avg as usize, self.max as usize);
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&min)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&avg)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&max)
            && min <= avg
            && avg <= max
            && min % 2 == 0
            && avg % 2 == 0
            && max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "chunker sizes min {min} / avg {avg} / max {max} are outside FastCDC's limits \
                 (min {MINIMUM_MIN}..={MINIMUM_MAX}, avg {AVERAGE_MIN}..={AVERAGE_MAX}, max {MAXIMUM_MIN}..={MAXIMUM_MAX}, even, min <= avg <= max)"
            ))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Random, fixed at `init`; copies record it as their source's identity.
    pub id: Id,
    pub created: DateTime<Utc>,
    pub chunker: ChunkerParams,
    pub tree_chunker: ChunkerParams,
    /// zstd level for blobs and metadata; 0 stores everything raw.
    pub compression: i32,
    /// Packs are closed once they reach this many bytes.
    pub pack_size: u64,
    /// Where data packs go and how long objects are locked; absent: the store's default
    /// class, no lock.
    #[serde(default, skip_serializing_if = "StoragePolicy::is_default")]
    pub storage: StoragePolicy,
}

/// The storage class of data packs and the object lock every writer applies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoragePolicy {
    /// The class (S3) or access tier (Azure) of data packs, as the provider spells it
    /// (`DEEP_ARCHIVE`, `Archive`). Everything else stays in the default class: on such
    /// targets tree blobs go into packs of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_class: Option<String>,
    /// Object lock set with each write of a pack or point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockPolicy>,
}

impl StoragePolicy {
    pub fn is_default(&self) -> bool {
        self == &StoragePolicy::default()
    }
}

/// S3 Object Lock / Azure version-level immutability as offsite applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockPolicy {
    pub mode: LockMode,
    /// How long a new point and its packs stay locked at least (a job sets it from its
    /// retention: `keep` × interval), in days.
    pub days: u32,
    /// Added to every retain-until date, in days: a point is never unlocked before the
    /// retention that keeps it has let it go.
    pub margin_days: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// Users with a special permission may still shorten or remove it.
    Governance,
    /// Nobody, not even the account's root, shortens it.
    Compliance,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        }
    }
}

impl std::str::FromStr for LockMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "governance" => Ok(LockMode::Governance),
            "compliance" => Ok(LockMode::Compliance),
            _ => Err(format!(
                "{s:?} is not a lock mode: governance or compliance"
            )),
        }
    }
}

/// The most days a lock may last (about 100 years): a typo of a few extra digits
/// would otherwise lock a bucket's objects for millennia under compliance mode.
pub const MAX_LOCK_DAYS: u32 = 36_500;

pub const MIN_PACK_SIZE: u64 = 64 << 10;
pub const MAX_PACK_SIZE: u64 = 16 << 30;

impl Config {
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.chunker.validate()?;
        self.tree_chunker.validate()?;
        if !(0..=22).contains(&self.compression) {
            return Err(format!("zstd level {} is outside 0..=22", self.compression));
        }
        if !(MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&self.pack_size) {
            return Err(format!(
                "pack size {} is outside {MIN_PACK_SIZE}..={MAX_PACK_SIZE} bytes",
                self.pack_size
            ));
        }
        if let Some(c) = &self.storage.data_class
            && (c.is_empty()
                || c.len() > 64
                || !c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return Err(format!("storage class {c:?} is not a class name"));
        }
        if let Some(l) = &self.storage.lock
            && (l.days == 0 || l.days > MAX_LOCK_DAYS || l.margin_days > MAX_LOCK_DAYS)
        {
            return Err(format!(
                "lock of {} days (+{} margin) is outside 1..={MAX_LOCK_DAYS} days",
                l.days, l.margin_days
            ));
        }
        Ok(())
    }

    pub fn seal(&self, key: &SecretKey) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("config serialises");
        envelope::seal_file(key, MAGIC_CONFIG, 3, &json)
    }

    pub fn open(key: &SecretKey, bytes: &[u8]) -> Result<Config> {
        let plain = envelope::open_file(key, super::CONFIG, MAGIC_CONFIG, bytes)?;
        let c: Config = serde_json::from_slice(&plain)
            .map_err(|e| Error::corrupt(super::CONFIG, format!("unreadable config: {e}")))?;
        c.validate().map_err(|w| Error::corrupt(super::CONFIG, w))?;
        Ok(c)
    }
}
