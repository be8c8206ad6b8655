//! The repository's `config`: its id and the parameters every writer must agree on
//! (chunker, compression, pack size). Fixed at `init`; sealed with the master key.

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
}

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
