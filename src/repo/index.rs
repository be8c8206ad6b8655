//! The in-memory index: every blob id in the repository and where it is stored,
//! built from all index files. About 80 bytes per blob (one per MiB of unique data).

use std::collections::HashMap;

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

#[derive(Clone, Debug, Default)]
pub struct PackInfo {
    pub id: Id,
    pub size: u64,
    /// Index files that list this pack.
    pub index_files: Vec<String>,
}

#[derive(Debug, Default)]
pub struct MasterIndex {
    blobs: HashMap<Id, BlobLocation>,
    packs: Vec<PackInfo>,
    pack_pos: HashMap<Id, u32>,
}

impl MasterIndex {
    pub fn add_file(&mut self, name: &str, f: &IndexFile) {
        for p in &f.packs {
            self.add_pack(p, Some(name));
        }
    }

    pub fn add_pack(&mut self, p: &IndexedPack, index_file: Option<&str>) {
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
        for e in &p.entries {
            // The first location wins; a blob stored twice is harmless.
            self.blobs.entry(e.id).or_insert(BlobLocation {
                pack: pos,
                offset: e.offset,
                length: e.length,
                raw_length: e.raw_length,
                kind: e.kind,
            });
        }
    }

    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
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

    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    pub fn blobs(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> {
        self.blobs.iter()
    }

    pub fn ids(&self) -> impl Iterator<Item = Id> + '_ {
        self.blobs.keys().copied()
    }
}
