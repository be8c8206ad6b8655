//! Sealed files: the shape shared by `config`, index files, restore points and locks —
//! `magic (6) | version u16 | sealed payload`, with the first eight bytes authenticated.

use crate::crypto::{self, SecretKey};
use crate::{Error, Result};

/// Largest plaintext a sealed file may decompress to (a restore point's manifest or an
/// index of ~4M blobs); bounds memory when a hostile object claims more.
pub const MAX_FILE_PLAIN: usize = 256 << 20;

/// Seals `plain` as an object of kind `magic`, compressing with zstd at `level`.
pub fn seal_file(key: &SecretKey, magic: &[u8; 6], level: i32, plain: &[u8]) -> Vec<u8> {
    let header = super::header(magic);
    let (codec, payload) = crypto::encode(level, plain);
    let mut out = Vec::with_capacity(8 + crypto::SEAL_OVERHEAD + payload.len());
    out.extend_from_slice(&header);
    key.seal_into(&header, codec, &payload, &mut out);
    out
}

/// Opens a sealed file named `object`, checking its magic and version.
pub fn open_file(key: &SecretKey, object: &str, magic: &[u8; 6], bytes: &[u8]) -> Result<Vec<u8>> {
    let body = super::check_header(object, magic, bytes)?;
    key.open_plain(&bytes[..8], body, MAX_FILE_PLAIN)
        .map_err(|e| Error::corrupt(object, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::MAGIC_POINT;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_refusals() {
        let k = SecretKey::from_bytes(&[1; 32]);
        let f = seal_file(&k, MAGIC_POINT, 3, b"{\"a\":1}");
        assert_eq!(
            open_file(&k, "points/x", MAGIC_POINT, &f).unwrap(),
            b"{\"a\":1}"
        );
        let e = open_file(&k, "points/x", crate::format::MAGIC_LOCK, &f).unwrap_err();
        assert!(matches!(e, Error::Foreign { .. }), "{e}");
        let mut v2 = f.clone();
        v2[6] = 9;
        let e = open_file(&k, "points/x", MAGIC_POINT, &v2).unwrap_err();
        assert!(e.to_string().contains("format version 9"), "{e}");
        let e = open_file(&k, "points/x", MAGIC_POINT, &f[..f.len() - 1]).unwrap_err();
        assert!(e.to_string().contains("points/x"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let k = SecretKey::from_bytes(&[1; 32]);
            let mut b = b"OFSPNT\x01\x00".to_vec();
            b.extend_from_slice(&bytes);
            prop_assert!(open_file(&k, "o", MAGIC_POINT, &b).is_err());
            prop_assert!(open_file(&k, "o", MAGIC_POINT, &bytes).is_err());
        }
    }
}
