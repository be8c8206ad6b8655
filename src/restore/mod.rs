//! `restore`: writes a restore point back to a folder, bit for bit — content, modes,
//! times, symlinks, and owners when run as root. Every blob is verified against its id
//! as it is read; a restore that finishes wrote exactly what was backed up. Runs of
//! zeros (disk images) become holes, so restored images stay sparse.
//!
//! Reads are planned, never one request per blob: the tree is walked a batch of files
//! at a time, and each batch's blobs are fetched pack by pack (`write.rs`).

mod select;
mod write;

pub use select::PathFilter;
pub use write::{FILES_PER_BATCH, POSITIONS_PER_BATCH};

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::format::point::Point;
use crate::format::point_name;
use crate::format::tree::{Node, NodeKind};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::repo::tree::for_each_node;
use crate::store::{Inflight, StoreKind};
use crate::{Error, Id, Result};
use write::Batch;

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreStats {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
}

/// How a restore reads.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Ranged reads in flight; default: sized to the link (see [`default_connections`]).
    pub connections: Option<usize>,
    /// Which paths to restore (default: all); only their blobs are read.
    pub filter: PathFilter,
    /// The repository's index when the caller has already loaded it (a retrieval plan).
    pub index: Option<Arc<crate::repo::MasterIndex>>,
}

/// Reads moving data at once that keep a store busy: a folder or memory needs few; an
/// object store serves each request at its own pace and needs more. On a link with
/// latency, more wait for their first byte besides (see [`Inflight`]), up to
/// [`RESTORE_READS_CAP`].
pub fn default_connections(kind: StoreKind) -> usize {
    match kind {
        StoreKind::File | StoreKind::Memory => 8,
        StoreKind::S3 | StoreKind::Azure => 16,
    }
}

/// The most reads a restore keeps in flight (memory: each holds up to two 1 MiB groups).
pub const RESTORE_READS_CAP: usize = 64;

/// Reads in flight for `repo`: `fixed` when the user gave it, else sized to the link.
pub(crate) fn reads_in_flight(
    repo: &Repository,
    fixed: Option<usize>,
    read_bytes: u64,
) -> Inflight {
    let base = default_connections(repo.loc.kind);
    match (fixed, repo.loc.kind) {
        (Some(n), _) => Inflight::fixed(n),
        (None, StoreKind::File | StoreKind::Memory) => Inflight::fixed(base),
        (None, _) => Inflight::new(repo.loc.link.clone(), read_bytes, base, RESTORE_READS_CAP),
    }
}

/// Restores `point` into the folder `to` (created if missing).
pub async fn run(
    repo: &Repository,
    point_id: &Id,
    point: &Point,
    to: &Path,
    progress: &Progress,
) -> Result<RestoreStats> {
    run_with(
        repo,
        point_id,
        point,
        to,
        &RestoreOptions::default(),
        progress,
    )
    .await
}

