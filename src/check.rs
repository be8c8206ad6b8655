//! `check`: proves a repository restores. Structure always (indexes readable, every
//! indexed pack present with the right size, every point's tree readable and every blob
//! it names indexed); with `read_data` every pack is downloaded, its bytes hashed against
//! its name, its header compared with the index, and every blob decrypted and its id
//! verified. Names each damaged object and each point it breaks. Never writes.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;

use crate::format::index::IndexFile;
use crate::format::pack::{self, ENTRY_LEN, PackEntry};
use crate::format::point::Point;
use crate::format::{DATA, INDEX, pack_name, parse_pack_name, point_name};
use crate::progress::Progress;
use crate::repo::blob;
use crate::repo::lock::list_locks;
use crate::repo::table::sort::{Sorted, Sorter};
use crate::repo::table::{Record, budget};
use crate::repo::tree::for_each_node;
use crate::repo::{IndexBuilder, MasterIndex, Repository};
use crate::store::Inflight;
use crate::{Error, Id, Result};

/// Whole packs read at once by `--read-data` on a link without latency.
const PACKS_MOVING: usize = 2;
/// The most packs read at once (each is held in memory whole while verified)...
const PACKS_CAP: usize = 6;
/// ...and no more bytes of them than this: 64 MiB packs read three at a time.
const PACKS_BYTES: u64 = 192 << 20;

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    pub read_data: bool,
}

#[derive(Clone, Debug, serde::Serialize, PartialEq, Eq)]
pub struct Finding {
    /// The object concerned (`data/ab/…`, `index/…`, `points/…`, `locks/…`).
    pub object: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
    pub packs: usize,
    pub indexes: usize,
    pub blobs: usize,
    pub points: usize,
    pub bytes_read: u64,
    pub read_data: bool,
}

impl CheckReport {
    fn error(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Finding {
            object: object.into(),
            message: message.into(),
        });
    }
    fn warn(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Finding {
            object: object.into(),
            message: message.into(),
        });
    }
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

pub async fn run(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &Progress,
) -> Result<CheckReport> {
    let mut r = CheckReport {
        read_data: opts.read_data,
        ..Default::default()
    };
    let now = repo.clock().now();
    for l in list_locks(repo).await? {
        if l.lock.is_stale(now) {
            r.warn(&l.name, l.describe(now));
        }
    }
    // Points are listed first: a point is written after its index, so every point
    // listed here has its index files in the listing below, even while a writer adds to
    // the repository during the check.
    let point_ids = repo.point_ids().await?;
    let (index, pack_entries) = load_indexes(repo, opts.read_data, &mut r).await?;
    let stored = stored_packs(repo, &mut r).await?;
    let mut bad_packs = compare_packs(&index, &stored, &mut r);
    let bad_blobs = match opts.read_data {
        true => {
            let (numbers, entries) = (pack_entries.numbers, pack_entries.rows.finish());
            let packs = (&numbers, &entries);
            let bad = read_data(repo, &stored, packs, &mut bad_packs, &mut r, progress).await;
            if let Some(e) = entries.error() {
                r.error(budget::cache_dir().display().to_string(), e);
            }
            bad
        }
        false => HashMap::new(),
    };
    // Points: every tree readable, every blob indexed and in a sound pack.
    r.points = point_ids.len();
    for id in point_ids {
        let name = point_name(&id);
        let point = match repo.load_point(&id).await {
            Ok(p) => p,
            Err(e) => {
                r.error(&name, e.to_string());
                continue;
            }
        };
        check_point(repo, &index, &name, &point, &bad_packs, &bad_blobs, &mut r).await;
    }
    progress.finish();
    Ok(r)
}

/// The index files, one by one, so a damaged one is named and the rest still count;
/// with every indexed pack's entries when the packs are to be read.
async fn load_indexes(
    repo: &Repository,
    read_data: bool,
    r: &mut CheckReport,
) -> Result<(MasterIndex, PackEntries)> {
    let mut index = IndexBuilder::default();
    let mut pack_entries = PackEntries::default();
    for m in repo.list(INDEX).await? {
        let name = repo.loc.name_of(&m.location);
        r.indexes += 1;
        let loaded = match repo.get(&name).await {
            Ok(bytes) => IndexFile::open(repo.key(), &name, &bytes),
            Err(e) => Err(e),
        };
        match loaded {
            Ok(f) => {
                if read_data {
                    f.packs.iter().for_each(|p| pack_entries.add(p));
                }
                index.add_file(&name, &f);
            }
            Err(e) => r.error(&name, e.to_string()),
        }
    }
    let index = index.finish();
    r.blobs = index.blob_count();
    Ok((index, pack_entries))
}

