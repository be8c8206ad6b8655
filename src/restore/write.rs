//! Pack-wise restore of a batch of files. Each file is created at once under a temporary
//! name (`NAME.offsite-partial`), at its full size — so runs of zeros stay holes — and is
//! renamed to its own name only when every blob it needs is written: a file under its
//! real name is always whole. The batch's blobs are grouped by pack into coalesced reads,
//! many in flight; each blob is opened, verified and written at every offset that needs
//! it (a blob shared by files is read once), on blocking threads.
//!
//! Memory: the batch's plan (about 100 bytes per blob position, at most
//! [`POSITIONS_PER_BATCH`]) plus, per read in flight, one group being received, and
//! [`WRITERS_PER_CORE`] × cores groups being written (a group is about 1 MiB, or one
//! blob when blobs are larger).

use std::collections::HashMap;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use tokio::sync::Semaphore;

use crate::crypto::SecretKey;
use crate::format::pack_name;
use crate::format::tree::Node;
use crate::progress::Progress;
use crate::repo::reads::coalesce;
use crate::repo::{MasterIndex, Repository, blob};
use crate::{Error, Id, Result};

/// Files planned before their blobs are fetched (each holds a temporary file).
pub const FILES_PER_BATCH: usize = 20_000;
/// Blob positions planned before they are fetched.
pub const POSITIONS_PER_BATCH: usize = 200_000;
/// Reads are streamed, so their length costs no memory; this only keeps one read from
/// holding a connection for a whole huge pack.
const RESTORE_READ: u64 = 256 << 20;
/// A point restored in one batch and read in fewer pieces than this has its reads split
/// (each at least [`SPLIT_FLOOR`]): a point of a few large packs would otherwise be a few
/// streams, each bounded by one connection's rate on a link far away. At most about
/// twice the reads — still within two per pack, as one batch reads each pack once.
const FEW_READS: usize = 8;
const SPLIT_FLOOR: u64 = 8 << 20;
/// Blobs handed to a writer thread together: many small files cost one hand-over per
/// group, not per blob.
const WRITE_GROUP: usize = 1 << 20;
/// Groups being written at once, per core.
const WRITERS_PER_CORE: usize = 2;

/// A file waiting for its blobs.
struct Pending {
    path: PathBuf,
    temp: PathBuf,
    /// The file's metadata (its blob list dropped once planned).
    node: Node,
    /// Blob positions not yet written.
    remaining: AtomicU32,
    /// Made at its full size already (a file of one blob gets its size from the write,
    /// or, when that blob is all zeros, from a truncate then).
    sized: bool,
}

pub(super) struct Batch {
    files: Vec<Pending>,
    /// Every blob of the batch and where it goes: (file, offset).
    wants: HashMap<Id, Vec<(u32, u64)>>,
    positions: usize,
    as_root: bool,
}

impl Batch {
    pub fn new(as_root: bool) -> Batch {
        Batch {
            files: Vec::new(),
            wants: HashMap::new(),
            positions: 0,
            as_root,
        }
    }

    pub fn is_full(&self) -> bool {
        self.files.len() >= FILES_PER_BATCH || self.positions >= POSITIONS_PER_BATCH
    }

