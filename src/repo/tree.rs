//! The tree walk: a restore point's tree stream read a window of blobs at a time and
//! parsed into nodes, so a point of millions of files is never held whole. Each window's
//! blobs are fetched with coalesced reads (tree blobs of one backup sit side by side in
//! its tree packs), then handed to the parser in stream order. Restore, check and the
//! copy planner all walk trees through here.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};

use super::reads::coalesce;
use super::{MasterIndex, Repository, blob};
use crate::format::pack_name;
use crate::format::point::Point;
use crate::format::tree::{Node, TreeParser};
use crate::{Error, Id, Result};

/// Tree blobs fetched together (at most 256 KiB each: 16 MiB of tree in memory at most).
const TREE_WINDOW: usize = 64;
/// Reads of one window in flight.
const TREE_READS_IN_FLIGHT: usize = 4;
/// Longest single read of tree blobs.
const TREE_READ: u64 = 16 << 20;

/// Reads the point's tree stream and calls `visit` for every node, in stream order
/// (sorted by path, folders before their content). `point_name` names the point in errors.
pub async fn for_each_node<F>(
    repo: &Repository,
    index: &MasterIndex,
    point_name: &str,
    point: &Point,
    mut visit: F,
) -> Result<()>
where
    F: AsyncFnMut(Node) -> Result<()>,
{
    let mut parser = TreeParser::default();
    for window in point.tree.chunks(TREE_WINDOW) {
        let blobs = fetch_window(repo, index, point_name, window).await?;
        for id in window {
            let plain = blobs.get(id).ok_or_else(|| {
                Error::Internal(format!("tree blob {} was not fetched", id.short()))
            })?;
            let nodes = parser
                .feed(plain)
                .map_err(|w| Error::corrupt(point_name, format!("tree stream: {w}")))?;
            for n in nodes {
                visit(n).await?;
            }
        }
    }
    parser
        .finish()
        .map_err(|w| Error::corrupt(point_name, format!("tree stream: {w}")))
}

/// The plaintext of every blob in `window`, read pack-wise and verified.
async fn fetch_window(
    repo: &Repository,
    index: &MasterIndex,
    point_name: &str,
    window: &[Id],
) -> Result<HashMap<Id, Vec<u8>>> {
    let mut needed: Vec<(usize, Id)> = Vec::with_capacity(window.len());
    for id in window {
        if index.get(id).is_none() {
            return Err(Error::corrupt(
                point_name,
                format!("tree blob {} is in no index", id.short()),
            ));
        }
        if !needed.iter().any(|(_, n)| n == id) {
            needed.push((0, *id));
        }
    }
    let reads = coalesce(needed.iter().copied(), &[index], TREE_READ)?;
    let key = repo.key();
    let parts: Vec<Vec<(Id, Vec<u8>)>> =
        futures::stream::iter(reads.iter().map(|read| async move {
            let pack = pack_name(&read.pack);
            let mut got = Vec::with_capacity(read.blobs.len());
            repo.fetch_read(read, TREE_READ as usize, |blobs| {
                for (e, sealed) in blobs {
                    let opened = blob::open(key, &pack, &e.id, e.raw_length, &sealed);
                    got.push(opened.map(|plain| (e.id, plain)));
                }
                async { Ok(()) }
            })
            .await?;
            got.into_iter().collect::<Result<Vec<_>>>()
        }))
        .buffer_unordered(TREE_READS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(parts.into_iter().flatten().collect())
}