/// The packs present in the store, with their sizes.
async fn stored_packs(repo: &Repository, r: &mut CheckReport) -> Result<HashMap<Id, u64>> {
    let mut stored: HashMap<Id, u64> = HashMap::new();
    for m in repo.list(DATA).await? {
        let name = repo.loc.name_of(&m.location);
        match parse_pack_name(&name) {
            Some(id) => {
                stored.insert(id, m.size);
            }
            _ => r.warn(&name, "not an offsite pack name; ignored"),
        }
    }
    r.packs = stored.len();
    Ok(stored)
}

/// Indexed packs missing from the store or of another size (errors, returned as bad),
/// and stored packs in no index (warnings).
fn compare_packs(
    index: &MasterIndex,
    stored: &HashMap<Id, u64>,
    r: &mut CheckReport,
) -> HashMap<Id, String> {
    let mut bad_packs: HashMap<Id, String> = HashMap::new();
    for p in index.packs() {
        let name = pack_name(&p.id);
        match stored.get(&p.id) {
            None => {
                let msg = format!("pack is missing (listed in {})", p.index_files.join(", "));
                r.error(&name, &msg);
                bad_packs.insert(p.id, "missing".into());
            }
            Some(&size) if size != p.size => {
                let msg = format!("pack is {size} bytes, the index says {}", p.size);
                r.error(&name, &msg);
                bad_packs.insert(p.id, "truncated or replaced".into());
            }
            Some(_) => {}
        }
    }
    for id in stored.keys() {
        if index.pack(id).is_none() {
            r.warn(
                pack_name(id),
                "pack is in no index (left by an interrupted run; a later run adopts or removes it)",
            );
        }
    }
    bad_packs
}

/// `--read-data`: every stored pack read whole and each blob verified; unreadable packs
/// join `bad_packs`, damaged blobs are returned.
async fn read_data(
    repo: &Repository,
    stored: &HashMap<Id, u64>,
    (numbers, pack_entries): (&HashMap<Id, u32>, &Sorted<PackBlob>),
    bad_packs: &mut HashMap<Id, String>,
    r: &mut CheckReport,
    progress: &Progress,
) -> HashMap<Id, String> {
    let mut bad_blobs: HashMap<Id, String> = HashMap::new();
    // The indexed packs in the order their entries come, then those no index lists
    // (read with nothing expected: their header is checked all the same).
    let mut listed: Vec<(u32, Id)> = (stored.keys())
        .filter_map(|id| numbers.get(id).map(|n| (*n, *id)))
        .collect();
    listed.sort_unstable();
    let unlisted: Vec<Id> = (stored.keys())
        .filter(|id| !numbers.contains_key(id))
        .copied()
        .collect();
    // Whole packs in memory: a few moving, more on a link with latency, capped.
    let mean = stored.values().sum::<u64>() / stored.len().max(1) as u64;
    let cap = (PACKS_BYTES / mean.max(1)).clamp(1, PACKS_CAP as u64) as usize;
    let moving = PACKS_MOVING.min(cap);
    let inflight = Inflight::new(repo.loc.link.clone(), mean, moving, cap);
    let inflight = &inflight;
    let packs = by_packs(listed, pack_entries.iter())
        .chain(unlisted.into_iter().map(|id| (id, Vec::new())));
    let mut reads = futures::stream::iter(packs.map(|(id, expected)| async move {
        let _place = inflight.enter().await;
        let name = pack_name(&id);
        // A pack that fails is read once more before it is called damaged, so a fault
        // on the way (not in the store) is not reported as data loss.
        let mut outcome = read_and_verify(repo, &id, &name, &expected).await;
        if matches!(&outcome, Ok((_, v)) if !v.is_clean()) {
            outcome = read_and_verify(repo, &id, &name, &expected).await;
        }
        (id, name, outcome)
    }))
    .buffer_unordered(PACKS_CAP);
    while let Some((id, name, outcome)) = reads.next().await {
        let (len, verdict) = match outcome {
            Ok(o) => o,
            Err(e) => {
                r.error(&name, e.to_string());
                bad_packs.insert(id, "unreadable".into());
                continue;
            }
        };
        r.bytes_read += len;
        progress.add_bytes(len);
        for msg in verdict.whole {
            r.error(&name, &msg);
        }
        for (blob, msg) in verdict.blobs {
            r.error(&name, format!("blob {blob}: {msg}"));
            bad_blobs.insert(blob, format!("is damaged in {name}"));
        }
    }
    bad_blobs
}

