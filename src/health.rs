//! The health check of a copy (a job's phase 2, when due): every blob of each machine's
//! newest point in the target is read and verified — its tree blobs first, then the
//! data they name. A blob that is corrupt, missing from the store or from the index is
//! **fetched again from a source** that still has it (opened with the source's key,
//! sealed with the target's, packed into new packs) and the index is repaired so it
//! points at the good copy: the point stays valid without a new backup. What no source
//! has any more is reported with the points it breaks.
//!
//! Runs under the repository's exclusive lock. Crash-safe in the order it writes: new
//! packs, an index for them, the index files that named bad copies rewritten without
//! those entries, then the old index files deleted. Stopped before the deletes, a blob
//! may be indexed twice (the bad copy possibly found first): the next check heals it
//! again.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;

use crate::format::index::IndexedPack;
use crate::format::lock::{LockKind, Purpose};
use crate::format::mark::{Mark, MarkKind};
use crate::format::pack_name;
use crate::format::point::Point;
use crate::prices::Prices;
use crate::progress::Progress;
use crate::repo::immutable::LOOKS_IN_FLIGHT;
use crate::repo::lock::LockGuard;
use crate::repo::reach::{Files, reach};
use crate::repo::reads::{Read, coalesce};
use crate::repo::reindex::Rewrite;
use crate::repo::repack::{Repacker, Seal};
use crate::repo::{IO_CONCURRENCY, MasterIndex, Repository, blob};
use crate::retrieval;
use crate::store::cloud::ObjectState;
use crate::{Error, Id, Result};

/// Longest single read while verifying.
const VERIFY_READ: u64 = 16 << 20;

/// A point the check found damaged beyond healing.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct DamagedPoint {
    pub machine: String,
    pub point: Id,
    /// Blobs it needs that are bad in the target and in no source.
    pub blobs_lost: usize,
    /// One of the problems, in words.
    pub reason: String,
}

/// What a health check found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct HealthReport {
    pub repository: String,
    /// The points checked: each machine's newest.
    pub points: usize,
    pub blobs_checked: usize,
    pub bytes_read: u64,
    /// Blobs found bad (corrupt, missing from the store or the index).
    pub blobs_bad: usize,
    /// Of those, fetched again from a source.
    pub blobs_healed: usize,
    pub packs_written: usize,
    /// Points that stay damaged.
    pub damaged: Vec<DamagedPoint>,
    /// The first few problems found (said in words in reports).
    pub findings: Vec<Finding>,
    /// On an archive class: data packs looked at (present, their size as indexed)
    /// rather than read, since reading them needs a retrieval first.
    pub archived_packs: usize,
    pub archived_bytes: u64,
    /// Of those, packs whose size differs from the index's.
    pub archived_suspect: usize,
    /// The damaged packs replaced (their bad blobs fetched again, the rest moved).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub healed: Vec<HealedPack>,
    /// What retrieving the archived packs (to read them) would cost, per tier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrieval: Option<Vec<crate::prices::RetrievalQuote>>,
}

/// One problem the health check found. Reports carry it as its sentence (as they always
/// did); callers match on the variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// A blob that is bad: `why` names it, its object and what is wrong.
    Blob { blob: Id, why: String },
    /// A data pack in an archive class whose stored size is not the index's.
    ArchivedPackSize { pack: Id, size: u64, indexed: u64 },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Blob { why, .. } => f.write_str(why),
            Finding::ArchivedPackSize {
                pack,
                size,
                indexed,
            } => write!(
                f,
                "archived pack {} is {size} bytes where the index says {indexed}: \
                 `offsite check --read-data --retrieve TIER` reads it",
                pack.short()
            ),
        }
    }
}

impl Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl HealthReport {
    pub fn is_healthy(&self) -> bool {
        self.damaged.is_empty() && self.archived_suspect == 0
    }
}

/// A damaged pack the health check replaced.
#[derive(Clone, Debug, Serialize)]
pub struct HealedPack {
    pub pack: Id,
    /// Its blobs that did not verify.
    pub bad_blobs: usize,
    /// The points checked (each machine's newest) that use a blob it held.
    pub points: usize,
    /// The sources its bad blobs were copied again from.
    pub sources: Vec<String>,
    /// Every blob it held (to count the points that used it).
    #[serde(skip)]
    blobs: HashSet<Id>,
}

