//! `offsite ls`: a point's tree, as a table or JSON lines, read a window of tree blobs at
//! a time (nothing but tree blobs is read, and nothing is written).

use std::io::Write;

use offsite::format::point::Point;
use offsite::format::point_name;
use offsite::format::tree::{Node, NodeKind};
use offsite::repo::Repository;
use offsite::repo::tree::for_each_node;
use offsite::{Error, Id};
use serde_json::json;

use super::output::size;

/// Prints the nodes at `under` (a relative path; all when `None`) and below it.
pub async fn run(
    repo: &Repository,
    id: &Id,
    point: &Point,
    under: Option<&str>,
    as_json: bool,
) -> anyhow::Result<()> {
    let index = repo.load_index().await?;
    let prefix = under.map(|p| p.trim_matches('/').as_bytes().to_vec());
    let shows = |path: &[u8]| match &prefix {
        None => true,
        Some(p) if p.is_empty() => true,
        Some(p) => {
            path == p.as_slice() || (path.starts_with(p) && path.get(p.len()) == Some(&b'/'))
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut shown = 0u64;
    for_each_node(repo, &index, &point_name(id), point, async |n: Node| {
        if !shows(&n.path) {
            return Ok(());
        }
        shown += 1;
        let path = String::from_utf8_lossy(&n.path);
        let time = chrono::DateTime::from_timestamp(n.mtime, n.mtime_ns).unwrap_or_default();
        let line = if as_json {
            let kind = match n.kind {
                NodeKind::File => "file",
                NodeKind::Dir => "dir",
                NodeKind::Symlink => "symlink",
            };
            json!({"path": path, "kind": kind, "mode": format!("{:o}", n.mode), "uid": n.uid,
                   "gid": n.gid, "size": n.size, "mtime": time,
                   "target": n.target.as_ref().map(|t| String::from_utf8_lossy(t).into_owned())})
            .to_string()
        } else {
            let kind = match n.kind {
                NodeKind::File => '-',
                NodeKind::Dir => 'd',
                NodeKind::Symlink => 'l',
            };
            let target = n
                .target
                .as_ref()
                .map(|t| format!(" -> {}", String::from_utf8_lossy(t)))
                .unwrap_or_default();
            format!(
                "{kind}{:04o} {:>5}:{:<5} {:>10} {} {path}{target}",
                n.mode,
                n.uid,
                n.gid,
                size(n.size),
                time.format("%Y-%m-%d %H:%M:%S")
            )
        };
        writeln!(out, "{line}").map_err(|e| Error::io("stdout", e))
    })
    .await?;
    out.flush()?;
    if shown == 0 && prefix.is_some() {
        anyhow::bail!(
            "no path {:?} in point {} of {}; `offsite ls` without a path lists them all",
            under.unwrap_or_default(),
            id.short(),
            point.machine
        );
    }
    Ok(())
}
