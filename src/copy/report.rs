//! What a copy did (or, with `--dry-run`, would do), per chain: points, bytes, blobs,
//! requests by kind, time, and the bottleneck — the share of wall time each stage was
//! busy, so the operator sees whether the source, the CPU or the target limits the job.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::Failure;
use crate::Id;
use crate::repo::Repository;
use crate::store::Requests;

/// What became of one chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainStatus {
    /// Every chosen point was copied.
    Copied,
    /// Every chosen point was in the target already.
    UpToDate,
    /// Some points were copied, some failed.
    Partial,
    /// Nothing was copied.
    #[default]
    Failed,
    /// Not attempted (a source point was still being written).
    Skipped,
    /// A dry run: the plan only.
    Planned,
}

impl ChainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainStatus::Copied => "copied",
            ChainStatus::UpToDate => "up-to-date",
            ChainStatus::Partial => "partial",
            ChainStatus::Failed => "failed",
            ChainStatus::Skipped => "skipped",
            ChainStatus::Planned => "planned",
        }
    }
}

impl std::fmt::Display for ChainStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CopiedPoint {
    pub machine: String,
    pub time: chrono::DateTime<chrono::Utc>,
    pub source_repository: Id,
    pub source_point: Id,
    pub target_point: Option<Id>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FailedPoint {
    pub machine: String,
    pub time: chrono::DateTime<chrono::Utc>,
    pub source_point: Id,
    /// `failure` in words.
    pub reason: String,
    pub failure: Failure,
}

impl FailedPoint {
    pub fn new(point: &crate::format::point::Point, id: Id, failure: Failure) -> FailedPoint {
        FailedPoint {
            machine: point.machine.clone(),
            time: point.time,
            source_point: id,
            reason: failure.to_string(),
            failure,
        }
    }
}

/// Seconds each stage of a transfer had work in flight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTimes {
    pub source_read: f64,
    pub processing: f64,
    pub target_write: f64,
}

/// What limited a chain's speed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limiting {
    #[default]
    #[serde(rename = "source read")]
    SourceRead,
    #[serde(rename = "processing")]
    Processing,
    #[serde(rename = "target write")]
    TargetWrite,
    /// No stage was busy half the time: planning, tree walks, locks, index and points.
    #[serde(rename = "planning and metadata")]
    Overhead,
}

impl std::fmt::Display for Limiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limiting::SourceRead => "source read",
            Limiting::Processing => "processing",
            Limiting::TargetWrite => "target write",
            Limiting::Overhead => "planning and metadata",
        })
    }
}

/// Share (0..1) of the chain's wall time each stage had work in flight.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Bottleneck {
    pub source_read: f64,
    pub processing: f64,
    pub target_write: f64,
    /// The busiest stage when it was busy at least half the time; otherwise the time
    /// went outside the stages.
    pub limiting: Limiting,
}

impl Bottleneck {
    pub fn new(read: f64, cpu: f64, write: f64, wall: f64) -> Bottleneck {
        let w = wall.max(1e-9);
        let (r, c, t) = (
            (read / w).min(1.0),
            (cpu / w).min(1.0),
            (write / w).min(1.0),
        );
        let limiting = if r.max(c).max(t) < 0.5 {
            Limiting::Overhead
        } else if r >= c && r >= t {
            Limiting::SourceRead
        } else if c >= t {
            Limiting::Processing
        } else {
            Limiting::TargetWrite
        };
        Bottleneck {
            source_read: r,
            processing: c,
            target_write: t,
            limiting,
        }
    }
}

/// What a dry run found: what the copy would read and write.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub points: u64,
    pub blobs: u64,
    pub bytes_to_read: u64,
    pub get_requests: u64,
    /// Estimated from the blobs' stored sizes and the target pack size.
    pub target_objects: u64,
    pub put_requests: u64,
}

