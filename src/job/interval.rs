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
    /// Outside the copy windows (or the window closed mid-transfer): copied when the
    /// next window opens; the reason says when.
    Deferred,
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
            MachineResult::Deferred => "deferred",
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
    /// Nothing went wrong, but the copy windows held the transfer back: the machines
    /// are copied when the next window opens.
    Deferred,
    /// Finished, but a machine is unprotected or a phase failed.
    Warning,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Success,
        Outcome::Deferred,
        Outcome::Warning,
        Outcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Deferred => "deferred",
            Outcome::Warning => "warning",
            Outcome::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    /// Why the interval did not get as far as its phases (the target unreachable, the
    /// job's lock held by another runner): the runner tries it again later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_started: Option<String>,
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
    /// What dead writers left in the target and the interval removed: stale locks,
    /// staging files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swept: Option<crate::repo::sweep::Swept>,
    /// The archiver pool the transfer ran on, when the job names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archivers: Option<super::archivers::ArchiversReport>,
}

impl IntervalReport {
    /// The report of an interval of `job` begun at `started`, before anything happened.
    pub fn new(job: &str, target: &str, started: DateTime<Utc>) -> IntervalReport {
        IntervalReport {
            job: job.to_string(),
            target: target.to_string(),
            started,
            seconds: 0.0,
            outcome: Outcome::Success,
            machines: Vec::new(),
            transfer_waits: None,
            waits_until: None,
            copies: Vec::new(),
            retention: None,
            prune: None,
            health: None,
            active_full: None,
            errors: Vec::new(),
            not_started: None,
            warnings: Vec::new(),
            scripts: Vec::new(),
            stopped: false,
            throttle: ThrottleReport::default(),
            swept: None,
            archivers: None,
        }
    }

    /// Whether the interval did anything worth a report of its own (an immediate
    /// job's polls that did nothing are counted, not reported): a point copied, a
    /// phase that ran, or anything that went wrong.
    pub fn did_something(&self) -> bool {
        let copied = self.machines.iter().any(|m| m.points_copied > 0);
        let changed = self.retention.as_ref().is_some_and(|f| f.forgotten() > 0)
            || self.prune.is_some()
            || self.health.is_some()
            || self.active_full.is_some();
        copied || changed || self.outcome != Outcome::Success || !self.scripts.is_empty()
    }

    /// The machines whose newest point the target lacks, by name.
    pub fn unprotected(&self) -> Vec<&str> {
        (self.machines.iter())
            .filter(|m| !matches!(m.result, MachineResult::Copied | MachineResult::UpToDate))
            .map(|m| m.machine.as_str())
            .collect()
    }
}

/// How the interval went, from what its report holds so far.
pub(super) fn outcome(r: &IntervalReport) -> Outcome {
    let unprotected = r
        .machines
        .iter()
        .any(|m| m.result == MachineResult::Unprotected);
    let deferred = r
        .machines
        .iter()
        .any(|m| m.result == MachineResult::Deferred)
        || (r.machines.is_empty() && r.transfer_waits.is_some() && r.waits_until.is_some());
    let failed_script = r
        .scripts
        .iter()
        .any(|s| !s.ok && s.on_failure == OnFailure::Fail);
    let nothing_copied = !r
        .machines
        .iter()
        .any(|m| matches!(m.result, MachineResult::Copied | MachineResult::UpToDate));
    let nothing_ran = nothing_copied && r.transfer_waits.is_none() && !r.stopped;
    match (r.errors.is_empty(), unprotected, r.warnings.is_empty()) {
        _ if failed_script || r.not_started.is_some() => Outcome::Failed,
        (true, false, true) if deferred => Outcome::Deferred,
        (true, false, true) => Outcome::Success,
        (false, _, _) if nothing_ran => Outcome::Failed,
        _ => Outcome::Warning,
    }
}
