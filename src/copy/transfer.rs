//! The transfer stage of a copy: run a chain's reads against the sources, open and verify
//! every blob, re-seal it for the target and pack it into target packs, uploaded as they
//! fill. It needs nothing but the plan, the repositories and [`TransferOptions`], and it
//! writes only packs — never an index or a point — so it can run in another process (the
//! archiver appliance next to the source) and a transfer that dies leaves only whole
//! packs, which the next run adopts.
//!
//! ```text
//! ranged GETs (in order; in flight sized to the link) ─▶ blocking workers: open, verify, re-seal
//!    ─▶ one packer (data and tree blobs together, balanced pack size, spooled to disk)
//!    ─▶ uploads (uploads_in_flight)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::failure::Failure;
use super::plan::{COPY_READ, ChainPlan};
use super::report::StageTimes;
use super::settings::{READS_CAP, READS_MOVING, TransferOptions};
use super::transform::process_read;
use crate::format::index::IndexedPack;
use crate::format::pack::PackEntry;
use crate::format::pack_name;
use crate::progress::{Busy, Progress};
use crate::repo::Repository;
use crate::repo::packer::Packer;
use crate::repo::reads::Read;
use crate::repo::repack::Seal;
use crate::store::Inflight;
use crate::{Error, Id, Result};

/// What a transfer did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TransferOutcome {
    /// Packs written to the target, not yet indexed (commit indexes them).
    pub packs: Vec<IndexedPack>,
    pub blobs_written: u64,
    /// Blobs that could not be copied, and why.
    pub failed_blobs: BTreeMap<Id, Failure>,
    /// Per point of the plan, in its order: why it cannot be committed, if so.
    pub points: Vec<Option<Failure>>,
    /// How long each stage was busy.
    pub stages: StageTimes,
}

/// Indexes packs written whole, at once: those a transfer here hands over as it goes
/// ([`transfer_keeping`]), and those a transfer elsewhere wrote before it was lost — so
/// the next attempt, planned against the target, does not send them again.
#[async_trait::async_trait]
pub trait KeepPacks: Sync {
    async fn keep(&self, packs: Vec<IndexedPack>) -> Result<()>;
}

/// Blobs of landed packs a transfer holds before it hands them to its [`KeepPacks`]
/// (one index file's worth).
pub const KEEP_BLOBS: usize = crate::repo::BLOBS_PER_INDEX;

/// Runs the plan's reads and writes the target packs. An `Err` means the transfer as a
/// whole failed (the target refused packs, a source the plan names is not given); a blob
/// that fails is recorded in the outcome, and the points needing it cannot be committed.
pub async fn transfer(
    plan: &ChainPlan,
    sources: &[Arc<Repository>],
    target: &Arc<Repository>,
    opts: &TransferOptions,
    progress: &Progress,
) -> Result<TransferOutcome> {
    transfer_keeping(plan, sources, target, opts, progress, None).await
}

