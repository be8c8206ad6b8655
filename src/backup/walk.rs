//! Walks the paths given to `backup` in the tree stream's order: depth first, each
//! folder's entries sorted by name bytes, never following symlinks. The folders between
//! the base and each path are emitted first, so a restore recreates them too.

use std::collections::BTreeSet;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// One thing to store.
pub struct Entry {
    pub fs_path: PathBuf,
    /// Path relative to the base, `/`-separated.
    pub rel: Vec<u8>,
    pub meta: Metadata,
    /// One of the paths given to `backup` (only these may be block devices to image).
    pub is_root: bool,
}

/// Resolves the paths given on the command line against `base` (default `/`): each is
/// made absolute (without resolving symlinks), must exist and lie under `base`.
/// Returns them sorted, with paths inside another given path dropped.
pub fn roots(paths: &[PathBuf], base: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let base = std::path::absolute(base).map_err(|e| Error::io(base, e))?;
    let mut out = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
        let abs = normalize(&abs);
        std::fs::symlink_metadata(&abs).map_err(|e| Error::io(&abs, e))?;
        let rel = abs.strip_prefix(&base).map_err(|_| {
            Error::Invalid(format!(
                "{} is not inside the base folder {}",
                abs.display(),
                base.display()
            ))
        })?;
        if rel.as_os_str().is_empty() {
            return Err(Error::Invalid(format!(
                "{} is the base folder itself: give the folders inside it, or a base above it",
                abs.display()
            )));
        }
        out.push((abs.clone(), rel.as_os_str().as_bytes().to_vec()));
    }
    out.sort_by(|a, b| cmp_paths(&a.1, &b.1));
    out.dedup_by(|b, a| b.1 == a.1);
    let mut kept: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for r in out {
        let inside = kept
            .iter()
            .any(|(_, k)| r.1.starts_with(k) && r.1.get(k.len()) == Some(&b'/'));
        if !inside {
            kept.push(r);
        }
    }
    Ok(kept)
}

/// Removes `.` and `..` lexically (the path is absolute already).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The tree stream order: component by component, bytes within a component.
pub fn cmp_paths(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

/// Calls `visit` for every entry under `roots`, in order. Entries that cannot be read
/// are passed to `skip` with the reason and left out.
pub fn walk(
    roots: &[(PathBuf, Vec<u8>)],
    base: &Path,
    visit: &mut dyn FnMut(Entry) -> Result<()>,
    skip: &mut dyn FnMut(&Path, String),
) -> Result<()> {
    let base = std::path::absolute(base).map_err(|e| Error::io(base, e))?;
    let mut emitted: BTreeSet<Vec<u8>> = BTreeSet::new();
    for (abs, rel) in roots {
        // Ancestors between the base and the root, once each.
        let parts: Vec<&[u8]> = rel.split(|&c| c == b'/').collect();
        for i in 1..parts.len() {
            let anc = parts[..i].join(&b'/');
            if emitted.insert(anc.clone()) {
                let fs_path = base.join(std::ffi::OsStr::from_bytes(&anc));
                match std::fs::symlink_metadata(&fs_path) {
                    Ok(meta) => visit(Entry {
                        fs_path,
                        rel: anc,
                        meta,
                        is_root: false,
                    })?,
                    Err(e) => skip(&fs_path, e.to_string()),
                }
            }
        }
        let mut meta = std::fs::symlink_metadata(abs).map_err(|e| Error::io(abs, e))?;
        // A symlink given as a path to a block device (/dev/disk/by-id/…) means the disk.
        if meta.file_type().is_symlink()
            && let Ok(m) = std::fs::metadata(abs)
            && std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type())
        {
            meta = m;
        }
        walk_one(abs.clone(), rel.clone(), meta, visit, skip)?;
    }
    Ok(())
}

fn walk_one(
    fs_path: PathBuf,
    rel: Vec<u8>,
    meta: Metadata,
    visit: &mut dyn FnMut(Entry) -> Result<()>,
    skip: &mut dyn FnMut(&Path, String),
) -> Result<()> {
    // Explicit stack: deep trees must not overflow the thread's stack.
    let mut stack = vec![(fs_path, rel, meta)];
    let mut is_root = true;
    while let Some((fs_path, rel, meta)) = stack.pop() {
        let is_dir = meta.is_dir();
        visit(Entry {
            fs_path: fs_path.clone(),
            rel: rel.clone(),
            meta,
            is_root,
        })?;
        is_root = false;
        if !is_dir {
            continue;
        }
        let rd = match std::fs::read_dir(&fs_path) {
            Ok(rd) => rd,
            Err(e) => {
                skip(&fs_path, format!("cannot list folder: {e}"));
                continue;
            }
        };
        let mut children = Vec::new();
        for de in rd {
            match de {
                Ok(de) => children.push(de.file_name()),
                Err(e) => skip(&fs_path, format!("cannot list folder: {e}")),
            }
        }
        children.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        // Pushed in reverse so they pop in order.
        for name in children.into_iter().rev() {
            let child = fs_path.join(&name);
            let mut crel = rel.clone();
            crel.push(b'/');
            crel.extend_from_slice(name.as_bytes());
            match std::fs::symlink_metadata(&child) {
                Ok(m) => stack.push((child, crel, m)),
                Err(e) => skip(&child, e.to_string()),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_ancestors() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("x/b")).unwrap();
        std::fs::write(r.join("x/a"), b"1").unwrap();
        std::fs::write(r.join("x/b/c"), b"2").unwrap();
        std::fs::write(r.join("x/b.txt"), b"3").unwrap();
        let roots = roots(&[r.join("x"), r.join("x/b")], r).unwrap();
        assert_eq!(roots.len(), 1);
        let mut got = Vec::new();
        walk(
            &roots,
            r,
            &mut |e| {
                got.push(String::from_utf8(e.rel).unwrap());
                Ok(())
            },
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(got, ["x", "x/a", "x/b", "x/b/c", "x/b.txt"]);
        let mut sorted = got.clone();
        sorted.sort_by(|a, b| cmp_paths(a.as_bytes(), b.as_bytes()));
        assert_eq!(sorted, got);
    }
}
