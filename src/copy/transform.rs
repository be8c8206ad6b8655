//! The CPU stage of a copy: open each blob with the source key, verify its id, and seal
//! it for the target — passing the compressed payload through when the levels agree,
//! recompressing otherwise. Runs on blocking threads, one zstd context per thread.

use std::cell::RefCell;

use super::plan;
use crate::Id;
use crate::crypto::{CODEC_ZSTD, Encoder, SecretKey};

pub(super) type BlobOutcome = (
    Id,
    crate::repo::BlobLocation,
    std::result::Result<Vec<u8>, String>,
);

thread_local! {
    /// One zstd context per worker thread and level, reused across blobs.
    static ENCODER: RefCell<Option<(i32, Encoder)>> = const { RefCell::new(None) };
}

/// Opens, verifies and re-seals every blob of one ranged read (runs off the async threads).
pub(super) fn process_read(
    read: &plan::Read,
    bytes: &[u8],
    src: &SecretKey,
    dst: &SecretKey,
    pass_through: bool,
    level: i32,
) -> Vec<BlobOutcome> {
    read.blobs
        .iter()
        .map(|(id, loc)| {
            let at = (loc.offset - read.start) as usize;
            let res = match bytes.get(at..at + loc.length as usize) {
                Some(sealed) => reseal(id, loc.raw_length, sealed, src, dst, pass_through, level),
                None => Err("the ranged read came back short".into()),
            };
            (*id, *loc, res)
        })
        .collect()
}

/// Decrypts with the source key, checks the plaintext hashes to `id`, and seals for the
/// target: the same payload when passing through, else recompressed at `level`.
fn reseal(
    id: &Id,
    raw_length: u32,
    sealed: &[u8],
    src: &SecretKey,
    dst: &SecretKey,
    pass_through: bool,
    level: i32,
) -> std::result::Result<Vec<u8>, String> {
    let (codec, payload) = src.open(b"", sealed).map_err(|e| e.to_string())?;
    let decompressed;
    let plain: &[u8] = if codec == CODEC_ZSTD {
        decompressed =
            crate::crypto::decompress(&payload, raw_length as usize).map_err(|e| e.to_string())?;
        &decompressed
    } else {
        &payload
    };
    crate::repo::verify_plain(id, raw_length, plain)?;
    if pass_through {
        Ok(dst.seal(b"", codec, &payload))
    } else {
        Ok(encode_and_seal(dst, level, plain))
    }
}

fn encode_and_seal(dst: &SecretKey, level: i32, plain: &[u8]) -> Vec<u8> {
    ENCODER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, Encoder::new(level)));
        }
        let (_, enc) = slot.as_mut().expect("encoder just made");
        let (codec, payload) = enc.encode(plain);
        dst.seal(b"", codec, &payload)
    })
}