/// Restores `point` into `to`, pack by pack: the tree is walked once, a batch of files
/// at a time; each batch's blobs are read with coalesced ranged GETs, many in flight,
/// and every blob is written to each place that needs it.
pub async fn run_with(
    repo: &Repository,
    point_id: &Id,
    point: &Point,
    to: &Path,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreStats> {
    tokio::fs::create_dir_all(to)
        .await
        .map_err(|e| Error::io(to, e))?;
    let root = tokio::fs::canonicalize(to)
        .await
        .map_err(|e| Error::io(to, e))?;
    let index = match &opts.index {
        Some(i) => i.clone(),
        None => Arc::new(repo.load_index().await?),
    };
    // A full batch is fetched by a task of its own while the walk plans the next one
    // (creating files is much of a small-file restore's time); at most one at a time.
    let shared = Arc::new(repo.clone());
    let mut fetching: Option<tokio::task::JoinHandle<Result<()>>> = None;
    let mut several_batches = false;
    let as_root = is_root(&root).await;
    let connections = opts.connections;
    let mut stats = RestoreStats::default();
    // Folder modes and times are set last, deepest first: writing into a folder changes
    // its mtime, and a read-only folder would refuse its own content.
    let mut dirs: Vec<(PathBuf, Node)> = Vec::new();
    let mut checked_parent: Option<PathBuf> = None;
    // Folders this restore made: nothing was in them before it, so a file there needs
    // no look for what is in its way (two calls per file of a small-file restore).
    let mut made: HashSet<PathBuf> = HashSet::new();
    let name = point_name(point_id);
    let mut batch = Batch::new(as_root);
    // With a filter, the folders above what is taken get their modes and times too.
    let mut above: HashSet<Vec<u8>> = HashSet::new();
    let walked = for_each_node(repo, &index, &name, point, async |mut node: Node| {
        if !opts.filter.is_everything() {
            if !opts.filter.takes(&node.path) {
                if node.kind == NodeKind::Dir {
                    node.blobs = Vec::new();
                    dirs.push((root.join(std::ffi::OsStr::from_bytes(&node.path)), node));
                }
                return Ok(());
            }
            let p = String::from_utf8_lossy(&node.path).into_owned();
            above.extend(select::ancestors(&p).skip(1).map(|a| a.as_bytes().to_vec()));
        }
        let path = root.join(std::ffi::OsStr::from_bytes(&node.path));
        let parent = path.parent().unwrap_or(&root).to_path_buf();
        let fresh = made.contains(&parent);
        if checked_parent.as_ref() != Some(&parent) {
            ensure_inside(&root, &parent)?;
            checked_parent = Some(parent);
        }
        // Plain blocking calls: while a batch is planned no read is in flight, and a
        // hand-over to the blocking pool per file cost more than the call itself.
        if !fresh {
            remove_if_symlink(&path)?;
        }
        match node.kind {
            NodeKind::Dir => {
                if make_dir(&path)? {
                    made.insert(path.clone());
                }
                stats.dirs += 1;
                node.blobs = Vec::new();
                dirs.push((path, node));
            }
            NodeKind::Symlink => {
                make_symlink(&path, &node, as_root)?;
                stats.symlinks += 1;
            }
            NodeKind::File => {
                stats.files += 1;
                stats.bytes += node.size;
                batch.add(&index, &name, path, node, fresh)?;
                if batch.is_full() {
                    // (A failure of the batch before leaves this one to be abandoned.)
                    if let Some(before) = fetching.take() {
                        finished(before).await?;
                    }
                    let full = std::mem::replace(&mut batch, Batch::new(as_root));
                    let (repo, index) = (shared.clone(), index.clone());
                    let progress = progress.clone();
                    several_batches = true;
                    fetching = Some(tokio::spawn(async move {
                        full.restore(&repo, &index, connections, false, &progress)
                            .await
                    }));
                }
            }
        }
        Ok(())
    })
    .await;
    let before = match fetching.take() {
        Some(f) => finished(f).await,
        None => Ok(()),
    };
    if let Err(e) = walked.and(before) {
        // Files planned but never fetched must not be left behind half made.
        batch.abandon();
        return Err(e);
    }
    // A point restored in one batch (a few large files) may split its reads.
    let only = !several_batches;
    batch
        .restore(repo, &index, connections, only, progress)
        .await?;
    finish_dirs(&dirs, &opts.filter, &above, as_root)?;
    progress.finish();
    Ok(stats)
}

/// A folder (one already there is fine); whether it was made here.
fn make_dir(path: &Path) -> Result<bool> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// A symlink to the node's target, with its owner and times.
fn make_symlink(path: &Path, node: &Node, as_root: bool) -> Result<()> {
    let target = node.target.as_deref().unwrap_or_default();
    let _ = std::fs::remove_file(path);
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path)
        .map_err(|e| Error::io(path, e))?;
    finish_node(path, node, as_root)
}

/// Folder modes and times, deepest first — with a filter, only of the folders taken
/// and those above what was taken.
fn finish_dirs(
    dirs: &[(PathBuf, Node)],
    filter: &PathFilter,
    above: &HashSet<Vec<u8>>,
    as_root: bool,
) -> Result<()> {
    let filtered = !filter.is_everything();
    for (path, node) in dirs.iter().rev() {
        if filtered && !filter.takes(&node.path) && !above.contains(&node.path) {
            continue;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode))
            .map_err(|e| Error::io(path, e))?;
        finish_node(path, node, as_root)?;
    }
    Ok(())
}

/// Waits for a batch fetched by a task of its own.
async fn finished(task: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    task.await
        .map_err(|e| Error::Internal(format!("restore batch failed: {e}")))?
}

