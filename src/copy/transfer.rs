//! The transfer stage of a copy: run a chain's reads against the sources, open and verify
//! every blob, re-seal it for the target and pack it into target packs, uploaded as they
//! fill. It needs nothing but the plan, the repositories and [`TransferOptions`], and it
//! writes only packs — never an index or a point — so it can run in another process (the
//! archiver appliance next to the source) and a transfer that dies leaves only whole
//! packs, which the next run adopts.
//!
//! ```text
//! ranged GETs (reads_in_flight, in order) ─▶ blocking workers: open, verify, re-seal
//!    ─▶ one packer (data and tree blobs together, balanced pack size, spooled to disk)
//!    ─▶ uploads (uploads_in_flight)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::failure::Failure;
use super::options::TransferOptions;
use super::plan::ChainPlan;
use super::report::StageTimes;
use super::transform::{Reseal, process_read};
use crate::format::index::IndexedPack;
use crate::format::pack_name;
use crate::progress::{Busy, Progress};
use crate::repo::Repository;
use crate::repo::packer::Packer;
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
    let how = resealers(plan, sources, target, opts)?;
    let (read_busy, cpu_busy, write_busy) = (Busy::default(), Busy::default(), Busy::default());
    progress.add_total(
        plan.reads
            .iter()
            .flat_map(|r| &r.blobs)
            .map(|e| u64::from(e.raw_length))
            .sum(),
    );
    let mut packer = Packer::with(
        target.clone(),
        plan.pack_size,
        opts.uploads_in_flight,
        write_busy.clone(),
    );
    let mut out = TransferOutcome::default();
    let mut stream = futures::stream::iter(plan.reads.iter().map(|read| {
        let (repo, how) = &how[read.source];
        let (read_busy, cpu_busy) = (read_busy.clone(), cpu_busy.clone());
        async move {
            let pname = pack_name(&read.pack);
            let bytes = {
                let _busy = read_busy.enter();
                repo.get_range(&pname, read.start..read.end).await
            };
            let bytes = match bytes {
                Ok(b) => b,
                Err(e) => return (read, Err(Failure::from_error(&e))),
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
            (read, done)
        }
    }))
    .buffered(opts.reads_in_flight.max(1));

    while let Some((read, done)) = stream.next().await {
        match done {
            Err(f) => {
                for e in &read.blobs {
                    out.failed_blobs.insert(e.id, f.clone());
                }
            }
            Ok(blobs) => {
                for (e, res) in blobs {
                    match res {
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
            }
        }
    }
    drop(stream);
    out.packs = packer.finish().await?;
    out.points = plan
        .points
        .iter()
        .map(|p| {
            p.needs
                .iter()
                .find_map(|b| out.failed_blobs.get(b))
                .cloned()
        })
        .collect();
    out.stages = StageTimes {
        source_read: read_busy.total().as_secs_f64(),
        processing: cpu_busy.total().as_secs_f64(),
        target_write: write_busy.total().as_secs_f64(),
    };
    Ok(out)
}

/// For each source the plan names, its repository and how its blobs are re-sealed.
fn resealers(
    plan: &ChainPlan,
    sources: &[Arc<Repository>],
    target: &Repository,
    opts: &TransferOptions,
) -> Result<Vec<(Arc<Repository>, Reseal)>> {
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
                Reseal {
                    src: repo.key().clone(),
                    dst: target.key().clone(),
                    pass_through,
                    level,
                },
            ))
        })
        .collect()
}
