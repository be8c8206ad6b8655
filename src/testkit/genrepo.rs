//! A synthetic large repository, for memory and time benchmarks (`benches/genrepo.rs`)
//! and the memory-budget test: machines with one restore point each, together a number
//! of tiny unique files of 40–2,000 bytes (one blob each), written straight through the
//! library — sealed blobs into packs, tree streams into tree blobs, index files every
//! few hundred packs, then the points — so ten million blobs need no file data on disk.
//! Deterministic for a seed (the bytes come from [`super::bytes`]).

use std::sync::Arc;

use crate::chunker::IncrementalChunker;
use crate::format::pack::BlobKind;
use crate::format::point::{Point, Summary};
use crate::format::tree::{Node, NodeKind};
use crate::repo::packer::Packer;
use crate::repo::{Repository, blob};
use crate::{Id, Result};

/// Packs between index files (each index file lists their blobs).
const PACKS_PER_INDEX: usize = 256;
/// Files per folder of the generated trees.
const PER_DIR: u64 = 1000;

/// What [`generate`] wrote.
#[derive(Clone, Copy, Debug, Default)]
pub struct Generated {
    pub packs: usize,
    pub stored: u64,
}

/// Writes `blobs` tiny files' blobs, spread over `machines` points, into `repo`;
/// `each` is told of every machine done (its name and files).
pub async fn generate(
    repo: &Arc<Repository>,
    blobs: u64,
    machines: u64,
    seed: u64,
    mut each: impl FnMut(&str, u64),
) -> Result<Generated> {
    let mut out = Generated::default();
    let machines = machines.max(1);
    for m in 0..machines {
        let files = blobs / machines + u64::from(m < blobs % machines);
        let mut data = Packer::new(repo.clone());
        let mut trees = Packer::new(repo.clone());
        let name = format!("m{m:03}");
        // Each machine's files from a seed range of their own.
        let seed = (seed << 40) ^ (m << 32);
        let point = machine(repo, &mut data, &mut trees, &name, files, seed).await?;
        let mut written = data.finish().await?;
        written.extend(trees.finish().await?);
        out.packs += written.len();
        out.stored += written.iter().map(|p| p.size).sum::<u64>();
        for chunk in written.chunks(PACKS_PER_INDEX) {
            repo.save_indexes(chunk).await?;
        }
        repo.save_point(&point).await?;
        each(&name, files);
    }
    Ok(out)
}

/// One machine's point: `files` tiny files, their blobs and its tree.
async fn machine(
    repo: &Arc<Repository>,
    data: &mut Packer,
    trees: &mut Packer,
    name: &str,
    files: u64,
    seed: u64,
) -> Result<Point> {
    let key = repo.key().clone();
    let level = repo.config.compression;
    let mut chunker = IncrementalChunker::new(repo.config.tree_chunker);
    let mut tree = Vec::new();
    let mut summary = Summary::default();
    let mut add_tree = async |chunks: Vec<Vec<u8>>, trees: &mut Packer| -> Result<()> {
        for c in chunks {
            let id = Id::hash(&c);
            trees
                .add(
                    BlobKind::Tree,
                    id,
                    c.len() as u32,
                    &blob::seal(&key, level, &c),
                )
                .await?;
            tree.push(id);
        }
        Ok(())
    };
    let line = |path: String, kind: NodeKind, size: u64, blobs: Vec<Id>| {
        Node {
            path: path.into_bytes(),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            mtime_ns: 0,
            size,
            target: None,
            blobs,
            stamp: None,
        }
        .to_line()
    };
    add_tree(
        chunker.push(&line(name.to_string(), NodeKind::Dir, 0, vec![])),
        trees,
    )
    .await?;
    for f in 0..files {
        if f % PER_DIR == 0 {
            let dir = format!("{name}/d{:06}", f / PER_DIR);
            add_tree(chunker.push(&line(dir, NodeKind::Dir, 0, vec![])), trees).await?;
        }
        // 40 to 2,000 bytes, spread evenly; the content unique to (seed, file).
        let len = 40 + (f.wrapping_mul(7919) % 1961) as usize;
        let plain = super::bytes(seed.wrapping_add(f), len);
        let id = Id::hash(&plain);
        data.add(
            BlobKind::Data,
            id,
            len as u32,
            &blob::seal(repo.key(), level, &plain),
        )
        .await?;
        summary.files += 1;
        summary.bytes += len as u64;
        summary.blobs_added += 1;
        let path = format!("{name}/d{:06}/f{:04}", f / PER_DIR, f % PER_DIR);
        add_tree(
            chunker.push(&line(path, NodeKind::File, len as u64, vec![id])),
            trees,
        )
        .await?;
    }
    add_tree(chunker.finish(), trees).await?;
    summary.dirs = files.div_ceil(PER_DIR) + 1;
    Ok(Point {
        machine: name.to_string(),
        job: None,
        time: chrono::Utc::now(),
        host: name.to_string(),
        tags: Default::default(),
        parent: None,
        paths: vec![format!("/{name}")],
        tree,
        summary,
        source: None,
    })
}
