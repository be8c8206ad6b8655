//! Packs: many sealed blobs followed by an encrypted header that lists them.
//!
//! ```text
//! "OFSPAK" u16 version | blob … blob | sealed header | u32 header length | "OFSHDR" u16 version
//! ```
//! A pack is named by the BLAKE3 of all its bytes, so uploading it twice is harmless and a
//! reader can tell a damaged pack from its name alone.

use std::io::Write;

use super::{MAGIC_PACK, MAGIC_PACK_HEADER, Reader};
use crate::crypto::{OpenError, SecretKey};
use crate::{Error, Id, Result};

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// A chunk of a file's content.
    Data,
    /// A chunk of a restore point's tree stream.
    Tree,
}

impl BlobKind {
    pub fn code(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }
    pub fn from_code(c: u8) -> Option<BlobKind> {
        match c {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// One blob's place in a pack, as both the pack header and the index record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: Id,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u64,
    /// Length of the sealed blob (codec, nonce, ciphertext, tag).
    pub length: u32,
    /// Length of the blob's plaintext.
    pub raw_length: u32,
}

pub const ENTRY_LEN: usize = 1 + 32 + 8 + 4 + 4;
pub const TRAILER_LEN: usize = 4 + 8;
/// Bytes before the first blob.
pub const PACK_START: u64 = 8;

impl PackEntry {
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.resize(at + ENTRY_LEN, 0);
        self.write_to(&mut out[at..]);
    }

    /// The entry in its fixed [`ENTRY_LEN`] bytes (kind, id, offset, length, raw length;
    /// little-endian), as pack headers, index files and spilled records keep it.
    pub fn write_to(&self, out: &mut [u8]) {
        out[0] = self.kind.code();
        out[1..33].copy_from_slice(&self.id.0);
        out[33..41].copy_from_slice(&self.offset.to_le_bytes());
        out[41..45].copy_from_slice(&self.length.to_le_bytes());
        out[45..49].copy_from_slice(&self.raw_length.to_le_bytes());
    }

    /// The entry [`Self::write_to`] wrote (for records this process wrote itself; bytes
    /// from a store go through the checked decoder instead).
    pub fn read_from(b: &[u8]) -> PackEntry {
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[1..33]);
        let mut offset = [0u8; 8];
        offset.copy_from_slice(&b[33..41]);
        PackEntry {
            kind: BlobKind::from_code(b[0]).unwrap_or(BlobKind::Data),
            id: Id(id),
            offset: u64::from_le_bytes(offset),
            length: u32::from_le_bytes([b[41], b[42], b[43], b[44]]),
            raw_length: u32::from_le_bytes([b[45], b[46], b[47], b[48]]),
        }
    }

    pub(crate) fn decode(r: &mut Reader<'_>) -> std::result::Result<PackEntry, String> {
        let short = || "truncated blob entry".to_string();
        let code = r.u8().ok_or_else(short)?;
        let kind = BlobKind::from_code(code).ok_or_else(|| format!("unknown blob kind {code}"))?;
        let id = r.id().ok_or_else(short)?;
        let offset = r.u64().ok_or_else(short)?;
        let length = r.u32().ok_or_else(short)?;
        let raw_length = r.u32().ok_or_else(short)?;
        Ok(PackEntry {
            kind,
            id,
            offset,
            length,
            raw_length,
        })
    }

    pub fn end(&self) -> u64 {
        self.offset + u64::from(self.length)
    }
}

/// Writes one pack to `W` (memory or a spool file) as blobs arrive, hashing as it goes;
/// `finish` seals the header and names the pack.
pub struct PackWriter<W: Write> {
    out: W,
    len: u64,
    hasher: blake3::Hasher,
    entries: Vec<PackEntry>,
}

