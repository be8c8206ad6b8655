//! Planned reads: the blobs an operation needs, grouped by pack and coalesced into ranged
//! GETs — neighbouring blobs share a request when the gap between them is small — and
//! fetched as streams, each blob handed on as soon as its bytes have arrived. One request
//! per blob is never the plan: copy plans its reads here; restore and the tree walk also
//! fetch through here.

use std::future::Future;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::{GetOptions, GetResultPayload, ObjectStore};
use serde::{Deserialize, Serialize};

use super::retry::{ATTEMPTS, backoff};
use super::table::Record;
use super::table::sort::Sorter;
use super::{MasterIndex, Repository};
use crate::format::pack::{ENTRY_LEN, PackEntry};
use crate::format::pack_name;
use crate::{Error, Id, Result};

/// Blobs closer than this in a pack are read together (the gap is read and dropped).
pub const COALESCE_GAP: u64 = 256 << 10;

/// One ranged GET of a pack and the blobs it yields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    /// Which repository, when reads span several (a copy's sources); else 0.
    pub source: usize,
    pub pack: Id,
    pub start: u64,
    pub end: u64,
    /// The blobs, with their places in the pack.
    pub blobs: Vec<PackEntry>,
}

impl Read {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }
}

/// Groups `(source, blob id)` pairs into coalesced reads of at most `max_read` bytes
/// (a single blob longer than that is one read). Blobs must be in their source's index
/// (the caller checks) and appear once. Reads come out by source, pack and offset.
pub fn coalesce(
    needed: impl IntoIterator<Item = (usize, Id)>,
    indexes: &[&MasterIndex],
    max_read: u64,
) -> Result<Vec<Read>> {
    let mut reads = Vec::new();
    coalesce_each(needed, indexes, max_read, |r| reads.push(r))?;
    Ok(reads)
}

/// [`coalesce`], handing each read to `emit` as it is made, in order. The blobs are
/// sorted by place within the memory budget (`repo::table::sort`: runs on disk past
/// it) and a pack's reads are made once its blobs are in, so nothing here holds every
/// needed blob at once. An `Err` says a run spilled to disk could not be read back: the
/// reads emitted are then not all of them.
pub fn coalesce_each(
    needed: impl IntoIterator<Item = (usize, Id)>,
    indexes: &[&MasterIndex],
    max_read: u64,
    mut emit: impl FnMut(Read),
) -> Result<()> {
    let mut sorter = Sorter::new(by_place);
    for (src, id) in needed {
        if let Some(loc) = indexes[src].get(&id) {
            let entry = PackEntry {
                kind: loc.kind,
                id,
                offset: loc.offset,
                length: loc.length,
                raw_length: loc.raw_length,
            };
            sorter.push(Located {
                source: src as u32,
                pack: loc.pack,
                entry,
            });
        }
    }
    let sorted = sorter.finish();
    let mut group: Vec<PackEntry> = Vec::new();
    let mut at: Option<(u32, u32)> = None;
    let mut flush = |at: Option<(u32, u32)>, group: &mut Vec<PackEntry>| {
        if let Some((src, pack)) = at {
            let pack_id = indexes[src as usize].pack_id(pack);
            pack_reads(src as usize, pack_id, group, max_read)
                .into_iter()
                .for_each(&mut emit);
        }
        group.clear();
    };
    for l in sorted.iter() {
        if at != Some((l.source, l.pack)) {
            flush(at, &mut group);
            at = Some((l.source, l.pack));
        }
        group.push(l.entry);
    }
    flush(at, &mut group);
    match sorted.error() {
        Some(e) => Err(Error::Spill(e)),
        None => Ok(()),
    }
}

/// A needed blob where it is (its source, its pack's number in that source's index),
/// as coalescing sorts them.
#[derive(Clone, Copy, Debug)]
struct Located {
    source: u32,
    pack: u32,
    entry: PackEntry,
}

fn by_place(a: &Located, b: &Located) -> std::cmp::Ordering {
    (a.source, a.pack, a.entry.offset).cmp(&(b.source, b.pack, b.entry.offset))
}

