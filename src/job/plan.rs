//! A job's plan: what its next transfer would copy and cost, writing nothing — the
//! copy engine's dry run of each source against the job's target (before the first
//! run, against an empty stand-in made with the job's settings), with the same options
//! the runner uses, priced with the price table: requests, transfer out of the
//! source's region, and a month of storage for the new data in the job's data class.

use std::sync::Arc;

use serde::Serialize;

use super::config::Job;
use crate::clock::Clock;
use crate::copy::Plan;
use crate::prices::{CopyCost, Prices};
use crate::progress::Progress;
use crate::repo::{Repository, WarmSpec};
use crate::store::throttle::Throttle;
use crate::{Error, Result, copy, store};

/// What one job's next transfer would do.
#[derive(Clone, Debug, Serialize)]
pub struct JobPlan {
    pub job: String,
    pub target: String,
    /// False before the job's first run: the plan is against an empty target.
    pub target_exists: bool,
    /// Per source, its URL and what its copy would do.
    pub sources: Vec<SourcePlan>,
    /// The sources together.
    pub total: Plan,
    /// The price of `total` (requests, transfer, a month of the new data's storage).
    pub cost: CopyCost,
}

#[derive(Clone, Debug, Serialize)]
pub struct SourcePlan {
    pub url: String,
    /// Chains (machines) with something to copy.
    pub chains: usize,
    pub plan: Plan,
}

/// Plans `job`'s next transfer; every source's copy planned as the runner would run it
/// now (periods in `tz`) — each machine's latest point and, with catch-up, the points missed since the
/// last copied that retention keeps (`look_forward` aside: the plan does not wait for a
/// point of the interval).
pub async fn plan<Tz: chrono::TimeZone>(
    job: &Job,
    clock: Arc<dyn Clock>,
    prices: &Prices,
    tz: &Tz,
) -> Result<JobPlan> {
    let throttle = Throttle::new(job.throttle.clone(), clock.clone());
    let mut sources = Vec::new();
    for s in &job.sources {
        let r =
            crate::repo::open_repository_with(&s.url, &s.password, &clock, WarmSpec::READER, None)
                .await?
                .ok_or_else(|| Error::NoRepository { url: s.url.clone() })?;
        sources.push(Arc::new(r));
    }
    let first = sources
        .first()
        .ok_or_else(|| Error::Invalid(format!("job {}: no sources", job.name)))?;
    let url = job.target.repository_url(&job.name);
    let found = crate::repo::open_repository_with(
        &url,
        &job.target.password,
        &clock,
        WarmSpec::COPY_TARGET,
        Some(&throttle),
    )
    .await?;
    let target_exists = found.is_some();
    // The job's memory of what it copied, for catch-up (none before the first run).
    let state = match &found {
        Some(t) => super::state::JobState::load(t, &job.name).await?,
        None => super::state::JobState::default(),
    };
    let target = match found {
        Some(r) => Arc::new(r),
        None if job.target.map => {
            return Err(Error::Invalid(format!(
                "{url}: no repository there; a mapped job (map = true) continues an existing repository"
            )));
        }
        None => Arc::new(stand_in(job, first).await?),
    };
    let target_kind = store::kind_of(&url).unwrap_or(store::StoreKind::File);
    let class = job.storage_policy().data_class;
    let mut plan = JobPlan {
        job: job.name.clone(),
        target: url,
        target_exists,
        sources: Vec::new(),
        total: Plan::default(),
        cost: CopyCost {
            target_class: class.clone().unwrap_or_else(|| "default".into()),
            ..Default::default()
        },
    };
    for (spec, source) in job.sources.iter().zip(&sources) {
        let mut opts = super::phases::copy_options(job, spec, &sources, None, None);
        let now = clock.now();
        opts.selection.points =
            super::catch_up::points(job, spec, source, &state, None, now, tz).await?;
        opts.dry_run = true;
        let report = copy::run(
            vec![source.clone()],
            target.clone(),
            &opts,
            &Progress::hidden(),
        )
        .await?;
        let total = report.planned();
        let cost = prices.copy_cost(
            source.loc.kind,
            target_kind,
            class.as_deref(),
            (total.get_requests, total.bytes_to_read, total.put_requests),
        );
        plan.cost.add(&cost);
        plan.total.add(&total);
        plan.sources.push(SourcePlan {
            url: spec.url.clone(),
            chains: report
                .chains
                .iter()
                .filter(|c| c.plan.as_ref().is_some_and(|p| p.points > 0))
                .count(),
            plan: total,
        });
    }
    Ok(plan)
}

/// An empty in-memory repository with the settings the job's first run would give its
/// target: a plan creates nothing, not even the target.
async fn stand_in(job: &Job, first: &Repository) -> Result<Repository> {
    let scratch = format!(
        "memory://job-plan-{}",
        hex::encode(crate::crypto::random_bytes::<8>())
    );
    let mut opts = copy::target_init_options(
        &first.config,
        Some(job.target.compression),
        job.target.pack_size,
        crate::keys::DRY_RUN_KDF,
    );
    // The class decides how data and trees are packed; a memory store keeps no lock.
    opts.storage.data_class = None;
    Repository::init(store::open(&scratch, true)?, b"job plan", opts).await
}