    /// Plans one file: where each of its blobs goes, from the index's lengths, and
    /// creates it under its temporary name (at its full size when it has several blobs,
    /// so runs of zeros stay holes). An empty file is done here. `fresh`: its folder was
    /// made by this restore, so no leftover can be in the way.
    pub fn add(
        &mut self,
        index: &MasterIndex,
        point: &str,
        path: PathBuf,
        mut node: Node,
        fresh: bool,
    ) -> Result<()> {
        let file_name = || String::from_utf8_lossy(&node.path).into_owned();
        let mut places = Vec::with_capacity(node.blobs.len());
        let mut offset = 0u64;
        for id in &node.blobs {
            let loc = index.get(id).ok_or_else(|| {
                Error::corrupt(
                    point,
                    format!(
                        "file {} needs blob {}, which is in no index",
                        file_name(),
                        id.short()
                    ),
                )
            })?;
            places.push((*id, offset));
            offset += u64::from(loc.raw_length);
        }
        if offset != node.size {
            return Err(Error::corrupt(
                point,
                format!(
                    "file {} should have {} bytes, its blobs hold {offset}",
                    file_name(),
                    node.size
                ),
            ));
        }
        let mut temp = path.clone().into_os_string();
        temp.push(".offsite-partial");
        let temp = PathBuf::from(temp);
        // Never through a link: a leftover (or planted) `NAME.offsite-partial` goes first,
        // and the new one is created exclusively. (Per file of a small-file restore every
        // call counts: a folder this restore made holds no leftover.)
        if !fresh {
            let _ = std::fs::remove_file(&temp);
        }
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::io(&temp, e))?;
        let sized = places.len() > 1;
        if sized {
            f.set_len(node.size).map_err(|e| Error::io(&temp, e))?;
        }
        node.blobs = Vec::new();
        let file = Pending {
            path,
            temp,
            node,
            remaining: AtomicU32::new(places.len() as u32),
            sized,
        };
        if places.is_empty() {
            return file.finish(Some(&f), self.as_root);
        }
        drop(f);
        let n = self.files.len() as u32;
        self.positions += places.len();
        for (id, offset) in places {
            self.wants.entry(id).or_default().push((n, offset));
        }
        self.files.push(file);
        Ok(())
    }

    /// Fetches and writes every blob of the batch; files are renamed to their own names
    /// as they complete. On failure the batch's unfinished files are removed.
    pub async fn restore(
        self,
        repo: &Repository,
        index: &MasterIndex,
        connections: Option<usize>,
        only_batch: bool,
        progress: &Progress,
    ) -> Result<()> {
        if self.files.is_empty() {
            return Ok(());
        }
        let needed: Vec<(usize, Id)> = self.wants.keys().map(|id| (0, *id)).collect();
        let mut reads = coalesce(needed.iter().copied(), &[index], RESTORE_READ)?;
        let longest = reads.iter().map(|r| r.len()).max().unwrap_or(0);
        if only_batch && reads.len() < FEW_READS && longest >= 2 * SPLIT_FLOOR {
            // A little over half, so blob boundaries make two pieces, not three.
            reads = coalesce(needed.iter().copied(), &[index], longest / 20 * 11)?;
        }
        let mean = reads.iter().map(|r| r.len()).sum::<u64>() / reads.len().max(1) as u64;
        let inflight = super::reads_in_flight(repo, connections, mean);
        let inflight = &inflight;
        let batch = Arc::new(self);
        let key = repo.key().clone();
        // Groups being written, across all reads: the network keeps receiving while the
        // writer threads open and write (a few groups per core).
        let writers = Arc::new(Semaphore::new(WRITERS_PER_CORE * crate::cores()));
        let done = futures::stream::iter(reads.into_iter().map(|read| {
            let batch = batch.clone();
            let key = key.clone();
            let progress = progress.clone();
            let writers = writers.clone();
            let pack: Arc<str> = pack_name(&read.pack).into();
            async move {
                let _place = inflight.enter().await;
                let writing = Mutex::new(Vec::new());
                let fetched = repo
                    .fetch_read(&read, WRITE_GROUP, |blobs| {
                        let (batch, key, progress, pack) =
                            (batch.clone(), key.clone(), progress.clone(), pack.clone());
                        let (writers, writing) = (writers.clone(), &writing);
                        async move {
                            let permit = writers
                                .acquire_owned()
                                .await
                                .map_err(|_| Error::Internal("restore writers closed".into()))?;
                            let task = tokio::task::spawn_blocking(move || {
                                let _permit = permit;
                                blobs.iter().try_for_each(|(e, sealed)| {
                                    batch.write_blob(
                                        &key,
                                        &pack,
                                        &e.id,
                                        e.raw_length,
                                        sealed,
                                        &progress,
                                    )
                                })
                            });
                            writing.lock().unwrap_or_else(|e| e.into_inner()).push(task);
                            Ok(())
                        }
                    })
                    .await;
                let tasks = std::mem::take(&mut *writing.lock().unwrap_or_else(|e| e.into_inner()));
                for t in tasks {
                    t.await
                        .map_err(|e| Error::Internal(format!("restore writer failed: {e}")))??;
                }
                fetched
            }
        }))
        .buffer_unordered(inflight.cap())
        .try_collect::<()>()
        .await;
        if done.is_err() {
            for f in &batch.files {
                if f.remaining.load(Ordering::Acquire) > 0 {
                    let _ = std::fs::remove_file(&f.temp);
                }
            }
        }
        done
    }

    /// Removes the files planned but not written (the restore stops before fetching them).
    pub fn abandon(self) {
        for f in &self.files {
            let _ = std::fs::remove_file(&f.temp);
        }
    }

    /// Opens and verifies one blob, writes it wherever the batch needs it, and finishes
    /// the files it completes. All-zero blobs are not written: the file is already that
    /// long, and leaving the range unwritten keeps it a hole.
    fn write_blob(
        &self,
        key: &SecretKey,
        pack: &str,
        id: &Id,
        raw_length: u32,
        sealed: &[u8],
        progress: &Progress,
    ) -> Result<()> {
        let plain = blob::open(key, pack, id, raw_length, sealed)?;
        let zero = plain.iter().all(|&b| b == 0);
        let Some(places) = self.wants.get(id) else {
            return Ok(());
        };
        for &(n, offset) in places {
            let f = &self.files[n as usize];
            let io = |e| Error::io(&f.temp, e);
            let out = match zero && f.sized {
                true => None,
                false => Some(
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&f.temp)
                        .map_err(io)?,
                ),
            };
            match &out {
                Some(out) if zero => out.set_len(f.node.size).map_err(io)?,
                Some(out) => out.write_all_at(&plain, offset).map_err(io)?,
                None => {}
            }
            progress.add_bytes(plain.len() as u64);
            if f.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                f.finish(out.as_ref(), self.as_root)?;
            }
        }
        Ok(())
    }
}

impl Pending {
    /// The file is whole: its owner (as root), then its mode (a change of owner clears
    /// set-user-ID bits), then its times, all through `open` when the file is open
    /// (no path looked up again), then its own name.
    fn finish(&self, open: Option<&std::fs::File>, as_root: bool) -> Result<()> {
        let io = |e| Error::io(&self.temp, e);
        let node = &self.node;
        let perm = std::fs::Permissions::from_mode(node.mode);
        let t = filetime::FileTime::from_unix_time(node.mtime, node.mtime_ns);
        match open {
            Some(f) => {
                if as_root {
                    std::os::unix::fs::fchown(f, Some(node.uid), Some(node.gid)).map_err(io)?;
                }
                f.set_permissions(perm).map_err(io)?;
                filetime::set_file_handle_times(f, Some(t), Some(t)).map_err(io)?;
            }
            None => {
                if as_root {
                    std::os::unix::fs::lchown(&self.temp, Some(node.uid), Some(node.gid))
                        .map_err(io)?;
                }
                std::fs::set_permissions(&self.temp, perm).map_err(io)?;
                filetime::set_file_times(&self.temp, t, t).map_err(io)?;
            }
        }
        std::fs::rename(&self.temp, &self.path).map_err(|e| Error::io(&self.path, e))
    }
}