impl Record for Located {
    const SIZE: usize = 8 + ENTRY_LEN;
    fn put(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.source.to_le_bytes());
        out[4..8].copy_from_slice(&self.pack.to_le_bytes());
        self.entry.write_to(&mut out[8..]);
    }
    fn take(b: &[u8]) -> Self {
        let word = |r: &[u8]| u32::from_le_bytes([r[0], r[1], r[2], r[3]]);
        Located {
            source: word(&b[..4]),
            pack: word(&b[4..8]),
            entry: PackEntry::read_from(&b[8..]),
        }
    }
}

/// One pack's entries (sorted by offset) as coalesced reads, each holding exactly its
/// entries.
fn pack_reads(source: usize, pack: Id, blobs: &[PackEntry], max_read: u64) -> Vec<Read> {
    let mut reads = Vec::new();
    let mut first = 0;
    for i in 1..=blobs.len() {
        let joins = blobs.get(i).is_some_and(|e| {
            let (start, end) = (blobs[first].offset, blobs[i - 1].end());
            e.offset >= end && e.offset - end <= COALESCE_GAP && e.end() - start <= max_read
        });
        if !joins {
            let these = &blobs[first..i];
            reads.push(Read {
                source,
                pack,
                start: these[0].offset,
                end: these[these.len() - 1].end(),
                blobs: these.to_vec(),
            });
            first = i;
        }
    }
    reads
}

/// Bytes read from a local file per hand-over (object_store's own file stream reads
/// 8 KiB at a time, each on the blocking pool: a thread hand-over per 8 KiB).
const FILE_CHUNK: usize = 4 << 20;

/// A range of a local pack file as a stream of large chunks.
fn file_chunks(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    let file = std::sync::Arc::new(file);
    futures::stream::unfold(range.start, move |at| {
        let (file, end) = (file.clone(), range.end);
        async move {
            if at >= end {
                return None;
            }
            let n = ((end - at) as usize).min(FILE_CHUNK);
            let read = tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut buf = vec![0u8; n];
                file.read_exact_at(&mut buf, at).map(|()| Bytes::from(buf))
            })
            .await;
            let item = match read {
                Ok(Ok(b)) => Ok(b),
                Ok(Err(e)) => Err(object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(e),
                }),
                Err(e) => Err(object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(e),
                }),
            };
            Some((item, at + n as u64))
        }
    })
    .boxed()
}

/// Why a streamed read stopped: the store (perhaps worth resuming) or the receiver of
/// the blobs (final).
enum Stop {
    Store(Error),
    Handed(Error),
}

