//! A chain's transfer on an archiver (`copy --via`): the chain's points go to the pool
//! as a task; the appliance plans against the target and transfers, and this process
//! commits what it returns. When an appliance is lost mid-task, the packs it reported
//! are indexed at once — so the next attempt, planned against the target, does not send
//! them again — and the chain goes to another appliance, or runs here, as the pool's
//! [`Redispatch`] policy says.

use std::collections::HashSet;

use super::chain::{Ctx, View, index};
use super::plan::ChainPlan;
use super::report::{ChainReport, LostAppliance};
use super::select::Candidate;
use super::transfer::TransferOutcome;
use crate::remote::api::{TaskPoint, TaskRequest};
use crate::remote::pool::{Attempt, Pool, Redispatch};
use crate::{Error, Id, Result};

/// Runs the chain's transfer on the pool. `None`: run it in this process instead (the
/// policy says so, or no appliance can take it); the packs kept from lost appliances
/// are indexed already.
pub(super) async fn transfer(
    ctx: &Ctx<'_>,
    view: &View,
    name: &str,
    candidates: &[Candidate],
    pool: &Pool,
    chain: &mut ChainReport,
) -> Result<Option<(ChainPlan, TransferOutcome)>> {
    // The sources this chain reads, in the order the task names them.
    let mut used: Vec<usize> = candidates.iter().map(|c| c.source).collect();
    used.sort_unstable();
    used.dedup();
    let position = |s: usize| used.iter().position(|u| *u == s).unwrap_or(0);
    let source_ids: Vec<Id> = used
        .iter()
        .map(|s| view.sources[*s].repo.config.id)
        .collect();
    let req = TaskRequest {
        chain: name.to_string(),
        mode: ctx.opts.chain,
        sources: Vec::new(),
        target: String::new(),
        points: candidates
            .iter()
            .map(|c| TaskPoint {
                source: position(c.source),
                id: c.id,
            })
            .collect(),
        pack_size: ctx.pack_size,
        compression: ctx.opts.transfer.compression,
        map: ctx.opts.map,
        reads_in_flight: ctx.opts.transfer.reads_in_flight,
        uploads_in_flight: ctx.opts.transfer.uploads_in_flight,
    };
    let asked: HashSet<Id> = candidates.iter().map(|c| c.id).collect();
    let target = &view.target;
    // Each appliance at most once, and once more for one that failed the task itself.
    for _ in 0..=pool.len() {
        let attempt = pool
            .attempt(&req, &source_ids, target.config.id, ctx.progress)
            .await;
        match attempt {
            Attempt::Finished(f) => {
                check_plan(&f.plan, &source_ids, &asked, &f.appliance)?;
                chain.appliance = Some(f.appliance);
                return Ok(Some((f.plan, f.outcome)));
            }
            Attempt::Lost {
                appliance,
                why,
                packs,
            } => {
                let kept = TransferOutcome {
                    packs,
                    ..Default::default()
                };
                if !kept.packs.is_empty() {
                    index(ctx, target, &kept).await?;
                }
                let bytes_kept = kept.packs.iter().map(|p| p.size).sum();
                tracing::warn!(
                    "{name}: archiver {appliance} did not finish the chain ({why}); {} pack(s) \
                     it wrote kept",
                    kept.packs.len()
                );
                chain.lost_appliances.push(LostAppliance {
                    appliance,
                    why: why.clone(),
                    packs_kept: kept.packs.len(),
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
                chain
                    .warnings
                    .push(format!("{why}; copied by this process"));
                return Ok(None);
            }
        }
    }
    let why = chain.lost_appliances.last().map(|l| l.why.clone());
    chain.warnings.push(format!(
        "no archiver finished the chain (last: {}); copied by this process",
        why.unwrap_or_default()
    ));
    Ok(None)
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