impl std::fmt::Display for HealedPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, p) = (self.bad_blobs, self.points);
        write!(
            f,
            "pack {} was damaged ({n} bad blob{}); {p} of the points checked used it; \
             its bad blobs were copied again from {} and it was replaced",
            self.pack.short(),
            if n == 1 { "" } else { "s" },
            match self.sources.as_slice() {
                [] => "no source".to_string(),
                [one] => format!("source {one}"),
                many => format!("sources {}", many.join(", ")),
            }
        )
    }
}

/// Why a blob is bad.
type Bad = HashMap<Id, String>;

/// Checks the newest point of each machine in `target`, healing from `sources`.
pub async fn check_and_heal(
    target: &Arc<Repository>,
    sources: &[Arc<Repository>],
    progress: &Progress,
) -> Result<HealthReport> {
    exclusively(target, Purpose::HealthCheck, run(target, sources, progress)).await
}

/// Runs `work` under the repository's exclusive lock, taken as `what`.
async fn exclusively(
    target: &Arc<Repository>,
    what: Purpose,
    work: impl Future<Output = Result<HealthReport>>,
) -> Result<HealthReport> {
    let lock = LockGuard::acquire(target, LockKind::Exclusive, what, None).await?;
    lock.release_after(work.await).await
}

/// An empty report, and each machine's newest point in `target`.
async fn begin(target: &Repository) -> Result<(HealthReport, Vec<(Id, Point)>)> {
    let points = newest_per_machine(target.load_points().await?);
    let r = HealthReport {
        repository: target.url().to_string(),
        points: points.len(),
        ..Default::default()
    };
    Ok((r, points))
}

async fn run(
    target: &Arc<Repository>,
    sources: &[Arc<Repository>],
    progress: &Progress,
) -> Result<HealthReport> {
    let (mut r, points) = begin(target).await?;
    let mut lost: HashMap<Id, String> = HashMap::new();

    // Tree blobs first: the data blobs are only known once the trees read.
    let trees: Vec<Id> = unique(points.iter().flat_map(|(_, p)| p.tree.iter().copied()));
    let index = target.load_index().await?;
    let bad = verify(target, &index, &trees, &mut r).await?;
    let mut healed = heal(target, sources, bad, &mut r, &mut lost, progress).await?;

    // Then the data each point's tree names (per point, to say which points break).
    let index = target.load_index().await?;
    let mut per_point: Vec<Vec<Id>> = Vec::new();
    let mut unreadable: Vec<(usize, String)> = Vec::new();
    for (n, (id, p)) in points.iter().enumerate() {
        let mut used = Vec::new();
        if !p.tree.iter().any(|t| lost.contains_key(t)) {
            match reach(target, &index, [(id, p)], Files::All).await {
                Ok(r) => used = r.blobs,
                Err(e) => unreadable.push((n, e.to_string())),
            }
        }
        // Its tree blobs were verified above; its data is what is left.
        let trees: HashSet<&Id> = p.tree.iter().collect();
        used.retain(|b| !trees.contains(b));
        per_point.push(used);
    }
    let data = unique(per_point.iter().flatten().copied());
    let archive = target.config.storage.data_class.as_deref();
    let data = match archive.is_some_and(crate::store::class::is_archived) {
        true => look_at_archived(target, &index, data, &mut r).await?,
        false => data,
    };
    let bad = verify(target, &index, &data, &mut r).await?;
    healed.extend(heal(target, sources, bad, &mut r, &mut lost, progress).await?);
    for h in &mut healed {
        h.points = (points.iter().zip(&per_point))
            .filter(|((_, p), data)| p.tree.iter().chain(*data).any(|b| h.blobs.contains(b)))
            .count();
    }
    r.healed = healed;

    // What stays broken, per point: marked damaged (and a mark set by an earlier check
    // taken back from a point that is whole again).
    let marked = target.load_marks().await?;
    let had_mark = |id: &Id| {
        let marks = marked.get(id).map(Vec::as_slice).unwrap_or_default();
        marks.iter().any(|m| m.kind == MarkKind::Damaged)
    };
    for (n, (id, p)) in points.iter().enumerate() {
        let needs = p.tree.iter().chain(&per_point[n]);
        let tree_or_data: Vec<&String> = needs.filter_map(|b| lost.get(b)).collect();
        let walk_error = unreadable.iter().find(|(i, _)| *i == n).map(|(_, e)| e);
        if tree_or_data.is_empty() && walk_error.is_none() {
            if had_mark(id) {
                target.clear_damaged(id).await?;
            }
            continue;
        }
        let reason = walk_error
            .cloned()
            .or_else(|| tree_or_data.first().map(|s| s.to_string()))
            .unwrap_or_default();
        let mark = Mark {
            point: *id,
            kind: MarkKind::Damaged,
            detail: format!("{} blob(s) lost: {reason}", tree_or_data.len()),
            set_at: target.clock().now(),
            until: None,
        };
        target.set_damaged(&mark).await?;
        r.damaged.push(DamagedPoint {
            machine: p.machine.clone(),
            point: *id,
            blobs_lost: tree_or_data.len(),
            reason,
        });
    }
    Ok(r)
}

