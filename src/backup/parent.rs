//! Reading only what changed. The parent point's files (the machine's newest point of
//! the same job) are written, before the walk, to an anonymous temporary file in tree
//! stream order; the walk — depth-first, each folder's entries sorted by name bytes, the
//! same order — then merges with it one node at a time. A file whose size, modification
//! time and stamp (change time, inode, device) equal the parent's takes the parent's
//! blob list and is not read, as restic does with its parent snapshot. Memory stays
//! bounded whatever the parent's size: one parent node at a time.
//!
//! A stamp is recorded only for files that did not change within a second of the
//! backup's start (git's "racily clean" rule): a file written in the same second as it
//! was read could change again without its times showing it, so it is read next time.

use std::cmp::Ordering;
use std::fs::Metadata;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};
use std::os::unix::fs::MetadataExt;

use crate::format::point::Point;
use crate::format::tree::{Node, NodeKind, Stamp};
use crate::repo::{MasterIndex, Repository, tree};
use crate::{Error, Result};

/// The parent's files with stamps, in stream order, read one at a time.
pub struct ParentFiles {
    reader: Option<BufReader<std::fs::File>>,
    next: Option<Node>,
    line: Vec<u8>,
}

impl ParentFiles {
    /// No parent (the first point of a machine, or `--force-read`): every file is read.
    pub fn none() -> ParentFiles {
        ParentFiles {
            reader: None,
            next: None,
            line: Vec::new(),
        }
    }

    /// The files of `point` that carry a stamp, spooled to a temporary file.
    pub async fn load(
        repo: &Repository,
        index: &MasterIndex,
        point_name: &str,
        point: &Point,
    ) -> Result<ParentFiles> {
        let spool =
            |e: std::io::Error| Error::Internal(format!("spooling the parent's files: {e}"));
        let mut out = BufWriter::new(tempfile::tempfile().map_err(spool)?);
        let mut written = 0u64;
        tree::for_each_node(repo, index, point_name, point, async |n: Node| {
            if n.kind == NodeKind::File && n.stamp.is_some() {
                out.write_all(&n.to_line()).map_err(spool)?;
                written += 1;
            }
            Ok(())
        })
        .await?;
        let mut file = out.into_inner().map_err(|e| spool(e.into_error()))?;
        file.rewind().map_err(spool)?;
        tracing::debug!("{point_name}: {written} files with stamps to compare");
        let mut files = ParentFiles {
            reader: Some(BufReader::new(file)),
            next: None,
            line: Vec::new(),
        };
        files.advance()?;
        Ok(files)
    }

    fn advance(&mut self) -> Result<()> {
        self.next = None;
        let Some(r) = self.reader.as_mut() else {
            return Ok(());
        };
        self.line.clear();
        let n = r
            .read_until(b'\n', &mut self.line)
            .map_err(|e| Error::Internal(format!("reading the parent's files: {e}")))?;
        if n > 0 {
            let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            self.next = Some(
                Node::from_line(line)
                    .map_err(|e| Error::Internal(format!("the parent's files: {e}")))?,
            );
        }
        Ok(())
    }

    /// The parent's node for `path`, if it has one. Paths are asked in stream order;
    /// the parent's nodes before `path` are passed over for good.
    pub fn find(&mut self, path: &[u8]) -> Result<Option<Node>> {
        while let Some(n) = &self.next {
            match stream_order(&n.path, path) {
                Ordering::Less => self.advance()?,
                Ordering::Equal => {
                    let found = self.next.take();
                    self.advance()?;
                    return Ok(found);
                }
                Ordering::Greater => break,
            }
        }
        Ok(None)
    }
}

/// The tree stream's order: depth-first with each folder's entries sorted by name
/// bytes, which is the paths' components compared one by one (`a`, `a/b`, `a-c`).
pub fn stream_order(a: &[u8], b: &[u8]) -> Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

/// What the file's metadata says now.
pub fn stamp_of(m: &Metadata) -> Stamp {
    Stamp {
        ctime: m.ctime(),
        ctime_ns: m.ctime_nsec().clamp(0, 999_999_999) as u32,
        ino: m.ino(),
        dev: m.dev(),
    }
}

/// The stamp to record: none when the file changed at or after `racy_from` (unix
/// seconds: a second before the backup started), so the next backup reads it again.
pub fn trusted_stamp(m: &Metadata, racy_from: i64) -> Option<Stamp> {
    (m.mtime() < racy_from && m.ctime() < racy_from).then(|| stamp_of(m))
}

/// Whether the parent's node describes this file as it is now: same size, same
/// modification time to the nanosecond, same change time, inode and device.
pub fn unchanged(parent: &Node, m: &Metadata) -> bool {
    parent.kind == NodeKind::File
        && parent.size == m.len()
        && parent.mtime == m.mtime()
        && i64::from(parent.mtime_ns) == m.mtime_nsec()
        && parent.stamp == Some(stamp_of(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_order_is_component_wise() {
        let mut paths: Vec<&[u8]> = vec![b"a-c", b"a/b", b"a", b"b", b"a/b/c", b"a/a"];
        paths.sort_by(|x, y| stream_order(x, y));
        let want: Vec<&[u8]> = vec![b"a", b"a/a", b"a/b", b"a/b/c", b"a-c", b"b"];
        assert_eq!(paths, want);
    }

    fn file(path: &str) -> Node {
        Node {
            path: path.as_bytes().to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1,
            mtime_ns: 0,
            size: 1,
            target: None,
            blobs: vec![],
            stamp: Some(Stamp {
                ctime: 1,
                ctime_ns: 0,
                ino: 1,
                dev: 1,
            }),
        }
    }

    #[test]
    fn find_merges_in_stream_order() {
        let mut f = tempfile::tempfile().unwrap();
        for p in ["a", "a/b", "a-c", "d"] {
            f.write_all(&file(p).to_line()).unwrap();
        }
        f.rewind().unwrap();
        let mut parent = ParentFiles {
            reader: Some(BufReader::new(f)),
            next: None,
            line: Vec::new(),
        };
        parent.advance().unwrap();
        assert!(parent.find(b"a/a").unwrap().is_none());
        assert_eq!(parent.find(b"a/b").unwrap().unwrap().path, b"a/b");
        assert!(parent.find(b"a/z").unwrap().is_none());
        assert!(parent.find(b"c").unwrap().is_none());
        assert_eq!(parent.find(b"d").unwrap().unwrap().path, b"d");
        assert!(parent.find(b"e").unwrap().is_none());
        assert!(ParentFiles::none().find(b"a").unwrap().is_none());
    }
}
