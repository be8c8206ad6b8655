//! The master index: every blob id in the repository and where it is stored, built from
//! all index files. Kept as an [`IdTable`] of 52-byte rows (see `repo/table`): about 53
//! bytes per blob in memory, where a HashMap of the same took about 120 — or, past the
//! memory budget, in a spill file read by position.

use std::collections::HashMap;

use super::table::{IdTable, TableBuilder, Value};
use crate::Id;
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::pack::BlobKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// Position of the pack in [`MasterIndex::packs`].
    pub pack: u32,
    pub offset: u64,
    pub length: u32,
    pub raw_length: u32,
    pub kind: BlobKind,
}

/// A [`BlobLocation`] in 20 bytes: pack, offset (low 32 bits), offset's high 24 bits
/// with the kind, length, raw length. Offsets up to 2^56 — far beyond any pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed([u32; 5]);

impl Packed {
    fn of(l: &BlobLocation) -> Packed {
        let high = ((l.offset >> 32) as u32 & 0x00ff_ffff) << 8 | u32::from(l.kind.code());
        Packed([l.pack, l.offset as u32, high, l.length, l.raw_length])
    }

    fn location(self) -> BlobLocation {
        let [pack, low, high, length, raw_length] = self.0;
        BlobLocation {
            pack,
            offset: u64::from(high >> 8) << 32 | u64::from(low),
            length,
            raw_length,
            // Only codes this module wrote are here.
            kind: BlobKind::from_code((high & 0xff) as u8).unwrap_or(BlobKind::Data),
        }
    }
}

impl Value for Packed {
    const SIZE: usize = 20;
    /// The first location wins: packs are numbered in the order they were added.
    fn rank(&self) -> u64 {
        u64::from(self.0[0])
    }
    fn put(&self, out: &mut [u8]) {
        for (o, v) in out.chunks_exact_mut(4).zip(self.0) {
            v.put(o);
        }
    }
    fn take(b: &[u8]) -> Self {
        let mut p = [0u32; 5];
        for (v, i) in p.iter_mut().zip(b.chunks_exact(4)) {
            *v = u32::take(i);
        }
        Packed(p)
    }
}

#[derive(Clone, Debug, Default)]
pub struct PackInfo {
    pub id: Id,
    pub size: u64,
    /// Index files that list this pack.
    pub index_files: Vec<String>,
}

/// Builds a master index from many index files at once, taking each as it comes: their
/// entries go into a [`TableBuilder`] (sorted in runs within the memory budget, merged
/// at the end), the files are not kept.
#[derive(Default)]
pub struct IndexBuilder {
    index: MasterIndex,
    rows: TableBuilder<Packed>,
}

impl IndexBuilder {
    pub fn add_file(&mut self, name: &str, f: &IndexFile) {
        for p in &f.packs {
            let pos = self.index.pack_position(p, Some(name));
            for e in &p.entries {
                self.rows.push(e.id, Packed::of(&location(pos, e)));
            }
        }
    }

    pub fn finish(mut self) -> MasterIndex {
        self.index.blobs = self.rows.finish();
        self.index
    }
}

#[derive(Debug, Default)]
pub struct MasterIndex {
    blobs: IdTable<Packed>,
    packs: Vec<PackInfo>,
    pack_pos: HashMap<Id, u32>,
}

impl MasterIndex {
    /// The index of `files` (name, contents); see [`IndexBuilder`].
    pub fn from_files(files: impl IntoIterator<Item = (String, IndexFile)>) -> MasterIndex {
        let mut b = IndexBuilder::default();
        for (name, f) in files {
            b.add_file(&name, &f);
        }
        b.finish()
    }

    pub fn add_file(&mut self, name: &str, f: &IndexFile) {
        for p in &f.packs {
            self.add_pack(p, Some(name));
        }
    }

    pub fn add_pack(&mut self, p: &IndexedPack, index_file: Option<&str>) {
        let pos = self.pack_position(p, index_file);
        for e in &p.entries {
            // The first location wins; a blob stored twice is harmless.
            self.blobs.insert(e.id, Packed::of(&location(pos, e)));
        }
    }

    /// The position of pack `p` (added if new), noting the index file that lists it.
    fn pack_position(&mut self, p: &IndexedPack, index_file: Option<&str>) -> u32 {
        let pos = match self.pack_pos.get(&p.id) {
            Some(&pos) => pos,
            None => {
                let pos = self.packs.len() as u32;
                self.packs.push(PackInfo {
                    id: p.id,
                    size: p.size,
                    index_files: Vec::new(),
                });
                self.pack_pos.insert(p.id, pos);
                pos
            }
        };
        if let Some(n) = index_file {
            self.packs[pos as usize].index_files.push(n.to_string());
        }
        pos
    }

    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.blobs.get(id).map(Packed::location)
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains(id)
    }

    pub fn pack_id(&self, pos: u32) -> Id {
        self.packs[pos as usize].id
    }

    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    pub fn pack(&self, id: &Id) -> Option<&PackInfo> {
        self.pack_pos.get(id).map(|&p| &self.packs[p as usize])
    }

    /// Why the index could not be read back from its spill file, if so: lookups since
    /// answered "absent" (see `repo/table`).
    pub fn failure(&self) -> Option<String> {
        self.blobs.failure()
    }

    /// Whether the blobs are in a spill file rather than in memory.
    pub fn spilled(&self) -> bool {
        self.blobs.spilled()
    }

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    /// Every blob and where it is, in no particular order.
    pub fn blobs(&self) -> impl Iterator<Item = (Id, BlobLocation)> + '_ {
        self.blobs.iter().map(|(id, p)| (id, p.location()))
    }

    pub fn ids(&self) -> impl Iterator<Item = Id> + '_ {
        self.blobs.iter().map(|(id, _)| id)
    }
}

fn location(pack: u32, e: &crate::format::pack::PackEntry) -> BlobLocation {
    BlobLocation {
        pack,
        offset: e.offset,
        length: e.length,
        raw_length: e.raw_length,
        kind: e.kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_survives_packing() {
        for (offset, kind) in [
            (0, BlobKind::Data),
            (u64::MAX >> 8, BlobKind::Tree),
            (5 << 33, BlobKind::Data),
        ] {
            let l = BlobLocation {
                pack: 7,
                offset,
                length: u32::MAX,
                raw_length: 3,
                kind,
            };
            assert_eq!(Packed::of(&l).location(), l);
        }
    }
}
