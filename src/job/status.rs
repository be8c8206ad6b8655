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
use crate::copy::{Candidate, PointsSpec, Selection};
use crate::repo::WarmSpec;
use crate::{Error, Id, Result};

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
    pub last_result: Option<super::interval::Outcome>,
    pub last_prune: Option<DateTime<Utc>>,
    pub machines: Vec<MachineStatus>,
}

/// Reads the status of `job`: its sources' points, its target's points and state.
pub async fn status(job: &Job, clock: &Arc<dyn Clock>) -> Result<JobStatus> {
    let url = job.target.repository_url(&job.name);
    let target =
        crate::repo::open_repository(&url, &job.target.password, clock, WarmSpec::POINTS).await?;
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
        let repo = crate::repo::open_repository(&spec.url, &spec.password, clock, WarmSpec::POINTS)
            .await?
            .ok_or_else(|| Error::NoRepository {
                url: spec.url.clone(),
            })?;
        let candidates = repo
            .load_points()
            .await?
            .into_iter()
            .map(|(id, point)| Candidate {
                source: 0,
                id,
                point,
            });
        let latest = Selection {
            points: PointsSpec::Latest,
            ..job.selection(spec)
        };
        for c in latest.apply(candidates.collect())? {
            let newer = newest
                .get(&c.point.machine)
                .is_none_or(|n| c.point.time > n.0);
            if newer {
                newest.insert(
                    c.point.machine.clone(),
                    (c.point.time, repo.config.id, c.id),
                );
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