/// An active full: every blob of each machine's newest point that a source still has
/// is read from the source into fresh packs, and the packs that held it are rewritten
/// (their other blobs moved) and deleted — so the newest points depend on no pack
/// written before. Blobs no source has any more stay where they are. Under the
/// repository's exclusive lock; the report counts the blobs refreshed as healed.
pub async fn active_full(
    target: &Arc<Repository>,
    sources: &[Arc<Repository>],
    progress: &Progress,
) -> Result<HealthReport> {
    exclusively(
        target,
        Purpose::ActiveFull,
        refresh(target, sources, progress),
    )
    .await
}

async fn refresh(
    target: &Arc<Repository>,
    sources: &[Arc<Repository>],
    progress: &Progress,
) -> Result<HealthReport> {
    let (mut r, points) = begin(target).await?;
    let index = target.load_index().await?;
    let all = points.iter().map(|(id, p)| (id, p));
    let ids = reach(target, &index, all, Files::All).await?.blobs;
    let mut at_sources = HashSet::new();
    for s in sources {
        let i = s.load_index().await?;
        at_sources.extend(ids.iter().filter(|b| i.contains(b)).copied());
    }
    let fresh: Bad = (ids.into_iter())
        .filter(|b| at_sources.contains(b) && index.contains(b))
        .map(|b| (b, "active full".to_string()))
        .collect();
    r.blobs_checked = fresh.len();
    let mut lost = HashMap::new();
    // Refreshed, not damaged: which packs it replaced is not news.
    let _replaced = heal(target, sources, fresh, &mut r, &mut lost, progress).await?;
    for (b, why) in lost {
        let why = format!("blob {}: {why}", b.short());
        r.findings.push(Finding::Blob { blob: b, why });
    }
    Ok(r)
}

/// Each machine's newest point.
fn newest_per_machine(points: Vec<(Id, Point)>) -> Vec<(Id, Point)> {
    let mut newest: BTreeMap<String, (Id, Point)> = BTreeMap::new();
    for (id, p) in points {
        let newer = newest.get(&p.machine).is_none_or(|(_, q)| p.time > q.time);
        if newer {
            newest.insert(p.machine.clone(), (id, p));
        }
    }
    newest.into_values().collect()
}

fn unique(ids: impl Iterator<Item = Id>) -> Vec<Id> {
    let mut seen = HashSet::new();
    ids.filter(|i| seen.insert(*i)).collect()
}