/// [`transfer`], handing landed packs to `keep.0` whenever they hold `keep.1` blobs
/// ([`KEEP_BLOBS`]: an index file's worth): the outcome then lists only the packs landed
/// since, so a chain of millions of blobs does not hold every written entry to its end
/// (56 bytes a blob), and a run killed midway finds most of its packs indexed.
pub async fn transfer_keeping(
    plan: &ChainPlan,
    sources: &[Arc<Repository>],
    target: &Arc<Repository>,
    opts: &TransferOptions,
    progress: &Progress,
    keep: Option<(&dyn KeepPacks, usize)>,
) -> Result<TransferOutcome> {
    let how = resealers(plan, sources, target, opts)?;
    let (read_busy, cpu_busy, write_busy) = (Busy::default(), Busy::default(), Busy::default());
    progress.add_total(plan.reads.totals().raw);
    let mut packer = Packer::with(
        target.clone(),
        plan.pack_size,
        opts.uploads_in_flight,
        write_busy.clone(),
    )
    .reporting(progress.clone());
    let mut out = TransferOutcome::default();
    // Reads in flight per source, sized to its link unless fixed.
    let inflight: Vec<Inflight> = how.iter().map(|(repo, _)| read_limit(repo, opts)).collect();
    let most = inflight.iter().map(Inflight::cap).max().unwrap_or(1);
    // The budget is taken in read order, before a read starts: the reads holding it are
    // always the next to be consumed, so chains sharing it never wait on each other in a
    // circle.
    let budget = &opts.budget;
    // Reads come from the plan one at a time (a spilled plan is read as it goes), shared
    // with the task that unpacks them.
    let ordered = futures::stream::iter(plan.reads.iter().map(Arc::new)).then(|read| async move {
        let held = budget.take(read.len()).await;
        (read, held)
    });
    let mut stream = Box::pin(
        ordered
            .map(|(read, held)| {
                let (repo, how) = &how[read.source];
                let (read_busy, cpu_busy) = (read_busy.clone(), cpu_busy.clone());
                let inflight = &inflight[read.source];
                async move {
                    let pname = pack_name(&read.pack);
                    let bytes = {
                        let _place = inflight.enter().await;
                        let _busy = read_busy.enter();
                        repo.get_range(&pname, read.start..read.end).await
                    };
                    let bytes = match bytes {
                        Ok(b) => b,
                        Err(e) => return (read, held, Err(Failure::from_error(&e))),
                    };
                    let (r, how) = (read.clone(), how.clone());
                    let done = tokio::task::spawn_blocking(move || {
                        let _busy = cpu_busy.enter();
                        process_read(&r, &bytes, &how)
                    })
                    .await
                    .map_err(|e| Failure::Other {
                        what: format!("processing task failed: {e}"),
                    });
                    (read, held, done)
                }
            })
            .buffered(most),
    );

    // Reads come back in plan order: when a stop is asked, the first `consumed` are
    // in, the rest never will be.
    let mut consumed = 0;
    loop {
        let next = tokio::select! {
            biased;
            _ = opts.stop.stopped() => None,
            next = stream.next() => next,
        };
        let Some((read, _held, done)) = next else {
            break;
        };
        consumed += 1;
        pack_read(&read, done, &mut packer, &mut out, (plan, opts, progress)).await?;
        if let Some((k, every)) = keep
            && packer.done_blobs() >= every
        {
            k.keep(packer.take_done()).await?;
        }
    }
    drop(stream);
    // The open pack is finished either way: a stopped transfer leaves whole packs.
    out.packs = packer.finish().await?;
    if let Some(e) = plan.reads.error() {
        // Reads of the plan were lost on the way (its spill file failed): no point can
        // be committed; the packs that landed unindexed are adopted by the next writer.
        return Err(crate::Error::Spill(e));
    }
    for r in plan.reads.iter().skip(consumed) {
        for e in &r.blobs {
            out.failed_blobs
                .entry(e.id)
                .or_insert_with(|| interrupted(plan));
        }
    }
    out.points = (plan.points.iter())
        .map(|p| match p.needs_all {
            true => out.failed_blobs.values().next().cloned(),
            false => p
                .needs
                .iter()
                .find_map(|b| out.failed_blobs.get(b))
                .cloned(),
        })
        .collect();
    out.stages = StageTimes {
        source_read: read_busy.total().as_secs_f64(),
        processing: cpu_busy.total().as_secs_f64(),
        target_write: write_busy.total().as_secs_f64(),
    };
    Ok(out)
}

/// A read's blobs, each sealed for the target or failed; or the read failed as one.
type Processed =
    std::result::Result<Vec<(PackEntry, std::result::Result<Vec<u8>, Failure>)>, Failure>;

/// Reads in flight from `repo`: sized to its link, unless the options fix it.
fn read_limit(repo: &Repository, opts: &TransferOptions) -> Inflight {
    match opts.reads_in_flight {
        Some(n) => Inflight::fixed(n),
        None => Inflight::new(repo.loc.link.clone(), COPY_READ, READS_MOVING, READS_CAP),
    }
}

/// One read's blobs, as they came back: each sealed one packed, each failed one noted
/// (the whole read's when it failed as one).
async fn pack_read(
    read: &Read,
    done: Processed,
    packer: &mut Packer,
    out: &mut TransferOutcome,
    (plan, opts, progress): (&ChainPlan, &TransferOptions, &Progress),
) -> Result<()> {
    let blobs = match done {
        Ok(blobs) => blobs,
        Err(f) => {
            for e in &read.blobs {
                out.failed_blobs.insert(e.id, f.clone());
            }
            return Ok(());
        }
    };
    for (e, res) in blobs {
        match res {
            // The packer waits for an upload slot when a pack is full: a stop asked
            // meanwhile ends the transfer at that boundary.
            Ok(_) if opts.stop.is_stopped() => {
                out.failed_blobs.insert(e.id, interrupted(plan));
            }
            Ok(sealed) => {
                progress.add_bytes(u64::from(e.raw_length));
                packer.add(e.kind, e.id, e.raw_length, &sealed).await?;
                out.blobs_written += 1;
            }
            Err(f) => {
                out.failed_blobs.insert(e.id, f);
            }
        }
    }
    Ok(())
}

