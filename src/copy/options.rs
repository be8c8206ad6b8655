//! What a copy is told: which points, how the target stores them, how hard to push, and
//! where its transfers run.

use std::time::Duration;

use super::Selection;
use super::settings::{ChainMode, Compression, TransferOptions};

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
    pub via: Option<std::sync::Arc<dyn super::offload::Offload>>,
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