/// Reads and verifies `ids` in the target; the bad ones and why.
/// On a target whose data packs go to an archive class, the packs holding `data` that
/// cannot be read now are looked at — one HEAD each: there, and the size the index says
/// — rather than read, and what reading them would cost goes into the report. Returns
/// the blobs to verify by reading: those in packs readable now (rehydrated, or in
/// another class), in a pack that is gone (the heal fetches them again) or in no index.
async fn look_at_archived(
    target: &Repository,
    index: &MasterIndex,
    data: Vec<Id>,
    r: &mut HealthReport,
) -> Result<Vec<Id>> {
    let mut by_pack: BTreeMap<Id, Vec<Id>> = BTreeMap::new();
    let mut rest = Vec::new();
    for b in data {
        match index.get(&b) {
            Some(l) => by_pack.entry(index.pack_id(l.pack)).or_default().push(b),
            None => rest.push(b),
        }
    }
    let names: Vec<String> = by_pack.keys().map(pack_name).collect();
    let looks: Vec<Result<ObjectState>> = futures::stream::iter(&names)
        .map(|n| target.object_state(n))
        .buffered(LOOKS_IN_FLIGHT)
        .collect()
        .await;
    let (mut archived, mut states) = (BTreeMap::new(), Vec::new());
    for ((pack, blobs), look) in by_pack.into_iter().zip(looks) {
        let indexed = index.pack(&pack).map_or(0, |p| p.size);
        match look {
            Ok(s) if s.needs_retrieval() => {
                if s.size != indexed {
                    r.archived_suspect += 1;
                }
                // The first few, as for read problems.
                if s.size != indexed && r.findings.len() < 10 {
                    r.findings.push(Finding::ArchivedPackSize {
                        pack,
                        size: s.size,
                        indexed,
                    });
                }
                archived.insert(pack, indexed);
                states.push(s);
            }
            Ok(_) | Err(Error::NotFound { .. }) => rest.extend(blobs),
            Err(e) => return Err(e),
        }
    }
    if !archived.is_empty() {
        let plan = retrieval::plan_of(target, &archived, states, &Prices::load(None)?);
        r.archived_packs = plan.archived.len();
        r.archived_bytes = plan.archived_bytes;
        r.retrieval = Some(plan.quotes);
    }
    Ok(rest)
}

async fn verify(
    target: &Repository,
    index: &MasterIndex,
    ids: &[Id],
    r: &mut HealthReport,
) -> Result<Bad> {
    let mut bad: Bad = ids
        .iter()
        .filter(|id| !index.contains(id))
        .map(|id| (*id, format!("blob {} is in no index", id.short())))
        .collect();
    let needed: Vec<(usize, Id)> = ids.iter().map(|id| (0, *id)).collect();
    let reads = coalesce(needed.iter().copied(), &[index], VERIFY_READ)?;
    r.blobs_checked += ids.len();
    let results: Vec<Checked> = futures::stream::iter(reads)
        .map(|read| async move { fetch_verified(target, &read).await })
        .buffer_unordered(IO_CONCURRENCY / 2)
        .collect()
        .await;
    for c in results {
        r.bytes_read += c.bytes;
        bad.extend(c.bad);
    }
    r.blobs_bad += bad.len();
    for (blob, why) in bad.iter().take(10 - r.findings.len().min(10)) {
        r.findings.push(Finding::Blob {
            blob: *blob,
            why: why.clone(),
        });
    }
    Ok(bad)
}

