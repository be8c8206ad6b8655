//! A synthetic large repository for memory and time benchmarks: MACHINES machines with
//! one restore point each, together BLOBS tiny unique files of 40–2,000 bytes (one blob
//! each), written straight through the library — sealed blobs into packs, tree streams
//! into tree blobs, index files every few hundred packs, then the points — so ten
//! million blobs need no file data on disk. Deterministic for a SEED (the bytes come
//! from `testkit::bytes`).
//!
//!   cargo bench --bench genrepo -- OUT BLOBS [MACHINES] [SEED]
//!
//! OUT is a repository URL or folder (made here; OFFSITE_PASSWORD is its password).
//! Prints blobs, packs, stored bytes and seconds.

use std::sync::Arc;
use std::time::Instant;

use offsite::chunker::IncrementalChunker;
use offsite::format::pack::BlobKind;
use offsite::format::point::{Point, Summary};
use offsite::format::tree::{Node, NodeKind};
use offsite::repo::packer::Packer;
use offsite::repo::{InitOptions, Repository, blob};
use offsite::{Id, store, testkit};

/// Packs between index files (each index file lists their blobs).
const PACKS_PER_INDEX: usize = 256;
/// Files per folder of the generated trees.
const PER_DIR: u64 = 1000;

struct Args {
    out: String,
    blobs: u64,
    machines: u64,
    seed: u64,
}

fn args() -> Result<Args, String> {
    // `cargo bench` adds `--bench`; everything else is ours.
    let a: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let usage = "usage: cargo bench --bench genrepo -- OUT BLOBS [MACHINES] [SEED]";
    let num = |i: usize, default: u64| -> Result<u64, String> {
        a.get(i).map_or(Ok(default), |s| {
            s.parse().map_err(|_| format!("{s}: not a number; {usage}"))
        })
    };
    Ok(Args {
        out: a.first().ok_or(usage)?.clone(),
        blobs: num(1, 0).and_then(|n| if n > 0 { Ok(n) } else { Err(usage.to_string()) })?,
        machines: num(2, 10)?.max(1),
        seed: num(3, 1)?,
    })
}

/// One machine's point: `files` tiny files, their blobs and its tree.
async fn machine(
    repo: &Arc<Repository>,
    data: &mut Packer,
    trees: &mut Packer,
    name: &str,
    files: u64,
    seed: u64,
) -> Result<Point, String> {
    let err = |e: offsite::Error| e.to_string();
    let key = repo.key().clone();
    let level = repo.config.compression;
    let mut chunker = IncrementalChunker::new(repo.config.tree_chunker);
    let mut tree = Vec::new();
    let mut summary = Summary::default();
    let mut add_tree = async |chunks: Vec<Vec<u8>>, trees: &mut Packer| -> Result<(), String> {
        for c in chunks {
            let id = Id::hash(&c);
            trees
                .add(
                    BlobKind::Tree,
                    id,
                    c.len() as u32,
                    &blob::seal(&key, level, &c),
                )
                .await
                .map_err(err)?;
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
        let plain = testkit::bytes(seed.wrapping_add(f), len);
        let id = Id::hash(&plain);
        data.add(
            BlobKind::Data,
            id,
            len as u32,
            &blob::seal(repo.key(), level, &plain),
        )
        .await
        .map_err(err)?;
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

async fn generate(a: Args) -> Result<(), String> {
    let err = |e: offsite::Error| e.to_string();
    let started = Instant::now();
    let password =
        std::env::var("OFFSITE_PASSWORD").map_err(|_| "set OFFSITE_PASSWORD".to_string())?;
    let loc = store::open(&a.out, true).map_err(err)?;
    let opts = InitOptions {
        kdf: offsite::keys::kdf_from_env().map_err(err)?,
        ..Default::default()
    };
    let repo = Arc::new(
        Repository::init(loc, password.as_bytes(), opts)
            .await
            .map_err(err)?,
    );
    let (mut packs, mut stored) = (0usize, 0u64);
    for m in 0..a.machines {
        let files = a.blobs / a.machines + u64::from(m < a.blobs % a.machines);
        let mut data = Packer::new(repo.clone());
        let mut trees = Packer::new(repo.clone());
        let name = format!("m{m:03}");
        // Each machine's files from a seed range of their own.
        let seed = (a.seed << 40) ^ (m << 32);
        let point = machine(&repo, &mut data, &mut trees, &name, files, seed).await?;
        let mut written = data.finish().await.map_err(err)?;
        written.extend(trees.finish().await.map_err(err)?);
        packs += written.len();
        stored += written.iter().map(|p| p.size).sum::<u64>();
        for chunk in written.chunks(PACKS_PER_INDEX) {
            repo.save_indexes(chunk).await.map_err(err)?;
        }
        repo.save_point(&point).await.map_err(err)?;
        eprintln!(
            "{name}: {files} files, {:.0} s so far",
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "{}: {} blobs in {} points, {packs} packs, {stored} bytes stored, {:.1} s",
        a.out,
        a.blobs,
        a.machines,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    // A test runner listing the workspace's targets (cargo nextest) asks this binary
    // for its tests: it has none.
    if std::env::args().any(|a| a == "--list") {
        return std::process::ExitCode::SUCCESS;
    }
    let run = || -> Result<(), String> {
        let a = args()?;
        let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        rt.block_on(generate(a))
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("genrepo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
