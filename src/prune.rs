//! `prune`: frees the data no restore point uses any more (after `forget`). Under the
//! repository's exclusive lock — no backup or copy writes meanwhile — it walks every
//! point's tree to learn the blobs in use, then per pack: kept when enough of it is live,
//! rewritten when its live share fell below a threshold (the live blobs, verified, go
//! into new packs), deleted when nothing in it is live. Packs in no index are deleted
//! once older than a grace period (younger ones may be a dead writer's, for adoption).
//!
//! The order makes a crash at any moment harmless: new packs first, then a complete new
//! index (kept and new packs), then the old index files, then the packs. Interrupted
//! before the new index, the new packs are unindexed (adopted or pruned later); after
//! it, old and new index files overlap (a blob indexed twice is harmless); during the
//! deletes, what is left is unindexed packs. A point's blobs are always indexed in a
//! pack that exists. Anything wrong with the repository — an index that does not read,
//! a point that needs a blob no index has, a pack that is missing — stops prune before
//! it writes or deletes anything.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::format::index::{IndexFile, IndexedPack};
use crate::format::lock::{LockKind, Purpose};
use crate::format::pack::{BlobKind, PackEntry};
use crate::format::{DATA, pack_name, parse_pack_name, point_name};
use crate::progress::Progress;
use crate::repo::lock::LockGuard;
use crate::repo::reach::{Files, Reached, reach};
use crate::repo::reads::{Read, coalesce};
use crate::repo::reindex::Rewrite;
use crate::repo::repack::{Repacker, Seal};
use crate::repo::{IndexBuilder, MasterIndex, Repository};
use crate::{Error, Id, Result};

/// What prune may do.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// A pack whose live bytes are below this share of its size is rewritten.
    pub repack_below: f64,
    /// Packs in no index younger than this are left alone.
    pub grace: Duration,
    /// Plan and report; write and delete nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            repack_below: 0.5,
            grace: Duration::from_secs(24 * 3600),
            dry_run: false,
        }
    }
}

/// What prune found and did (in a dry run: would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub repository: String,
    pub dry_run: bool,
    pub points: usize,
    pub blobs_used: usize,
    pub packs_before: usize,
    pub bytes_before: u64,
    /// Packs kept as they are, with the bytes in them no point uses.
    pub packs_kept: usize,
    pub unused_bytes_kept: u64,
    /// Packs rewritten: their live blobs moved into `packs_written` new packs.
    pub packs_rewritten: usize,
    pub blobs_moved: usize,
    pub bytes_moved: u64,
    pub packs_written: usize,
    /// Packs deleted because nothing in them is used.
    pub packs_deleted: usize,
    /// Packs in no index: deleted (older than the grace period) or left.
    pub unindexed_deleted: usize,
    pub unindexed_left: usize,
    pub index_files_written: usize,
    pub index_files_deleted: usize,
    pub bytes_freed: u64,
    pub packs_after: usize,
    pub bytes_after: u64,
    /// Packs prune would free but whose object lock is still in force (kept, or left
    /// unindexed), their bytes, and when the first of those locks ends.
    pub packs_locked: usize,
    pub bytes_locked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_unlock: Option<chrono::DateTime<chrono::Utc>>,
    /// Packs in an archive class that would have been rewritten but are kept whole.
    pub archived_kept: usize,
    /// A folder's staging files left by killed writers (no listing shows them): found,
    /// and removed (not in a dry run); their bytes count as freed.
    pub staging_files: u64,
    pub staging_bytes: u64,
}

/// A pack's fate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Keep,
    Rewrite,
    Delete,
}

/// Prunes `repo` (see the module's header).
pub async fn prune(
    repo: &Arc<Repository>,
    opts: &PruneOptions,
    progress: &Progress,
) -> Result<PruneReport> {
    if !(0.0..=1.0).contains(&opts.repack_below) {
        return Err(Error::Invalid(format!(
            "repack threshold {}: a share of a pack between 0 and 1",
            opts.repack_below
        )));
    }
    // A dry run only reads, beside writers; a real one has the repository to itself.
    let kind = match opts.dry_run {
        true => LockKind::Shared,
        false => LockKind::Exclusive,
    };
    let lock = LockGuard::acquire(repo, kind, Purpose::Prune, None).await?;
    let result = run(repo, opts, progress).await;
    lock.release_after(result).await
}

