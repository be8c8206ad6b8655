//! The CPU stage of a copy: open each blob of a ranged read with the source key, verify
//! its id, and seal it for the target — passing the encoded payload through when the
//! levels agree, recompressing otherwise. Runs on blocking threads.

use super::failure::Failure;
use crate::crypto::SecretKey;
use crate::format::pack::PackEntry;
use crate::format::pack_name;
use crate::repo::blob;
use crate::repo::reads::Read;

/// How blobs are re-sealed for the target.
#[derive(Clone)]
pub(super) struct Reseal {
    pub src: SecretKey,
    pub dst: SecretKey,
    pub pass_through: bool,
    pub level: i32,
}

/// Opens, verifies and re-seals every blob of one ranged read of `bytes`.
pub(super) fn process_read(
    read: &Read,
    bytes: &[u8],
    how: &Reseal,
) -> Vec<(PackEntry, Result<Vec<u8>, Failure>)> {
    read.blobs
        .iter()
        .map(|e| {
            let at = (e.offset - read.start) as usize;
            let res = match bytes.get(at..at + e.length as usize) {
                Some(sealed) => reseal(e, sealed, how).map_err(|what| Failure::Corrupt {
                    object: pack_name(&read.pack),
                    blob: e.id,
                    what,
                }),
                None => Err(Failure::Transient {
                    object: pack_name(&read.pack),
                    what: "the ranged read came back short".into(),
                }),
            };
            (*e, res)
        })
        .collect()
}

/// Decrypts with the source key, checks the plaintext hashes to the blob's id, and seals
/// for the target: the same payload when passing through, else recompressed.
fn reseal(e: &PackEntry, sealed: &[u8], how: &Reseal) -> Result<Vec<u8>, String> {
    let opened = blob::open_encoded(&how.src, &e.id, e.raw_length, sealed)?;
    Ok(if how.pass_through {
        blob::seal_encoded(&how.dst, opened.codec, &opened.payload)
    } else {
        blob::seal(&how.dst, how.level, opened.plain())
    })
}