/// Every indexed pack's entries, for `--read-data`: sorted by pack and offset within
/// the memory budget (`repo::table::sort`), so a repository of millions of blobs is
/// not held twice. A pack is known by a number (the order it was first listed in), so
/// an entry carries 4 bytes of pack, not its 32-byte id.
struct PackEntries {
    numbers: HashMap<Id, u32>,
    rows: Sorter<PackBlob>,
}

impl Default for PackEntries {
    fn default() -> Self {
        PackEntries {
            numbers: HashMap::new(),
            rows: Sorter::new(by_place),
        }
    }
}

impl PackEntries {
    /// A pack listed in an index file (again, when several list it: its entries twice).
    fn add(&mut self, p: &crate::format::index::IndexedPack) {
        let next = self.numbers.len() as u32;
        let pack = *self.numbers.entry(p.id).or_insert(next);
        for e in &p.entries {
            self.rows.push(PackBlob { pack, entry: *e });
        }
    }
}

/// A blob's entry and its pack's number, as `--read-data` sorts them.
#[derive(Clone, Copy, Debug)]
struct PackBlob {
    pack: u32,
    entry: PackEntry,
}

fn by_place(a: &PackBlob, b: &PackBlob) -> std::cmp::Ordering {
    (a.pack, a.entry.offset).cmp(&(b.pack, b.entry.offset))
}

impl Record for PackBlob {
    const SIZE: usize = 4 + ENTRY_LEN;
    fn put(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.pack.to_le_bytes());
        self.entry.write_to(&mut out[4..]);
    }
    fn take(b: &[u8]) -> Self {
        PackBlob {
            pack: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            entry: PackEntry::read_from(&b[4..]),
        }
    }
}

/// Each of `packs` (by number, sorted) with its entries from `blobs` (sorted by pack
/// number; entries of packs not stored are passed over: those are reported apart).
fn by_packs<'a>(
    packs: Vec<(u32, Id)>,
    blobs: impl Iterator<Item = PackBlob> + Send + 'a,
) -> impl Iterator<Item = (Id, Vec<PackEntry>)> + Send + 'a {
    let mut blobs = blobs.peekable();
    packs.into_iter().map(move |(n, id)| {
        while blobs.next_if(|b| b.pack < n).is_some() {}
        let mut entries = Vec::new();
        while let Some(b) = blobs.next_if(|b| b.pack == n) {
            entries.push(b.entry);
        }
        (id, entries)
    })
}

async fn check_point(
    repo: &Repository,
    index: &MasterIndex,
    name: &str,
    point: &Point,
    bad_packs: &HashMap<Id, String>,
    bad_blobs: &HashMap<Id, String>,
    r: &mut CheckReport,
) {
    let label = format!(
        "restore point of {} at {}",
        point.machine,
        point.time.format("%Y-%m-%d %H:%M:%S UTC")
    );
    let problem = |blob: &Id| -> Option<String> {
        let Some(loc) = index.get(blob) else {
            return Some("is in no index".into());
        };
        let pack = index.pack_id(loc.pack);
        if let Some(why) = bad_packs.get(&pack) {
            return Some(format!("is in pack {} ({why})", pack.short()));
        }
        bad_blobs.get(blob).cloned()
    };
    for t in &point.tree {
        if let Some(p) = problem(t) {
            r.error(name, format!("{label}: tree blob {} {p}", t.short()));
            return;
        }
    }
    let mut reported: HashSet<Id> = HashSet::new();
    let mut found = Vec::new();
    let walked = for_each_node(repo, index, name, point, async |node| {
        for b in &node.blobs {
            if let Some(p) = problem(b)
                && reported.insert(*b)
            {
                found.push(format!(
                    "{label}: file {} needs blob {} which {p}",
                    String::from_utf8_lossy(&node.path),
                    b.short()
                ));
            }
        }
        Ok(())
    })
    .await;
    for f in found {
        r.error(name, f);
    }
    if let Err(e) = walked {
        r.error(name, format!("{label}: {e}"));
    }
}