/// Replaces every pack holding a `bad` blob: its good blobs move (verified) into new
/// packs, its bad ones are fetched from the sources that have them (re-sealed); the
/// index then names the new packs instead and the damaged pack is deleted. A pack with
/// a blob no source has is kept (indexed less what was healed), and the blob goes into
/// `lost`. Returns the packs replaced.
async fn heal(
    target: &Arc<Repository>,
    sources: &[Arc<Repository>],
    mut bad: Bad,
    r: &mut HealthReport,
    lost: &mut HashMap<Id, String>,
    progress: &Progress,
) -> Result<Vec<HealedPack>> {
    if bad.is_empty() {
        return Ok(Vec::new());
    }
    let index = target.load_index().await?;
    let damaged: HashSet<Id> = bad
        .keys()
        .filter_map(|b| index.get(b).map(|l| index.pack_id(l.pack)))
        .collect();
    // Everything else the damaged packs hold, read back and verified.
    let others: Vec<(usize, Id)> = index
        .blobs()
        .filter(|(id, l)| damaged.contains(&index.pack_id(l.pack)) && !bad.contains_key(id))
        .map(|(id, _)| (0, id))
        .collect();
    // The mover: they go into new packs, verified; what does not verify is bad too.
    let repacker = Repacker::new(target.clone());
    let mut placed: HashSet<Id> = HashSet::new();
    let reads = coalesce(others.iter().copied(), &[&index], VERIFY_READ)?;
    let moved = (repacker.take(target, reads, &Seal::between(target, target), progress)).await?;
    placed.extend(moved.blobs);
    bad.extend(moved.bad.into_iter().map(|(b, e)| (b, e.to_string())));
    for f in moved.failed_reads {
        let why = format!("{}: {}", pack_name(&f.pack), f.error);
        bad.extend(f.blobs.into_iter().map(|b| (b, why.clone())));
    }
    // The bad blobs from the sources, in order, re-sealed with the target's key (the
    // payload passed through when the two compress alike).
    let mut wanted: HashSet<Id> = bad.keys().copied().collect();
    let mut came_from: HashMap<Id, String> = HashMap::new();
    for source in sources {
        if wanted.is_empty() {
            break;
        }
        let index = source.load_index().await?;
        let here: Vec<(usize, Id)> = wanted
            .iter()
            .filter(|id| index.contains(id))
            .map(|id| (0, *id))
            .collect();
        let reads = coalesce(here.iter().copied(), &[&index], VERIFY_READ)?;
        let moved =
            (repacker.take(source, reads, &Seal::between(source, target), progress)).await?;
        for (b, e) in &moved.bad {
            // It stays bad: a later source, or the findings, say more.
            tracing::warn!(
                "health check: blob {} from {}: {e}",
                b.short(),
                source.url()
            );
        }
        for f in &moved.failed_reads {
            let (pack, from) = (pack_name(&f.pack), source.url());
            tracing::warn!("health check: reading {pack} from {from}: {}", f.error);
        }
        for id in moved.blobs {
            wanted.remove(&id);
            placed.insert(id);
            came_from.insert(id, source.url().to_string());
            r.blobs_healed += 1;
        }
    }
    let packs = repacker.finish().await?;
    r.packs_written += packs.len();
    for id in &wanted {
        let why = bad.get(id).cloned().unwrap_or_default();
        lost.insert(*id, format!("{why}; no source has the blob any more"));
    }
    // A damaged pack goes when everything in it found a new place.
    let keep_pack: HashSet<Id> = wanted
        .iter()
        .filter_map(|b| index.get(b).map(|l| index.pack_id(l.pack)))
        .collect();
    let replaced: HashSet<Id> = damaged.difference(&keep_pack).copied().collect();
    repair_index(target, &packs, &replaced, &placed).await?;
    let doomed: Vec<String> = replaced.iter().map(pack_name).collect();
    target.delete_all(doomed).await?;
    // What each replaced pack held, in one pass over the index (not one per pack).
    let mut held: HashMap<Id, HashSet<Id>> =
        replaced.iter().map(|p| (*p, HashSet::new())).collect();
    for (id, l) in index.blobs() {
        if let Some(blobs) = held.get_mut(&index.pack_id(l.pack)) {
            blobs.insert(id);
        }
    }
    Ok(replaced
        .iter()
        .map(|pack| {
            let blobs = held.remove(pack).unwrap_or_default();
            let bad_here: Vec<&Id> = bad.keys().filter(|b| blobs.contains(b)).collect();
            let mut from: Vec<String> = bad_here
                .iter()
                .filter_map(|b| came_from.get(*b).cloned())
                .collect();
            from.sort();
            from.dedup();
            HealedPack {
                pack: *pack,
                bad_blobs: bad_here.len(),
                points: 0,
                sources: from,
                blobs,
            }
        })
        .collect())
}

/// What a read of the target found.
#[derive(Default)]
struct Checked {
    /// The blobs that verify.
    good: Vec<Id>,
    /// The ones that do not (all not handed over when the pack cannot be read), and why.
    bad: Bad,
    bytes: u64,
}

