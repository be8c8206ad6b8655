//! `copy`: the backup copy engine. Reads chosen restore points from one or more source
//! repositories and writes them into a target repository as an independent chain under
//! the target's own key.
//!
//! Per chain (a machine, or a job): plan the blobs the points need that the target lacks;
//! read them with coalesced ranged GETs; open each with the source key and verify its id
//! before anything is written; re-seal it with the target key (passing the compressed
//! payload through when the codecs agree, else recompressing); pack into target-size
//! packs; upload; then the index; then — last — each point, with its provenance.
//! A killed copy leaves only whole packs, which the next run adopts.

pub mod adopt;
mod locks;
pub mod plan;
pub mod report;
pub mod select;
mod transform;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::format::index::{IndexFile, IndexedPack};
use crate::format::lock::LockKind;
use crate::format::pack_name;
use crate::format::point::{Point, Provenance};
use crate::progress::{Busy, Progress};
use crate::repo::lock::LockGuard;
use crate::repo::packer::Packer;
use crate::repo::{MasterIndex, Repository};
use crate::restore::for_each_node;
use crate::{Error, Id, Result};

pub use adopt::adopt_orphans;
use locks::{lock_chain, wait_for_writers};
pub use plan::balanced_pack_size;
pub use report::{ChainReport, CopyReport};
pub use select::{PointsSpec, Selection, Shard};
use transform::process_read;

/// How the target stores blob payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// The target repository's configured zstd level; payloads pass through unchanged
    /// when the source used the same level.
    Target,
    /// Always pass the source's payload through (re-sealed, never recompressed).
    Keep,
    /// Recompress to this zstd level unless the source used it already.
    Zstd(i32),
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "keep" {
            return Ok(Compression::Keep);
        }
        let level = s
            .strip_prefix("zstd:")
            .and_then(|l| l.parse::<i32>().ok())
            .filter(|l| (0..=22).contains(l))
            .ok_or_else(|| format!("{s:?}: use keep or zstd:LEVEL (0..=22)"))?;
        Ok(Compression::Zstd(level))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainMode {
    /// Packs never mix machines; each machine commits or fails on its own.
    PerMachine,
    /// Packs may mix machines of one source job; the job commits all points or none.
    PerJob,
}

impl std::str::FromStr for ChainMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "per-machine" => Ok(ChainMode::PerMachine),
            "per-job" => Ok(ChainMode::PerJob),
            _ => Err(format!("{s:?}: use per-machine or per-job")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CopyOptions {
    pub selection: Selection,
    /// Target pack size for this copy (default: the target's configured size).
    pub pack_size: Option<u64>,
    pub compression: Compression,
    pub chain: ChainMode,
    /// Continue on top of a target holding points from elsewhere (a seeded copy).
    pub map: bool,
    pub dry_run: bool,
    /// How long to wait for a source point that is being written.
    pub source_wait: Duration,
    /// How long to wait for another copy of the same chain into the target.
    pub lock_wait: Duration,
    /// Ranged reads in flight (each at most [`plan::MAX_READ`] bytes).
    pub reads_in_flight: usize,
    /// Pack uploads in flight per packer.
    pub uploads_in_flight: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            selection: Selection::default(),
            pack_size: None,
            compression: Compression::Target,
            chain: ChainMode::PerMachine,
            map: false,
            dry_run: false,
            source_wait: Duration::from_secs(600),
            lock_wait: Duration::from_secs(0),
            reads_in_flight: 3,
            uploads_in_flight: 2,
        }
    }
}

/// A source repository with what a copy needs of it.
struct Source {
    repo: Arc<Repository>,
    index: MasterIndex,
    /// Re-seal payloads as they are (no recompression).
    pass_through: bool,
    level: i32,
}

/// A chosen point: (source number, point id, manifest).
type Chosen = (usize, Id, Point);

