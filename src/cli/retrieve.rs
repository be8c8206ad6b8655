//! Retrieval from archive classes on the command line: the plan printed before anything
//! is asked (packs, bytes, per tier price and hours), then with `--retrieve TIER` the
//! restore requests and the wait, with a progress bar, until every pack is readable.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use offsite::format::point::Point;
use offsite::prices::Prices;
use offsite::repo::{MasterIndex, Repository};
use offsite::restore::PathFilter;
use offsite::retrieval::{self, RetrievalPlan};
use offsite::store::cloud::RetrievalTier;
use offsite::{Id, units};

use super::output::size;

#[derive(clap::Args, Debug, Clone)]
pub struct RetrieveArgs {
    /// Retrieve archived packs in this tier (bulk, standard, expedited) and wait until
    /// they are readable. Without it, a point with archived packs gets their plan and
    /// cost, and nothing is asked.
    #[arg(long, value_name = "TIER")]
    pub retrieve: Option<RetrievalTier>,
    /// How long retrieved copies stay readable.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub retrieve_days: u32,
    /// How often to look whether retrieved packs are readable, e.g. 10m.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = units::parse_duration)]
    pub retrieve_poll: Duration,
    /// A price table (default: the built-in one, docs/prices.toml; or OFFSITE_PRICES).
    #[arg(long, value_name = "FILE")]
    pub prices: Option<PathBuf>,
}

/// Whether the repository may hold archived packs worth a look before reading.
pub fn worth_a_look(repo: &Repository, args: &RetrieveArgs) -> bool {
    repo.loc.extra.is_some()
        && (repo.config.storage.data_class.is_some() || args.retrieve.is_some())
}

/// Plans the retrieval of what restoring `point` (as `filter` takes it) reads; prints
/// the plan when something is archived, and asks and waits when `--retrieve` says so.
/// Returns the index it loaded, for the restore to reuse.
pub async fn prepare(
    repo: &Repository,
    point_id: &Id,
    point: &Point,
    filter: &PathFilter,
    args: &RetrieveArgs,
    quiet: bool,
) -> anyhow::Result<Arc<MasterIndex>> {
    let index = Arc::new(repo.load_index().await?);
    let packs = retrieval::needed_packs(repo, &index, point_id, point, filter).await?;
    retrieve_packs(repo, &packs, args, quiet, "this restore reads").await?;
    Ok(index)
}

/// The same for `check --read-data`, which reads every pack.
pub async fn prepare_check(repo: &Repository, args: &RetrieveArgs) -> anyhow::Result<()> {
    let index = repo.load_index().await?;
    let packs: BTreeMap<Id, u64> = index.packs().iter().map(|p| (p.id, p.size)).collect();
    retrieve_packs(repo, &packs, args, false, "check --read-data reads").await
}

/// Plans the retrieval of `packs`; prints the plan when something is archived, and
/// asks and waits when `--retrieve` says so (`who_reads` names the reader in messages).
async fn retrieve_packs(
    repo: &Repository,
    packs: &BTreeMap<Id, u64>,
    args: &RetrieveArgs,
    quiet: bool,
    who_reads: &str,
) -> anyhow::Result<()> {
    let prices = Prices::load(args.prices.as_deref())?;
    let plan = retrieval::plan(repo, packs, &prices).await?;
    if !plan.needs_retrieval() {
        return Ok(());
    }
    if !quiet {
        print_plan(&plan);
    }
    let Some(tier) = args.retrieve else {
        bail!(
            "{} of the {} pack(s) {who_reads} are archived; nothing was asked, read or \
             written. Rerun with --retrieve {} to retrieve them (see the plan above)",
            plan.archived.len(),
            plan.packs,
            plan.quotes
                .iter()
                .map(|q| q.tier.as_str())
                .collect::<Vec<_>>()
                .join("|")
        );
    };
    let started = retrieval::ask(repo, &plan, tier, args.retrieve_days).await?;
    eprintln!(
        "asked for {started} retrieval(s) in the {} tier ({} already under way); waiting until every pack is readable",
        tier.as_str(),
        plan.archived.len() - started
    );
    let progress = super::progress::for_terminal("retrieve", Some(plan.archived_bytes));
    retrieval::wait_ready(repo, &plan, args.retrieve_poll, &progress).await?;
    Ok(())
}

fn print_plan(plan: &RetrievalPlan) {
    eprintln!(
        "retrieval plan: {} of {} pack(s) are archived ({} of {}){}",
        plan.archived.len(),
        plan.packs,
        size(plan.archived_bytes),
        size(plan.bytes),
        match plan.in_progress {
            0 => String::new(),
            n => format!("; {n} retrieval(s) already under way"),
        }
    );
    for q in &plan.quotes {
        eprintln!(
            "  --retrieve {:<9}  {}, readable in {} to {} hours",
            q.tier.as_str(),
            money(q.usd),
            hours(q.hours[0]),
            hours(q.hours[1])
        );
    }
}

/// Dollars as a person reads them: cents, or "under a cent" rather than $0.00.
fn money(usd: f64) -> String {
    match usd {
        0.0 => "$0 (free)".to_string(),
        u if u < 0.01 => "under $0.01".to_string(),
        u => format!("about ${u:.2}"),
    }
}

fn hours(h: f64) -> String {
    if h < 1.0 {
        format!("{:.2}", h)
    } else {
        format!("{h:.0}")
    }
}
