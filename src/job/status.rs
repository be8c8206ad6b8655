//! `job status`: how current each job's copy is — per machine, the newest point at the
//! sources, whether the target holds it, and the copy lag (the age of the newest source
//! point the target lacks; zero when it holds the newest) — with the job's last run
//! from its state.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::config::Job;
use super::state::JobState;
use crate::clock::Clock;
use crate::repo::{Repository, WarmSpec};
use crate::{Error, Id, Result, store};

/// One machine of a job.
#[derive(Clone, Debug, Serialize)]
pub struct MachineStatus {
    pub machine: String,
    /// The newest selected point at the sources, and whether the target holds it.
    pub newest_at_source: DateTime<Utc>,
    pub copied: bool,
    /// Seconds since the newest point the target lacks was made (0 when copied).
    pub lag_seconds: i64,
    /// The last point the job copied of it (from the job's state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_copied: Option<DateTime<Utc>>,
}

/// One job.
#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub target: String,
    /// Whether the job's repository exists yet (it is made by the first interval).
    pub target_exists: bool,
    pub last_run: Option<DateTime<Utc>>,
    pub last_result: Option<String>,
    pub last_prune: Option<DateTime<Utc>>,
    pub machines: Vec<MachineStatus>,
}

/// Reads the status of `job`: its sources' points, its target's points and state.
pub async fn status(job: &Job, clock: &Arc<dyn Clock>) -> Result<JobStatus> {
    let url = job.target.repository_url(&job.name);
    let pw = job
        .target
        .password
        .read()
        .map_err(|e| Error::Invalid(format!("{url}: {e}")))?;
    let loc = match store::open(&url, false) {
        Ok(l) => Some(l.with_clock(clock.clone())),
        Err(Error::NoRepository { .. }) => None,
        Err(e) => return Err(e),
    };
    let target = match loc {
        Some(l) if Repository::exists_at(&l).await? => {
            Some(Repository::open_warm(l, &pw, WarmSpec::POINTS).await?)
        }
        _ => None,
    };
    let (state, held) = match &target {
        Some(t) => {
            let state = JobState::load(t, &job.name).await?;
            let held: HashSet<(Id, Id)> = t
                .load_points()
                .await?
                .into_iter()
                .filter_map(|(_, p)| p.source.map(|s| (s.repository, s.point)))
                .collect();
            (state, held)
        }
        None => (JobState::default(), HashSet::new()),
    };
    // The newest selected point of each machine across the sources.
    let mut newest: BTreeMap<String, (DateTime<Utc>, Id, Id)> = BTreeMap::new();
    for spec in &job.sources {
        let pw = spec
            .password
            .read()
            .map_err(|e| Error::Invalid(format!("{}: {e}", spec.url)))?;
        let loc = store::open(&spec.url, false)?.with_clock(clock.clone());
        let repo = Repository::open_warm(loc, &pw, WarmSpec::POINTS).await?;
        let selection = job.selection(spec);
        for (id, p) in repo.load_points().await? {
            if !selection.machine_selected(&p.machine)? || !selection.matches_point(&p) {
                continue;
            }
            let e = newest
                .entry(p.machine.clone())
                .or_insert((p.time, repo.config.id, id));
            if p.time > e.0 {
                *e = (p.time, repo.config.id, id);
            }
        }
    }
    let now = clock.now();
    let machines = newest
        .into_iter()
        .map(|(machine, (time, repo, point))| {
            let copied = held.contains(&(repo, point));
            MachineStatus {
                last_copied: state.machines.get(&machine).map(|m| m.time),
                machine,
                newest_at_source: time,
                copied,
                lag_seconds: if copied {
                    0
                } else {
                    (now - time).num_seconds().max(0)
                },
            }
        })
        .collect();
    Ok(JobStatus {
        job: job.name.clone(),
        target: url,
        target_exists: target.is_some(),
        last_run: state.last_run,
        last_result: state.last_result,
        last_prune: state.last_prune,
        machines,
    })
}
