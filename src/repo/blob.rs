//! One blob, sealed and opened. The one place that turns plaintext into what a pack holds
//! (zstd if it makes the blob smaller, then XChaCha20-Poly1305) and back, and the one
//! check between stored bytes and trusted content (length, and hash against the id).
//! Backup seals plaintext; a copy opens with the source key and re-seals for the target,
//! passing the encoded payload through when it can.

use std::cell::RefCell;

use crate::crypto::{CODEC_ZSTD, Encoder, SecretKey};
use crate::{Error, Id, Result};

thread_local! {
    /// One zstd context per sealing thread and level, reused across blobs: making one
    /// costs more than compressing a small blob.
    static ENCODER: RefCell<Option<(i32, Encoder)>> = const { RefCell::new(None) };
}

/// Compresses `plain` at `level` (kept only when smaller) and seals it with `key`.
pub fn seal(key: &SecretKey, level: i32, plain: &[u8]) -> Vec<u8> {
    ENCODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, Encoder::new(level)));
        }
        let (_, enc) = slot.as_mut().expect("encoder just made");
        let (codec, payload) = enc.encode(plain);
        key.seal(b"", codec, &payload)
    })
}

/// Seals an already encoded payload as it is (a copy keeping the source's compression).
pub fn seal_encoded(key: &SecretKey, codec: u8, payload: &[u8]) -> Vec<u8> {
    key.seal(b"", codec, payload)
}

/// A blob opened and verified, with its encoded form kept for re-sealing.
pub struct Opened {
    pub codec: u8,
    /// The payload as stored (compressed when `codec` says so).
    pub payload: Vec<u8>,
    /// The plaintext, when decoding produced a new buffer (else it is `payload`).
    decoded: Option<Vec<u8>>,
}

impl Opened {
    pub fn plain(&self) -> &[u8] {
        self.decoded.as_deref().unwrap_or(&self.payload)
    }
}

/// Opens `sealed` with `key`, decodes it and checks it is blob `id` of `raw_length`
/// bytes. The message says what is wrong; the caller names the object.
pub fn open_encoded(
    key: &SecretKey,
    id: &Id,
    raw_length: u32,
    sealed: &[u8],
) -> std::result::Result<Opened, String> {
    let (codec, payload) = key.open(b"", sealed).map_err(|e| e.to_string())?;
    let decoded = if codec == CODEC_ZSTD {
        Some(crate::crypto::decompress(&payload, raw_length as usize).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let opened = Opened {
        codec,
        payload,
        decoded,
    };
    verify_plain(id, raw_length, opened.plain())?;
    Ok(opened)
}

/// Opens a sealed blob read from pack `pack_name` and checks it is blob `id`.
pub fn open(
    key: &SecretKey,
    pack_name: &str,
    id: &Id,
    raw_length: u32,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let what = |w: String| Error::corrupt_blob(pack_name, *id, format!("blob {}: {w}", id.short()));
    let plain = key
        .open_plain(b"", sealed, raw_length as usize)
        .map_err(|e| what(e.to_string()))?;
    verify_plain(id, raw_length, &plain).map_err(what)?;
    Ok(plain)
}

/// Checks a blob's plaintext against its index entry: its length, and that it hashes to
/// its id.
pub fn verify_plain(id: &Id, raw_length: u32, plain: &[u8]) -> std::result::Result<(), String> {
    if plain.len() != raw_length as usize {
        return Err(format!(
            "{} bytes, the index says {raw_length}",
            plain.len()
        ));
    }
    let actual = Id::hash(plain);
    if &actual != id {
        return Err(format!(
            "content hashes to {}, not to its id",
            actual.short()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_blobs_open_and_a_wrong_id_or_key_is_refused() {
        let key = SecretKey::from_bytes(&[7; 32]);
        let other = SecretKey::from_bytes(&[8; 32]);
        let plain = b"hello hello hello hello hello hello hello".repeat(100);
        let id = Id::hash(&plain);
        let sealed = seal(&key, 3, &plain);
        assert!(
            sealed.len() < plain.len(),
            "compressible data is compressed"
        );
        assert_eq!(
            open(&key, "p", &id, plain.len() as u32, &sealed).unwrap(),
            plain
        );
        let o = open_encoded(&key, &id, plain.len() as u32, &sealed).unwrap();
        assert_eq!(o.codec, CODEC_ZSTD);
        assert_eq!(o.plain(), &plain[..]);
        // Re-sealed as it is, it opens under the other key.
        let moved = seal_encoded(&other, o.codec, &o.payload);
        assert_eq!(
            open(&other, "p", &id, plain.len() as u32, &moved).unwrap(),
            plain
        );
        assert!(open(&other, "p", &id, plain.len() as u32, &sealed).is_err());
        let wrong = Id::hash(b"other");
        assert!(matches!(
            open(&key, "p", &wrong, plain.len() as u32, &sealed),
            Err(Error::Corrupt { .. })
        ));
        assert!(open_encoded(&key, &id, 5, &sealed).is_err());
    }
}
