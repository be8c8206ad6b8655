//! Which blobs and packs restore points use — the one answer to that question. Prune
//! (what may be deleted), retention's locks and the lock upkeep (what must stay locked),
//! retrieval plans (what is paid for), the health check and the active full (what is
//! verified or refreshed) and the copy planner (what a target lacks) all ask it here,
//! so they cannot disagree on tree blobs, on which files count, or on a blob no index
//! lists.
//!
//! [`walk`] streams one point's blobs — its tree blobs, then each file's content in
//! tree order — each with where the index has it, or `None`; it holds one window of the
//! tree at a time. [`reach`] folds the walks of several points into the set they use
//! (each blob once, in first-use order) and the blobs some point needs that no index
//! lists, leaving it to the caller whether that stops it (prune, locks, retrieval) or is
//! a finding (the health check).

use std::collections::BTreeMap;

use super::table::IdTable;
use super::tree::for_each_node;
use super::{BlobLocation, MasterIndex, Repository};
use crate::format::pack::BlobKind;
use crate::format::point::Point;
use crate::format::point_name;
use crate::{Error, Id, Result};

/// Which files of a point count: every one, or those a filter takes (by path).
#[derive(Clone, Copy, Default)]
pub enum Files<'a> {
    #[default]
    All,
    Only(&'a (dyn Fn(&[u8]) -> bool + Sync)),
}

impl Files<'_> {
    fn takes(&self, path: &[u8]) -> bool {
        match self {
            Files::All => true,
            Files::Only(f) => f(path),
        }
    }
}

/// Why a point needs a blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Part of the point's tree stream.
    Tree,
    /// Content of the file at `Used::path`.
    Data,
}

/// One blob a point needs.
#[derive(Clone, Copy, Debug)]
pub struct Used<'a> {
    pub blob: Id,
    pub role: Role,
    /// The file it is content of (data blobs).
    pub path: Option<&'a [u8]>,
    /// Where the index has it; `None`: in no index.
    pub at: Option<BlobLocation>,
}

/// Streams the blobs point `id` uses: its tree blobs first, then the content of each
/// file `files` takes, in tree order (a blob two files share comes twice). An error
/// reading the tree ends the walk with that error.
pub async fn walk<F>(
    repo: &Repository,
    index: &MasterIndex,
    id: &Id,
    point: &Point,
    files: Files<'_>,
    mut visit: F,
) -> Result<()>
where
    F: FnMut(Used<'_>) -> Result<()>,
{
    for t in &point.tree {
        visit(Used {
            blob: *t,
            role: Role::Tree,
            path: None,
            at: index.get(t),
        })?;
    }
    let name = point_name(id);
    for_each_node(repo, index, &name, point, async |node| {
        if node.blobs.is_empty() || !files.takes(&node.path) {
            return Ok(());
        }
        for b in &node.blobs {
            visit(Used {
                blob: *b,
                role: Role::Data,
                path: Some(&node.path),
                at: index.get(b),
            })?;
        }
        Ok(())
    })
    .await?;
    // A spilled index that failed to read answered "absent": not an answer to act on.
    match index.failure() {
        Some(e) => Err(Error::Spill(e)),
        None => Ok(()),
    }
}

/// What a set of points uses.
#[derive(Debug, Default)]
pub struct Reached {
    /// Every blob, tree and data, once, in the order first used.
    pub blobs: Vec<Id>,
    /// The same blobs as a table (spilled past the memory budget: prune's used set
    /// for millions of blobs).
    seen: IdTable<()>,
    /// Blobs a point needs that no index lists: (point, blob, the file it is content of).
    pub unindexed: Vec<Unindexed>,
}

/// A blob a point needs that no index lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unindexed {
    pub point: Id,
    pub blob: Id,
    pub path: Option<Vec<u8>>,
}

impl Unindexed {
    /// The error that says so, naming the point, the blob and its file.
    pub fn error(&self) -> Error {
        let file = match &self.path {
            Some(p) => format!(" of {:?}", String::from_utf8_lossy(p)),
            None => " (tree)".to_string(),
        };
        Error::corrupt(
            point_name(&self.point),
            format!("blob {}{file} is in no index", self.blob.short()),
        )
    }
}

impl Reached {
    fn note(&mut self, point: &Id, u: Used<'_>) {
        // Each blob once: its first use names it (and, in no index, its point and file).
        if !self.seen.insert(u.blob, ()) {
            return;
        }
        self.blobs.push(u.blob);
        if u.at.is_none() {
            self.unindexed.push(Unindexed {
                point: *point,
                blob: u.blob,
                path: u.path.map(<[u8]>::to_vec),
            });
        }
    }

