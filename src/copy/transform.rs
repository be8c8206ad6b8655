//! The CPU stage of a copy: each blob of a ranged read opened with the source key,
//! verified and sealed for the target by the mover's [`Seal`] (the encoded payload
//! passed through when the levels agree, recompressed otherwise). Runs on blocking
//! threads.

use super::failure::Failure;
use crate::format::pack::PackEntry;
use crate::format::pack_name;
use crate::repo::reads::Read;
use crate::repo::repack::Seal;

/// Opens, verifies and re-seals every blob of one ranged read of `bytes`.
pub(super) fn process_read(
    read: &Read,
    bytes: &[u8],
    how: &Seal,
) -> Vec<(PackEntry, Result<Vec<u8>, Failure>)> {
    read.blobs
        .iter()
        .map(|e| {
            let at = (e.offset - read.start) as usize;
            let res = match bytes.get(at..at + e.length as usize) {
                Some(sealed) => how
                    .apply(&pack_name(&read.pack), e, sealed)
                    .map_err(|err| Failure::from_error(&err)),
                None => Err(Failure::Transient {
                    object: pack_name(&read.pack),
                    what: "the ranged read came back short".into(),
                }),
            };
            (*e, res)
        })
        .collect()
}
