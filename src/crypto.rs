//! Sealing and opening: zstd compression (kept only when it helps) and
//! XChaCha20-Poly1305 with a random 192-bit nonce.
//!
//! A sealed payload is `codec (1) | nonce (24) | ciphertext | tag (16)`. The codec byte
//! and any caller-given prefix (an object's magic and version) are authenticated as
//! associated data, so neither can be swapped without the tag failing.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};

/// Payload stored as is.
pub const CODEC_RAW: u8 = 0;
/// Payload compressed with zstd (a single zstd frame).
pub const CODEC_ZSTD: u8 = 1;

pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Bytes a sealed payload adds to its (possibly compressed) plaintext.
pub const SEAL_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Why a sealed payload could not be opened. Callers add the object's name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("too short to be sealed ({0} bytes)")]
    TooShort(usize),
    #[error("unknown codec {0}")]
    UnknownCodec(u8),
    #[error("authentication failed (wrong key, or the bytes were changed)")]
    Authentication,
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("decompresses to more than the {0} bytes allowed")]
    TooLarge(usize),
}

/// A 256-bit symmetric key with its cipher ready.
#[derive(Clone)]
pub struct SecretKey {
    cipher: XChaCha20Poly1305,
}

impl SecretKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> SecretKey {
        let key = Key::from(*bytes);
        SecretKey {
            cipher: XChaCha20Poly1305::new(&key),
        }
    }

    /// Seals `payload` (already compressed or not, as `codec` says), appending to `out`.
    pub fn seal_into(&self, aad_prefix: &[u8], codec: u8, payload: &[u8], out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        out.reserve(SEAL_OVERHEAD + payload.len());
        out.push(codec);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(payload);
        let aad = aad(aad_prefix, codec);
        let tag = self
            .cipher
            .encrypt_inout_detached(&XNonce::from(nonce), &aad, (&mut out[start..]).into())
            .expect("XChaCha20-Poly1305 accepts any payload below 256 GiB");
        out.extend_from_slice(tag.as_slice());
    }

    pub fn seal(&self, aad_prefix: &[u8], codec: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.seal_into(aad_prefix, codec, payload, &mut out);
        out
    }

    /// Opens a sealed payload, returning its codec and the (still compressed) payload.
    pub fn open(&self, aad_prefix: &[u8], sealed: &[u8]) -> Result<(u8, Vec<u8>), OpenError> {
        if sealed.len() < SEAL_OVERHEAD {
            return Err(OpenError::TooShort(sealed.len()));
        }
        let codec = sealed[0];
        if codec != CODEC_RAW && codec != CODEC_ZSTD {
            return Err(OpenError::UnknownCodec(codec));
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
            .try_into()
            .expect("slice has the nonce length");
        let body = &sealed[1 + NONCE_LEN..sealed.len() - TAG_LEN];
        let tag =
            Tag::try_from(&sealed[sealed.len() - TAG_LEN..]).expect("slice has the tag length");
        let mut buf = body.to_vec();
        self.cipher
            .decrypt_inout_detached(
                &XNonce::from(nonce),
                &aad(aad_prefix, codec),
                (&mut buf[..]).into(),
                &tag,
            )
            .map_err(|_| OpenError::Authentication)?;
        Ok((codec, buf))
    }

    /// Opens and decompresses: the plaintext, at most `limit` bytes long.
    pub fn open_plain(
        &self,
        aad_prefix: &[u8],
        sealed: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, OpenError> {
        let (codec, payload) = self.open(aad_prefix, sealed)?;
        decode(codec, payload, limit)
    }
}

fn aad(prefix: &[u8], codec: u8) -> Vec<u8> {
    let mut a = Vec::with_capacity(prefix.len() + 1);
    a.extend_from_slice(prefix);
    a.push(codec);
    a
}

/// Compresses with zstd at `level` (0 = never); keeps the raw bytes when that is not smaller.
pub fn encode(level: i32, plain: &[u8]) -> (u8, Vec<u8>) {
    if level > 0
        && let Ok(z) = zstd::bulk::compress(plain, level)
        && z.len() < plain.len()
    {
        return (CODEC_ZSTD, z);
    }
    (CODEC_RAW, plain.to_vec())
}

/// A reusable zstd compressor: one per worker thread, so small blobs do not each pay
/// for a fresh compression context.
pub struct Encoder {
    level: i32,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

impl Encoder {
    pub fn new(level: i32) -> Encoder {
        let zstd = if level > 0 {
            zstd::bulk::Compressor::new(level).ok()
        } else {
            None
        };
        Encoder { level, zstd }
    }

    /// Like [`encode`], with this encoder's context.
    pub fn encode(&mut self, plain: &[u8]) -> (u8, Vec<u8>) {
        match &mut self.zstd {
            Some(c) => match c.compress(plain) {
                Ok(z) if z.len() < plain.len() => (CODEC_ZSTD, z),
                _ => (CODEC_RAW, plain.to_vec()),
            },
            None => encode(self.level, plain),
        }
    }
}

/// Reverses [`encode`]; refuses output longer than `limit` (a corrupt or hostile frame).
pub fn decode(codec: u8, payload: Vec<u8>, limit: usize) -> Result<Vec<u8>, OpenError> {
    match codec {
        CODEC_RAW => Ok(payload),
        CODEC_ZSTD => decompress(&payload, limit),
        other => Err(OpenError::UnknownCodec(other)),
    }
}

/// Decompresses one zstd frame of at most `limit` bytes of output.
pub fn decompress(payload: &[u8], limit: usize) -> Result<Vec<u8>, OpenError> {
    match zstd::zstd_safe::get_frame_content_size(payload) {
        Ok(Some(n)) if n > limit as u64 => return Err(OpenError::TooLarge(limit)),
        _ => {}
    }
    zstd::bulk::decompress(payload, limit).map_err(|e| {
        if e.to_string().contains("Destination buffer is too small") {
            OpenError::TooLarge(limit)
        } else {
            OpenError::Decompress(e.to_string())
        }
    })
}

/// Fills a new array with random bytes from the operating system's generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::fill(&mut b[..]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> SecretKey {
        SecretKey::from_bytes(&[7u8; 32])
    }

    #[test]
    fn seal_open_round_trip() {
        let k = key();
        let (codec, payload) = encode(3, &[b'a'; 10000]);
        assert_eq!(codec, CODEC_ZSTD);
        let sealed = k.seal(b"HDR", codec, &payload);
        assert_eq!(
            k.open_plain(b"HDR", &sealed, 10000).unwrap(),
            vec![b'a'; 10000]
        );
        // another prefix or key fails
        assert_eq!(k.open(b"HDX", &sealed), Err(OpenError::Authentication));
        let other = SecretKey::from_bytes(&[8u8; 32]);
        assert_eq!(other.open(b"HDR", &sealed), Err(OpenError::Authentication));
        // the limit is enforced before allocating
        assert_eq!(
            k.open_plain(b"HDR", &sealed, 100),
            Err(OpenError::TooLarge(100))
        );
    }

    #[test]
    fn incompressible_stays_raw() {
        let data: [u8; 4096] = random_bytes();
        assert_eq!(encode(3, &data).0, CODEC_RAW);
        assert_eq!(encode(0, &[0u8; 100]).0, CODEC_RAW);
    }

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = key().open_plain(b"", &bytes, 1000);
        }

        #[test]
        fn any_bit_flip_is_detected(data in proptest::collection::vec(any::<u8>(), 0..300), bit in any::<usize>()) {
            let k = key();
            let (c, p) = encode(3, &data);
            let mut sealed = k.seal(b"", c, &p);
            let bit = bit % (sealed.len() * 8);
            sealed[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(k.open_plain(b"", &sealed, 1000).is_err());
        }
    }
}
