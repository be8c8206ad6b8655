//! A job's state, kept in its target repository (`jobs/<hex of the name>`, sealed with
//! the target's key) so that a runner started again — on this machine or another —
//! continues where the last one stopped: the last interval run and its result, each
//! machine's last copied point, and when prune last ran.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::format::{MAGIC_JOB_STATE, envelope, job_state_name};
use crate::repo::Repository;
use crate::{Error, Id, Result};

/// A machine's last copied point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineState {
    pub source_point: Id,
    pub time: DateTime<Utc>,
    pub copied_at: DateTime<Utc>,
    /// The source it was copied from (its URL in the jobs file): when that source
    /// cannot be read, the machine is reported unprotected by name.
    #[serde(default)]
    pub source: Option<String>,
}

/// The last interval that did not succeed, and why (for `job status`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trouble {
    pub interval: DateTime<Utc>,
    pub outcome: super::interval::Outcome,
    pub reason: String,
}

/// The state of one job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobState {
    pub job: String,
    /// Start of the last interval run, when it ran, and its result.
    pub last_interval: Option<DateTime<Utc>>,
    pub last_run: Option<DateTime<Utc>>,
    pub last_result: Option<super::interval::Outcome>,
    pub last_prune: Option<DateTime<Utc>>,
    /// When the health check, and the active full, last ran.
    #[serde(default)]
    pub last_health_check: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_active_full: Option<DateTime<Utc>>,
    #[serde(default)]
    pub machines: BTreeMap<String, MachineState>,
    /// The last interval that warned or failed, with its first problem.
    #[serde(default)]
    pub last_trouble: Option<Trouble>,
}

impl JobState {
    /// Reads the state of `job` from `repo`; a job that never ran has an empty one.
    pub async fn load(repo: &Repository, job: &str) -> Result<JobState> {
        let name = job_state_name(job);
        let bytes = match repo.get(&name).await {
            Ok(b) => b,
            Err(Error::NotFound { .. }) => {
                return Ok(JobState {
                    job: job.to_string(),
                    ..Default::default()
                });
            }
            Err(e) => return Err(e),
        };
        let plain = envelope::open_file(repo.key(), &name, MAGIC_JOB_STATE, &bytes)?;
        serde_json::from_slice(&plain).map_err(|e| Error::corrupt(&name, format!("job state: {e}")))
    }

    /// Writes the state (replacing the last; only the job's runner, under its lock).
    pub async fn save(&self, repo: &Repository) -> Result<()> {
        let name = job_state_name(&self.job);
        let plain =
            serde_json::to_vec(self).map_err(|e| Error::Internal(format!("job state: {e}")))?;
        let sealed = envelope::seal_file(repo.key(), MAGIC_JOB_STATE, 3, &plain);
        repo.put_overwrite(&name, sealed.into()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    #[tokio::test]
    async fn state_round_trips_and_starts_empty() {
        let repo = testkit::repo(testkit::memory(), 1 << 20).await;
        let empty = JobState::load(&repo, "nightly").await.unwrap();
        assert_eq!(empty.job, "nightly");
        assert!(empty.last_run.is_none());
        let mut s = empty.clone();
        s.last_prune = Some(Utc::now());
        s.machines.insert(
            "web".into(),
            MachineState {
                source_point: Id([7; 32]),
                time: Utc::now(),
                copied_at: Utc::now(),
                source: Some("file:///srv/backups".into()),
            },
        );
        s.save(&repo).await.unwrap();
        assert_eq!(JobState::load(&repo, "nightly").await.unwrap(), s);
        assert!(
            JobState::load(&repo, "other")
                .await
                .unwrap()
                .machines
                .is_empty()
        );
    }
}
