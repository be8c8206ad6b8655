//! The tree walk: a restore point's tree stream read a blob at a time (a few reads in
//! flight) and parsed into nodes, so a point of millions of files is never held whole.
//! Restore, check and the copy planner all walk trees through here.

use futures::StreamExt;

use super::{MasterIndex, Repository};
use crate::format::point::Point;
use crate::format::tree::{Node, TreeParser};
use crate::{Error, Result};

/// Tree blobs read ahead while nodes are handled.
const TREE_READS_IN_FLIGHT: usize = 4;

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
    let mut blobs = futures::stream::iter(point.tree.iter().map(|id| async move {
        let loc = index.get(id).ok_or_else(|| {
            Error::corrupt(
                point_name,
                format!("tree blob {} is in no index", id.short()),
            )
        })?;
        repo.read_blob(id, loc, index).await
    }))
    .buffered(TREE_READS_IN_FLIGHT);
    while let Some(blob) = blobs.next().await {
        let nodes = parser
            .feed(&blob?)
            .map_err(|w| Error::corrupt(point_name, format!("tree stream: {w}")))?;
        for n in nodes {
            visit(n).await?;
        }
    }
    parser
        .finish()
        .map_err(|w| Error::corrupt(point_name, format!("tree stream: {w}")))
}
