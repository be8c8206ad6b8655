//! The read plan of a copy: which blobs the chosen points need that the target lacks,
//! grouped into ranged reads per source pack. Neighbouring blobs are read in one request
//! when the gap between them is small, so an incremental copy costs few GETs and reads
//! little more than the changed bytes.

use std::collections::BTreeMap;

use crate::Id;
use crate::repo::{BlobLocation, MasterIndex};

/// Blobs closer than this in a pack are read together (the gap is read and dropped).
pub const COALESCE_GAP: u64 = 256 << 10;
/// No single read is longer than this (bounds memory per read in flight).
pub const MAX_READ: u64 = 4 << 20;

/// One ranged GET of a source pack and the blobs it yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Read {
    pub source: usize,
    pub pack: Id,
    pub start: u64,
    pub end: u64,
    pub blobs: Vec<(Id, BlobLocation)>,
}

impl Read {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }
}

/// Groups `(source, blob id)` pairs into coalesced reads. Blobs must be in their
/// source's index (the caller checks). Reads come out by source, pack and offset.
pub fn coalesce(needed: &[(usize, Id)], indexes: &[&MasterIndex]) -> Vec<Read> {
    let mut by_pack: BTreeMap<(usize, u32), Vec<(Id, BlobLocation)>> = BTreeMap::new();
    for (src, id) in needed {
        if let Some(loc) = indexes[*src].get(id) {
            by_pack
                .entry((*src, loc.pack))
                .or_default()
                .push((*id, *loc));
        }
    }
    let mut reads = Vec::new();
    for ((src, pack), mut blobs) in by_pack {
        blobs.sort_by_key(|(_, l)| l.offset);
        let pack_id = indexes[src].pack_id(pack);
        let mut cur: Option<Read> = None;
        for (id, loc) in blobs {
            let (start, end) = (loc.offset, loc.offset + u64::from(loc.length));
            if let Some(r) = cur.as_mut()
                && start >= r.end
                && start - r.end <= COALESCE_GAP
                && end - r.start <= MAX_READ
            {
                r.end = end;
                r.blobs.push((id, loc));
                continue;
            }
            if let Some(r) = cur.take() {
                reads.push(r);
            }
            cur = Some(Read {
                source: src,
                pack: pack_id,
                start,
                end,
                blobs: vec![(id, loc)],
            });
        }
        reads.extend(cur);
    }
    reads
}

/// The pack size that splits `planned` bytes into whole packs of at least `target`
/// bytes each: a chain of 170 MiB at a 64 MiB target becomes two packs of 85 MiB, not
/// 64 + 64 + 42 — at most one object per target size of packed data.
pub fn balanced_pack_size(planned: u64, target: u64) -> u64 {
    let target = target.max(1);
    let packs = (planned / target).max(1);
    planned.div_ceil(packs).max(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::index::IndexedPack;
    use crate::format::pack::{BlobKind, PackEntry};

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
        let needed = vec![(0, ids[2]), (0, ids[0]), (0, ids[1])];
        let reads = coalesce(&needed, &[&idx]);
        assert_eq!(reads.len(), 2);
        assert_eq!(reads[0].blobs.len(), 2);
        assert_eq!(reads[0].len(), 2 * mib as u64);
        assert_eq!(reads[1].blobs[0].0, ids[2]);
    }

    #[test]
    fn reads_stay_below_the_cap() {
        let mib = 1u32 << 20;
        let entries: Vec<(u64, u32)> = (0..20).map(|i| (8 + i * u64::from(mib), mib)).collect();
        let (idx, ids) = index(&entries);
        let needed: Vec<(usize, Id)> = ids.iter().map(|i| (0, *i)).collect();
        let reads = coalesce(&needed, &[&idx]);
        assert!(reads.iter().all(|r| r.len() <= MAX_READ));
        assert_eq!(reads.iter().map(|r| r.blobs.len()).sum::<usize>(), 20);
        assert_eq!(reads.len(), 5);
    }
}
