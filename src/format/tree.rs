//! The tree stream of a restore point: one JSON object per line for every file, folder
//! and symlink, in depth-first order with each folder's entries sorted by name bytes.
//! The stream is cut into tree blobs by a content-defined chunker, so a point of a
//! million files is read and written a piece at a time, and unchanged stretches of the
//! stream deduplicate between points.

use serde::{Deserialize, Serialize};

use crate::Id;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
}

/// One entry of the tree stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "NodeRepr", into = "NodeRepr")]
pub struct Node {
    /// Relative path, `/`-separated, as raw bytes (Unix names need not be UTF-8).
    pub path: Vec<u8>,
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub mtime_ns: u32,
    pub size: u64,
    pub target: Option<Vec<u8>>,
    pub blobs: Vec<Id>,
    /// What a later backup compares to reuse this file's blobs without reading it
    /// (files only; none when the file changed too close to the backup to be trusted).
    pub stamp: Option<Stamp>,
}

/// A file's identity and change time as the backup saw them: with its size and
/// modification time, what says "this file is unchanged" (as restic and git decide).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub ctime: i64,
    pub ctime_ns: u32,
    pub ino: u64,
    pub dev: u64,
}

/// The JSON shape: byte strings appear as `path`/`target` when UTF-8, else as
/// `path_hex`/`target_hex`.
#[derive(Serialize, Deserialize)]
struct NodeRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_hex: Option<String>,
    kind: NodeKind,
    mode: u32,
    #[serde(default)]
    uid: u32,
    #[serde(default)]
    gid: u32,
    mtime: i64,
    #[serde(default)]
    mtime_ns: u32,
    #[serde(default)]
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_hex: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    blobs: Vec<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ctime: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ctime_ns: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ino: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dev: Option<u64>,
}

fn split_bytes(b: Vec<u8>) -> (Option<String>, Option<String>) {
    match String::from_utf8(b) {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(hex::encode(e.into_bytes()))),
    }
}

fn join_bytes(what: &str, s: Option<String>, h: Option<String>) -> Result<Option<Vec<u8>>, String> {
    match (s, h) {
        (Some(s), None) => Ok(Some(s.into_bytes())),
        (None, Some(h)) => hex::decode(h)
            .map(Some)
            .map_err(|_| format!("{what}_hex is not hex")),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(format!("both {what} and {what}_hex")),
    }
}

impl From<Node> for NodeRepr {
    fn from(n: Node) -> NodeRepr {
        let (path, path_hex) = split_bytes(n.path);
        let (target, target_hex) = match n.target {
            Some(t) => split_bytes(t),
            None => (None, None),
        };
        NodeRepr {
            path,
            path_hex,
            kind: n.kind,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            mtime: n.mtime,
            mtime_ns: n.mtime_ns,
            size: n.size,
            target,
            target_hex,
            blobs: n.blobs,
            ctime: n.stamp.map(|s| s.ctime),
            ctime_ns: n.stamp.map(|s| s.ctime_ns),
            ino: n.stamp.map(|s| s.ino),
            dev: n.stamp.map(|s| s.dev),
        }
    }
}

impl TryFrom<NodeRepr> for Node {
    type Error = String;
    fn try_from(r: NodeRepr) -> Result<Node, String> {
        let path = join_bytes("path", r.path, r.path_hex)?.ok_or("entry without a path")?;
        validate_path(&path)?;
        let target = join_bytes("target", r.target, r.target_hex)?;
        if r.kind == NodeKind::Symlink && target.is_none() {
            return Err("symlink without a target".into());
        }
        if r.kind != NodeKind::File && !r.blobs.is_empty() {
            return Err("only files have content blobs".into());
        }
        if r.mtime_ns >= 1_000_000_000 {
            return Err("mtime_ns out of range".into());
        }
        // All four or none: a partial stamp is not trusted (and not an error).
        let stamp = match (r.ctime, r.ctime_ns, r.ino, r.dev) {
            (Some(ctime), Some(ctime_ns), Some(ino), Some(dev)) if ctime_ns < 1_000_000_000 => {
                Some(Stamp {
                    ctime,
                    ctime_ns,
                    ino,
                    dev,
                })
            }
            _ => None,
        };
        Ok(Node {
            path,
            kind: r.kind,
            mode: r.mode,
            uid: r.uid,
            gid: r.gid,
            mtime: r.mtime,
            mtime_ns: r.mtime_ns,
            size: r.size,
            target,
            blobs: r.blobs,
            stamp,
        })
    }
}