/// Downloads a pack and verifies it off the async threads; returns its length too.
async fn read_and_verify(
    repo: &Repository,
    id: &Id,
    name: &str,
    expected: &[PackEntry],
) -> Result<(u64, PackVerdict)> {
    let bytes = repo.get(name).await?;
    let (key, id, name, expected) = (repo.key().clone(), *id, name.to_string(), expected.to_vec());
    tokio::task::spawn_blocking(move || {
        let v = verify_pack(&key, &name, &id, &bytes, &expected);
        (bytes.len() as u64, v)
    })
    .await
    .map_err(|e| Error::Internal(format!("check task failed: {e}")))
}

/// Everything wrong with one pack: `whole` for the pack itself, `blobs` per blob.
#[derive(Default)]
struct PackVerdict {
    whole: Vec<String>,
    blobs: Vec<(Id, String)>,
}

impl PackVerdict {
    fn is_clean(&self) -> bool {
        self.whole.is_empty() && self.blobs.is_empty()
    }
}

/// Verifies a downloaded pack: bytes against name, header against index, every blob
/// against its id. A pack whose bytes changed is still read blob by blob, so the report
/// names exactly which blobs (and so which points) are lost.
fn verify_pack(
    key: &crate::crypto::SecretKey,
    name: &str,
    id: &Id,
    bytes: &[u8],
    indexed: &[PackEntry],
) -> PackVerdict {
    let mut v = PackVerdict::default();
    let actual = Id::hash(bytes);
    if &actual != id {
        v.whole.push(format!(
            "its bytes hash to {}, not to its name: the pack was changed or damaged",
            actual.short()
        ));
    }
    let what = |e: Error| match e {
        Error::Corrupt { what, .. } => what,
        other => other.to_string(),
    };
    let header = pack::check_header(name, bytes).and_then(|_| {
        let t = &bytes[bytes.len().saturating_sub(pack::TRAILER_LEN)..];
        let (off, len) = pack::parse_trailer(name, t, bytes.len() as u64)?;
        pack::open_header(
            key,
            name,
            &bytes[off as usize..(off + u64::from(len)) as usize],
            off,
        )
    });
    // Without a readable header, the index still says where each blob is.
    let entries = match header {
        Ok(entries) => {
            let in_header: HashMap<Id, PackEntry> = entries.iter().map(|e| (e.id, *e)).collect();
            for e in indexed {
                match in_header.get(&e.id) {
                    Some(h) if h == e => {}
                    Some(_) => v.blobs.push((
                        e.id,
                        "the index and the pack header disagree on its place".into(),
                    )),
                    None => v
                        .blobs
                        .push((e.id, "indexed in this pack, but not in its header".into())),
                }
            }
            entries
        }
        Err(e) => {
            v.whole.push(what(e));
            indexed.to_vec()
        }
    };
    for e in &entries {
        let Some(sealed) = bytes.get(e.offset as usize..e.end() as usize) else {
            v.blobs
                .push((e.id, "lies beyond the end of the pack".into()));
            continue;
        };
        if let Err(err) = blob::open(key, name, &e.id, e.raw_length, sealed) {
            let msg = what(err);
            let prefix = format!("blob {}: ", e.id.short());
            v.blobs
                .push((e.id, msg.strip_prefix(&prefix).unwrap_or(&msg).to_string()));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::BlobKind;

    /// Each stored pack gets exactly its entries, whichever packs the index lists
    /// besides (missing ones) or lacks (unindexed ones: read with none expected).
    #[test]
    fn stored_packs_get_their_own_entries() {
        let id = |n: u8| Id([n; 32]);
        let blob = |pack: u8, offset: u64| PackBlob {
            pack: u32::from(pack),
            entry: PackEntry {
                kind: BlobKind::Data,
                id: Id::hash(&[pack, offset as u8]),
                offset,
                length: 10,
                raw_length: 5,
            },
        };
        // Sorted by pack and offset, as the sorter gives them; pack 2 is not stored.
        let blobs = vec![blob(1, 8), blob(1, 20), blob(2, 8), blob(4, 8)];
        let packs = vec![(1, id(1)), (3, id(3)), (4, id(4))];
        let got: Vec<(Id, Vec<u64>)> = by_packs(packs, blobs.into_iter())
            .map(|(p, es)| (p, es.iter().map(|e| e.offset).collect()))
            .collect();
        assert_eq!(
            got,
            vec![(id(1), vec![8, 20]), (id(3), vec![]), (id(4), vec![8])]
        );
    }
}
