//! Packs sealed blobs into packs of a target size and uploads them with bounded
//! concurrency. Packs up to 16 MiB are built in memory; larger ones (copy targets use
//! 64 MiB and archive tiers several GiB) are spooled to an unnamed temporary file and
//! streamed up as multipart uploads, so memory does not grow with the pack size.
//! Finished packs are reported so the caller can index them once all are stored (the
//! index is written after its packs).
//!
//! On a repository whose data packs go to a colder class (`config.storage.data_class`)
//! a packer keeps two packs open, one for data blobs (uploaded in that class) and one
//! for tree blobs (uploaded in the default class), so everything a plan reads stays
//! instantly readable whichever kinds its caller mixes.

use std::io::Write;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::Repository;
use crate::format::index::IndexedPack;
use crate::format::pack::{BlobKind, PackWriter};
use crate::progress::Busy;
use crate::{Error, Id, Result};

/// Packs larger than this are spooled to disk while they fill.
pub const SPOOL_ABOVE: u64 = 16 << 20;

/// Where a pack is assembled.
pub enum Spool {
    Memory(Vec<u8>),
    File(std::fs::File),
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Spool::Memory(v) => v.write(buf),
            Spool::File(f) => f.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Spool::Memory(v) => v.write_all(buf),
            Spool::File(f) => f.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Spool::Memory(_) => Ok(()),
            Spool::File(f) => f.flush(),
        }
    }
}

/// A finished pack, ready to upload.
pub enum PackData {
    Memory(Vec<u8>),
    /// A spool file (rewound by the uploader) and its length.
    File(std::fs::File, u64),
}

impl PackData {
    pub fn len(&self) -> u64 {
        match self {
            PackData::Memory(v) => v.len() as u64,
            PackData::File(_, n) => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads `len` bytes at `at` (multipart uploads read a spool part by part; a retried
    /// upload reads it again, so reads do not move a shared cursor).
    pub fn read_at(&self, at: u64, len: usize) -> std::io::Result<Vec<u8>> {
        match self {
            PackData::Memory(v) => v
                .get(at as usize..at as usize + len)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| std::io::Error::other("read past the end of a pack")),
            PackData::File(f, _) => {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; len];
                f.read_exact_at(&mut buf, at)?;
                Ok(buf)
            }
        }
    }

    /// The whole pack in memory (for a single PUT).
    pub fn into_bytes(self) -> std::io::Result<Vec<u8>> {
        match self {
            PackData::Memory(v) => Ok(v),
            f @ PackData::File(..) => f.read_at(0, f.len() as usize),
        }
    }
}

pub struct Packer {
    repo: Arc<Repository>,
    pack_size: u64,
    /// The pack being filled per lane: data (or everything) and, when split, trees.
    writers: [Option<PackWriter<Spool>>; 2],
    /// Whether tree blobs get packs of their own (the repository tiers data packs).
    split: bool,
    uploads: JoinSet<Result<IndexedPack>>,
    slots: Arc<Semaphore>,
    done: Vec<IndexedPack>,
    /// Blobs in `done`.
    done_blobs: usize,
    busy: Busy,
    /// Told of each pack as it lands.
    progress: Option<crate::progress::Progress>,
}

impl Packer {
    /// A packer for `repo`'s configured pack size, with up to `uploads` in flight.
    pub fn new(repo: Arc<Repository>) -> Packer {
        let size = repo.config.pack_size;
        Packer::with(repo, size, 3, Busy::default())
    }

    /// A packer with its own target size and upload concurrency; `busy` records when
    /// uploads are in flight (for the bottleneck report).
    pub fn with(repo: Arc<Repository>, pack_size: u64, uploads: usize, busy: Busy) -> Packer {
        let split = repo.config.storage.data_class.is_some();
        Packer {
            repo,
            pack_size,
            writers: [None, None],
            split,
            uploads: JoinSet::new(),
            slots: Arc::new(Semaphore::new(uploads.max(1))),
            done: Vec::new(),
            done_blobs: 0,
            busy,
            progress: None,
        }
    }

    /// Tells `progress` of each pack as it lands ([`crate::progress::Observer::pack_written`]).
    pub fn reporting(mut self, progress: crate::progress::Progress) -> Packer {
        self.progress = Some(progress);
        self
    }

    fn open_writer(&self) -> Result<PackWriter<Spool>> {
        let spool = if self.pack_size > SPOOL_ABOVE {
            let f = tempfile::tempfile().map_err(|e| Error::io(std::env::temp_dir(), e))?;
            Spool::File(f)
        } else {
            Spool::Memory(Vec::with_capacity(self.pack_size as usize + (256 << 10)))
        };
        PackWriter::new(spool).map_err(|e| Error::io(std::env::temp_dir(), e))
    }

