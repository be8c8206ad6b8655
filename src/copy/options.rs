//! What a copy is told: which points, how the target stores them, and how hard to push.
//! [`TransferOptions`] is the part the transfer stage needs on its own (an appliance
//! receives it with the plan).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::Selection;

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

#[derive(Clone, Debug)]
pub struct CopyOptions {
    pub selection: Selection,
    /// Target pack size for this copy (default: the target's configured size).
    pub pack_size: Option<u64>,
    pub chain: ChainMode,
    /// Continue on top of a target holding points from elsewhere (a seeded copy).
    pub map: bool,
    pub dry_run: bool,
    /// How long to wait for a source point that is being written.
    pub source_wait: Duration,
    /// How long to wait for another copy of the same chain into the target.
    pub lock_wait: Duration,
    /// Chains copied side by side: one machine's small increment cannot fill a WAN link
    /// alone, and each chain spends round trips on its lock, index and points.
    pub tasks: usize,
    pub transfer: TransferOptions,
    /// Repositories whose points in the target count as this copy's own, besides its
    /// sources: a job's other sources, copied by runs of their own into the same target.
    pub sibling_sources: Vec<crate::Id>,
    /// Archivers to run the chains' transfers on (`--via`); `None`: in this process.
    pub via: Option<std::sync::Arc<crate::remote::pool::Pool>>,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            selection: Selection::default(),
            pack_size: None,
            chain: ChainMode::PerMachine,
            map: false,
            dry_run: false,
            source_wait: Duration::from_secs(600),
            lock_wait: Duration::from_secs(0),
            tasks: 4,
            transfer: TransferOptions::default(),
            sibling_sources: Vec::new(),
            via: None,
        }
    }
}

/// How a copy target is created: its own new key, the first source's chunker (so later
/// backups into it deduplicate with copied data) and compression level (unless told to
/// recompress), 64 MiB packs unless told otherwise.
pub fn target_init_options(
    first_source: &crate::format::config::Config,
    compression: Option<Compression>,
    pack_size: Option<u64>,
    kdf: crate::format::keyfile::KdfParams,
) -> crate::repo::InitOptions {
    crate::repo::InitOptions {
        compression: match compression {
            Some(Compression::Zstd(l)) => l,
            _ => first_source.compression,
        },
        pack_size: pack_size.unwrap_or(64 << 20),
        chunker: Some(first_source.chunker),
        kdf,
        storage: Default::default(),
    }
}
