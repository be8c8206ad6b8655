//! `backup`: writes a restore point of local files, folders and raw disk images.
//!
//! A streaming pipeline of bounded stages: one reader thread walks, chunks and hashes,
//! and drops blobs the repository already has; worker threads compress and seal; the
//! packer task fills packs and uploads them. Then the index, then — last — the point.
//! Memory is bounded by the channel depths and pack size, not by the input.

pub mod parent;
pub mod walk;

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::chunker::{self, IncrementalChunker};
use crate::format::lock::{Holder, LockKind, Purpose};
use crate::format::pack::BlobKind;
use crate::format::point::{Point, Summary, validate_name};
use crate::format::tree::{Node, NodeKind};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::repo::adopt::adopt_orphans;
use crate::repo::blob;
use crate::repo::lock::LockGuard;
use crate::repo::packer::Packer;
use crate::repo::table::IdTable;
use crate::{Error, Id, Result};

#[derive(Clone, Debug, Default)]
pub struct BackupOptions {
    pub machine: String,
    pub job: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub paths: Vec<PathBuf>,
    /// Stored paths are relative to this folder (default `/`).
    pub base: Option<PathBuf>,
    /// Recorded host name (default: this machine's).
    pub host: Option<String>,
    /// Time of the point (default: now).
    pub time: Option<DateTime<Utc>>,
    /// Read every file, even those the parent point shows unchanged.
    pub force_read: bool,
}

/// A blob on its way from the reader to the sealing workers.
struct RawBlob {
    kind: BlobKind,
    id: Id,
    data: Vec<u8>,
}

struct SealedBlob {
    kind: BlobKind,
    id: Id,
    raw_length: u32,
    sealed: Vec<u8>,
}

/// What the reader thread produced.
struct ReadOutcome {
    tree: Vec<Id>,
    summary: Summary,
}

/// Runs a backup and returns the new point's id and manifest.
pub async fn run(
    repo: Arc<Repository>,
    opts: BackupOptions,
    progress: Progress,
) -> Result<(Id, Point)> {
    validate_name("machine", &opts.machine).map_err(Error::Invalid)?;
    if let Some(j) = &opts.job {
        validate_name("job", j).map_err(Error::Invalid)?;
    }
    if opts.paths.is_empty() {
        return Err(Error::Invalid(
            "nothing to back up: give one or more paths".into(),
        ));
    }
    let base = opts.base.clone().unwrap_or_else(|| PathBuf::from("/"));
    let roots = walk::roots(&opts.paths, &base)?;

    let lock = LockGuard::acquire(
        &repo,
        LockKind::Shared,
        Purpose::Backup,
        Some(Holder::Machine(opts.machine.clone())),
    )
    .await?;
    let result = run_locked(&repo, &lock.name, &opts, base, roots, progress).await;
    lock.release_after(result).await
}

async fn run_locked(
    repo: &Arc<Repository>,
    lock: &str,
    opts: &BackupOptions,
    base: PathBuf,
    roots: Vec<(PathBuf, Vec<u8>)>,
    progress: Progress,
) -> Result<(Id, Point)> {
    let mut index = repo.load_index().await?;
    // Packs a killed backup (or copy) uploaded but never indexed are indexed now, so
    // their blobs are not stored again.
    adopt_orphans(repo, &mut index, &[lock]).await?;
    let (parent, parent_files) = parent_of(repo, &index, opts).await?;
    let known = IdTable::from_rows(index.ids().map(|id| (id, ())).collect());
    drop(index);

    let n = crate::cores();
    let (raw_tx, raw_rx) = crossbeam_channel::bounded::<RawBlob>(n * 2);
    let (sealed_tx, mut sealed_rx) = tokio::sync::mpsc::channel::<SealedBlob>(n * 2);

    let reader = {
        let config = repo.config.clone();
        let progress = progress.clone();
        tokio::task::spawn_blocking(move || {
            let mut reuse = Reuse::new(parent_files);
            read_all(&roots, &base, &config, known, raw_tx, &mut reuse, &progress)
        })
    };
    let mut sealers = Vec::new();
    for _ in 0..n {
        let rx = raw_rx.clone();
        let tx = sealed_tx.clone();
        let key = repo.key().clone();
        let level = repo.config.compression;
        sealers.push(tokio::task::spawn_blocking(move || {
            for raw in rx {
                let sealed = blob::seal(&key, level, &raw.data);
                let b = SealedBlob {
                    kind: raw.kind,
                    id: raw.id,
                    raw_length: raw.data.len() as u32,
                    sealed,
                };
                if tx.blocking_send(b).is_err() {
                    break; // the packer stopped; its error is reported
                }
            }
        }));
    }
    drop(raw_rx);
    drop(sealed_tx);

    let mut data = Packer::new(repo.clone());
    let mut trees = Packer::new(repo.clone());
    let mut added = (0u64, 0u64);
    let packing = async {
        while let Some(b) = sealed_rx.recv().await {
            added.0 += 1;
            added.1 += b.sealed.len() as u64;
            let p = if b.kind == BlobKind::Tree {
                &mut trees
            } else {
                &mut data
            };
            p.add(b.kind, b.id, b.raw_length, &b.sealed).await?;
        }
        let mut packs = data.finish().await?;
        packs.extend(trees.finish().await?);
        Ok::<_, Error>(packs)
    }
    .await;
    drop(sealed_rx);
    let outcome = reader
        .await
        .map_err(|e| Error::Internal(format!("reader thread failed: {e}")))?;
    for s in sealers {
        let _ = s.await;
    }
    let packs = packing?;
    let mut outcome = outcome?;

    repo.save_indexes(&packs).await?;
    outcome.summary.blobs_added = added.0;
    outcome.summary.bytes_added = added.1;
    let point = Point {
        machine: opts.machine.clone(),
        job: opts.job.clone(),
        time: opts.time.unwrap_or_else(|| repo.clock().now()),
        host: opts
            .host
            .clone()
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned()),
        tags: opts.tags.clone(),
        parent,
        paths: opts.paths.iter().map(|p| p.display().to_string()).collect(),
        tree: outcome.tree,
        summary: outcome.summary,
        source: None,
    };
    let id = repo.save_point(&point).await?;
    progress.finish();
    Ok((id, point))
}