/// What is wrong with a blob, as a finding says it: a damaged object is named with what
/// is wrong (not the error's advice for a reader that left it alone — the health
/// check goes on to replace it).
fn damage(e: &Error) -> String {
    match e {
        Error::Corrupt { object, what, .. } => format!("{object} is damaged: {what}"),
        e => e.to_string(),
    }
}

/// Reads `read` from the target and verifies each blob as stored.
async fn fetch_verified(target: &Repository, read: &Read) -> Checked {
    let name = pack_name(&read.pack);
    let key = target.key().clone();
    let out = std::sync::Mutex::new(Checked::default());
    let fetched = target
        .fetch_read(read, 1 << 20, |blobs| {
            let (key, name, out) = (key.clone(), name.clone(), &out);
            async move {
                let sorted = tokio::task::spawn_blocking(move || {
                    blobs
                        .into_iter()
                        .map(|(e, sealed)| {
                            let len = sealed.len() as u64;
                            let opened = blob::open(&key, &name, &e.id, e.raw_length, &sealed);
                            (len, e.id, opened.err().map(|err| damage(&err)))
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .map_err(|e| Error::Internal(format!("verifying task failed: {e}")))?;
                let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                for (len, id, failed) in sorted {
                    o.bytes += len;
                    match failed {
                        None => o.good.push(id),
                        Some(why) => {
                            o.bad.insert(id, why);
                        }
                    }
                }
                Ok(())
            }
        })
        .await;
    let mut checked = out.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Err(e) = fetched {
        let handed: HashSet<Id> = (checked.good.iter().copied())
            .chain(checked.bad.keys().copied())
            .collect();
        for b in read.blobs.iter().filter(|b| !handed.contains(&b.id)) {
            checked.bad.insert(b.id, format!("{name}: {e}"));
        }
    }
    checked
}

/// Indexes the new packs, then rewrites every index file that names a `replaced` pack
/// (dropped) or a `placed` blob elsewhere (the entry dropped), and deletes the files it
/// replaced (`Repository::rewrite_index`, only the files touched).
async fn repair_index(
    target: &Repository,
    packs: &[IndexedPack],
    replaced: &HashSet<Id>,
    placed: &HashSet<Id>,
) -> Result<()> {
    if packs.is_empty() && replaced.is_empty() {
        return Ok(());
    }
    let files = target.load_index_files(target.index_names().await?).await?;
    let rw = Rewrite {
        added: packs,
        dropped: replaced,
        moved: placed,
        whole: false,
    };
    target.rewrite_index(files, rw).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::copy::{CopyOptions, PointsSpec, Selection};
    use crate::testkit;

    /// A source of two machines copied into a target; the source's files stay in the
    /// returned folder.
    async fn copied() -> (Arc<Repository>, Arc<Repository>, tempfile::TempDir) {
        let src = testkit::repo(testkit::memory(), 16 << 20).await;
        let files = testkit::backups(&src, &["web", "db"]).await;
        let target = testkit::repo(testkit::memory(), 1 << 20).await;
        let opts = CopyOptions {
            selection: Selection {
                points: PointsSpec::All,
                ..Default::default()
            },
            ..Default::default()
        };
        let report = crate::copy::run(
            vec![src.clone()],
            target.clone(),
            &opts,
            &Progress::hidden(),
        )
        .await
        .unwrap();
        assert_eq!(report.points_copied(), 2);
        (src, target, files)
    }

    async fn flip_byte(repo: &Repository, name: &str, at: u64) {
        testkit::flip_bit(&*repo.loc.store, &repo.loc.path(name), at).await;
    }

    /// A corrupt blob and a missing pack in the target are fetched again from the
    /// source: new packs, a repaired index, the damaged pack gone — and the target
    /// checks clean with every point.
    #[tokio::test]
    async fn corrupt_and_missing_data_is_healed_from_the_source() {
        let (src, target, _files) = copied().await;
        let (name, e) = testkit::largest_blob(&target).await;
        flip_byte(&target, &name, e.offset + 40).await;
        let before = testkit::check_read_data(&target).await;
        assert!(!before.is_ok(), "the damage shows");

        let r = check_and_heal(&target, std::slice::from_ref(&src), &Progress::hidden())
            .await
            .unwrap();
        assert_eq!(r.points, 2);
        assert!(r.blobs_bad >= 1, "{r:?}");
        assert_eq!(r.blobs_healed, r.blobs_bad, "{r:?}");
        assert!(r.is_healthy(), "{r:?}");
        assert!(
            !target.exists(&name).await.unwrap(),
            "the damaged pack is gone"
        );
        let after = testkit::check_read_data(&target).await;
        assert!(after.is_ok(), "{:?}", after.errors);
        assert_eq!(after.points, 2);

        // A whole pack lost from the store.
        let (name, _) = testkit::largest_blob(&target).await;
        target.delete(&name).await.unwrap();
        let r = check_and_heal(&target, &[src], &Progress::hidden())
            .await
            .unwrap();
        assert!(r.blobs_healed >= 1 && r.is_healthy(), "{r:?}");
        let after = testkit::check_read_data(&target).await;
        assert!(after.is_ok(), "{:?}", after.errors);
        assert_eq!(after.points, 2);

        // Healthy now: a check finds nothing and writes nothing.
        let r = check_and_heal(&target, &[], &Progress::hidden())
            .await
            .unwrap();
        assert_eq!((r.blobs_bad, r.packs_written), (0, 0), "{r:?}");
        assert!(r.blobs_checked > 0);
    }

    /// When no source has the blob any more, the point it breaks is reported damaged
    /// (by machine) and the data is left as it was found.
    #[tokio::test]
    async fn what_no_source_has_is_reported_with_its_point() {
        let (src, target, _files) = copied().await;
        let (name, e) = testkit::largest_blob(&target).await;
        flip_byte(&target, &name, e.offset + 40).await;
        // The source lost the same blob.
        let (src_pack, src_entry) = testkit::largest_blob(&src).await;
        assert_eq!(src_entry.id, e.id);
        src.delete(&src_pack).await.unwrap();

        let r = check_and_heal(&target, &[src], &Progress::hidden())
            .await
            .unwrap();
        assert_eq!(r.damaged.len(), 1, "{r:?}");
        assert_eq!(r.damaged[0].blobs_lost, 1, "{r:?}");
        assert!(
            target.exists(&name).await.unwrap(),
            "a pack with lost data is kept"
        );
        // The point is marked damaged in the repository, with what is wrong.
        let marks = target.load_marks().await.unwrap();
        let mark = &marks[&r.damaged[0].point];
        assert_eq!(mark.len(), 1);
        assert_eq!(mark[0].kind, MarkKind::Damaged);
        assert!(mark[0].detail.starts_with("1 blob(s) lost"), "{mark:?}");

        // Whole again (the flipped bit put back): the next check takes the mark back.
        flip_byte(&target, &name, e.offset + 40).await;
        let r = check_and_heal(&target, &[], &Progress::hidden())
            .await
            .unwrap();
        assert!(r.is_healthy(), "{r:?}");
        assert!(target.load_marks().await.unwrap().is_empty());
    }

    /// An active full leaves the newest points in packs written now: none of the packs
    /// the first copy wrote is left, and everything checks and restores.
    #[tokio::test]
    async fn an_active_full_rewrites_the_newest_points_into_fresh_packs() {
        let (src, target, _files) = copied().await;
        let before: HashSet<String> = target
            .list(crate::format::DATA)
            .await
            .unwrap()
            .into_iter()
            .map(|m| target.loc.name_of(&m.location))
            .collect();
        let r = active_full(&target, std::slice::from_ref(&src), &Progress::hidden())
            .await
            .unwrap();
        assert!(
            r.blobs_healed > 0 && r.blobs_healed == r.blobs_checked,
            "{r:?}"
        );
        let after: HashSet<String> = target
            .list(crate::format::DATA)
            .await
            .unwrap()
            .into_iter()
            .map(|m| target.loc.name_of(&m.location))
            .collect();
        assert!(before.is_disjoint(&after), "{before:?} / {after:?}");
        let check = testkit::check_read_data(&target).await;
        assert!(check.is_ok(), "{:?}", check.errors);
        assert_eq!(check.points, 2);
    }
}