/// Why a blob the transfer did not reach is missing from the target.
fn interrupted(plan: &ChainPlan) -> Failure {
    Failure::Interrupted {
        what: format!(
            "{}: stopped before the point was whole; the packs written are kept and the \
             next run brings the rest",
            plan.chain
        ),
    }
}

/// For each source the plan names, its repository and how its blobs are re-sealed.
fn resealers(
    plan: &ChainPlan,
    sources: &[Arc<Repository>],
    target: &Repository,
    opts: &TransferOptions,
) -> Result<Vec<(Arc<Repository>, Seal)>> {
    plan.sources
        .iter()
        .map(|id| {
            let repo = sources.iter().find(|s| s.config.id == *id).ok_or_else(|| {
                Error::Invalid(format!(
                    "the plan of {} reads from repository {id}, which was not given",
                    plan.chain
                ))
            })?;
            let (pass_through, level) = opts
                .compression
                .resolve(repo.config.compression, target.config.compression);
            Ok((
                repo.clone(),
                Seal::Reseal {
                    src: repo.key().clone(),
                    dst: target.key().clone(),
                    pass_through,
                    level,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::ObjectStoreExt;

    use super::*;
    use crate::copy::commit;
    use crate::copy::target::TargetState;
    use crate::store::flaky::{Fault, Op};
    use crate::testkit;

    /// Transient failures on the way — refused uploads, uploads and completions whose
    /// answer is lost, a short ranged read — cost retries, not data: every point arrives,
    /// and the target checks clean.
    #[tokio::test]
    async fn faults_on_the_way_cost_retries_not_data() {
        let src = testkit::repo(testkit::memory(), 16 << 20).await;
        let _files = testkit::backups(&src, &["web", "db"]).await;
        // Packs of 1 MiB and more go up in parts, so completions are exercised too.
        let (flaky, _, target) = testkit::flaky(1 << 20, 1 << 20).await;
        let target = Arc::new(target);
        flaky.fail(Op::Put, "data/", Fault::Unavailable, 2);
        flaky.fail(Op::Put, "data/", Fault::LandThenFail, 1);
        flaky.fail(Op::Complete, "data/", Fault::LandThenFail, 1);
        flaky.fail(Op::Put, "points/", Fault::LandThenFail, 1);
        flaky.fail(Op::Put, "index/", Fault::Unavailable, 1);

        let (srcs, plans) = testkit::plans(&src, &target).await;
        assert_eq!(plans.len(), 2);
        let state = tokio::sync::RwLock::new(TargetState::default());
        for plan in &plans {
            let out = testkit::transfer(plan, &srcs, &target).await.unwrap();
            assert!(out.failed_blobs.is_empty(), "{:?}", out.failed_blobs);
            assert!(out.points.iter().all(Option::is_none));
            let needed: usize = plan.reads.iter().map(|r| r.blobs.len()).sum();
            assert_eq!(out.blobs_written as usize, needed);
            for p in &out.packs {
                let name = crate::format::pack_name(&p.id);
                let meta = flaky.head(&name.as_str().into()).await.unwrap();
                assert_eq!(meta.size, p.size, "{name}");
            }
            let done = commit(plan, &out, &target, &state).await.unwrap();
            assert_eq!(done.copied.len(), 1);
        }
        assert!(flaky.injected() >= 5, "{} faults", flaky.injected());
        let report = testkit::check_read_data(&target).await;
        assert!(report.is_ok(), "{:?}", report.errors);
        assert_eq!(report.points, 2);
    }

    /// Failures are typed: a source pack that is gone makes its points `Missing`, one the
    /// store keeps refusing makes them `Transient`, one whose bytes changed `Corrupt` —
    /// and only the points that need those blobs fail.
    #[tokio::test]
    async fn failures_are_typed_and_stay_with_the_points_that_need_them() {
        let (flaky, mem, src) = testkit::flaky(16 << 20, 1 << 30).await;
        let src = Arc::new(src);
        let _files = testkit::backups(&src, &["gone", "refused", "damaged", "fine"]).await;
        let target = testkit::repo(testkit::memory(), 1 << 20).await;
        let (srcs, plans) = testkit::plans(&src, &target).await;
        let data_pack = |plan: &ChainPlan| {
            let r = plan
                .reads
                .iter()
                .find(|r| r.blobs.iter().any(|b| b.raw_length > 100_000))
                .unwrap();
            (crate::format::pack_name(&r.pack), r.clone())
        };
        for plan in &plans {
            let (name, read) = data_pack(plan);
            let path = object_store::path::Path::from(name.as_str());
            match plan.chain.as_str() {
                "gone" => mem.delete(&path).await.unwrap(),
                "refused" => flaky.fail(Op::Get, &name, Fault::Unavailable, 100),
                "damaged" => testkit::flip_bit(&*mem, &path, read.blobs[0].offset + 50).await,
                _ => {}
            }
        }
        for plan in &plans {
            let out = testkit::transfer(plan, &srcs, &target).await.unwrap();
            let f = out.points[0].clone();
            match plan.chain.as_str() {
                "gone" => assert!(matches!(f, Some(Failure::Missing { .. })), "{f:?}"),
                "refused" => {
                    assert!(matches!(&f, Some(Failure::Transient { .. })), "{f:?}");
                    assert!(f.unwrap().is_retryable());
                }
                "damaged" => assert!(matches!(f, Some(Failure::Corrupt { .. })), "{f:?}"),
                _ => assert!(f.is_none(), "{f:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_plan_naming_a_source_that_is_not_given_is_refused() {
        let src = testkit::repo(testkit::memory(), 16 << 20).await;
        let _files = testkit::backups(&src, &["web"]).await;
        let target = testkit::repo(testkit::memory(), 1 << 20).await;
        let (_srcs, plans) = testkit::plans(&src, &target).await;
        let other = testkit::repo(testkit::memory(), 1 << 20).await;
        let e = transfer(
            &plans[0],
            &[other],
            &target,
            &TransferOptions::default(),
            &Progress::hidden(),
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("was not given"), "{e}");
    }

    /// Packs handed over as they land: each once, none left out, only landed ones (the
    /// keeper finds each stored), and the target checks clean once all are indexed.
    #[tokio::test]
    async fn landed_packs_are_handed_over_as_they_go() {
        struct Recorder {
            target: Arc<Repository>,
            got: std::sync::Mutex<Vec<IndexedPack>>,
        }
        #[async_trait::async_trait]
        impl KeepPacks for Recorder {
            async fn keep(&self, packs: Vec<IndexedPack>) -> Result<()> {
                for p in &packs {
                    let name = crate::format::pack_name(&p.id);
                    assert!(
                        self.target.exists(&name).await.unwrap(),
                        "{name} kept before it landed"
                    );
                }
                self.got.lock().unwrap().extend(packs);
                Ok(())
            }
        }
        // Forty files of 20 KiB (one blob each) into packs of 64 KiB (the plan's): about
        // a dozen target packs. With one upload at a time, a pack's upload starts only
        // once the one before has landed, so landed packs are there to hand over between
        // reads whatever the scheduler does (a test of a few large blobs made two or
        // three packs, and whether one had landed was up to the machine's load).
        let src = testkit::repo(testkit::memory(), 64 << 10).await;
        let dir = tempfile::tempdir().unwrap();
        for i in 0..40u64 {
            std::fs::write(
                dir.path().join(format!("f{i}")),
                testkit::bytes(i, 20 << 10),
            )
            .unwrap();
        }
        let backup = crate::backup::BackupOptions {
            machine: "web".into(),
            paths: vec![dir.path().to_path_buf()],
            ..Default::default()
        };
        crate::backup::run(src.clone(), backup, Progress::hidden())
            .await
            .unwrap();
        let opts = TransferOptions {
            uploads_in_flight: 1,
            ..Default::default()
        };
        let target = testkit::repo(testkit::memory(), 64 << 10).await;
        let (srcs, mut plans) = testkit::plans(&src, &target).await;
        let mut plan = plans.remove(0);
        plan.pack_size = 64 << 10;
        let keep = Recorder {
            target: target.clone(),
            got: Default::default(),
        };
        let out = transfer_keeping(
            &plan,
            &srcs.repos(),
            &target,
            &opts,
            &Progress::hidden(),
            Some((&keep, 1)),
        )
        .await
        .unwrap();
        let kept = keep.got.into_inner().unwrap();
        assert!(
            kept.len() >= 3,
            "{} packs handed over, {} at the end",
            kept.len(),
            out.packs.len()
        );
        let plan = &plan;
        let mut ids: Vec<Id> = kept.iter().chain(&out.packs).map(|p| p.id).collect();
        let blobs: usize = kept.iter().chain(&out.packs).map(|p| p.entries.len()).sum();
        assert_eq!(blobs as u64, out.blobs_written);
        ids.sort();
        let n = ids.len();
        ids.dedup();
        assert_eq!(ids.len(), n, "a pack handed over twice");
        let state = tokio::sync::RwLock::new(TargetState::default());
        let all = TransferOutcome {
            packs: kept.into_iter().chain(out.packs.clone()).collect(),
            ..out
        };
        commit(plan, &all, &target, &state).await.unwrap();
        let report = testkit::check_read_data(&target).await;
        assert!(report.is_ok(), "{:?}", report.errors);
    }
}