pub(super) fn finish_node(path: &Path, node: &Node, as_root: bool) -> Result<()> {
    if as_root {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid))
            .map_err(|e| Error::io(path, e))?;
    }
    let t = filetime::FileTime::from_unix_time(node.mtime, node.mtime_ns);
    filetime::set_symlink_file_times(path, t, t).map_err(|e| Error::io(path, e))
}

/// A folder being written into must resolve inside the restore root; a symlink restored
/// earlier must not carry later files elsewhere.
fn ensure_inside(root: &Path, dir: &Path) -> Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let real = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    if !real.starts_with(root) {
        return Err(Error::Invalid(format!(
            "refusing to write into {}: it resolves to {}, outside the restore folder {}",
            dir.display(),
            real.display(),
            root.display()
        )));
    }
    Ok(())
}

fn remove_if_symlink(path: &Path) -> Result<()> {
    if let Ok(m) = std::fs::symlink_metadata(path)
        && m.file_type().is_symlink()
    {
        std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
    }
    Ok(())
}

/// Owners are restored only when running as root: the restore folder we just made is
/// owned by uid 0 exactly then.
async fn is_root(root: &Path) -> bool {
    tokio::fs::metadata(root)
        .await
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;
    use crate::backup::{self, BackupOptions};
    use crate::testkit;

    /// Files of every shape come back whole with their modes (set-user-ID too: the
    /// owner is set before the mode) and times — a file of one blob of zeros, an empty
    /// one, a file of many blobs with a hole — in a fresh folder and in one holding a
    /// leftover temporary file and a planted symlink where a file goes.
    #[tokio::test]
    async fn files_of_every_shape_come_back_with_their_metadata() {
        let src = tempfile::tempdir().unwrap();
        let root = src.path().join("m");
        std::fs::create_dir_all(root.join("d")).unwrap();
        let write = |name: &str, bytes: &[u8], mode: u32| {
            let p = root.join(name);
            std::fs::write(&p, bytes).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let t = filetime::FileTime::from_unix_time(1_600_000_000, 123_000_000);
            filetime::set_file_times(&p, t, t).unwrap();
        };
        write("zeros", &[0u8; 3000], 0o640);
        write("empty", b"", 0o600);
        write("d/suid", b"#!/bin/sh\n", 0o4755);
        let mut big = testkit::bytes(1, 3 << 20);
        big[1 << 20..2 << 20].fill(0);
        write("d/big", &big, 0o644);
        let repo = testkit::repo(testkit::memory(), 16 << 20).await;
        let opts = BackupOptions {
            machine: "m".into(),
            paths: vec![root.clone()],
            base: Some(src.path().to_path_buf()),
            ..Default::default()
        };
        backup::run(repo.clone(), opts, Progress::hidden())
            .await
            .unwrap();
        let (id, point) = repo.load_points().await.unwrap().remove(0);
        let check = |to: &Path| {
            for name in ["zeros", "empty", "d/suid", "d/big"] {
                let (a, b) = (root.join(name), to.join("m").join(name));
                assert_eq!(
                    std::fs::read(&a).unwrap(),
                    std::fs::read(&b).unwrap(),
                    "{name}"
                );
                let (ma, mb) = (a.metadata().unwrap(), b.metadata().unwrap());
                assert_eq!(ma.mode(), mb.mode(), "{name}");
                assert_eq!(
                    (ma.mtime(), ma.mtime_nsec()),
                    (mb.mtime(), mb.mtime_nsec()),
                    "{name}"
                );
            }
            let left: Vec<_> = walk_names(to)
                .into_iter()
                .filter(|n| n.contains("offsite-partial"))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        };
        let fresh = tempfile::tempdir().unwrap();
        run(&repo, &id, &point, fresh.path(), &Progress::hidden())
            .await
            .unwrap();
        check(fresh.path());

        // Over an earlier restore: a leftover temporary file and a symlink where a file
        // goes are replaced, never written through.
        let outside = tempfile::tempdir().unwrap();
        let again = tempfile::tempdir().unwrap();
        let d = again.path().join("m/d");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("suid.offsite-partial"), b"left over").unwrap();
        std::os::unix::fs::symlink(outside.path().join("victim"), d.join("big")).unwrap();
        run(&repo, &id, &point, again.path(), &Progress::hidden())
            .await
            .unwrap();
        check(again.path());
        assert!(!outside.path().join("victim").exists());
    }

    fn walk_names(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            out.push(e.file_name().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk_names(&e.path()));
            }
        }
        out
    }
}
