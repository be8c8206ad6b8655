//! The one index rewrite: packs added, packs dropped, entries of blobs moved elsewhere
//! no longer named — by prune (the whole index written anew, compacted) and by the
//! health check's repair (only the files it touches). Crash-safe in one order: the new
//! index files are written before any old one is deleted, so a blob is always indexed in
//! a pack that exists (overlapping files are harmless: the first entry wins).

use std::collections::HashSet;

use super::Repository;
use crate::format::index::{IndexFile, IndexedPack};
use crate::{Id, Result};

/// What the index becomes.
#[derive(Debug)]
pub struct Rewrite<'a> {
    /// Packs to index (new, already stored).
    pub added: &'a [IndexedPack],
    /// Packs no index may name any more.
    pub dropped: &'a HashSet<Id>,
    /// Blobs now in an added pack: their entries in other packs go.
    pub moved: &'a HashSet<Id>,
    /// Write every pack kept into fresh files and delete every old one (compaction);
    /// else replace only the files that name something dropped or moved.
    pub whole: bool,
}

/// Index files written and deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub written: usize,
    pub deleted: usize,
}

impl Repository {
    /// Rewrites the index files `files` (all of them, as read) as `rw` says.
    pub async fn rewrite_index(
        &self,
        files: Vec<(String, IndexFile)>,
        rw: Rewrite<'_>,
    ) -> Result<Rewritten> {
        let fresh: HashSet<Id> = rw.added.iter().map(|p| p.id).collect();
        // A pack as it stays: none if dropped; without the entries of moved blobs.
        let kept = |mut p: IndexedPack| -> Option<IndexedPack> {
            if fresh.contains(&p.id) {
                return Some(p);
            }
            if rw.dropped.contains(&p.id) {
                return None;
            }
            p.entries.retain(|e| !rw.moved.contains(&e.id));
            (!p.entries.is_empty()).then_some(p)
        };
        let touched = |f: &IndexFile| {
            f.packs.iter().any(|p| {
                !fresh.contains(&p.id)
                    && (rw.dropped.contains(&p.id)
                        || p.entries.iter().any(|e| rw.moved.contains(&e.id)))
            })
        };
        let mut new_names = Vec::new();
        let mut old = Vec::new();
        if rw.whole {
            // Each pack once (the first file naming it wins), by id, then the new ones.
            let mut seen = HashSet::new();
            let mut packs: Vec<IndexedPack> = Vec::new();
            for (name, f) in files {
                packs.extend(
                    (f.packs.into_iter())
                        .filter(|p| seen.insert(p.id))
                        .filter_map(kept),
                );
                old.push(name);
            }
            packs.sort_by_key(|p| p.id);
            packs.extend(rw.added.iter().filter(|p| seen.insert(p.id)).cloned());
            new_names = self.save_indexes(&packs).await?;
        } else {
            if !rw.added.is_empty() {
                new_names = self.save_indexes(rw.added).await?;
            }
            for (name, f) in files {
                if !touched(&f) {
                    continue;
                }
                let packs: Vec<IndexedPack> = f.packs.into_iter().filter_map(kept).collect();
                if !packs.is_empty() {
                    new_names.push(self.save_index(&IndexFile { packs }).await?);
                }
                old.push(name);
            }
        }
        // Never an old file that was just written again (names are content hashes).
        let new: HashSet<&String> = new_names.iter().collect();
        old.retain(|n| !new.contains(n));
        let deleted = old.len();
        self.delete_all(old).await?;
        Ok(Rewritten {
            written: new_names.len(),
            deleted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    fn packs_of(files: &[(String, IndexFile)]) -> HashSet<Id> {
        files
            .iter()
            .flat_map(|(_, f)| &f.packs)
            .map(|p| p.id)
            .collect()
    }

    /// Dropping a pack replaces only the file naming it; a whole rewrite compacts every
    /// file into fresh ones naming the same packs; nothing is named twice.
    #[tokio::test]
    async fn a_rewrite_replaces_what_it_touches_or_everything() {
        let repo = testkit::repo(testkit::memory(), 1 << 20).await;
        let _files = testkit::backups(&repo, &["a", "b"]).await;
        let before = repo
            .load_index_files(repo.index_names().await.unwrap())
            .await
            .unwrap();
        assert!(before.len() >= 2, "one index file per backup at least");
        let (victim_file, victim) = (before[0].0.clone(), before[0].1.packs[0].id);
        let untouched: Vec<String> = before[1..].iter().map(|(n, _)| n.clone()).collect();
        let all = packs_of(&before);

        let dropped = HashSet::from([victim]);
        let rw = Rewrite {
            added: &[],
            dropped: &dropped,
            moved: &HashSet::new(),
            whole: false,
        };
        let done = repo.rewrite_index(before, rw).await.unwrap();
        assert_eq!(done.deleted, 1);
        let names = repo.index_names().await.unwrap();
        assert!(!names.contains(&victim_file));
        assert!(untouched.iter().all(|n| names.contains(n)), "the rest stay");
        let after = repo.load_index_files(names).await.unwrap();
        let mut expected = all.clone();
        expected.remove(&victim);
        assert_eq!(packs_of(&after), expected);

        let n = after.len();
        let rw = Rewrite {
            added: &[],
            dropped: &HashSet::new(),
            moved: &HashSet::new(),
            whole: true,
        };
        let done = repo.rewrite_index(after, rw).await.unwrap();
        assert_eq!(done.deleted, n);
        let compact = repo
            .load_index_files(repo.index_names().await.unwrap())
            .await
            .unwrap();
        assert_eq!(compact.len(), done.written);
        let named: usize = compact.iter().map(|(_, f)| f.packs.len()).sum();
        assert_eq!(named, expected.len(), "each pack once");
        assert_eq!(packs_of(&compact), expected);
    }
}