/// A stored path must stay inside the restore folder: relative, no `.`/`..`/empty parts,
/// no NUL. A repository written by someone hostile cannot make `restore` write elsewhere.
pub fn validate_path(p: &[u8]) -> Result<(), String> {
    if p.is_empty() || p.len() > 4096 || p.contains(&0) {
        return Err("empty, overlong or NUL-containing path".into());
    }
    if p.split(|&b| b == b'/')
        .any(|c| c.is_empty() || c == b"." || c == b"..")
    {
        return Err(format!(
            "path {:?} is absolute or has empty, '.' or '..' parts",
            String::from_utf8_lossy(p)
        ));
    }
    Ok(())
}

impl Node {
    /// The node as one line of the tree stream, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("node serialises");
        v.push(b'\n');
        v
    }

    pub fn from_line(line: &[u8]) -> Result<Node, String> {
        serde_json::from_slice(line).map_err(|e| e.to_string())
    }
}

/// Splits a tree stream arriving in arbitrary pieces back into nodes.
#[derive(Default)]
pub struct TreeParser {
    pending: Vec<u8>,
}

/// A single line may not exceed this (a file of ~60 TiB at 1 MiB blobs).
pub const MAX_LINE: usize = 64 << 20;

impl TreeParser {
    /// Feeds the next piece and returns the nodes it completes.
    pub fn feed(&mut self, piece: &[u8]) -> Result<Vec<Node>, String> {
        self.pending.extend_from_slice(piece);
        let mut out = Vec::new();
        let mut start = 0;
        while let Some(nl) = self.pending[start..].iter().position(|&b| b == b'\n') {
            out.push(Node::from_line(&self.pending[start..start + nl])?);
            start += nl + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_LINE {
            return Err("tree stream line is longer than 64 MiB".into());
        }
        Ok(out)
    }

    /// Call at the end of the stream: a trailing partial line means truncation.
    pub fn finish(self) -> Result<(), String> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err("tree stream ends in the middle of an entry".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(path: &[u8]) -> Node {
        Node {
            path: path.to_vec(),
            kind: NodeKind::File,
            mode: 0o644,
            uid: 1,
            gid: 2,
            mtime: 5,
            mtime_ns: 6,
            size: 3,
            target: None,
            blobs: vec![Id::hash(b"x")],
            stamp: None,
        }
    }

    #[test]
    fn stamps_round_trip_and_older_lines_have_none() {
        let mut n = node(b"a/b");
        n.stamp = Some(Stamp {
            ctime: 7,
            ctime_ns: 8,
            ino: 9,
            dev: 10,
        });
        assert_eq!(Node::from_line(&n.to_line()).unwrap(), n);
        let old = br#"{"path":"a/b","kind":"file","mode":420,"mtime":5,"size":3}"#;
        assert_eq!(Node::from_line(old).unwrap().stamp, None);
        let partial = br#"{"path":"a/b","kind":"file","mode":420,"mtime":5,"ctime":1,"ino":2}"#;
        assert_eq!(Node::from_line(partial).unwrap().stamp, None);
    }

    #[test]
    fn non_utf8_names_round_trip() {
        let n = node(b"dir/caf\xe9");
        let line = n.to_line();
        assert!(String::from_utf8_lossy(&line).contains("path_hex"));
        assert_eq!(Node::from_line(&line[..line.len() - 1]).unwrap(), n);
    }

    #[test]
    fn escaping_paths_are_refused() {
        for p in [&b"/etc/passwd"[..], b"a/../../x", b"a//b", b"..", b"a/./b"] {
            let line = node(p).to_line();
            assert!(Node::from_line(&line).is_err(), "{:?}", p);
        }
    }

    proptest! {
        #[test]
        fn parser_splits_anywhere(cuts in proptest::collection::vec(0usize..400, 0..6)) {
            let nodes: Vec<Node> = (0..4).map(|i| node(format!("f{i}").as_bytes())).collect();
            let stream: Vec<u8> = nodes.iter().flat_map(|n| n.to_line()).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort();
            let mut p = TreeParser::default();
            let mut got = Vec::new();
            let mut last = 0;
            for c in cuts.into_iter().chain([stream.len()]) {
                got.extend(p.feed(&stream[last..c]).unwrap());
                last = c;
            }
            p.finish().unwrap();
            prop_assert_eq!(got, nodes);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut p = TreeParser::default();
            let _ = p.feed(&bytes);
        }
    }
}
