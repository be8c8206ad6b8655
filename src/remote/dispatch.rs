//! The archiver pool as the copy engine's [`Offload`] (`copy --via`): a chain's points go
//! to the pool as a task; the appliance plans against the target and transfers, and the
//! runner commits what it returns. When an appliance is lost mid-task, the packs it
//! reported are indexed at once (through the chain's [`KeepPacks`]) — so the next
//! attempt, planned against the target, does not send them again — and the chain goes
//! to another appliance, or runs in the runner, as the pool's [`Redispatch`] policy says
//! — and the chain's report says so ([`Fallback`]): unless the operator chose
//! `redispatch = "local"`, a chain copied by the runner is a problem the copy's exit
//! code and the job's outcome carry. A stop cancels the task, keeps what it wrote and
//! interrupts the chain; an answer from another appliance than the one that took the
//! task (one address, several appliances) fails the chain, saying so.

use std::collections::HashSet;

use async_trait::async_trait;

use super::api::{TaskPoint, TaskRequest};
use super::pool::{Attempt, Pool, Redispatch};
use crate::copy::offload::{KeepPacks, Offload, OffloadRequest, Offloaded};
use crate::copy::plan::ChainPlan;
use crate::copy::report::{ApplianceWork, ChainReport, Fallback, LostAppliance};
use crate::format::index::IndexedPack;
use crate::progress::Progress;
use crate::{Error, Id, Result};

#[async_trait]
impl Offload for Pool {
    async fn transfer(
        &self,
        req: &OffloadRequest,
        keep: &dyn KeepPacks,
        chain: &mut ChainReport,
        progress: &Progress,
    ) -> Result<Offloaded> {
        dispatch(self, req, keep, chain, progress).await
    }
}

/// Runs the chain's transfer on the pool, or says to run it here (the policy says so,
/// or no appliance can take it); the packs kept from lost appliances are indexed
/// already.
async fn dispatch(
    pool: &Pool,
    req: &OffloadRequest,
    keep: &dyn KeepPacks,
    chain: &mut ChainReport,
    progress: &Progress,
) -> Result<Offloaded> {
    let name = &req.chain;
    let task = TaskRequest {
        chain: name.clone(),
        mode: req.mode,
        sources: Vec::new(),
        target: String::new(),
        points: (req.points.iter())
            .map(|&(source, id)| TaskPoint { source, id })
            .collect(),
        pack_size: req.pack_size,
        compression: req.compression,
        map: req.map,
        reads_in_flight: req.reads_in_flight,
        uploads_in_flight: req.uploads_in_flight,
        lease_secs: None,
    };
    let chosen = pool.options().redispatch == Redispatch::Local;
    let asked: HashSet<Id> = req.points.iter().map(|(_, id)| *id).collect();
    // Each appliance at most once, and once more for one that failed the task itself.
    for _ in 0..=pool.len() {
        let (ids, target) = (&req.source_ids, req.target_id);
        let attempt = (pool.attempt(&task, ids, target, &req.stop, progress)).await;
        match attempt {
            Attempt::Finished(f) => {
                check_plan(&f.plan, &req.source_ids, &asked, &f.appliance)?;
                chain.appliance = Some(f.appliance);
                chain.by_appliance = Some(ApplianceWork {
                    bytes_read: f.plan.projection.bytes_to_read,
                    bytes_written: f.outcome.packs.iter().map(|p| p.size).sum(),
                });
                return Ok(Offloaded::Done(Box::new((f.plan, f.outcome))));
            }
            Attempt::Misrouted(why) => return Err(Error::Invalid(format!("{name}: {why}"))),
            Attempt::Stopped { appliance, packs } => {
                let kept = packs.len();
                keep_packs(keep, packs).await?;
                return Ok(Offloaded::Stopped(match appliance {
                    None => {
                        format!("{name}: the copy was asked to stop before an archiver took it")
                    }
                    Some(appliance) => format!(
                        "{name}: the copy was asked to stop; the task on {appliance} was \
                         cancelled and its {kept} whole pack(s) are indexed"
                    ),
                }));
            }
            Attempt::Lost {
                appliance,
                why,
                packs,
            } => {
                let (packs_kept, bytes_kept) = (packs.len(), packs.iter().map(|p| p.size).sum());
                keep_packs(keep, packs).await?;
                tracing::warn!(
                    "{name}: archiver {appliance} did not finish the chain ({why}); \
                     {packs_kept} pack(s) it wrote kept"
                );
                chain.lost_appliances.push(LostAppliance {
                    appliance,
                    why: why.clone(),
                    packs_kept,
                    bytes_kept,
                });
                match pool.options().redispatch {
                    Redispatch::Fail => {
                        return Err(Error::Invalid(format!(
                            "{name}: its archiver was lost ({why}); redispatch = fail, so the \
                             next run copies the rest"
                        )));
                    }
                    Redispatch::Local => break,
                    Redispatch::Pool => continue,
                }
            }
            Attempt::NoAppliance(why) => {
                if pool.options().redispatch == Redispatch::Fail {
                    return Err(Error::Invalid(format!("{name}: {why}")));
                }
                return Ok(here(chain, why, chosen));
            }
        }
    }
    let last = chain.lost_appliances.last().map(|l| l.why.clone());
    let why = format!(
        "no archiver finished the chain (last: {})",
        last.unwrap_or_default()
    );
    Ok(here(chain, why, chosen))
}

/// Indexes the packs of an attempt that did not finish.
async fn keep_packs(keep: &dyn KeepPacks, packs: Vec<IndexedPack>) -> Result<()> {
    match packs.is_empty() {
        true => Ok(()),
        false => keep.keep(packs).await,
    }
}

/// The chain goes to this process, and its report says why.
fn here(chain: &mut ChainReport, why: String, chosen: bool) -> Offloaded {
    match chosen {
        true => tracing::info!("{}: {why}; copied by this process", chain.chain),
        false => tracing::warn!(
            "{}: {why}; copied by this process, every byte across its own link",
            chain.chain
        ),
    }
    chain
        .warnings
        .push(format!("{why}; copied by this process"));
    chain.fallback = Some(Fallback { why, chosen });
    Offloaded::Here
}

/// An appliance's plan must be for the sources and points asked, nothing else.
fn check_plan(plan: &ChainPlan, sources: &[Id], asked: &HashSet<Id>, from: &str) -> Result<()> {
    let bad = |why: String| {
        Err(Error::Invalid(format!(
            "archiver {from} answered a plan {why}; nothing of it is committed"
        )))
    };
    if plan.sources != sources {
        return bad("for other sources".into());
    }
    if let Some(p) = plan.points.iter().find(|p| !asked.contains(&p.id)) {
        return bad(format!("with a point that was not asked for ({})", p.id));
    }
    if plan.points.iter().any(|p| p.source >= sources.len()) {
        return bad("naming a source out of range".into());
    }
    Ok(())
}
