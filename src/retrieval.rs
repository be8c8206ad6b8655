//! Retrieval from archive classes: which packs a restore needs that cannot be read now,
//! what their retrieval costs and takes per tier (before anything is asked), the restore
//! requests themselves, and the wait until every pack is readable.
//!
//! Only data packs are ever archived: trees, index and points stay in the default class
//! (`repo/packer.rs`), so the plan is made from the tree walk and the index alone, plus
//! one HEAD per data pack the point needs — few, since packs are large.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};

use crate::format::pack::BlobKind;
use crate::format::pack_name;
use crate::format::point::Point;
use crate::prices::{Prices, RetrievalQuote};
use crate::progress::Progress;
use crate::repo::immutable::LOOKS_IN_FLIGHT;
use crate::repo::reach::{Files, reach};
use crate::repo::{MasterIndex, Repository};
use crate::restore::PathFilter;
use crate::store::cloud::{ObjectState, Restore, RestoreAsked, RetrievalTier};
use crate::{Error, Id, Result};

/// A pack that must be retrieved (or is being) before it can be read.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ArchivedPack {
    pub pack: Id,
    pub size: u64,
    pub class: String,
    pub restore: Restore,
}

/// What a restore needs from archive classes and what getting it costs.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RetrievalPlan {
    /// Data packs holding the blobs of what is restored, and their bytes.
    pub packs: usize,
    pub bytes: u64,
    /// Of those, the ones not readable now (archived, restore not finished).
    pub archived: Vec<ArchivedPack>,
    pub archived_bytes: u64,
    /// Of the archived ones, restores already under way.
    pub in_progress: usize,
    /// Per tier every archived pack's class offers: price and hours.
    pub quotes: Vec<RetrievalQuote>,
}

impl RetrievalPlan {
    pub fn needs_retrieval(&self) -> bool {
        !self.archived.is_empty()
    }
}

/// The data packs (and their sizes) holding the blobs of the files `filter` takes from
/// `point` (`repo::reach`). Reads only the tree; a blob in no index is an error naming it.
pub async fn needed_packs(
    repo: &Repository,
    index: &MasterIndex,
    point_id: &Id,
    point: &Point,
    filter: &PathFilter,
) -> Result<BTreeMap<Id, u64>> {
    let takes = |path: &[u8]| filter.takes(path);
    let files = match filter.is_everything() {
        true => Files::All,
        false => Files::Only(&takes),
    };
    let used = reach(repo, index, [(point_id, point)], files).await?;
    used.all_indexed()?;
    Ok(used.packs(index, Some(BlobKind::Data)))
}

/// Looks at each of `packs` (one HEAD each) and prices what must be retrieved.
pub async fn plan(
    repo: &Repository,
    packs: &BTreeMap<Id, u64>,
    prices: &Prices,
) -> Result<RetrievalPlan> {
    let names: Vec<String> = packs.keys().map(pack_name).collect();
    let states = repo.object_states(&names).await?;
    Ok(plan_of(repo, packs, states, prices))
}

/// The plan for `packs` given what the provider said of each (`states`, in their order).
pub fn plan_of(
    repo: &Repository,
    packs: &BTreeMap<Id, u64>,
    states: Vec<ObjectState>,
    prices: &Prices,
) -> RetrievalPlan {
    let mut plan = RetrievalPlan {
        packs: packs.len(),
        bytes: packs.values().sum(),
        ..Default::default()
    };
    for ((pack, size), s) in packs.iter().map(|(p, s)| (*p, *s)).zip(states) {
        if !s.needs_retrieval() {
            continue;
        }
        plan.archived_bytes += size;
        if s.restore == Restore::InProgress {
            plan.in_progress += 1;
        }
        plan.archived.push(ArchivedPack {
            pack,
            size,
            class: s.class.unwrap_or_default(),
            restore: s.restore,
        });
    }
    plan.quotes = quote(repo, &plan.archived, prices);
    plan
}

/// Per tier, the price of retrieving `packs` (summed over their classes) and the
/// slowest class's hours; a tier some class does not offer is left out.
fn quote(repo: &Repository, packs: &[ArchivedPack], prices: &Prices) -> Vec<RetrievalQuote> {
    let mut by_class: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for p in packs.iter().filter(|p| p.restore == Restore::None) {
        let e = by_class.entry(p.class.as_str()).or_default();
        e.0 += 1;
        e.1 += p.size;
    }
    let mut out = Vec::new();
    'tiers: for tier in RetrievalTier::ALL {
        let mut q = RetrievalQuote {
            tier,
            usd: 0.0,
            hours: [0.0, 0.0],
        };
        for (class, (n, bytes)) in &by_class {
            let Some(c) = prices.class(repo.loc.kind, Some(class)) else {
                continue 'tiers;
            };
            let Some(this) = c.quotes(*n, *bytes).into_iter().find(|x| x.tier == tier) else {
                continue 'tiers;
            };
            q.usd += this.usd;
            q.hours = [q.hours[0].max(this.hours[0]), q.hours[1].max(this.hours[1])];
        }
        out.push(q);
    }
    out
}

/// Asks for a readable copy of every archived pack of `plan` that has no restore under
/// way, kept for `days`. Returns how many restores were started.
pub async fn ask(
    repo: &Repository,
    plan: &RetrievalPlan,
    tier: RetrievalTier,
    days: u32,
) -> Result<usize> {
    if !plan.quotes.iter().any(|q| q.tier == tier)
        && plan.archived.iter().any(|p| p.restore == Restore::None)
    {
        return Err(Error::Invalid(format!(
            "the {} retrieval tier is not offered for these packs' class; choose one of: {}",
            tier.as_str(),
            plan.quotes
                .iter()
                .map(|q| q.tier.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let todo: Vec<&ArchivedPack> = plan
        .archived
        .iter()
        .filter(|p| p.restore == Restore::None)
        .collect();
    let started: Vec<RestoreAsked> = futures::stream::iter(todo)
        .map(|p| async move { repo.restore_object(&pack_name(&p.pack), tier, days).await })
        .buffer_unordered(LOOKS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(started
        .iter()
        .filter(|a| **a == RestoreAsked::Started)
        .count())
}

/// Waits until every archived pack of `plan` is readable, looking every `poll` (on the
/// repository's clock) and telling `progress` of the bytes that became readable.
pub async fn wait_ready(
    repo: &Repository,
    plan: &RetrievalPlan,
    poll: Duration,
    progress: &Progress,
) -> Result<()> {
    let mut waiting: Vec<&ArchivedPack> = plan.archived.iter().collect();
    progress.add_total(plan.archived_bytes);
    loop {
        let names: Vec<String> = waiting.iter().map(|p| pack_name(&p.pack)).collect();
        let states = repo.object_states(&names).await?;
        let mut still = Vec::new();
        for (p, s) in waiting.into_iter().zip(states) {
            if !s.needs_retrieval() {
                progress.add_bytes(p.size);
            } else {
                still.push(p);
            }
        }
        waiting = still;
        if waiting.is_empty() {
            progress.finish();
            return Ok(());
        }
        tracing::info!(
            "{} pack(s) still being retrieved; looking again in {} min",
            waiting.len(),
            poll.as_secs() / 60
        );
        repo.clock().sleep(poll).await;
    }
}
