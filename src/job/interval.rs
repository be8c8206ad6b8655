//! What one interval of a job reports: per machine what became of it, the phases'
//! reports, and the interval's [`Outcome`] worked out from them. Plain data shared by
//! the interval's driver (`run`), the job's state, report files and webhooks, and the
//! metrics.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::script::{OnFailure, ScriptReport};
use crate::copy::CopyReport;
use crate::prune::PruneReport;
use crate::retention::ForgetReport;
use crate::store::throttle::ThrottleReport;

/// What became of one machine in an interval.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum MachineResult {
    /// Its newest point was copied.
    Copied,
    /// The target held its newest point already.
    UpToDate,
    /// Its newest point is not in the target: the reason says why.
    Unprotected,
    /// `look_forward`: no point made since the interval began yet; looked for again.
    Waiting,
}

#[derive(Clone, Debug, Serialize)]
pub struct MachineReport {
    pub machine: String,
    pub result: MachineResult,
    pub points_copied: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl MachineResult {
    pub fn as_str(&self) -> &'static str {
        match self {
            MachineResult::Copied => "copied",
            MachineResult::UpToDate => "up-to-date",
            MachineResult::Unprotected => "unprotected",
            MachineResult::Waiting => "waiting",
        }
    }
}

impl std::fmt::Display for MachineResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the interval went as a whole.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Success,
    /// Finished, but a machine is unprotected or a phase failed.
    Warning,
    Failed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Success => "success",
            Outcome::Warning => "warning",
            Outcome::Failed => "failed",
        })
    }
}

/// The report of one interval.
#[derive(Clone, Debug, Serialize)]
pub struct IntervalReport {
    pub job: String,
    pub target: String,
    pub started: DateTime<Utc>,
    pub seconds: f64,
    pub outcome: Outcome,
    pub machines: Vec<MachineReport>,
    /// Why the transfer did not run (outside the copy window), if so, and when the
    /// next window opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer_waits: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waits_until: Option<DateTime<Utc>>,
    pub copies: Vec<CopyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<ForgetReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneReport>,
    /// The health check, when it was due.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthReport>,
    /// The active full, when it was due: blobs read again into fresh packs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_full: Option<crate::health::HealthReport>,
    pub errors: Vec<String>,
    /// What went wrong without failing the interval (a script told to warn).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The pre- and post-job scripts that ran.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scripts: Vec<ScriptReport>,
    /// Asked to stop (SIGTERM) before the interval finished.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
    /// What the throttle did: answers 503/429 seen, how far it lowered the requests in
    /// flight, time waited for bandwidth.
    pub throttle: ThrottleReport,
    /// The archiver pool the transfer ran on, when the job names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archivers: Option<super::archivers::ArchiversReport>,
}

/// How the interval went, from what its report holds so far.
pub(super) fn outcome(r: &IntervalReport) -> Outcome {
    let unprotected = r
        .machines
        .iter()
        .any(|m| m.result == MachineResult::Unprotected);
    let failed_script = r
        .scripts
        .iter()
        .any(|s| !s.ok && s.on_failure == OnFailure::Fail);
    let nothing_ran = r.copies.is_empty() && r.transfer_waits.is_none() && !r.stopped;
    match (r.errors.is_empty(), unprotected, r.warnings.is_empty()) {
        _ if failed_script => Outcome::Failed,
        (true, false, true) => Outcome::Success,
        (false, _, _) if nothing_ran => Outcome::Failed,
        _ => Outcome::Warning,
    }
}