impl<W: Write> PackWriter<W> {
    pub fn new(mut out: W) -> std::io::Result<Self> {
        let header = super::header(MAGIC_PACK);
        out.write_all(&header)?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&header);
        Ok(PackWriter {
            out,
            len: PACK_START,
            hasher,
            entries: Vec::new(),
        })
    }

    pub fn add(
        &mut self,
        kind: BlobKind,
        id: Id,
        raw_length: u32,
        sealed: &[u8],
    ) -> std::io::Result<()> {
        let length = u32::try_from(sealed.len()).expect("a sealed blob is below 4 GiB");
        self.out.write_all(sealed)?;
        self.hasher.update(sealed);
        self.entries.push(PackEntry {
            kind,
            id,
            offset: self.len,
            length,
            raw_length,
        });
        self.len += u64::from(length);
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seals and appends the header and trailer; returns the pack id, the writer, the
    /// entries and the pack's total length.
    pub fn finish(mut self, key: &SecretKey) -> std::io::Result<(Id, W, Vec<PackEntry>, u64)> {
        let mut plain = Vec::with_capacity(4 + self.entries.len() * ENTRY_LEN);
        plain.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            e.encode_into(&mut plain);
        }
        let hdr = super::header(MAGIC_PACK_HEADER);
        let mut tail = key.seal(&hdr, crate::crypto::CODEC_RAW, &plain);
        let sealed_len = tail.len() as u32;
        tail.extend_from_slice(&sealed_len.to_le_bytes());
        tail.extend_from_slice(&hdr);
        self.out.write_all(&tail)?;
        self.hasher.update(&tail);
        self.out.flush()?;
        let len = self.len + tail.len() as u64;
        Ok((
            Id(*self.hasher.finalize().as_bytes()),
            self.out,
            self.entries,
            len,
        ))
    }
}

/// Reads the trailer (the last [`TRAILER_LEN`] bytes of a pack of `pack_size` bytes) and
/// returns where the sealed header starts and how long it is.
pub fn parse_trailer(object: &str, trailer: &[u8], pack_size: u64) -> Result<(u64, u32)> {
    if trailer.len() != TRAILER_LEN || pack_size < PACK_START + TRAILER_LEN as u64 {
        return Err(Error::corrupt(object, "too short to be a pack"));
    }
    let len = u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes"));
    super::check_header(object, MAGIC_PACK_HEADER, &trailer[4..])?;
    let end = pack_size - TRAILER_LEN as u64;
    if u64::from(len) > end - PACK_START {
        return Err(Error::corrupt(
            object,
            format!("header length {len} exceeds the pack"),
        ));
    }
    Ok((end - u64::from(len), len))
}

/// Opens a sealed pack header and checks that every entry lies inside the blob area
/// (`PACK_START..header_offset`), in order and without overlap.
pub fn open_header(
    key: &SecretKey,
    object: &str,
    sealed: &[u8],
    header_offset: u64,
) -> Result<Vec<PackEntry>> {
    let plain = key
        .open_plain(
            &super::header(MAGIC_PACK_HEADER),
            sealed,
            super::envelope::MAX_FILE_PLAIN,
        )
        .map_err(|e: OpenError| Error::corrupt(object, format!("pack header: {e}")))?;
    let mut r = Reader::new(&plain);
    let count = r
        .u32()
        .ok_or_else(|| Error::corrupt(object, "pack header: truncated"))? as usize;
    if r.remaining() != count * ENTRY_LEN {
        return Err(Error::corrupt(
            object,
            format!("pack header: {count} entries do not fit its length"),
        ));
    }
    let mut entries = Vec::with_capacity(count);
    let mut next = PACK_START;
    for _ in 0..count {
        let e = PackEntry::decode(&mut r)
            .map_err(|w| Error::corrupt(object, format!("pack header: {w}")))?;
        if e.offset < next || e.end() > header_offset {
            return Err(Error::corrupt(
                object,
                format!(
                    "pack header: blob {} lies outside the blob area",
                    e.id.short()
                ),
            ));
        }
        next = e.end();
        entries.push(e);
    }
    Ok(entries)
}