async fn run(
    repo: &Arc<Repository>,
    opts: &PruneOptions,
    progress: &Progress,
) -> Result<PruneReport> {
    let mut plan = plan(repo, opts).await?;
    (plan.report.staging_files, plan.report.staging_bytes) = repo.count_staging().await;
    if opts.dry_run {
        return Ok(plan.report);
    }
    let mut r = execute(repo, plan, progress).await?;
    // Under the exclusive lock no writer is alive: every staging file is a dead
    // writer's (but one a disagreeing clock makes look new).
    let cutoff = repo.clock().now() - crate::repo::adopt::CLOCK_MARGIN;
    (r.staging_files, r.staging_bytes) = repo.sweep_staging(cutoff).await;
    r.bytes_freed += r.staging_bytes;
    Ok(r)
}

/// What prune will do, decided from what it read; nothing is changed yet. A dry run
/// reports it; [`execute`] carries it out.
pub struct PrunePlan {
    /// The report as planned (counts before, and what the plan frees and moves).
    pub report: PruneReport,
    index: MasterIndex,
    /// The index files read: all replaced by the new index.
    index_files: Vec<(String, IndexFile)>,
    /// Indexed packs that no index may name any more (deleted or rewritten).
    dropped: HashSet<Id>,
    /// The packs kept, and their bytes.
    kept: (usize, u64),
    /// The live blobs of the packs rewritten.
    to_move: Vec<(usize, Id)>,
    /// Packs deleted or rewritten, and unindexed packs past the grace period: deleted
    /// once the new index no longer names them.
    doomed: Vec<Id>,
    /// Bytes of unindexed packs within the grace period (left, and counted after).
    young_unindexed_bytes: u64,
}

/// What is stored under `data/`: each pack's size and time written.
type Stored = HashMap<Id, (u64, chrono::DateTime<chrono::Utc>)>;

/// Each indexed pack's size and entries, as its index file has them.
type Entries<'a> = HashMap<Id, (u64, &'a [PackEntry])>;