    /// Adds one sealed blob; closes and uploads the pack when it reaches the target size.
    pub async fn add(
        &mut self,
        kind: BlobKind,
        id: Id,
        raw_length: u32,
        sealed: &[u8],
    ) -> Result<()> {
        let lane = usize::from(self.split && kind == BlobKind::Tree);
        if self.writers[lane].is_none() {
            self.writers[lane] = Some(self.open_writer()?);
        }
        let w = self.writers[lane].as_mut().expect("writer just opened");
        w.add(kind, id, raw_length, sealed)
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        if w.len() >= self.pack_size {
            self.flush_lane(lane).await?;
        }
        self.reap()?;
        Ok(())
    }

    fn reap(&mut self) -> Result<()> {
        while let Some(r) = self.uploads.try_join_next() {
            let pack = joined(r)?;
            self.done_blobs += pack.entries.len();
            self.done.push(pack);
        }
        Ok(())
    }

    /// Blobs in the packs landed and not yet taken.
    pub fn done_blobs(&self) -> usize {
        self.done_blobs
    }

    /// The packs landed so far (uploaded whole), not to be returned again.
    pub fn take_done(&mut self) -> Vec<IndexedPack> {
        self.done_blobs = 0;
        std::mem::take(&mut self.done)
    }

    /// Closes the packs being filled (if any) and starts their uploads.
    pub async fn flush(&mut self) -> Result<()> {
        self.flush_lane(0).await?;
        self.flush_lane(1).await
    }

    async fn flush_lane(&mut self, lane: usize) -> Result<()> {
        let Some(w) = self.writers[lane].take() else {
            return Ok(());
        };
        // Data packs of a tiered repository go to its class; trees and everything of an
        // untiered one to the store's default.
        let class = match (self.split, lane) {
            (true, 0) => self.repo.config.storage.data_class.clone(),
            _ => None,
        };
        if w.is_empty() {
            return Ok(());
        }
        let key = self.repo.key().clone();
        let (id, spool, entries, size) = tokio::task::spawn_blocking(move || w.finish(&key))
            .await
            .map_err(|e| Error::Internal(format!("pack sealing task failed: {e}")))?
            .map_err(|e| Error::io(std::env::temp_dir(), e))?;
        let data = match spool {
            Spool::Memory(v) => PackData::Memory(v),
            Spool::File(f) => PackData::File(f, size),
        };
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Internal("upload slots closed".into()))?;
        let repo = self.repo.clone();
        let busy = self.busy.clone();
        let progress = self.progress.clone();
        self.uploads.spawn(async move {
            let _permit = permit;
            let _busy = busy.enter();
            repo.save_pack(&id, data, class.as_deref()).await?;
            let pack = IndexedPack { id, size, entries };
            if let Some(p) = progress {
                p.pack_written(&pack);
            }
            Ok(pack)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::store::gated::{GatedStore, Op};
    use crate::testkit;

    /// Uploads are bounded: with two in flight held at the store, the packer stops taking
    /// blobs instead of piling up finished packs; once the store answers, every pack lands.
    #[tokio::test]
    async fn uploads_in_flight_are_bounded_and_all_land() {
        let gated = GatedStore::new(testkit::memory());
        let repo = testkit::repo(Arc::new(gated.clone()), 1 << 20).await;
        let gate = gated.gate(Op::Put, "data/");
        let filler = {
            let repo = repo.clone();
            tokio::spawn(async move {
                let mut packer = Packer::with(repo, 256 << 10, 2, Busy::default());
                for i in 0..12u64 {
                    let blob = testkit::bytes(i, 100 << 10);
                    let sealed = crate::repo::blob::seal(repo_key(&packer), 0, &blob);
                    packer
                        .add(BlobKind::Data, Id::hash(&blob), blob.len() as u32, &sealed)
                        .await?;
                }
                packer.finish().await
            })
        };
        gate.wait_for(2).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            gate.arrivals(),
            2,
            "a third upload started while two were held"
        );
        assert!(!filler.is_finished());
        gate.open();
        let packs = filler.await.unwrap().unwrap();
        assert_eq!(packs.iter().map(|p| p.entries.len()).sum::<usize>(), 12);
        assert!(packs.len() >= 4, "{} packs", packs.len());
        for p in &packs {
            assert!(repo.exists(&crate::format::pack_name(&p.id)).await.unwrap());
        }
    }

    fn repo_key(p: &Packer) -> &crate::crypto::SecretKey {
        p.repo.key()
    }
}
