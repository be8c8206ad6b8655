//! The mover: blobs read from a repository, verified, sealed for the repository they go
//! to, and packed there — prune's rewrite of mostly-dead packs, the health check's move
//! of a damaged pack's good blobs and its fetch of bad ones from a source, all through
//! here; the copy's transform seals with the same [`Seal::apply`].
//!
//! A blob is never written unverified: opened with the key it was sealed with, its
//! plaintext hashed to its id. What fails is handed back (blob and error), never packed;
//! the caller decides whether that stops it (prune) or is a finding (the health check).

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::Mutex;

use super::packer::Packer;
use super::reads::Read;
use super::{IO_CONCURRENCY, Repository, blob};
use crate::crypto::SecretKey;
use crate::format::index::IndexedPack;
use crate::format::pack::PackEntry;
use crate::format::pack_name;
use crate::progress::Progress;
use crate::{Error, Id, Result};

/// How a verified blob is sealed for where it goes.
#[derive(Clone)]
pub enum Seal {
    /// Within one repository: the stored bytes are kept as they are.
    Same(SecretKey),
    /// Into another repository: opened with `src`, sealed with `dst` — the encoded
    /// payload passed through when `pass_through` (the compression levels agree),
    /// else recompressed at `level`.
    Reseal {
        src: SecretKey,
        dst: SecretKey,
        pass_through: bool,
        level: i32,
    },
}

impl Seal {
    /// From `from` into `to`: [`Seal::Same`] for one repository, else a re-seal that
    /// passes payloads through when the two compress at the same level.
    pub fn between(from: &Repository, to: &Repository) -> Seal {
        if from.config.id == to.config.id {
            return Seal::Same(from.key().clone());
        }
        Seal::Reseal {
            src: from.key().clone(),
            dst: to.key().clone(),
            pass_through: from.config.compression == to.config.compression,
            level: to.config.compression,
        }
    }

    /// Opens and verifies the stored blob `sealed` (entry `e` of `pack`) and gives the
    /// bytes to store; a blob that does not open or verify is an error naming it.
    pub fn apply(&self, pack: &str, e: &PackEntry, sealed: &[u8]) -> Result<Vec<u8>> {
        match self {
            Seal::Same(key) => {
                blob::open(key, pack, &e.id, e.raw_length, sealed)?;
                Ok(sealed.to_vec())
            }
            Seal::Reseal {
                src,
                dst,
                pass_through,
                level,
            } => {
                let opened = blob::open_encoded(src, &e.id, e.raw_length, sealed).map_err(|w| {
                    Error::corrupt_blob(pack, e.id, format!("blob {}: {w}", e.id.short()))
                })?;
                Ok(match pass_through {
                    true => blob::seal_encoded(dst, opened.codec, &opened.payload),
                    false => blob::seal(dst, *level, opened.plain()),
                })
            }
        }
    }
}

/// What a [`Repacker::take`] moved and what it could not.
#[derive(Debug, Default)]
pub struct Moved {
    /// Blobs packed.
    pub blobs: Vec<Id>,
    /// Blobs not packed because they did not verify, with why.
    pub bad: Vec<(Id, Error)>,
    /// Reads that failed (after their retries) and the blobs they did not hand over:
    /// not damage, so kept apart from `bad` with the store's own error.
    pub failed_reads: Vec<FailedRead>,
}

/// A read of the mover that failed.
#[derive(Debug)]
pub struct FailedRead {
    pub pack: Id,
    pub blobs: Vec<Id>,
    pub error: Error,
}

/// Packs blobs into one repository, from reads of it or of others.
pub struct Repacker {
    packer: Mutex<Packer>,
}

impl Repacker {
    /// Packs into `to` at its pack size.
    pub fn new(to: Arc<Repository>) -> Repacker {
        Repacker {
            packer: Mutex::new(Packer::new(to)),
        }
    }

    /// Reads `reads` from `from` (several side by side), seals each blob as `how` says
    /// and packs it; the blobs' bytes go to `progress`.
    pub async fn take(
        &self,
        from: &Repository,
        reads: Vec<Read>,
        how: &Seal,
        progress: &Progress,
    ) -> Result<Moved> {
        let results = futures::stream::iter(reads.into_iter().map(|read| async move {
            let pack = pack_name(&read.pack);
            let moved = std::sync::Mutex::new(Moved::default());
            let fetched = from
                .fetch_read(&read, 1 << 20, |blobs| {
                    self.seal_and_pack(blobs, &pack, how, progress, &moved)
                })
                .await;
            let mut moved = moved.into_inner().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = fetched {
                // What the read did not hand over stays where it is.
                let handed: HashSet<Id> = (moved.blobs.iter())
                    .chain(moved.bad.iter().map(|(b, _)| b))
                    .copied()
                    .collect();
                moved.failed_reads.push(FailedRead {
                    pack: read.pack,
                    blobs: (read.blobs.iter())
                        .map(|b| b.id)
                        .filter(|b| !handed.contains(b))
                        .collect(),
                    error: e,
                });
            }
            moved
        }))
        .buffer_unordered(IO_CONCURRENCY / 2)
        .collect::<Vec<Moved>>()
        .await;
        let mut all = Moved::default();
        for m in results {
            all.blobs.extend(m.blobs);
            all.bad.extend(m.bad);
            all.failed_reads.extend(m.failed_reads);
        }
        Ok(all)
    }

    /// Seals one group of a read off the async threads, then packs what verified.
    async fn seal_and_pack(
        &self,
        blobs: Vec<(PackEntry, bytes::Bytes)>,
        pack: &str,
        how: &Seal,
        progress: &Progress,
        moved: &std::sync::Mutex<Moved>,
    ) -> Result<()> {
        let (how, pack) = (how.clone(), pack.to_string());
        let sealed = tokio::task::spawn_blocking(move || {
            (blobs.into_iter())
                .map(|(e, bytes)| {
                    let r = how.apply(&pack, &e, &bytes);
                    (e, r)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| Error::Internal(format!("sealing task failed: {e}")))?;
        let mut packer = self.packer.lock().await;
        for (e, r) in sealed {
            let done = match r {
                Ok(bytes) => {
                    packer.add(e.kind, e.id, e.raw_length, &bytes).await?;
                    progress.add_bytes(u64::from(e.length));
                    Ok(e.id)
                }
                Err(err) => Err((e.id, err)),
            };
            let mut m = moved.lock().unwrap_or_else(|e| e.into_inner());
            match done {
                Ok(id) => m.blobs.push(id),
                Err(bad) => m.bad.push(bad),
            }
        }
        Ok(())
    }

    /// Uploads what is still open; the packs written, indexed by their caller.
    pub async fn finish(self) -> Result<Vec<IndexedPack>> {
        self.packer.into_inner().finish().await
    }
}
