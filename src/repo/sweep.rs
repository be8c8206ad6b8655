//! Clearing up after dead writers: the locks they left (past their expiry, or of a
//! process gone from this host — FORMAT.md §9), and, in a folder repository, the
//! staging files object_store's `LocalFileSystem` writes as `NAME#N` before renaming
//! them into place. A writer killed mid-write leaves those for ever, and listings never
//! show them (they are not objects), so they are found by walking the folder.
//!
//! A staging file is a dead writer's when it is older than every live lock of another
//! process, less the adoption clock margin: every writer locks before it writes (as for
//! adoption), so a live writer's staging files are younger than its lock. With no live
//! lock, every staging file is a dead writer's.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Repository;
use super::adopt::CLOCK_MARGIN;
use super::lock::list_locks;
use crate::Result;

/// What a sweep found and removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Locks of dead holders removed (their descriptions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<String>,
    /// Staging files of dead writers removed, and their bytes.
    pub staging_files: u64,
    pub staging_bytes: u64,
}

impl Swept {
    pub fn is_empty(&self) -> bool {
        self.locks.is_empty() && self.staging_files == 0
    }
}

/// A staging file: `NAME#DIGITS` (object_store's staged upload).
fn is_staging(name: &str) -> bool {
    name.split_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Every staging file under `folder`, with its size and modification time.
fn staging_files(folder: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut dirs = vec![folder.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                dirs.push(e.path());
            } else if is_staging(&e.file_name().to_string_lossy()) {
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((e.path(), meta.len(), modified));
            }
        }
    }
    out
}

impl Repository {
    /// Removes what dead writers left: the stale locks but `mine` (expired by more than
    /// the clock margin, or their process gone from this host) and, in a folder, the
    /// staging files older than every other live lock.
    pub async fn sweep_dead(&self, mine: &[&str]) -> Result<Swept> {
        let now = self.clock().now();
        let mut swept = Swept::default();
        let mut oldest_live: Option<DateTime<Utc>> = None;
        for l in list_locks(self).await? {
            if mine.contains(&l.name.as_str()) {
                continue;
            }
            let dead = l.lock.expires + CLOCK_MARGIN < now || l.lock.holder_is_gone();
            if dead {
                swept.locks.push(l.describe(now));
                self.delete(&l.name).await?;
            } else {
                let c = l.lock.created - CLOCK_MARGIN;
                oldest_live = Some(oldest_live.map_or(c, |o| o.min(c)));
            }
        }
        let cutoff = oldest_live.map_or(now, |o| o.min(now));
        let (files, bytes) = self.sweep_staging(cutoff).await;
        (swept.staging_files, swept.staging_bytes) = (files, bytes);
        if !swept.is_empty() {
            tracing::info!(
                "{}: removed {} stale lock(s) and {} staging file(s) ({} bytes) left by dead writers",
                self.url(),
                swept.locks.len(),
                files,
                bytes
            );
        }
        Ok(swept)
    }

    /// Removes the folder's staging files last changed before `cutoff`; returns how many
    /// and their bytes. Nothing for a store that is not a folder.
    pub async fn sweep_staging(&self, cutoff: DateTime<Utc>) -> (u64, u64) {
        let Some(folder) = self.loc.folder.clone() else {
            return (0, 0);
        };
        let cutoff = SystemTime::from(cutoff);
        let work = move || {
            let (mut n, mut bytes) = (0, 0);
            for (path, len, modified) in staging_files(&folder) {
                if modified < cutoff && std::fs::remove_file(&path).is_ok() {
                    n += 1;
                    bytes += len;
                }
            }
            (n, bytes)
        };
        tokio::task::spawn_blocking(work).await.unwrap_or_default()
    }

    /// The staging files a folder repository holds, and their bytes (for prune's plan).
    pub async fn count_staging(&self) -> (u64, u64) {
        let Some(folder) = self.loc.folder.clone() else {
            return (0, 0);
        };
        let work = move || {
            let files = staging_files(&folder);
            (files.len() as u64, files.iter().map(|f| f.1).sum())
        };
        tokio::task::spawn_blocking(work).await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names() {
        assert!(is_staging("0123abcd#1"));
        assert!(is_staging("config#42"));
        assert!(!is_staging("0123abcd"));
        assert!(!is_staging("name#"));
        assert!(!is_staging("name#x1"));
    }
}
