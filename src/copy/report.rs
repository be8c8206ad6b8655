//! What a copy did (or, with `--dry-run`, would do), per chain: points, bytes, blobs,
//! requests by kind, time, and the bottleneck — the share of wall time each stage was
//! busy, so the operator sees whether the source, the CPU or the target limits the job.

use serde::Serialize;

use crate::Id;
use crate::store::Requests;

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
    pub reason: String,
}

/// Share (0..1) of the chain's wall time each stage had work in flight.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Bottleneck {
    pub source_read: f64,
    pub processing: f64,
    pub target_write: f64,
    /// The busiest stage: "source read", "processing" or "target write".
    pub limiting: String,
}

impl Bottleneck {
    pub fn new(read: f64, cpu: f64, write: f64, wall: f64) -> Bottleneck {
        let w = wall.max(1e-9);
        let (r, c, t) = (
            (read / w).min(1.0),
            (cpu / w).min(1.0),
            (write / w).min(1.0),
        );
        let limiting = if r >= c && r >= t {
            "source read"
        } else if c >= t {
            "processing"
        } else {
            "target write"
        };
        Bottleneck {
            source_read: r,
            processing: c,
            target_write: t,
            limiting: limiting.into(),
        }
    }
}

/// What a dry run found: what the copy would read and write.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub points: u64,
    pub blobs: u64,
    pub bytes_to_read: u64,
    pub get_requests: u64,
    /// Estimated from the blobs' stored sizes and the target pack size.
    pub target_objects: u64,
    pub put_requests: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ChainReport {
    /// The machine (per-machine chains) or `job:NAME` (per-job chains).
    pub chain: String,
    pub machines: Vec<String>,
    /// "copied", "up-to-date", "partial", "failed", "skipped" or "planned".
    pub status: String,
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
    pub warnings: Vec<String>,
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
}

impl CopyReport {
    pub fn points_copied(&self) -> usize {
        self.chains.iter().map(|c| c.copied.len()).sum()
    }

    pub fn has_failures(&self) -> bool {
        self.chains
            .iter()
            .any(|c| !c.failed.is_empty() || c.status == "failed" || c.status == "skipped")
    }
}