/// Runs a copy. Failures of single points or chains are in the report; an `Err` means
/// nothing could be copied at all (unreadable target, wrong selection).
pub async fn run(
    sources: Vec<Arc<Repository>>,
    target: Arc<Repository>,
    opts: &CopyOptions,
    progress: &Progress,
) -> Result<CopyReport> {
    let started = Instant::now();
    let mut report = CopyReport {
        target: target.url().to_string(),
        target_repository: target.config.id,
        dry_run: opts.dry_run,
        ..Default::default()
    };
    if sources.iter().any(|s| s.config.id == target.config.id) {
        return Err(Error::Invalid(
            "the target is one of the sources: a copy must go to another repository".into(),
        ));
    }

    // What the target already has: points (by provenance) and blobs.
    let target_points = target.load_points().await?;
    let source_ids: HashSet<Id> = sources.iter().map(|s| s.config.id).collect();
    let provenance: HashSet<(Id, Id)> = target_points
        .iter()
        .filter_map(|(_, p)| p.source.as_ref().map(|s| (s.repository, s.point)))
        .collect();
    let foreign = target_points
        .iter()
        .filter(|(_, p)| {
            p.source
                .as_ref()
                .is_none_or(|s| !source_ids.contains(&s.repository))
        })
        .count();
    if foreign > 0
        && !target_points.iter().any(|(_, p)| {
            p.source
                .as_ref()
                .is_some_and(|s| source_ids.contains(&s.repository))
        })
        && !opts.map
    {
        return Err(Error::Invalid(format!(
            "{}: the target already holds {foreign} restore point(s) that were not copied from these sources; \
             pass --map to continue a chain on top of it",
            target.url()
        )));
    }
    // With --map, a point counts as copied when the target has the same machine, time and tree.
    let mapped: HashSet<(String, chrono::DateTime<chrono::Utc>, Vec<Id>)> = if opts.map {
        target_points
            .iter()
            .map(|(_, p)| (p.machine.clone(), p.time, p.tree.clone()))
            .collect()
    } else {
        HashSet::new()
    };
    let mut last_target: HashMap<String, Id> = HashMap::new();
    for (id, p) in &target_points {
        last_target.insert(p.machine.clone(), *id);
    }

    let mut target_index = target.load_index().await?;
    if !opts.dry_run {
        let (n, bytes) = adopt_orphans(&target, &mut target_index).await?;
        report.adopted_packs = n;
        report.adopted_bytes = bytes;
    }
    let mut target_known: HashSet<Id> = target_index.ids().collect();
    drop(target_index);

    // Sources: wait out points being written, then choose.
    let mut srcs = Vec::new();
    let mut candidates = Vec::new();
    let mut skipped_machines: BTreeMap<String, String> = BTreeMap::new();
    for (n, repo) in sources.into_iter().enumerate() {
        for (m, why) in wait_for_writers(&repo, &opts.selection, opts.source_wait).await? {
            skipped_machines.insert(m, why);
        }
        let points = repo.load_points().await?;
        candidates.extend(points.into_iter().map(|(id, p)| (n, id, p)));
        let index = repo.load_index().await?;
        let (pass_through, level) = match opts.compression {
            Compression::Keep => (true, repo.config.compression),
            Compression::Target => (
                repo.config.compression == target.config.compression,
                target.config.compression,
            ),
            Compression::Zstd(l) => (repo.config.compression == l, l),
        };
        srcs.push(Source {
            repo,
            index,
            pass_through,
            level,
        });
    }
    candidates.retain(|(_, _, p)| !skipped_machines.contains_key(&p.machine));
    let chosen = opts.selection.apply(candidates)?;

    // Group into chains, oldest point first within each.
    let mut chains: BTreeMap<String, Vec<Chosen>> = BTreeMap::new();
    for c in chosen {
        let key = match opts.chain {
            ChainMode::PerMachine => c.2.machine.clone(),
            ChainMode::PerJob => format!("job:{}", c.2.job.clone().unwrap_or_else(|| "-".into())),
        };
        chains.entry(key).or_default().push(c);
    }
    for (m, why) in skipped_machines {
        report.chains.push(ChainReport {
            chain: m.clone(),
            machines: vec![m],
            status: "skipped".into(),
            warnings: vec![why],
            ..Default::default()
        });
    }

    // Readers hold shared locks on the sources, so nothing that deletes (a prune) runs
    // under the copy. Best effort: a read-only source credential still copies.
    let mut source_locks = Vec::new();
    if !opts.dry_run {
        for s in &srcs {
            match LockGuard::acquire(&s.repo, LockKind::Shared, "copy-read", None).await {
                Ok(g) => source_locks.push(g),
                Err(e @ Error::Locked(_)) => return Err(e),
                Err(e) => tracing::warn!("could not lock source {}: {e}", s.repo.url()),
            }
        }
    }

    let pack_size = opts.pack_size.unwrap_or(target.config.pack_size);
    for (name, points) in chains {
        let mut todo = Vec::new();
        let mut already = 0;
        for c in points {
            let repo_id = srcs[c.0].repo.config.id;
            if provenance.contains(&(repo_id, c.1))
                || mapped.contains(&(c.2.machine.clone(), c.2.time, c.2.tree.clone()))
            {
                already += 1;
            } else {
                todo.push(c);
            }
        }
        let mut machines: Vec<String> = todo.iter().map(|c| c.2.machine.clone()).collect();
        machines.sort();
        machines.dedup();
        let mut chain = ChainReport {
            chain: name.clone(),
            machines,
            already_copied: already,
            ..Default::default()
        };
        if todo.is_empty() {
            chain.status = "up-to-date".into();
            report.chains.push(chain);
            continue;
        }
        let ctx = ChainCtx {
            srcs: &srcs,
            target: &target,
            opts,
            pack_size,
            progress,
        };
        let outcome = copy_chain(
            &ctx,
            &name,
            todo,
            &mut target_known,
            &mut last_target,
            &mut chain,
        )
        .await;
        if let Err(e) = outcome {
            chain.status = "failed".into();
            chain.warnings.push(e.to_string());
        }
        report.chains.push(chain);
    }
    for g in source_locks {
        if let Err(e) = g.release().await {
            tracing::warn!("could not release a source lock: {e}");
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    progress.finish();
    Ok(report)
}

struct ChainCtx<'a> {
    srcs: &'a [Source],
    target: &'a Arc<Repository>,
    opts: &'a CopyOptions,
    pack_size: u64,
    progress: &'a Progress,
}

/// Copies one chain's points. Point-level failures go into `chain.failed`; an `Err` fails
/// the whole chain.
async fn copy_chain(
    ctx: &ChainCtx<'_>,
    name: &str,
    points: Vec<Chosen>,
    target_known: &mut HashSet<Id>,
    last_target: &mut HashMap<String, Id>,
    chain: &mut ChainReport,
) -> Result<()> {
    let started = Instant::now();
    let src_before: Vec<_> = ctx
        .srcs
        .iter()
        .map(|s| s.repo.loc.requests.snapshot())
        .collect();
    let dst_before = ctx.target.loc.requests.snapshot();

    // Plan: walk each point's tree; collect the blobs the target lacks.
    let mut needed: Vec<(usize, Id)> = Vec::new();
    let mut needed_set: HashSet<Id> = HashSet::new();
    let mut present: HashSet<Id> = HashSet::new();
    let mut point_needs: Vec<HashSet<Id>> = Vec::new();
    let mut point_failed: Vec<Option<String>> = Vec::new();
    for (src, id, point) in &points {
        let s = &ctx.srcs[*src];
        let pname = format!("points/{id}");
        let mut needs = HashSet::new();
        let mut missing: Option<String> = None;
        let mut note =
            |b: &Id, what: &str, needs: &mut HashSet<Id>, missing: &mut Option<String>| {
                if target_known.contains(b) {
                    present.insert(*b);
                } else if s.index.get(b).is_none() {
                    missing.get_or_insert_with(|| {
                        format!(
                            "{what} blob {} is in no index of the source {}",
                            b.short(),
                            s.repo.url()
                        )
                    });
                } else {
                    needs.insert(*b);
                    if needed_set.insert(*b) {
                        needed.push((*src, *b));
                    }
                }
            };
        for t in &point.tree {
            note(t, "tree", &mut needs, &mut missing);
        }
        let walked = if missing.is_none() {
            for_each_node(&s.repo, &s.index, &pname, point, async |node| {
                for b in &node.blobs {
                    note(b, "data", &mut needs, &mut missing);
                }
                Ok(())
            })
            .await
        } else {
            Ok(())
        };
        if let Err(e) = walked {
            missing.get_or_insert(format!("reading its tree: {e}"));
        }
        point_needs.push(needs);
        point_failed.push(missing);
    }
    let indexes: Vec<&MasterIndex> = ctx.srcs.iter().map(|s| &s.index).collect();
    let reads = plan::coalesce(&needed, &indexes);
    chain.blobs_present = present.len() as u64;

    if ctx.opts.dry_run {
        // Copies put data and tree blobs in the same packs, sized as `transfer` does.
        let bytes: u64 = needed
            .iter()
            .filter_map(|(s, b)| indexes[*s].get(b))
            .map(|l| u64::from(l.length))
            .sum();
        let size = balanced_pack_size(bytes, ctx.pack_size);
        let objects = bytes.div_ceil(size);
        // A pack at or above the multipart threshold costs create + parts + complete.
        let puts_for = |n: u64| -> u64 {
            match n {
                0 => 0,
                n if n < ctx.target.multipart_threshold as u64 => 1,
                n => n.div_ceil(crate::repo::MULTIPART_PART as u64) + 2,
            }
        };
        let uploads = (bytes / size) * puts_for(size) + puts_for(bytes % size);
        let copyable = point_failed.iter().filter(|f| f.is_none()).count() as u64;
        chain.plan = Some(report::Plan {
            points: copyable,
            blobs: needed.len() as u64,
            bytes_to_read: reads.iter().map(|r| r.len()).sum(),
            get_requests: reads.len() as u64,
            target_objects: objects + u64::from(objects > 0) + copyable,
            put_requests: uploads + u64::from(objects > 0) + copyable,
        });
        for ((_, id, p), f) in points.iter().zip(&point_failed) {
            if let Some(why) = f {
                chain.failed.push(report::FailedPoint {
                    machine: p.machine.clone(),
                    time: p.time,
                    source_point: *id,
                    reason: why.clone(),
                });
            }
        }
        chain.status = "planned".into();
        finish_stats(
            ctx,
            chain,
            &src_before,
            &dst_before,
            started,
            &Busy::default(),
            &Busy::default(),
            &Busy::default(),
        );
        return Ok(());
    }

    let lock = lock_chain(ctx.target, name, ctx.opts.lock_wait).await?;
    let result = transfer(
        ctx,
        name,
        &points,
        reads,
        &point_needs,
        &mut point_failed,
        target_known,
        last_target,
        chain,
        started,
        &src_before,
        &dst_before,
    )
    .await;
    let released = lock.release().await;
    result?;
    released
}

#[allow(clippy::too_many_arguments)]
async fn transfer(
    ctx: &ChainCtx<'_>,
    name: &str,
    points: &[Chosen],
    reads: Vec<plan::Read>,
    point_needs: &[HashSet<Id>],
    point_failed: &mut [Option<String>],
    target_known: &mut HashSet<Id>,
    last_target: &mut HashMap<String, Id>,
    chain: &mut ChainReport,
    started: Instant,
    src_before: &[crate::store::Requests],
    dst_before: &crate::store::Requests,
) -> Result<()> {
    let (read_busy, cpu_busy, write_busy) = (Busy::default(), Busy::default(), Busy::default());
    let uploads = ctx.opts.uploads_in_flight;
    let planned: u64 = reads
        .iter()
        .flat_map(|r| r.blobs.iter())
        .map(|(_, l)| u64::from(l.length))
        .sum();
    let size = balanced_pack_size(planned, ctx.pack_size);
    ctx.progress.add_total(
        reads
            .iter()
            .flat_map(|r| r.blobs.iter())
            .map(|(_, l)| u64::from(l.raw_length))
            .sum(),
    );
    let mut packer = Packer::with(ctx.target.clone(), size, uploads, write_busy.clone());
    let dst_key = ctx.target.key().clone();

    let mut failed_blobs: HashMap<Id, String> = HashMap::new();
    let mut stream = futures::stream::iter(reads.into_iter().map(|read| {
        let s = &ctx.srcs[read.source];
        let repo = s.repo.clone();
        let src_key = repo.key().clone();
        let dst_key = dst_key.clone();
        let (pass, level) = (s.pass_through, s.level);
        let (read_busy, cpu_busy) = (read_busy.clone(), cpu_busy.clone());
        async move {
            let pname = pack_name(&read.pack);
            let bytes = {
                let _busy = read_busy.enter();
                repo.get_range(&pname, read.start..read.end).await
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => return (read, Err(e.to_string())),
            };
            let r2 = read.clone();
            let out = tokio::task::spawn_blocking(move || {
                let _busy = cpu_busy.enter();
                process_read(&r2, &bytes, &src_key, &dst_key, pass, level)
            })
            .await
            .map_err(|e| format!("processing task failed: {e}"));
            (read, out)
        }
    }))
    .buffered(ctx.opts.reads_in_flight.max(1));

    while let Some((read, out)) = stream.next().await {
        let pname = pack_name(&read.pack);
        match out {
            Err(e) => {
                for (id, _) in &read.blobs {
                    failed_blobs.insert(*id, format!("source pack {pname}: {e}"));
                }
            }
            Ok(blobs) => {
                for (id, loc, res) in blobs {
                    match res {
                        Ok(sealed) => {
                            ctx.progress.add_bytes(u64::from(loc.raw_length));
                            packer.add(loc.kind, id, loc.raw_length, &sealed).await?;
                            chain.blobs_new += 1;
                        }
                        Err(msg) => {
                            failed_blobs
                                .insert(id, format!("source pack {pname}, blob {id}: {msg}"));
                        }
                    }
                }
            }
        }
    }
    drop(stream);

    let packs = packer.finish().await?;
    save_indexes(ctx.target, &packs).await?;
    for p in &packs {
        target_known.extend(p.entries.iter().map(|e| e.id));
    }

    // Points whose blobs all arrived, oldest first; per-job chains commit all or none.
    for (i, needs) in point_needs.iter().enumerate() {
        if point_failed[i].is_none()
            && let Some(b) = needs.iter().find(|b| failed_blobs.contains_key(b))
        {
            point_failed[i] = Some(failed_blobs[b].clone());
        }
    }
    let any_failed = point_failed.iter().any(Option::is_some);
    for (i, (src, id, point)) in points.iter().enumerate() {
        let reason = match &point_failed[i] {
            Some(r) => Some(r.clone()),
            None if any_failed && ctx.opts.chain == ChainMode::PerJob => Some(format!(
                "another point of {name} failed, and a per-job chain commits all or none"
            )),
            None => None,
        };
        if let Some(reason) = reason {
            chain.failed.push(report::FailedPoint {
                machine: point.machine.clone(),
                time: point.time,
                source_point: *id,
                reason,
            });
            continue;
        }
        let source = &ctx.srcs[*src].repo;
        let mut copy = point.clone();
        copy.source = Some(Provenance {
            repository: source.config.id,
            point: *id,
        });
        copy.parent = last_target.get(&point.machine).copied();
        let new_id = ctx.target.save_point(&copy).await?;
        last_target.insert(point.machine.clone(), new_id);
        chain.bytes_logical += point.summary.bytes;
        chain.copied.push(report::CopiedPoint {
            machine: point.machine.clone(),
            time: point.time,
            source_repository: source.config.id,
            source_point: *id,
            target_point: Some(new_id),
        });
    }
    chain.status = match (chain.copied.is_empty(), chain.failed.is_empty()) {
        (_, true) => "copied",
        (true, false) => "failed",
        (false, false) => "partial",
    }
    .into();
    finish_stats(
        ctx,
        chain,
        src_before,
        dst_before,
        started,
        &read_busy,
        &cpu_busy,
        &write_busy,
    );
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn finish_stats(
    ctx: &ChainCtx<'_>,
    chain: &mut ChainReport,
    src_before: &[crate::store::Requests],
    dst_before: &crate::store::Requests,
    started: Instant,
    read: &Busy,
    cpu: &Busy,
    write: &Busy,
) {
    let mut src = crate::store::Requests::default();
    for (s, before) in ctx.srcs.iter().zip(src_before) {
        let d = s.repo.loc.requests.snapshot().since(before);
        src.get += d.get;
        src.put += d.put;
        src.list += d.list;
        src.head += d.head;
        src.delete += d.delete;
        src.bytes_in += d.bytes_in;
        src.bytes_out += d.bytes_out;
    }
    let dst = ctx.target.loc.requests.snapshot().since(dst_before);
    let secs = started.elapsed().as_secs_f64();
    chain.requests_source = src;
    chain.requests_target = dst;
    chain.bytes_read = src.bytes_in;
    chain.bytes_written = dst.bytes_out;
    chain.seconds = secs;
    chain.throughput = chain.bytes_logical as f64 / secs.max(1e-9);
    chain.bottleneck = report::Bottleneck::new(
        read.total().as_secs_f64(),
        cpu.total().as_secs_f64(),
        write.total().as_secs_f64(),
        secs,
    );
}

pub(crate) async fn save_indexes(target: &Repository, packs: &[IndexedPack]) -> Result<()> {
    for chunk in packs.chunks(crate::backup::PACKS_PER_INDEX) {
        target
            .save_index(&IndexFile {
                packs: chunk.to_vec(),
            })
            .await?;
    }
    Ok(())
}
