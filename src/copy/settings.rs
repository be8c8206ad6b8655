//! How a chain is planned and transferred: payload compression, chain mode, the read
//! budget shared by a copy's chains, and [`TransferOptions`] — the part the transfer
//! stage needs on its own (an appliance receives it with the plan). A leaf of `copy`:
//! the plan, the transfer and the offload contract stand on it.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How the target stores blob payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compression {
    /// The target repository's configured zstd level; payloads pass through unchanged
    /// when the source used the same level.
    Target,
    /// Always pass the source's payload through (re-sealed, never recompressed).
    Keep,
    /// Recompress to this zstd level unless the source used it already.
    Zstd(i32),
}

impl Compression {
    /// For a source written at `source_level` into a target configured at
    /// `target_level`: whether payloads pass through, and the level otherwise.
    pub fn resolve(self, source_level: i32, target_level: i32) -> (bool, i32) {
        match self {
            Compression::Keep => (true, source_level),
            Compression::Target => (source_level == target_level, target_level),
            Compression::Zstd(l) => (source_level == l, l),
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "keep" {
            return Ok(Compression::Keep);
        }
        let level = s
            .strip_prefix("zstd:")
            .and_then(|l| l.parse::<i32>().ok())
            .filter(|l| (0..=22).contains(l))
            .ok_or_else(|| format!("{s:?}: use keep or zstd:LEVEL (0..=22)"))?;
        Ok(Compression::Zstd(level))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainMode {
    /// Packs never mix machines; each machine commits or fails on its own.
    PerMachine,
    /// Packs may mix machines of one source job; the job commits all points or none.
    PerJob,
}

impl std::str::FromStr for ChainMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "per-machine" => Ok(ChainMode::PerMachine),
            "per-job" => Ok(ChainMode::PerJob),
            _ => Err(format!("{s:?}: use per-machine or per-job")),
        }
    }
}

/// Reads of a transfer that keep the CPU stage busy on a link without latency.
pub const READS_MOVING: usize = 3;
/// The most reads a transfer keeps in flight (memory: each holds up to 4 MiB, twice).
pub const READS_CAP: usize = 16;

/// Source bytes a copy's reads hold at once by default, across all its chains (each read
/// is held once more, re-sealed, until packed): `--tasks` chains share it, so memory
/// does not grow with them.
pub const READ_BUDGET: u64 = 64 << 20;

/// Bytes of source reads held at once, shared by the chains of one copy (clones share
/// it). A read larger than the whole budget takes all of it.
#[derive(Clone, Debug)]
pub struct ReadBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl ReadBudget {
    pub fn new(bytes: u64) -> ReadBudget {
        let total_kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        ReadBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits until `bytes` fit, and holds them until the permit is dropped.
    pub async fn take(&self, bytes: u64) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        self.kib
            .clone()
            .acquire_many_owned(kib.min(self.total_kib))
            .await
            .ok()
    }
}

impl Default for ReadBudget {
    fn default() -> Self {
        ReadBudget::new(READ_BUDGET)
    }
}

/// How the transfer stage re-seals and how many requests it keeps in flight.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TransferOptions {
    pub compression: Compression,
    /// Ranged reads in flight (each at most [`super::plan::COPY_READ`] bytes); `None`
    /// follows the link: [`READS_MOVING`] moving data, the rest waiting on latency, at
    /// most [`READS_CAP`].
    pub reads_in_flight: Option<usize>,
    /// Pack uploads in flight.
    pub uploads_in_flight: usize,
    /// Source bytes held at once, shared with every transfer given a clone (a process's
    /// own: not sent to an appliance, which keeps its own).
    #[serde(skip)]
    pub budget: ReadBudget,
    /// Asked to stop (SIGTERM, a copy window's end): no further reads are taken, the
    /// open pack is finished, and the points not whole are reported interrupted.
    #[serde(skip)]
    pub stop: crate::stop::Stop,
}

impl Default for TransferOptions {
    fn default() -> Self {
        TransferOptions {
            compression: Compression::Target,
            reads_in_flight: None,
            uploads_in_flight: 2,
            budget: ReadBudget::default(),
            stop: crate::stop::Stop::default(),
        }
    }
}
