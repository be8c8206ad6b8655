//! Index files: which blob lives in which pack, at which offset. Written after their
//! packs, so an index never names a pack that was not completely uploaded.
//!
//! Plaintext: `u32 pack count`, then per pack `id (32) | u64 pack size | u32 entry count |
//! entries` with the same 49-byte entries as pack headers; sealed as `OFSIDX` files.

use super::pack::{ENTRY_LEN, PackEntry};
use super::{MAGIC_INDEX, Reader, envelope};
use crate::crypto::SecretKey;
use crate::{Error, Id, Result};

/// The packs one index file describes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    pub packs: Vec<IndexedPack>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexedPack {
    pub id: Id,
    pub size: u64,
    pub entries: Vec<PackEntry>,
}

impl IndexFile {
    pub fn encode(&self) -> Vec<u8> {
        let n: usize = self
            .packs
            .iter()
            .map(|p| 44 + p.entries.len() * ENTRY_LEN)
            .sum();
        let mut out = Vec::with_capacity(4 + n);
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.id.0);
            out.extend_from_slice(&p.size.to_le_bytes());
            out.extend_from_slice(&(p.entries.len() as u32).to_le_bytes());
            for e in &p.entries {
                e.encode_into(&mut out);
            }
        }
        out
    }

    pub fn decode(object: &str, plain: &[u8]) -> Result<IndexFile> {
        let bad = |w: &str| Error::corrupt(object, format!("index: {w}"));
        let mut r = Reader::new(plain);
        let count = r.u32().ok_or_else(|| bad("truncated"))?;
        let mut packs = Vec::new();
        for _ in 0..count {
            let id = r.id().ok_or_else(|| bad("truncated pack record"))?;
            let size = r.u64().ok_or_else(|| bad("truncated pack record"))?;
            let n = r.u32().ok_or_else(|| bad("truncated pack record"))? as usize;
            if r.remaining() < n.saturating_mul(ENTRY_LEN) {
                return Err(bad("pack record claims more entries than the file holds"));
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let e = PackEntry::decode(&mut r).map_err(|w| bad(&w))?;
                if e.end() > size {
                    return Err(bad(&format!(
                        "blob {} lies beyond the end of pack {}",
                        e.id.short(),
                        id.short()
                    )));
                }
                entries.push(e);
            }
            packs.push(IndexedPack { id, size, entries });
        }
        if r.remaining() != 0 {
            return Err(bad("trailing bytes"));
        }
        Ok(IndexFile { packs })
    }

    pub fn seal(&self, key: &SecretKey) -> Vec<u8> {
        // Ids do not compress: store raw.
        envelope::seal_file(key, MAGIC_INDEX, 0, &self.encode())
    }

    pub fn open(key: &SecretKey, object: &str, bytes: &[u8]) -> Result<IndexFile> {
        let plain = envelope::open_file(key, object, MAGIC_INDEX, bytes)?;
        IndexFile::decode(object, &plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::BlobKind;
    use proptest::prelude::*;

    fn sample() -> IndexFile {
        IndexFile {
            packs: vec![IndexedPack {
                id: Id::hash(b"p"),
                size: 1000,
                entries: vec![PackEntry {
                    kind: BlobKind::Tree,
                    id: Id::hash(b"b"),
                    offset: 8,
                    length: 100,
                    raw_length: 70,
                }],
            }],
        }
    }

    #[test]
    fn round_trip() {
        let k = SecretKey::from_bytes(&[4; 32]);
        let sealed = sample().seal(&k);
        assert_eq!(IndexFile::open(&k, "index/x", &sealed).unwrap(), sample());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = IndexFile::decode("i", &bytes);
        }

        #[test]
        fn truncation_is_an_error(cut in 0usize..130) {
            let plain = sample().encode();
            if cut < plain.len() {
                prop_assert!(IndexFile::decode("i", &plain[..cut]).is_err());
            }
        }
    }
}