/// Checks the pack's leading magic and version.
pub fn check_header(object: &str, bytes: &[u8]) -> Result<()> {
    super::check_header(object, MAGIC_PACK, bytes).map(|_| ())
}

/// Checks a whole pack held in memory against its name and returns its entries.
pub fn parse_pack(key: &SecretKey, object: &str, id: &Id, bytes: &[u8]) -> Result<Vec<PackEntry>> {
    let actual = Id::hash(bytes);
    if &actual != id {
        return Err(Error::corrupt(
            object,
            format!("its bytes hash to {}, not to its name", actual.short()),
        ));
    }
    super::check_header(object, MAGIC_PACK, bytes)?;
    let size = bytes.len() as u64;
    let trailer = &bytes[bytes.len().saturating_sub(TRAILER_LEN)..];
    let (off, len) = parse_trailer(object, trailer, size)?;
    let sealed = &bytes[off as usize..off as usize + len as usize];
    open_header(key, object, sealed, off)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A pack assembled in memory (the tests' way to make one).
    struct PackBuilder(PackWriter<Vec<u8>>);

    impl PackBuilder {
        fn new(capacity: usize) -> PackBuilder {
            PackBuilder(
                PackWriter::new(Vec::with_capacity(capacity))
                    .expect("writing to memory cannot fail"),
            )
        }

        fn add(&mut self, kind: BlobKind, id: Id, raw_length: u32, sealed: &[u8]) {
            self.0
                .add(kind, id, raw_length, sealed)
                .expect("writing to memory cannot fail");
        }

        /// Seals the header and returns the pack's id, bytes and entries.
        fn finish(self, key: &SecretKey) -> (Id, Vec<u8>, Vec<PackEntry>) {
            let (id, bytes, entries, _) =
                self.0.finish(key).expect("writing to memory cannot fail");
            (id, bytes, entries)
        }
    }

    fn key() -> SecretKey {
        SecretKey::from_bytes(&[3; 32])
    }

    fn sample() -> (Id, Vec<u8>, Vec<PackEntry>) {
        let k = key();
        let mut b = PackBuilder::new(0);
        for i in 0..5u8 {
            let plain = vec![i; 100 + i as usize];
            let sealed = k.seal(b"", 0, &plain);
            b.add(
                BlobKind::Data,
                Id::hash(&plain),
                plain.len() as u32,
                &sealed,
            );
        }
        b.finish(&k)
    }

    #[test]
    fn round_trip() {
        let (id, bytes, entries) = sample();
        let parsed = parse_pack(&key(), "data/x", &id, &bytes).unwrap();
        assert_eq!(parsed, entries);
        let e = entries[2];
        let blob = &bytes[e.offset as usize..e.end() as usize];
        assert_eq!(key().open_plain(b"", blob, 1000).unwrap(), vec![2u8; 102]);
    }

    #[test]
    fn damage_is_named() {
        let (id, mut bytes, _) = sample();
        bytes[20] ^= 1;
        let e = parse_pack(&key(), "data/ab/abc", &id, &bytes).unwrap_err();
        assert!(e.to_string().contains("data/ab/abc"), "{e}");
    }

    proptest! {
        #[test]
        fn mangled_packs_never_panic(cut in 0usize..2000, flip in any::<usize>(), junk in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (_, bytes, _) = sample();
            let mut b = bytes[..cut.min(bytes.len())].to_vec();
            if !b.is_empty() { let i = flip % b.len(); b[i] ^= 0x40; }
            b.extend_from_slice(&junk);
            let id = Id::hash(&b);
            let _ = parse_pack(&key(), "p", &id, &b);
            let t = &b[b.len().saturating_sub(TRAILER_LEN)..];
            if let Ok((off, len)) = parse_trailer("p", t, b.len() as u64) {
                let s = &b[off as usize..off as usize + len as usize];
                let _ = open_header(&key(), "p", s, off);
            }
        }
    }
}