    /// Whether `blob` is used.
    pub fn uses(&self, blob: &Id) -> bool {
        self.seen.contains(blob)
    }

    /// An error for the first blob in no index, if any.
    pub fn all_indexed(&self) -> Result<()> {
        match self.unindexed.first() {
            Some(u) => Err(u.error()),
            None => Ok(()),
        }
    }

    /// The packs holding the blobs used (of `kind` only, as the index files them, when
    /// given), each with its size.
    pub fn packs(&self, index: &MasterIndex, kind: Option<BlobKind>) -> BTreeMap<Id, u64> {
        let mut packs = BTreeMap::new();
        for b in &self.blobs {
            let Some(loc) = index.get(b) else { continue };
            if kind.is_some_and(|k| k != loc.kind) {
                continue;
            }
            let id = index.pack_id(loc.pack);
            packs
                .entry(id)
                .or_insert_with(|| index.pack(&id).map_or(0, |p| p.size));
        }
        packs
    }
}

/// Walks each of `points` and folds what they use (see [`Reached`]). A tree that cannot
/// be read ends it with that error.
pub async fn reach<'p>(
    repo: &Repository,
    index: &MasterIndex,
    points: impl IntoIterator<Item = (&'p Id, &'p Point)>,
    files: Files<'_>,
) -> Result<Reached> {
    let mut reached = Reached::default();
    for (id, point) in points {
        walk(repo, index, id, point, files, |u| {
            reached.note(id, u);
            Ok(())
        })
        .await?;
    }
    // A spilled set that failed to read would call used blobs unused (prune would
    // delete them): an error instead.
    match reached.seen.failure() {
        Some(e) => Err(Error::Spill(e)),
        None => Ok(reached),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    /// Two machines' points: what each uses, once per blob, trees first; the packs by
    /// kind; a filter that takes one file; and a blob dropped from the index named.
    #[tokio::test]
    async fn points_reach_their_trees_data_and_packs() {
        let repo = testkit::repo(testkit::memory(), 1 << 20).await;
        let _files = testkit::backups(&repo, &["a", "b"]).await;
        let points = repo.load_points().await.unwrap();
        let index = repo.load_index().await.unwrap();
        let both: Vec<(&Id, &Point)> = points.iter().map(|(i, p)| (i, p)).collect();
        let r = reach(&repo, &index, both.clone(), Files::All)
            .await
            .unwrap();
        r.all_indexed().unwrap();
        assert_eq!(r.blobs.len(), r.seen.len(), "each blob once");
        let (id, a) = both[0];
        assert_eq!(r.blobs[..a.tree.len()], a.tree[..], "trees first");
        // Every blob the index holds belongs to one of the two points.
        assert_eq!(r.blobs.len(), index.blob_count());
        let data = r.packs(&index, Some(BlobKind::Data));
        let trees = r.packs(&index, Some(BlobKind::Tree));
        assert!(!data.is_empty() && !trees.is_empty());
        assert!(
            data.keys().all(|p| !trees.contains_key(p)),
            "backup keeps them apart"
        );
        assert_eq!(r.packs(&index, None).len(), data.len() + trees.len());

        let only_hostname = |p: &[u8]| p.ends_with(b"etc/hostname");
        let one = reach(&repo, &index, [(id, a)], Files::Only(&only_hostname))
            .await
            .unwrap();
        assert_eq!(one.blobs.len(), a.tree.len() + 1, "the tree and one file");

        // A data blob dropped from the index: named with its point and file.
        let dropped = *one.blobs.last().unwrap();
        let mut partial = crate::repo::MasterIndex::default();
        for (name, f) in repo
            .load_index_files(repo.index_names().await.unwrap())
            .await
            .unwrap()
        {
            let mut f = f;
            for p in &mut f.packs {
                p.entries.retain(|e| e.id != dropped);
            }
            partial.add_file(&name, &f);
        }
        let r = reach(&repo, &index, [(id, a)], Files::All).await.unwrap();
        assert!(r.unindexed.is_empty());
        let r = reach(&repo, &partial, [(id, a)], Files::All).await.unwrap();
        assert_eq!(r.unindexed.len(), 1);
        assert_eq!(r.unindexed[0].blob, dropped);
        assert_eq!(r.unindexed[0].point, *id);
        assert!(r.unindexed[0].path.as_deref().is_some_and(only_hostname));
        assert!(r.all_indexed().is_err());
    }
}
