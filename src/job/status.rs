//! `job status`: how current each job's copy is — per machine, the newest point at the
//! sources, whether the target holds it, and the copy lag (the age of the newest source
//! point the target lacks; zero when it holds the newest) — with the job's last run
//! from its state.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use super::config::{Job, SourceSpec};
use super::state::JobState;
use crate::clock::Clock;
use crate::copy::{PointsSpec, Selection};
use crate::repo::WarmSpec;
use crate::{Error, Id, Result};

/// One machine of a job.
#[derive(Clone, Debug, Serialize)]
pub struct MachineStatus {
    pub machine: String,
    /// The newest selected point at the sources (none when its source cannot be read),
    /// and whether the target holds it.
    pub newest_at_source: Option<DateTime<Utc>>,
    pub copied: bool,
    /// Seconds since the newest point the target lacks was made (0 when copied; none
    /// when its source cannot be read).
    pub lag_seconds: Option<i64>,
    /// The last point the job copied of it (from the job's state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_copied: Option<DateTime<Utc>>,
    /// Why its source (the one it was last copied from) cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_error: Option<String>,
}

/// One source of a job: read, or why not.
#[derive(Clone, Debug, Serialize)]
pub struct SourceStatus {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One job.
#[derive(Clone, Debug, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub target: String,
    /// Whether the job's repository exists yet (it is made by the first interval).
    pub target_exists: bool,
    /// Why the target cannot be read, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_error: Option<String>,
    pub sources: Vec<SourceStatus>,
    pub last_run: Option<DateTime<Utc>>,
    pub last_result: Option<super::interval::Outcome>,
    /// The last interval that warned or failed, and its first problem.
    pub last_trouble: Option<super::state::Trouble>,
    pub last_prune: Option<DateTime<Utc>>,
    pub last_health_check: Option<DateTime<Utc>>,
    /// When the runner runs the job next, and the interval in which prune and the
    /// health check are due next (none: not configured; now: at the next run).
    pub next_run: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_prune: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_health_check: Option<DateTime<Utc>>,
    pub machines: Vec<MachineStatus>,
}

/// What the job's target says: its state and the source points it holds.
async fn read_target(
    job: &Job,
    clock: &Arc<dyn Clock>,
) -> Result<(bool, JobState, HashSet<(Id, Id)>)> {
    let url = job.target.repository_url(&job.name);
    let target =
        crate::repo::open_repository(&url, &job.target.password, clock, WarmSpec::POINTS).await?;
    let Some(t) = target else {
        return Ok((false, JobState::default(), HashSet::new()));
    };
    let state = JobState::load(&t, &job.name).await?;
    let held: HashSet<(Id, Id)> = (t.load_points().await?.into_iter())
        .filter_map(|(_, p)| p.source.map(|s| (s.repository, s.point)))
        .collect();
    Ok((true, state, held))
}

/// The newest selected point of each machine `spec`'s source offers: (time, the
/// source's id, the point's id).
async fn newest_of(
    job: &Job,
    spec: &SourceSpec,
    clock: &Arc<dyn Clock>,
) -> Result<Vec<(String, (DateTime<Utc>, Id, Id))>> {
    let repo = crate::repo::open_repository(&spec.url, &spec.password, clock, WarmSpec::POINTS)
        .await?
        .ok_or_else(|| Error::NoRepository {
            url: spec.url.clone(),
        })?;
    let latest = Selection {
        points: PointsSpec::Latest,
        ..job.selection(spec)
    };
    Ok((latest.points_in(&repo).await?.into_iter())
        .map(|c| (c.point.machine, (c.point.time, repo.config.id, c.id)))
        .collect())
}

/// Reads the status of `job`: its sources' points, its target's points and state. A
/// source or the target that cannot be read is said in the status, not an error.
pub async fn status<Tz: TimeZone>(job: &Job, clock: &Arc<dyn Clock>, tz: &Tz) -> JobStatus {
    let url = job.target.repository_url(&job.name);
    let (target_exists, state, held, target_error) = match read_target(job, clock).await {
        Ok((e, s, h)) => (e, s, h, None),
        Err(e) => (
            false,
            JobState::default(),
            HashSet::new(),
            Some(e.to_string()),
        ),
    };
    // The newest selected point of each machine across the sources.
    let mut newest: BTreeMap<String, (DateTime<Utc>, Id, Id)> = BTreeMap::new();
    let mut sources = Vec::new();
    let mut down = Vec::new();
    for spec in &job.sources {
        let error = match newest_of(job, spec, clock).await {
            Ok(found) => {
                for (machine, n) in found {
                    if newest.get(&machine).is_none_or(|o| n.0 > o.0) {
                        newest.insert(machine, n);
                    }
                }
                None
            }
            Err(e) => {
                down.push((spec.url.clone(), e.to_string()));
                Some(e.to_string())
            }
        };
        sources.push(SourceStatus {
            url: spec.url.clone(),
            error,
        });
    }
    let now = clock.now();
    let last_copied = |m: &str| state.machines.get(m).map(|m| m.time);
    let mut machines: Vec<MachineStatus> = (newest.into_iter())
        .map(|(machine, (time, repo, point))| {
            let copied = held.contains(&(repo, point));
            MachineStatus {
                last_copied: last_copied(&machine),
                machine,
                newest_at_source: Some(time),
                copied,
                lag_seconds: Some(if copied {
                    0
                } else {
                    (now - time).num_seconds().max(0)
                }),
                source_error: None,
            }
        })
        .collect();
    // The machines of the sources that cannot be read, as the state remembers them.
    for (m, s) in &state.machines {
        let error = down
            .iter()
            .find(|(u, _)| s.source.as_deref() == Some(u.as_str()));
        if let (Some((_, e)), false) = (error, machines.iter().any(|x| &x.machine == m)) {
            machines.push(MachineStatus {
                machine: m.clone(),
                newest_at_source: None,
                copied: false,
                lag_seconds: None,
                last_copied: Some(s.time),
                source_error: Some(e.clone()),
            });
        }
    }
    machines.sort_by(|a, b| a.machine.cmp(&b.machine));
    let memory = super::runner::Memory {
        done_interval: state.last_interval,
        last_run: state.last_run,
        waits_until: None,
    };
    let next_of = |every, last| super::timers::next(job, every, last, now, tz);
    let next_run = super::runner::next_run(job, &memory, now, tz);
    JobStatus {
        job: job.name.clone(),
        target: url,
        target_exists,
        target_error,
        sources,
        last_run: state.last_run,
        last_result: state.last_result,
        last_trouble: state.last_trouble.clone(),
        last_prune: state.last_prune,
        last_health_check: state.last_health_check,
        next_run,
        next_prune: (job.prune.as_ref())
            .map(|p| next_of(p.every, state.last_prune).unwrap_or(next_run)),
        next_health_check: (job.health_check.as_ref())
            .map(|h| next_of(h.every, state.last_health_check).unwrap_or(next_run)),
        machines,
    }
}
