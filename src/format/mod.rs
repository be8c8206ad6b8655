//! The on-store format: object names, magics and versions, and the (de)serialisers of
//! every structure. `docs/FORMAT.md` is the normative description; this module is its
//! implementation. Every parser here returns an error naming the object and never panics,
//! whatever the bytes.

pub mod config;
pub mod envelope;
pub mod index;
pub mod keyfile;
pub mod lock;
pub mod mark;
pub mod pack;
pub mod point;
pub mod tree;

/// Object magics. These six bytes open every object of their kind and must never change:
/// a new layout gets a new version number instead.
pub const MAGIC_CONFIG: &[u8; 6] = b"OFSCFG";
pub const MAGIC_KEY: &[u8; 6] = b"OFSKEY";
pub const MAGIC_PACK: &[u8; 6] = b"OFSPAK";
pub const MAGIC_PACK_HEADER: &[u8; 6] = b"OFSHDR";
pub const MAGIC_INDEX: &[u8; 6] = b"OFSIDX";
pub const MAGIC_POINT: &[u8; 6] = b"OFSPNT";
pub const MAGIC_LOCK: &[u8; 6] = b"OFSLCK";
pub const MAGIC_JOB_STATE: &[u8; 6] = b"OFSJOB";
pub const MAGIC_MARK: &[u8; 6] = b"OFSMRK";

/// The format version this build writes, and the highest it reads, for every kind.
pub const VERSION: u16 = 1;

/// Object name prefixes inside a repository.
pub const CONFIG: &str = "config";
pub const KEYS: &str = "keys";
pub const DATA: &str = "data";
pub const INDEX: &str = "index";
pub const POINTS: &str = "points";
pub const LOCKS: &str = "locks";
pub const JOBS: &str = "jobs";
pub const MARKS: &str = "marks";

/// `jobs/<name>`: the state of the backup copy job `name` that writes this repository.
pub fn job_state_name(job: &str) -> String {
    format!("{JOBS}/{}", hex::encode(job.as_bytes()))
}

/// `data/ab/abcdef…`: packs are spread over 256 folders so a file system copes.
pub fn pack_name(id: &crate::Id) -> String {
    let hex = id.to_hex();
    format!("{DATA}/{}/{hex}", &hex[..2])
}

/// The pack id a `data/ab/abcdef…` name stands for; `None` for any other name.
pub fn parse_pack_name(name: &str) -> Option<crate::Id> {
    let id = name.rsplit('/').next()?.parse::<crate::Id>().ok()?;
    (pack_name(&id) == name).then_some(id)
}

/// `points/<id>`: a restore point, named by the hash of its sealed bytes.
pub fn point_name(id: &crate::Id) -> String {
    format!("{POINTS}/{id}")
}

/// The point id a `points/<id>` name stands for; `None` for any other name.
pub fn parse_point_name(name: &str) -> Option<crate::Id> {
    let id = name.strip_prefix(POINTS)?.strip_prefix('/')?.parse().ok()?;
    (point_name(&id) == name).then_some(id)
}

/// `index/<id>`: an index file, named by the hash of its sealed bytes.
pub fn index_name(id: &crate::Id) -> String {
    format!("{INDEX}/{id}")
}

/// `keys/<id>`: a key file, named by the hash of its bytes.
pub fn key_name(id: &crate::Id) -> String {
    format!("{KEYS}/{id}")
}

/// The id part of a `keys/<id>` name (what `key list` shows and `key remove` takes).
pub fn key_id(name: &str) -> &str {
    name.strip_prefix(KEYS)
        .and_then(|n| n.strip_prefix('/'))
        .unwrap_or(name)
}

/// `locks/<token>`: a lock, named by 16 random bytes in hex.
pub fn lock_name(token: &[u8; 16]) -> String {
    format!("{LOCKS}/{}", hex::encode(token))
}

/// Splits off and checks the 8-byte `magic | version` header of an object.
pub fn check_header<'a>(object: &str, magic: &[u8; 6], bytes: &'a [u8]) -> crate::Result<&'a [u8]> {
    if bytes.len() < 8 {
        return Err(crate::Error::corrupt(
            object,
            format!("{} bytes is too short for any offsite object", bytes.len()),
        ));
    }
    if &bytes[..6] != magic {
        return Err(crate::Error::Foreign {
            object: object.to_string(),
            what: format!(
                "expected magic {:?}, found {:?}",
                String::from_utf8_lossy(magic),
                String::from_utf8_lossy(&bytes[..6])
            ),
        });
    }
    let version = u16::from_le_bytes([bytes[6], bytes[7]]);
    if version == 0 || version > VERSION {
        return Err(crate::Error::UnsupportedVersion {
            object: object.to_string(),
            found: version,
            supported: VERSION,
        });
    }
    Ok(&bytes[8..])
}

/// `magic | version` as written at the start of an object.
pub fn header(magic: &[u8; 6]) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..6].copy_from_slice(magic);
    h[6..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// A little-endian reader over untrusted bytes: every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    pub fn id(&mut self) -> Option<crate::Id> {
        self.take(32).and_then(crate::Id::from_slice)
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
}

#[cfg(test)]
mod name_tests {
    use super::*;
    use crate::Id;

    #[test]
    fn names_parse_back_and_foreign_names_do_not() {
        let id = Id::hash(b"x");
        assert_eq!(parse_pack_name(&pack_name(&id)), Some(id));
        assert_eq!(parse_point_name(&point_name(&id)), Some(id));
        assert_eq!(parse_point_name("points/xyz"), None);
        assert_eq!(parse_point_name(&pack_name(&id)), None);
        assert_eq!(key_id(&key_name(&id)), id.to_hex());
        assert!(lock_name(&[0xab; 16]).starts_with("locks/abab"));
    }
}