/// Reads the repository and plans the prune (see the module's header). Everything is
/// read, and must read, before anything changes.
pub async fn plan(repo: &Arc<Repository>, opts: &PruneOptions) -> Result<PrunePlan> {
    let mut r = PruneReport {
        repository: repo.url().to_string(),
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let index_files = repo.load_index_files(repo.index_names().await?).await?;
    let mut index = IndexBuilder::default();
    for (name, f) in &index_files {
        index.add_file(name, f);
    }
    let index = index.finish();
    let points = repo.load_points().await?;
    r.points = points.len();
    let used = used_blobs(repo, &index, &points).await?;
    r.blobs_used = used.blobs.len();
    let stored: Stored = repo
        .list(DATA)
        .await?
        .into_iter()
        .filter_map(|m| {
            let id = parse_pack_name(&repo.loc.name_of(&m.location))?;
            Some((id, (m.size, m.last_modified)))
        })
        .collect();
    // Every indexed pack's entries (a pack may be in several index files: once each),
    // borrowed from the index files held for the rewrite, not copied.
    let mut entries: Entries = HashMap::new();
    for (_, f) in &index_files {
        for p in &f.packs {
            entries.entry(p.id).or_insert((p.size, &p.entries[..]));
        }
    }
    // A used blob lives where the index finds it first; copies elsewhere are dead.
    let canonical = |e: &PackEntry, pack: &Id| {
        used.uses(&e.id)
            && index
                .get(&e.id)
                .is_some_and(|l| index.pack_id(l.pack) == *pack)
    };
    let mut fates = decide(repo, opts, &entries, &stored, &canonical, &mut r)?;
    hold_locked(repo, &mut fates, &stored, &mut r).await?;
    let mut to_move: Vec<(usize, Id)> = Vec::new();
    for (id, (_, es)) in &entries {
        match fates.get(id) {
            Some(Fate::Rewrite) => {
                to_move.extend(es.iter().filter(|e| canonical(e, id)).map(|e| (0, e.id)))
            }
            Some(Fate::Keep) => {
                r.unused_bytes_kept += es
                    .iter()
                    .filter(|e| !canonical(e, id))
                    .map(|e| u64::from(e.length))
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    let (unindexed, young_unindexed_bytes) =
        unindexed_fates(repo, opts, &entries, &stored, &mut r).await?;
    for (id, fate) in &fates {
        let Some((size, _)) = stored.get(id) else {
            continue;
        };
        match fate {
            Fate::Keep => r.packs_kept += 1,
            Fate::Rewrite => r.packs_rewritten += 1,
            Fate::Delete => r.packs_deleted += 1,
        }
        if *fate != Fate::Keep {
            r.bytes_freed += size;
        }
    }
    r.blobs_moved = to_move.len();
    r.bytes_moved = to_move
        .iter()
        .filter_map(|(_, id)| index.get(id).map(|l| u64::from(l.length)))
        .sum();
    r.packs_after = r.packs_before - r.packs_deleted - r.packs_rewritten - r.unindexed_deleted;
    r.bytes_after = r.bytes_before - r.bytes_freed + r.bytes_moved;
    let kept = (entries.iter())
        .filter(|(id, _)| fates.get(id) == Some(&Fate::Keep) && stored.contains_key(id))
        .fold((0, 0), |(n, b), (_, (size, _))| (n + 1, b + size));
    let dropped = (fates.iter())
        .filter(|(_, f)| **f != Fate::Keep)
        .map(|(id, _)| *id)
        .collect();
    let doomed = (fates.iter())
        .filter(|(id, f)| **f != Fate::Keep && stored.contains_key(id))
        .map(|(id, _)| *id)
        .chain(unindexed)
        .collect();
    Ok(PrunePlan {
        report: r,
        index,
        index_files,
        dropped,
        kept,
        to_move,
        doomed,
        young_unindexed_bytes,
    })
}

/// Each indexed pack's fate by its live share; the counts before go into `r`. An
/// indexed pack that holds live blobs but is missing from the store stops prune.
fn decide(
    repo: &Repository,
    opts: &PruneOptions,
    entries: &Entries<'_>,
    stored: &Stored,
    canonical: &dyn Fn(&PackEntry, &Id) -> bool,
    r: &mut PruneReport,
) -> Result<HashMap<Id, Fate>> {
    let archived_data = repo
        .config
        .storage
        .data_class
        .as_deref()
        .is_some_and(crate::store::class::is_archived);
    let mut fates: HashMap<Id, Fate> = HashMap::new();
    for (id, (size, es)) in entries {
        let live: u64 = es
            .iter()
            .filter(|e| canonical(e, id))
            .map(|e| u64::from(e.length))
            .sum();
        // Shares are of the blobs' bytes: a pack's header is not waste.
        let blobs: u64 = es.iter().map(|e| u64::from(e.length)).sum();
        let present = stored.contains_key(id);
        if live > 0 && !present {
            return Err(Error::corrupt(
                pack_name(id),
                "is indexed and holds blobs restore points need, but is missing from the store; \
                 prune changed nothing — run `offsite check` to see which points it breaks",
            ));
        }
        r.packs_before += usize::from(present);
        r.bytes_before += if present { *size } else { 0 };
        // Data packs in an archive class are not read back to be rewritten: that
        // would mean a retrieval (hours, and a price) for a few freed bytes.
        let archived = archived_data && es.iter().any(|e| e.kind == BlobKind::Data);
        let fate = if live == 0 {
            Fate::Delete
        } else if (live as f64) < opts.repack_below * (blobs as f64) && !archived {
            Fate::Rewrite
        } else {
            r.archived_kept +=
                usize::from(archived && (live as f64) < opts.repack_below * (blobs as f64));
            Fate::Keep
        };
        fates.insert(*id, fate);
    }
    Ok(fates)
}

/// Under object lock, a pack is deleted or rewritten only once its lock has ended: the
/// others are kept, and counted as locked.
async fn hold_locked(
    repo: &Repository,
    fates: &mut HashMap<Id, Fate>,
    stored: &Stored,
    r: &mut PruneReport,
) -> Result<()> {
    if repo.config.storage.lock.is_none() {
        return Ok(());
    }
    let now = repo.clock().now();
    let doomed: Vec<Id> = fates
        .iter()
        .filter(|(id, f)| **f != Fate::Keep && stored.contains_key(id))
        .map(|(id, _)| *id)
        .collect();
    for (id, until) in locked_until(repo, &doomed).await? {
        if until > now {
            fates.insert(id, Fate::Keep);
            r.packs_locked += 1;
            r.bytes_locked += stored.get(&id).map_or(0, |s| s.0);
            r.next_unlock = Some(r.next_unlock.map_or(until, |n| n.min(until)));
        }
    }
    Ok(())
}

/// The packs in no index: those past the grace period (and not locked) to delete, and
/// the bytes of those within it; counted in `r`.
async fn unindexed_fates(
    repo: &Repository,
    opts: &PruneOptions,
    entries: &Entries<'_>,
    stored: &Stored,
    r: &mut PruneReport,
) -> Result<(Vec<Id>, u64)> {
    let now = repo.clock().now();
    let grace = chrono::Duration::from_std(opts.grace).unwrap_or(chrono::Duration::MAX);
    let old_unindexed: Vec<Id> = stored
        .iter()
        .filter(|(id, (_, m))| !entries.contains_key(id) && now - *m >= grace)
        .map(|(id, _)| *id)
        .collect();
    let locks: HashMap<Id, chrono::DateTime<chrono::Utc>> = match repo.config.storage.lock {
        Some(_) => locked_until(repo, &old_unindexed)
            .await?
            .into_iter()
            .collect(),
        None => HashMap::new(),
    };
    let (mut doomed, mut young_bytes) = (Vec::new(), 0);
    for (id, (size, modified)) in stored {
        if entries.contains_key(id) {
            continue;
        }
        r.packs_before += 1;
        r.bytes_before += size;
        let young = now - *modified < grace;
        young_bytes += if young { *size } else { 0 };
        if let Some(until) = locks.get(id).filter(|u| **u > now) {
            r.unindexed_left += 1;
            r.packs_locked += 1;
            r.bytes_locked += size;
            r.next_unlock = Some(r.next_unlock.map_or(*until, |n| n.min(*until)));
        } else if !young {
            doomed.push(*id);
            r.unindexed_deleted += 1;
            r.bytes_freed += size;
        } else {
            r.unindexed_left += 1;
        }
    }
    Ok((doomed, young_bytes))
}

/// Carries out `plan` in the crash-safe order: new packs, a complete new index, the old
/// index files, then the packs no index names any more.
pub async fn execute(
    repo: &Arc<Repository>,
    plan: PrunePlan,
    progress: &Progress,
) -> Result<PruneReport> {
    let PrunePlan {
        report: mut r,
        index,
        index_files,
        dropped,
        kept,
        to_move,
        doomed,
        young_unindexed_bytes,
    } = plan;
    r.dry_run = false;
    // 1. The live blobs of packs being rewritten, verified, into new packs.
    let reads = coalesce(to_move.iter().copied(), &[&index], 16 << 20)?;
    let written = move_blobs(repo, reads, progress).await?;
    r.packs_written = written.len();
    // 2. and 3. A complete new index (every kept pack and the new ones), then the old
    //    index files.
    let rw = Rewrite {
        added: &written,
        dropped: &dropped,
        moved: &HashSet::new(),
        whole: true,
    };
    let rewritten = repo.rewrite_index(index_files, rw).await?;
    r.index_files_written = rewritten.written;
    r.index_files_deleted = rewritten.deleted;
    // 4. The packs no index names any more.
    repo.delete_all(doomed.iter().map(pack_name).collect())
        .await?;
    let written_bytes: u64 = written.iter().map(|p| p.size).sum();
    r.packs_after = kept.0 + written.len() + r.unindexed_left;
    r.bytes_after = kept.1 + written_bytes + young_unindexed_bytes;
    Ok(r)
}

/// The lock dates of `packs` that are locked (one HEAD each).
async fn locked_until(
    repo: &Repository,
    packs: &[Id],
) -> Result<Vec<(Id, chrono::DateTime<chrono::Utc>)>> {
    let names: Vec<String> = packs.iter().map(pack_name).collect();
    let states = repo.object_states(&names).await?;
    Ok(packs
        .iter()
        .zip(states)
        .filter_map(|(id, s)| Some((*id, s.locked_until()?)))
        .collect())
}

/// Every blob the points use (`repo::reach`). A point that cannot be read, or needs a
/// blob no index has, stops prune.
async fn used_blobs(
    repo: &Repository,
    index: &MasterIndex,
    points: &[(Id, crate::format::point::Point)],
) -> Result<Reached> {
    let all = points.iter().map(|(id, p)| (id, p));
    let used = (reach(repo, index, all, Files::All).await).map_err(|e| {
        stop(
            e.object().unwrap_or("a restore point's tree"),
            &e.to_string(),
        )
    })?;
    if let Some(missing) = used.unindexed.first() {
        return Err(stop(
            &point_name(&missing.point),
            &format!(
                "the restore point needs blob {} which is in no index",
                missing.blob.short()
            ),
        ));
    }
    Ok(used)
}

fn stop(object: &str, why: &str) -> Error {
    Error::corrupt(
        object,
        format!("{why}; prune changed nothing — run `offsite check` to see what is damaged"),
    )
}

/// Moves the blobs of `reads` into new packs (the mover: verified, kept as stored); a
/// blob that does not verify stops prune.
async fn move_blobs(
    repo: &Arc<Repository>,
    reads: Vec<Read>,
    progress: &Progress,
) -> Result<Vec<IndexedPack>> {
    let repacker = Repacker::new(repo.clone());
    let moved = repacker
        .take(repo, reads, &Seal::between(repo, repo), progress)
        .await?;
    if let Some(f) = moved.failed_reads.into_iter().next() {
        return Err(f.error);
    }
    if let Some((_, e)) = moved.bad.into_iter().next() {
        return Err(e);
    }
    repacker.finish().await
}
