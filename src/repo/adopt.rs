//! Adoption: packs that reached the repository but no index — left by a writer that
//! died — are indexed by the next writer (backup or copy) instead of being uploaded
//! again. Only dead writers' packs: a live writer indexes its own (FORMAT.md §9).

use chrono::{DateTime, Utc};
use futures::StreamExt;

use super::lock::list_locks;
use super::{IO_CONCURRENCY, MasterIndex, Repository};
use crate::format::index::IndexedPack;
use crate::format::{DATA, pack, parse_pack_name};
use crate::{Error, Result};

/// How much older than a live lock a pack must be to be adoptable: room for the writer's
/// clock and the store's to disagree.
pub const CLOCK_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// Indexes the adoptable packs that exist in the repository but in no index, so their
/// blobs are not uploaded again. A pack is adoptable when it is older (by
/// [`CLOCK_MARGIN`]) than every live lock but the caller's own (`mine`, the names of the
/// caller's locks): every writer locks before it writes a pack, so a live writer's packs
/// are younger than its lock and stay its own to index. Each pack's header is read (one
/// or two ranged GETs) and authenticated with the repository's key; a pack that does not
/// open is left alone and reported by `check`. Returns the packs adopted and their bytes.
pub async fn adopt_orphans(
    target: &Repository,
    index: &mut MasterIndex,
    mine: &[&str],
) -> Result<(u64, u64)> {
    let look = PackLook::read(target, mine).await?;
    adopt_looked(target, index, look).await
}

/// What adoption reads besides the index: the packs stored — one LIST, side by side with
/// the index by a caller that reads it too. A pack listed before its writer's index
/// appears is at worst indexed twice, which is harmless (the first location of a blob
/// wins). The live locks are read only when some pack is in no index.
#[derive(Debug)]
pub struct PackLook {
    packs: Vec<object_store::ObjectMeta>,
    mine: Vec<String>,
}

impl PackLook {
    pub async fn read(target: &Repository, mine: &[&str]) -> Result<PackLook> {
        Ok(PackLook {
            packs: target.list(DATA).await?,
            mine: mine.iter().map(|m| m.to_string()).collect(),
        })
    }
}

/// [`adopt_orphans`] with the packs listed already.
pub async fn adopt_looked(
    target: &Repository,
    index: &mut MasterIndex,
    look: PackLook,
) -> Result<(u64, u64)> {
    let PackLook { packs, mine } = look;
    let unindexed: Vec<_> = packs
        .into_iter()
        .filter_map(|m| {
            let name = target.loc.name_of(&m.location);
            let id = parse_pack_name(&name)?;
            index.pack(&id).is_none().then_some((id, name, m))
        })
        .collect();
    if unindexed.is_empty() {
        return Ok((0, 0));
    }
    let mine: Vec<&str> = mine.iter().map(String::as_str).collect();
    let cutoff = adoption_cutoff(target, &mine).await?;
    let mut orphans = Vec::new();
    let mut held = 0;
    for (id, name, m) in unindexed {
        if cutoff.is_some_and(|c| m.last_modified >= c) {
            held += 1;
        } else {
            orphans.push((id, name, m.size));
        }
    }
    if held > 0 {
        tracing::info!(
            "{held} unindexed pack(s) in {} may belong to a writer that is still running; not adopting them",
            target.url()
        );
    }
    if orphans.is_empty() {
        return Ok((0, 0));
    }
    let headers: Vec<Option<IndexedPack>> =
        futures::stream::iter(orphans.into_iter().map(|(id, name, size)| async move {
            match read_pack_header(target, &name, size).await {
                Ok(entries) => Some(IndexedPack { id, size, entries }),
                // Deleted since it was listed (a health check replaced it, prune
                // removed it): nothing to adopt, and nothing wrong.
                Err(Error::NotFound { .. }) => None,
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

/// Packs written at or after this moment may be a live writer's: the creation of the
/// oldest live lock not in `mine`, less the clock margin. `None`: no other live writer.
async fn adoption_cutoff(repo: &Repository, mine: &[&str]) -> Result<Option<DateTime<Utc>>> {
    let now = repo.clock().now();
    Ok(list_locks(repo)
        .await?
        .into_iter()
        .filter(|l| !mine.contains(&l.name.as_str()) && !l.lock.is_stale(now))
        .map(|l| l.lock.created - CLOCK_MARGIN)
        .min())
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::ObjectStoreExt;

    use super::*;
    use crate::store::flaky::{Fault, Op};
    use crate::testkit;

    /// Packs a transfer wrote but nobody indexed (the runner died before its commit) are
    /// adopted once, even when reading a header needs a retry; a pack that does not open
    /// with the repository's key is left alone.
    #[tokio::test]
    async fn unindexed_packs_are_adopted_once_and_foreign_ones_never() {
        let src = testkit::repo(testkit::memory(), 16 << 20).await;
        let _files = testkit::backups(&src, &["web"]).await;
        let (flaky, _, target) = testkit::flaky(1 << 20, 1 << 30).await;
        let target = Arc::new(target);
        let (srcs, plans) = testkit::plans(&src, &target).await;
        let out = testkit::transfer(&plans[0], &srcs, &target).await.unwrap();
        assert!(!out.packs.is_empty());
        // A pack of another repository (another key) dropped among the target's packs.
        let stranger = testkit::repo(testkit::memory(), 1 << 20).await;
        let _other = testkit::backups(&stranger, &["other"]).await;
        let foreign = stranger.list(DATA).await.unwrap()[0].clone();
        let fname = stranger.loc.name_of(&foreign.location);
        let fbytes = stranger.get(&fname).await.unwrap();
        flaky
            .put(&fname.as_str().into(), fbytes.into())
            .await
            .unwrap();
        flaky.fail(Op::Get, "data/", Fault::Unavailable, 1);

        let mut index = target.load_index().await.unwrap();
        assert_eq!(index.blob_count(), 0);
        let (n, bytes) = adopt_orphans(&target, &mut index, &[]).await.unwrap();
        assert_eq!(n as usize, out.packs.len());
        assert_eq!(bytes, out.packs.iter().map(|p| p.size).sum::<u64>());
        for p in &out.packs {
            for e in &p.entries {
                assert!(index.get(&e.id).is_some());
            }
        }
        let foreign_id = parse_pack_name(&fname).unwrap();
        assert!(
            index.pack(&foreign_id).is_none(),
            "a foreign pack was adopted"
        );
        // The adoption is indexed: a second look finds nothing new.
        let mut again = target.load_index().await.unwrap();
        assert_eq!(
            adopt_orphans(&target, &mut again, &[]).await.unwrap(),
            (0, 0)
        );
    }
}
