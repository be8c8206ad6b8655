//! Packs sealed blobs into packs of the repository's target size and uploads them with
//! bounded concurrency. Finished packs are reported so the caller can index them once
//! they are all stored (the index is written after its packs).

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Repository;
use crate::format::index::IndexedPack;
use crate::format::pack::{BlobKind, PackBuilder};
use crate::{Error, Id, Result};

/// Uploads in flight per packer; each holds one pack in memory.
pub const UPLOADS_IN_FLIGHT: usize = 3;

pub struct Packer {
    repo: Arc<Repository>,
    builder: PackBuilder,
    uploads: JoinSet<Result<IndexedPack>>,
    slots: Arc<Semaphore>,
    done: Vec<IndexedPack>,
    /// Sealed bytes handed to uploads so far.
    pub bytes_written: u64,
}

impl Packer {
    pub fn new(repo: Arc<Repository>) -> Packer {
        Packer {
            builder: PackBuilder::new(0),
            repo,
            uploads: JoinSet::new(),
            slots: Arc::new(Semaphore::new(UPLOADS_IN_FLIGHT)),
            done: Vec::new(),
            bytes_written: 0,
        }
    }

    /// Adds one sealed blob; closes and uploads the pack when it reaches the target size.
    pub async fn add(
        &mut self,
        kind: BlobKind,
        id: Id,
        raw_length: u32,
        sealed: &[u8],
    ) -> Result<()> {
        if self.builder.is_empty() {
            let cap = (self.repo.config.pack_size as usize).saturating_add(64 << 10);
            self.builder = PackBuilder::new(cap.min(self.repo.config.pack_size as usize * 2));
        }
        self.builder.add(kind, id, raw_length, sealed);
        if self.builder.len() as u64 >= self.repo.config.pack_size {
            self.flush().await?;
        }
        self.reap()?;
        Ok(())
    }

    fn reap(&mut self) -> Result<()> {
        while let Some(r) = self.uploads.try_join_next() {
            self.done.push(joined(r)?);
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let builder = std::mem::take(&mut self.builder);
        let key = self.repo.key().clone();
        let (id, bytes, entries) = tokio::task::spawn_blocking(move || builder.finish(&key))
            .await
            .map_err(|e| Error::Internal(format!("pack sealing task failed: {e}")))?;
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("upload slots closed".into()))?;
        let size = bytes.len() as u64;
        self.bytes_written += size;
        let repo = self.repo.clone();
        self.uploads.spawn(async move {
            let _permit = permit;
            repo.save_pack(&id, bytes).await?;
            Ok(IndexedPack { id, size, entries })
        });
        Ok(())
    }

    /// Uploads what is left and waits for every upload; returns the packs written.
    pub async fn finish(mut self) -> Result<Vec<IndexedPack>> {
        self.flush().await?;
        while let Some(r) = self.uploads.join_next().await {
            self.done.push(joined(r)?);
        }
        Ok(self.done)
    }
}

fn joined(
    r: std::result::Result<Result<IndexedPack>, tokio::task::JoinError>,
) -> Result<IndexedPack> {
    r.map_err(|e| Error::Internal(format!("pack upload task failed: {e}")))?
}