impl Plan {
    /// Adds `o`'s figures to these.
    pub fn add(&mut self, o: &Plan) {
        self.points += o.points;
        self.blobs += o.blobs;
        self.bytes_to_read += o.bytes_to_read;
        self.get_requests += o.get_requests;
        self.target_objects += o.target_objects;
        self.put_requests += o.put_requests;
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ChainReport {
    /// The machine (per-machine chains) or `job:NAME` (per-job chains).
    pub chain: String,
    pub machines: Vec<String>,
    pub status: ChainStatus,
    pub copied: Vec<CopiedPoint>,
    pub already_copied: u64,
    pub failed: Vec<FailedPoint>,
    pub blobs_new: u64,
    pub blobs_present: u64,
    /// Bytes of machine data in the points copied.
    pub bytes_logical: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub requests_source: Requests,
    pub requests_target: Requests,
    pub seconds: f64,
    /// Logical bytes per second.
    pub throughput: f64,
    pub bottleneck: Bottleneck,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
    /// Why the whole chain failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    pub warnings: Vec<String>,
    /// The archiver that transferred the chain (`copy --via`); `None`: this process.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub appliance: Option<String>,
    /// Archivers lost while they had the chain, and the packs of theirs kept.
    pub lost_appliances: Vec<LostAppliance>,
    /// What the archiver that transferred the chain read from the sources (as planned)
    /// and wrote to the target; `bytes_read` and `bytes_written` include it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by_appliance: Option<ApplianceWork>,
    /// Meant for an archiver, copied by this process instead, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

/// Bytes an archiver moved for a chain.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct ApplianceWork {
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// A chain meant for an archiver that this process copied itself: every byte of it
/// crossed the runner's link.
#[derive(Clone, Debug, Serialize)]
pub struct Fallback {
    pub why: String,
    /// The operator chose it (`redispatch = "local"`): said, but not a problem.
    pub chosen: bool,
}

/// An archiver lost mid-task: the chain went on elsewhere, keeping its packs.
#[derive(Clone, Debug, Serialize)]
pub struct LostAppliance {
    pub appliance: String,
    pub why: String,
    pub packs_kept: usize,
    pub bytes_kept: u64,
}

impl ChainReport {
    /// A machine left alone because its source point was still being written.
    pub fn skipped(machine: String, why: String) -> ChainReport {
        ChainReport {
            chain: machine.clone(),
            machines: vec![machine],
            status: ChainStatus::Skipped,
            warnings: vec![why],
            ..Default::default()
        }
    }

    /// What the plan found: the machines to copy, and what the target holds already.
    pub fn planned(&mut self, plan: &super::ChainPlan) {
        self.machines = plan.machines();
        self.already_copied = plan.already_copied;
        self.blobs_present = plan.blobs_present;
    }

    /// A dry run's report: the projection, and the points that could not be copied.
    pub fn dry_run(&mut self, plan: &super::ChainPlan) {
        self.status = ChainStatus::Planned;
        self.plan = Some(plan.projection.clone());
        self.failed = plan
            .points
            .iter()
            .filter_map(|p| Some(FailedPoint::new(&p.point, p.id, p.failure.clone()?)))
            .collect();
    }

    /// What a transfer (`blobs_new` blobs written) and its commit did.
    pub fn record(&mut self, blobs_new: u64, done: super::Committed) {
        self.blobs_new = blobs_new;
        self.bytes_logical = done.bytes_logical;
        self.already_copied += done.already_copied.len() as u64;
        if !done.already_copied.is_empty() {
            self.warnings.push(format!(
                "{} point(s) already copied by another run while this one transferred them; not written twice",
                done.already_copied.len()
            ));
        }
        self.status = match (done.copied.is_empty(), done.failed.is_empty()) {
            (true, true) => ChainStatus::UpToDate,
            (_, true) => ChainStatus::Copied,
            (true, false) => ChainStatus::Failed,
            (false, false) => ChainStatus::Partial,
        };
        self.copied = done.copied;
        self.failed = done.failed;
    }

    /// The whole chain failed with `e`.
    pub fn fail(&mut self, e: &crate::Error) {
        self.status = ChainStatus::Failed;
        self.failure = Some(Failure::from_error(e));
        self.warnings.push(e.to_string());
    }
}

/// Counts a chain's requests and time: started before its plan, finished after commit.
pub(super) struct Meter {
    started: Instant,
    sources: Vec<(Arc<Repository>, Requests)>,
    target: Requests,
}

impl Meter {
    pub fn start(sources: &[Arc<Repository>], target: &Repository) -> Meter {
        Meter {
            started: Instant::now(),
            sources: sources
                .iter()
                .map(|r| (r.clone(), r.loc.requests.snapshot()))
                .collect(),
            target: target.loc.requests.snapshot(),
        }
    }

    pub fn finish(&self, target: &Repository, chain: &mut ChainReport, stages: &StageTimes) {
        let mut src = Requests::default();
        for (repo, before) in &self.sources {
            src += repo.loc.requests.snapshot().since(before);
        }
        let dst = target.loc.requests.snapshot().since(&self.target);
        let secs = self.started.elapsed().as_secs_f64();
        chain.requests_source = src;
        chain.requests_target = dst;
        let by = chain.by_appliance.unwrap_or_default();
        chain.bytes_read = src.bytes_in + by.bytes_read;
        chain.bytes_written = dst.bytes_out + by.bytes_written;
        chain.seconds = secs;
        chain.throughput = chain.bytes_logical as f64 / secs.max(1e-9);
        chain.bottleneck = Bottleneck::new(
            stages.source_read,
            stages.processing,
            stages.target_write,
            secs,
        );
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    pub target: String,
    pub target_repository: Id,
    pub dry_run: bool,
    /// Packs left by an interrupted copy that this run indexed instead of re-uploading.
    pub adopted_packs: u64,
    pub adopted_bytes: u64,
    pub chains: Vec<ChainReport>,
    pub seconds: f64,
    /// On a locking target: the packs the copied points reuse, locked as long as them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locks: Option<crate::immutability::Hold>,
    /// Why those locks could not all be extended (the points are copied; the next copy
    /// or `offsite target check-immutable` tries again and tells).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_error: Option<String>,
    /// A dry run's projected cost, from the price table (set by the caller that has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::prices::CopyCost>,
}

impl CopyReport {
    /// A dry run's plans, all chains together.
    pub fn planned(&self) -> Plan {
        let mut total = Plan::default();
        for p in self.chains.iter().filter_map(|c| c.plan.as_ref()) {
            total.add(p);
        }
        total
    }

    pub fn points_copied(&self) -> usize {
        self.chains.iter().map(|c| c.copied.len()).sum()
    }

    pub fn has_failures(&self) -> bool {
        self.lock_error.is_some()
            || self.chains.iter().any(|c| {
                !c.failed.is_empty()
                    || matches!(c.status, ChainStatus::Failed | ChainStatus::Skipped)
                    || c.fallback.as_ref().is_some_and(|f| !f.chosen)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_matches_the_shares() {
        assert_eq!(
            Bottleneck::new(9.0, 2.0, 1.0, 10.0).limiting,
            Limiting::SourceRead
        );
        assert_eq!(
            Bottleneck::new(1.0, 6.0, 1.0, 10.0).limiting,
            Limiting::Processing
        );
        assert_eq!(
            Bottleneck::new(1.0, 2.0, 8.0, 10.0).limiting,
            Limiting::TargetWrite
        );
        // Busy 12 % at most: the time went to planning and metadata, not to a stage.
        assert_eq!(
            Bottleneck::new(0.5, 0.3, 1.2, 10.0).limiting,
            Limiting::Overhead
        );
        assert_eq!(
            serde_json::to_value(Limiting::Overhead).unwrap(),
            "planning and metadata"
        );
    }
}
