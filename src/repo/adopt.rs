//! Adoption: after a crash, packs that reached the repository but no index are indexed
//! by the next writer (backup or copy) instead of being uploaded again.

use futures::StreamExt;

use super::{IO_CONCURRENCY, MasterIndex, Repository};
use crate::format::index::IndexedPack;
use crate::format::{DATA, pack, parse_pack_name};
use crate::{Error, Result};

/// Indexes packs that exist in the target but in no index — left by a copy or backup
/// that was killed after uploading them — so their blobs are not uploaded again. Each
/// pack's header is read (one or two ranged GETs) and authenticated with the target key;
/// a pack that does not open is left alone and reported by `check`.
/// Returns the packs adopted and their bytes.
pub async fn adopt_orphans(target: &Repository, index: &mut MasterIndex) -> Result<(u64, u64)> {
    let mut orphans = Vec::new();
    for m in target.list(DATA).await? {
        let name = target.loc.name_of(&m.location);
        if let Some(id) = parse_pack_name(&name)
            && index.pack(&id).is_none()
        {
            orphans.push((id, name, m.size));
        }
    }
    if orphans.is_empty() {
        return Ok((0, 0));
    }
    let headers: Vec<Option<IndexedPack>> =
        futures::stream::iter(orphans.into_iter().map(|(id, name, size)| async move {
            match read_pack_header(target, &name, size).await {
                Ok(entries) => Some(IndexedPack { id, size, entries }),
                Err(e) => {
                    tracing::warn!("not adopting {name}: {e}");
                    None
                }
            }
        }))
        .buffer_unordered(IO_CONCURRENCY)
        .collect()
        .await;
    let adopted: Vec<IndexedPack> = headers.into_iter().flatten().collect();
    target.save_indexes(&adopted).await?;
    let bytes = adopted.iter().map(|p| p.size).sum();
    for p in &adopted {
        index.add_pack(p, None);
    }
    if !adopted.is_empty() {
        tracing::info!(
            "adopted {} pack(s) left by an interrupted run",
            adopted.len()
        );
    }
    Ok((adopted.len() as u64, bytes))
}

/// Reads and opens a pack's header with ranged reads of its tail.
pub async fn read_pack_header(
    repo: &Repository,
    name: &str,
    size: u64,
) -> Result<Vec<pack::PackEntry>> {
    const TAIL: u64 = 64 << 10;
    if size < pack::PACK_START + pack::TRAILER_LEN as u64 {
        return Err(Error::corrupt(name, "too short to be a pack"));
    }
    let tail_start = size.saturating_sub(TAIL);
    let tail = repo.get_range(name, tail_start..size).await?;
    let (off, len) = pack::parse_trailer(name, &tail[tail.len() - pack::TRAILER_LEN..], size)?;
    let sealed = if off >= tail_start {
        tail.slice((off - tail_start) as usize..(off - tail_start) as usize + len as usize)
    } else {
        repo.get_range(name, off..off + u64::from(len)).await?
    };
    pack::open_header(repo.key(), name, &sealed, off)
}