/// The machine's newest point of the same job, and its files to compare with (none
/// with `--force-read`; a parent that cannot be read costs only the reuse).
async fn parent_of(
    repo: &Arc<Repository>,
    index: &crate::repo::MasterIndex,
    opts: &BackupOptions,
) -> Result<(Option<Id>, parent::ParentFiles)> {
    let parent = repo
        .load_points()
        .await?
        .into_iter()
        .rev()
        .find(|(_, p)| p.machine == opts.machine && p.job == opts.job);
    let files = match &parent {
        Some((id, p)) if !opts.force_read => {
            let name = format!("parent point {}", id.short());
            parent::ParentFiles::load(repo, index, &name, p)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!("{name}: {e}; every file is read");
                    parent::ParentFiles::none()
                })
        }
        _ => parent::ParentFiles::none(),
    };
    Ok((parent.map(|(id, _)| id), files))
}

/// Files the parent shows unchanged, and how many were taken from it.
struct Reuse {
    parent: parent::ParentFiles,
    /// Unix seconds from which a file's change is too recent to record its stamp.
    racy_from: i64,
    files: u64,
    bytes: u64,
}

impl Reuse {
    fn new(parent: parent::ParentFiles) -> Reuse {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Reuse {
            parent,
            racy_from: now - 1,
            files: 0,
            bytes: 0,
        }
    }

    /// The parent's blob list for this file when it is unchanged and every blob is still
    /// in the repository. A spool that cannot be read any more costs only the reuse.
    fn blobs_for(&mut self, e: &walk::Entry, known: &IdTable<()>) -> Option<(u64, Vec<Id>)> {
        let p = match self.parent.find(&e.rel) {
            Ok(found) => found?,
            Err(err) => {
                tracing::warn!("{err}; the remaining files are read");
                self.parent = parent::ParentFiles::none();
                return None;
            }
        };
        if !parent::unchanged(&p, &e.meta) || !p.blobs.iter().all(|b| known.contains(b)) {
            return None;
        }
        self.files += 1;
        self.bytes += p.size;
        Some((p.size, p.blobs))
    }
}