impl Repository {
    /// Fetches `read` as a stream and hands its blobs' sealed bytes on as they arrive,
    /// in pack order, in groups of about `group` bytes (small blobs travel together, so
    /// whoever opens them pays one hand-over per group, not per blob); the gaps between
    /// blobs are dropped. Memory per read is about one group, however long the read. A
    /// read that fails or comes back short is resumed from the first blob not yet handed
    /// on (with backoff, like every request); an error from `blobs` ends the read as it is.
    pub async fn fetch_read<F, Fut>(&self, read: &Read, group: usize, mut blobs: F) -> Result<()>
    where
        F: FnMut(Vec<(PackEntry, Bytes)>) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let name = pack_name(&read.pack);
        let path = self.loc.path(&name);
        let mut next = 0;
        let mut attempt = 0;
        while next < read.blobs.len() {
            let before = next;
            let start = read.blobs[next].offset;
            let streamed: std::result::Result<(), Stop> = async {
                let opts = GetOptions {
                    range: Some((start..read.end).into()),
                    ..Default::default()
                };
                let got = self
                    .loc
                    .store
                    .get_opts(&path, opts)
                    .await
                    .map_err(|e| Stop::Store(Error::store(&name, e)))?;
                let mut stream = match got.payload {
                    GetResultPayload::File(file, _) => file_chunks(file, got.range),
                    GetResultPayload::Stream(s) => s,
                };
                let (mut buf, mut at, mut pos) = (BytesMut::new(), start, next);
                let (mut ready, mut ready_bytes) = (Vec::new(), 0usize);
                let mut failed = None;
                while let Some(chunk) = stream.next().await {
                    let chunk = match chunk {
                        Ok(c) => c,
                        Err(e) => {
                            failed = Some(Error::store(&name, e));
                            break;
                        }
                    };
                    buf.extend_from_slice(&chunk);
                    while let Some(e) = read.blobs.get(pos) {
                        if at + (buf.len() as u64) < e.end() {
                            break;
                        }
                        let _gap = buf.split_to((e.offset - at) as usize);
                        ready.push((*e, buf.split_to(e.length as usize).freeze()));
                        ready_bytes += e.length as usize;
                        at = e.end();
                        pos += 1;
                        if ready_bytes >= group {
                            next = pos;
                            ready_bytes = 0;
                            blobs(std::mem::take(&mut ready))
                                .await
                                .map_err(Stop::Handed)?;
                        }
                    }
                }
                // What arrived whole is handed on even when the rest of the read failed.
                if !ready.is_empty() {
                    next = pos;
                    blobs(ready).await.map_err(Stop::Handed)?;
                }
                if let Some(e) = failed {
                    return Err(Stop::Store(e));
                }
                if next < read.blobs.len() {
                    return Err(Stop::Store(Error::ShortRead {
                        object: name.clone(),
                    }));
                }
                Ok(())
            }
            .await;
            match streamed {
                Ok(()) => {}
                Err(Stop::Store(e)) if e.is_transient() && attempt + 1 < ATTEMPTS => {
                    // Progress since the last failure earns a fresh set of attempts.
                    attempt = if next > before { 0 } else { attempt + 1 };
                    let wait = backoff(attempt, self.clock().jitter());
                    tracing::info!("{name}: {e}; resuming the read in {} ms", wait.as_millis());
                    self.clock().sleep(wait).await;
                }
                Err(Stop::Store(e) | Stop::Handed(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index::IndexedPack;
    use crate::format::pack::BlobKind;

    fn index(entries: &[(u64, u32)]) -> (MasterIndex, Vec<Id>) {
        let ids: Vec<Id> = (0..entries.len()).map(|i| Id::hash(&[i as u8])).collect();
        let mut idx = MasterIndex::default();
        idx.add_pack(
            &IndexedPack {
                id: Id::hash(b"pack"),
                size: 1 << 30,
                entries: entries
                    .iter()
                    .zip(&ids)
                    .map(|((o, l), id)| PackEntry {
                        kind: BlobKind::Data,
                        id: *id,
                        offset: *o,
                        length: *l,
                        raw_length: *l,
                    })
                    .collect(),
            },
            None,
        );
        (idx, ids)
    }

    #[test]
    fn near_blobs_share_a_read_far_ones_do_not() {
        let mib = 1 << 20;
        let (idx, ids) = index(&[
            (8, mib),
            (8 + mib as u64, mib),
            (10 * 1048576, 1000),
            (3 * 1048576, 100),
        ]);
        // Ask for blobs 0, 1 (adjacent), 2 (far), out of order.
        let needed = [(0, ids[2]), (0, ids[0]), (0, ids[1])];
        let reads = coalesce(needed.iter().copied(), &[&idx], 4 << 20).unwrap();
        assert_eq!(reads.len(), 2);
        assert_eq!(reads[0].blobs.len(), 2);
        assert_eq!(reads[0].len(), 2 * mib as u64);
        assert_eq!(reads[1].blobs[0].id, ids[2]);
    }

    #[test]
    fn reads_stay_below_the_cap() {
        let mib = 1u32 << 20;
        let entries: Vec<(u64, u32)> = (0..20).map(|i| (8 + i * u64::from(mib), mib)).collect();
        let (idx, ids) = index(&entries);
        let needed: Vec<(usize, Id)> = ids.iter().map(|i| (0, *i)).collect();
        let reads = coalesce(needed.iter().copied(), &[&idx], 4 << 20).unwrap();
        assert!(reads.iter().all(|r| r.len() <= 4 << 20));
        assert_eq!(reads.iter().map(|r| r.blobs.len()).sum::<usize>(), 20);
        assert_eq!(reads.len(), 5);
    }
}