/// The reader stage: walk, chunk, hash, dedupe; emit new blobs and the tree stream.
fn read_all(
    roots: &[(PathBuf, Vec<u8>)],
    base: &Path,
    config: &crate::format::config::Config,
    mut known: IdTable<()>,
    tx: crossbeam_channel::Sender<RawBlob>,
    reuse: &mut Reuse,
    progress: &Progress,
) -> Result<ReadOutcome> {
    let mut summary = Summary::default();
    let mut tree = Vec::new();
    let mut tree_chunker = IncrementalChunker::new(config.tree_chunker);
    let closed = || Error::Internal("the pipeline stopped early".into());

    let mut emit = |kind: BlobKind, data: Vec<u8>, known: &mut IdTable<()>| -> Result<Id> {
        let id = Id::hash(&data);
        if known.insert(id, ()) {
            tx.send(RawBlob { kind, id, data }).map_err(|_| closed())?;
        }
        Ok(id)
    };

    let mut visit = |e: walk::Entry| -> Result<()> {
        let node = match node_for(&e, config, &mut known, &mut emit, reuse, progress) {
            Ok(n) => n,
            Err(Error::Io { path, source }) => {
                tracing::warn!("skipped {}: {source}", path.display());
                summary.errors += 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let Some(node) = node else {
            return Ok(());
        };
        match node.kind {
            NodeKind::File => {
                summary.files += 1;
                summary.bytes += node.size;
            }
            NodeKind::Dir => summary.dirs += 1,
            NodeKind::Symlink => summary.symlinks += 1,
        }
        for chunk in tree_chunker.push(&node.to_line()) {
            tree.push(emit(BlobKind::Tree, chunk, &mut known)?);
        }
        Ok(())
    };
    let mut skipped = 0u64;
    walk::walk(roots, base, &mut visit, &mut |p, why| {
        tracing::warn!("skipped {}: {why}", p.display());
        skipped += 1;
    })?;
    for chunk in tree_chunker.finish() {
        tree.push(emit(BlobKind::Tree, chunk, &mut known)?);
    }
    summary.errors += skipped;
    summary.files_reused = reuse.files;
    summary.bytes_reused = reuse.bytes;
    Ok(ReadOutcome { tree, summary })
}

type Emit<'a> = dyn FnMut(BlobKind, Vec<u8>, &mut IdTable<()>) -> Result<Id> + 'a;

/// Builds the tree node of one entry, reading and chunking a file's content (unless the
/// parent shows it unchanged).
fn node_for(
    e: &walk::Entry,
    config: &crate::format::config::Config,
    known: &mut IdTable<()>,
    emit: &mut Emit<'_>,
    reuse: &mut Reuse,
    progress: &Progress,
) -> Result<Option<Node>> {
    let m = &e.meta;
    let ft = m.file_type();
    let mut node = Node {
        path: e.rel.clone(),
        kind: NodeKind::File,
        mode: m.permissions().mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime: m.mtime(),
        mtime_ns: m.mtime_nsec().clamp(0, 999_999_999) as u32,
        size: 0,
        target: None,
        blobs: Vec::new(),
        stamp: None,
    };
    if ft.is_dir() {
        node.kind = NodeKind::Dir;
    } else if ft.is_symlink() {
        node.kind = NodeKind::Symlink;
        let t = std::fs::read_link(&e.fs_path).map_err(|err| Error::io(&e.fs_path, err))?;
        node.target = Some(t.as_os_str().as_bytes().to_vec());
    } else if ft.is_file()
        && let Some((size, blobs)) = reuse.blobs_for(e, known)
    {
        node.size = size;
        node.blobs = blobs;
        node.stamp = parent::trusted_stamp(m, reuse.racy_from);
        progress.add_bytes(size);
        progress.add_file();
    } else if ft.is_file() || (e.is_root && is_block_device(m)) {
        // Block devices are read as raw disk images and restored as files.
        let mut f = std::fs::File::open(&e.fs_path).map_err(|err| Error::io(&e.fs_path, err))?;
        let size;
        if m.len() <= u64::from(config.chunker.max) && ft.is_file() {
            // Most files are small: read them whole (one exact allocation) and cut the
            // slice, instead of a streaming chunker with its maximum-size buffer.
            let mut data = Vec::with_capacity(m.len() as usize + 1);
            f.read_to_end(&mut data)
                .map_err(|err| Error::io(&e.fs_path, err))?;
            if data.len() <= config.chunker.max as usize {
                size = data.len() as u64;
                progress.add_bytes(size);
                for (start, len) in chunker::cuts(&config.chunker, &data) {
                    let piece = if start == 0 && len == data.len() {
                        std::mem::take(&mut data)
                    } else {
                        data[start..start + len].to_vec()
                    };
                    node.blobs.push(emit(BlobKind::Data, piece, known)?);
                }
            } else {
                // It grew while we read it: chunk what we have, then the rest.
                let rest = std::io::Cursor::new(data).chain(f);
                size = chunk_stream(config, rest, &e.fs_path, &mut node, known, emit, progress)?;
            }
        } else {
            size = chunk_stream(config, f, &e.fs_path, &mut node, known, emit, progress)?;
        }
        node.size = size;
        if ft.is_file() {
            node.stamp = parent::trusted_stamp(m, reuse.racy_from);
        }
        progress.add_file();
    } else {
        tracing::warn!(
            "skipped {}: sockets, pipes and devices inside folders are not backed up",
            e.fs_path.display()
        );
        return Ok(None);
    }
    Ok(Some(node))
}

fn chunk_stream<R: Read>(
    config: &crate::format::config::Config,
    r: R,
    path: &Path,
    node: &mut Node,
    known: &mut IdTable<()>,
    emit: &mut Emit<'_>,
    progress: &Progress,
) -> Result<u64> {
    let mut size = 0u64;
    for c in chunker::stream(&config.chunker, r) {
        let c = c.map_err(|err| Error::io(path, err.into()))?;
        size += c.length as u64;
        progress.add_bytes(c.length as u64);
        node.blobs.push(emit(BlobKind::Data, c.data, known)?);
    }
    Ok(size)
}

fn is_block_device(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_block_device()
}
