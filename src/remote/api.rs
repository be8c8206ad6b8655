//! The archiver appliance's HTTP/JSON API (`/v1/…`), as data: what the runner sends and
//! what the appliance answers. Both sides use these types, so the wire format is defined
//! once. A request names repositories; it never carries a password, a key or a store
//! credential — the appliance holds its own and refuses names it does not know.
//!
//! `POST /v1/tasks` takes a [`TaskRequest`]: one chain's points (by source position and
//! id) for the appliance to plan against the target as it is and to transfer; the
//! runner commits. `GET /v1/tasks/{id}?packs_from=N` answers a [`TaskStatus`] with the
//! packs written from the Nth on, so a runner that loses the appliance knows which
//! whole packs it may index instead of sending them again.
//!
//! The wire has its own version ([`API_VERSION`], in `/v1/health`) and its own result
//! type ([`TaskResult`]), apart from the engine's plan and outcome: the engine may
//! change its insides (the reads it plans, the claims between chains) without an
//! appliance of the same API answering in a shape the runner misreads. The parts it
//! shares with the engine are stored or reported words already: ids, points, indexed
//! packs, failures and the projection.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::Id;
use crate::copy::failure::Failure;
use crate::copy::plan::{ChainPlan, PlannedPoint};
use crate::copy::report::{Plan as Projection, StageTimes};
use crate::copy::transfer::TransferOutcome;
use crate::copy::{ChainMode, Compression};
use crate::format::index::IndexedPack;
use crate::format::point::Point;

/// The version of this API. A runner works only with appliances of its own version
/// (`/v1/health` says which): a change to any type here that an older peer would
/// misread raises it.
pub const API_VERSION: u32 = 2;

/// The header every answer carries with the appliance's instance id: a runner tells by
/// it that one address reaches several appliances.
pub const INSTANCE_HEADER: &str = "x-offsite-instance";

/// Leases a task may ask for, in seconds: the appliance cancels a task whose runner has
/// not asked for it for this long.
pub const LEASES: std::ops::RangeInclusive<u64> = 2..=3600;

/// Zstd levels a task may ask for.
pub const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 0..=22;

/// Largest request body the appliance reads.
pub const MAX_BODY: usize = 4 << 20;
/// Most points one task may name.
pub const MAX_POINTS: usize = 50_000;
/// Pack sizes a task may ask for.
pub const PACK_SIZES: std::ops::RangeInclusive<u64> = (64 << 10)..=(8 << 30);

/// A point of the chain: its source (position in [`TaskRequest::sources`]) and id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskPoint {
    pub source: usize,
    pub id: Id,
}

/// A transfer task: plan these points of these sources into the target, and transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskRequest {
    /// The chain's name (a machine, or `job:NAME`), for reports and logs.
    pub chain: String,
    pub mode: ChainMode,
    /// Source repositories, by the names the appliance knows them by.
    pub sources: Vec<String>,
    pub target: String,
    pub points: Vec<TaskPoint>,
    pub pack_size: u64,
    pub compression: Compression,
    /// `--map`: the target may hold points that were not copied from these sources.
    #[serde(default)]
    pub map: bool,
    #[serde(default)]
    pub reads_in_flight: Option<usize>,
    #[serde(default = "two")]
    pub uploads_in_flight: usize,
    /// Seconds without a poll after which the appliance cancels the task (at a pack
    /// boundary): a runner that dies, or forgets the task, does not leave it writing
    /// packs no index will name. `None`: the appliance's default.
    #[serde(default)]
    pub lease_secs: Option<u64>,
}

fn two() -> usize {
    2
}

/// A repository name as the appliance's configuration gives it: 1 to 64 letters,
/// digits, `.`, `_` or `-`, not starting with a dot — nothing path-like.
pub fn valid_repository_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl TaskRequest {
    /// Checks everything that does not need the repositories; the message says which
    /// field is wrong.
    pub fn validate(&self) -> Result<(), String> {
        crate::format::point::validate_name("chain", &self.chain)?;
        if self.sources.is_empty() || self.sources.len() > 64 {
            return Err("sources: 1 to 64 repository names".into());
        }
        for n in self.sources.iter().chain([&self.target]) {
            if !valid_repository_name(n) {
                return Err(format!(
                    "repository name {n:?}: 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'"
                ));
            }
        }
        if self.sources.contains(&self.target) {
            return Err(format!("{}: the target is one of the sources", self.target));
        }
        if self.points.is_empty() || self.points.len() > MAX_POINTS {
            return Err(format!("points: 1 to {MAX_POINTS}"));
        }
        if let Some(p) = self.points.iter().find(|p| p.source >= self.sources.len()) {
            return Err(format!(
                "point {}: source {} is not among the {} sources",
                p.id,
                p.source,
                self.sources.len()
            ));
        }
        if !PACK_SIZES.contains(&self.pack_size) {
            return Err(format!(
                "pack_size {}: {} to {} bytes",
                self.pack_size,
                PACK_SIZES.start(),
                PACK_SIZES.end()
            ));
        }
        if !(1..=16).contains(&self.uploads_in_flight) {
            return Err("uploads_in_flight: 1 to 16".into());
        }
        if self.reads_in_flight.is_some_and(|r| !(1..=64).contains(&r)) {
            return Err("reads_in_flight: 1 to 64".into());
        }
        if self.lease_secs.is_some_and(|l| !LEASES.contains(&l)) {
            return Err(format!(
                "lease_secs: {} to {} seconds",
                LEASES.start(),
                LEASES.end()
            ));
        }
        if let Compression::Zstd(l) = self.compression
            && !ZSTD_LEVELS.contains(&l)
        {
            return Err(format!(
                "compression: zstd level {l}; levels are {} to {}",
                ZSTD_LEVELS.start(),
                ZSTD_LEVELS.end()
            ));
        }
        Ok(())
    }
}

/// What `POST /v1/tasks` answers when it takes the task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Accepted {
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Reading the sources' and the target's points and index, walking trees.
    Planning,
    Running,
    Done,
    Failed,
    /// Cancelled by `DELETE`: stopped at a pack boundary; the packs written are whole.
    Cancelled,
}

impl TaskState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Done | TaskState::Failed | TaskState::Cancelled
        )
    }
}

/// `GET /v1/tasks/{id}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskStatus {
    pub id: String,
    pub chain: String,
    pub state: TaskState,
    pub started: DateTime<Utc>,
    #[serde(default)]
    pub finished: Option<DateTime<Utc>>,
    /// Source bytes (uncompressed) the plan reads, and done so far.
    pub bytes_total: u64,
    pub bytes_done: u64,
    /// Packs written so far; `packs` holds those from `packs_from` on.
    pub packs_done: usize,
    pub packs_from: usize,
    pub packs: Vec<IndexedPack>,
    /// When done: what the runner commits (its packs are those reported in `packs`).
    #[serde(default)]
    pub result: Option<TaskResult>,
    /// Why the task failed as a whole.
    #[serde(default)]
    pub error: Option<String>,
}

/// What a finished task planned and did, for the runner to commit: the points it
/// copied (each with what it needed and why it failed, if it did), the figures of the
/// plan and of the transfer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskResult {
    /// The source repositories' ids; points name them by position.
    pub sources: Vec<Id>,
    pub points: Vec<ResultPoint>,
    pub pack_size: u64,
    pub already_copied: u64,
    pub blobs_present: u64,
    pub projection: Projection,
    pub blobs_written: u64,
    pub failed_blobs: BTreeMap<Id, Failure>,
    pub stages: StageTimes,
}

/// A point of a finished task.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultPoint {
    pub source: usize,
    pub id: Id,
    pub point: Point,
    /// The blobs of the point the task brought (the target lacked them); empty when
    /// `needs_all` (it needed every blob the task brought).
    pub needs: Vec<Id>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_all: bool,
    /// Why the point cannot be committed: found while planning or while transferring.
    #[serde(default)]
    pub failure: Option<Failure>,
}

impl TaskResult {
    /// The wire's form of a plan and the outcome of its transfer (its packs go apart,
    /// one by one as they land).
    pub fn new(plan: ChainPlan, outcome: TransferOutcome) -> TaskResult {
        let mut failures = outcome.points.into_iter();
        let points = (plan.points.into_iter())
            .map(|p| {
                let late = failures.next().flatten();
                ResultPoint {
                    source: p.source,
                    id: p.id,
                    point: p.point,
                    needs: p.needs,
                    needs_all: p.needs_all,
                    failure: p.failure.or(late),
                }
            })
            .collect();
        TaskResult {
            sources: plan.sources,
            points,
            pack_size: plan.pack_size,
            already_copied: plan.already_copied,
            blobs_present: plan.blobs_present,
            projection: plan.projection,
            blobs_written: outcome.blobs_written,
            failed_blobs: outcome.failed_blobs,
            stages: outcome.stages,
        }
    }

    /// The engine's plan and outcome for the runner's commit, with the packs reported.
    pub fn into_engine(
        self,
        chain: &str,
        mode: ChainMode,
        packs: Vec<IndexedPack>,
    ) -> (ChainPlan, TransferOutcome) {
        let failures = self.points.iter().map(|p| p.failure.clone()).collect();
        let points = (self.points.into_iter())
            .map(|p| PlannedPoint {
                source: p.source,
                id: p.id,
                point: p.point,
                needs: p.needs,
                needs_all: p.needs_all,
                borrowed: Vec::new(),
                failure: None,
            })
            .collect();
        let plan = ChainPlan {
            chain: chain.to_string(),
            mode,
            sources: self.sources,
            points,
            reads: Default::default(),
            pack_size: self.pack_size,
            already_copied: self.already_copied,
            blobs_present: self.blobs_present,
            projection: self.projection,
        };
        let outcome = TransferOutcome {
            packs,
            blobs_written: self.blobs_written,
            failed_blobs: self.failed_blobs,
            points: failures,
            stages: self.stages,
        };
        (plan, outcome)
    }
}

/// `GET /v1/health`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    /// This process's id, also in every answer's [`INSTANCE_HEADER`].
    #[serde(default)]
    pub instance: String,
    pub version: String,
    /// The API version it speaks ([`API_VERSION`]; 0: from before the API had one).
    #[serde(default)]
    pub api: u32,
    /// The repository format it writes.
    pub format: u16,
    pub slots: usize,
    pub busy: usize,
    /// Shutting down: it takes no new task.
    pub stopping: bool,
    /// `ok`, or `degraded` when a repository does not open.
    #[serde(default)]
    pub status: HealthStatus,
    /// Each configured repository's state.
    #[serde(default)]
    pub repositories: Vec<RepositoryHealth>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    #[default]
    Ok,
    /// Some repository does not open: tasks naming it are not possible.
    Degraded,
}

/// What the appliance may do with a repository. A source is only ever read: a task
/// naming it as its target is refused, whatever the task says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read from, never written.
    Source,
    /// Written into (and may be read as the source of another copy).
    Target,
}

/// A configured repository as `/v1/health` shows it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepositoryHealth {
    pub name: String,
    pub role: Role,
    pub state: RepositoryState,
    /// Why it does not open, and since when.
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub since: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepositoryState {
    Open,
    /// Tried and failed (a wrong password, a store not reachable, a target not made).
    Failing,
    /// Being opened now.
    Opening,
    /// Not asked for yet.
    NotTried,
}

/// `GET /v1/repositories`: the names a task may use, with each repository's id (from
/// its config; `None` while it cannot be opened — a target not made yet — with why).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RepositoryInfo {
    pub name: String,
    pub id: Option<Id>,
    #[serde(default)]
    pub error: Option<String>,
}

/// Every error answer's body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TaskRequest {
        TaskRequest {
            chain: "web".into(),
            mode: ChainMode::PerMachine,
            sources: vec!["primary".into()],
            target: "offsite".into(),
            points: vec![TaskPoint {
                source: 0,
                id: Id([1; 32]),
            }],
            pack_size: 16 << 20,
            compression: Compression::Target,
            map: false,
            reads_in_flight: None,
            uploads_in_flight: 2,
            lease_secs: None,
        }
    }

    #[test]
    fn requests_are_validated_field_by_field() {
        assert_eq!(request().validate(), Ok(()));
        let bad: Vec<(TaskRequest, &str)> = vec![
            (
                TaskRequest {
                    target: "../etc".into(),
                    ..request()
                },
                "repository name",
            ),
            (
                TaskRequest {
                    sources: vec!["a/b".into()],
                    ..request()
                },
                "repository name",
            ),
            (
                TaskRequest {
                    target: "primary".into(),
                    ..request()
                },
                "the target is one of the sources",
            ),
            (
                TaskRequest {
                    points: vec![],
                    ..request()
                },
                "points",
            ),
            (
                TaskRequest {
                    points: vec![TaskPoint {
                        source: 3,
                        id: Id([1; 32]),
                    }],
                    ..request()
                },
                "not among",
            ),
            (
                TaskRequest {
                    pack_size: 1,
                    ..request()
                },
                "pack_size",
            ),
            (
                TaskRequest {
                    uploads_in_flight: 0,
                    ..request()
                },
                "uploads_in_flight",
            ),
            (
                TaskRequest {
                    chain: "a/b".into(),
                    ..request()
                },
                "chain",
            ),
            (
                TaskRequest {
                    lease_secs: Some(1),
                    ..request()
                },
                "lease_secs",
            ),
            (
                TaskRequest {
                    compression: Compression::Zstd(23),
                    ..request()
                },
                "zstd level",
            ),
        ];
        for (r, what) in bad {
            let e = r.validate().unwrap_err();
            assert!(e.contains(what), "{e} (wanted {what})");
        }
    }

    /// A plan with two points, one failed while planning and one in the transfer,
    /// crosses the wire and comes back as the runner commits it.
    #[test]
    fn a_result_crosses_the_wire_as_the_commit_needs_it() {
        let point = |machine: &str| Point {
            machine: machine.into(),
            job: None,
            time: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            host: "h".into(),
            tags: Default::default(),
            parent: None,
            paths: vec!["/srv".into()],
            tree: vec![Id([7; 32])],
            summary: Default::default(),
            source: None,
        };
        let planned = |n: u8, failure: Option<Failure>| PlannedPoint {
            source: 0,
            id: Id([n; 32]),
            point: point("web"),
            needs: vec![Id([n + 100; 32])],
            needs_all: false,
            borrowed: vec![Id([9; 32])],
            failure,
        };
        let gone = Failure::Missing {
            object: "data/aa".into(),
            what: "gone".into(),
        };
        let late = Failure::Transient {
            object: "data/bb".into(),
            what: "503".into(),
        };
        let plan = ChainPlan {
            chain: "web".into(),
            mode: ChainMode::PerMachine,
            sources: vec![Id([5; 32])],
            points: vec![
                planned(1, Some(gone.clone())),
                planned(2, None),
                planned(3, None),
            ],
            reads: Default::default(),
            pack_size: 1 << 20,
            already_copied: 4,
            blobs_present: 6,
            projection: Projection {
                points: 3,
                ..Default::default()
            },
        };
        let outcome = TransferOutcome {
            packs: Vec::new(),
            blobs_written: 2,
            failed_blobs: BTreeMap::from([(Id([102; 32]), late.clone())]),
            points: vec![None, Some(late.clone()), None],
            stages: StageTimes::default(),
        };
        let json = serde_json::to_string(&TaskResult::new(plan, outcome)).unwrap();
        let wire: TaskResult = serde_json::from_str(&json).unwrap();
        let (plan, outcome) = wire.into_engine("web", ChainMode::PerMachine, Vec::new());
        assert_eq!(plan.sources, vec![Id([5; 32])]);
        let ids: Vec<Id> = plan.points.iter().map(|p| p.id).collect();
        assert_eq!(ids, vec![Id([1; 32]), Id([2; 32]), Id([3; 32])]);
        assert_eq!(plan.points[1].point, point("web"));
        assert_eq!(plan.points[1].needs, vec![Id([102; 32])]);
        assert!(plan.points.iter().all(|p| p.borrowed.is_empty()));
        assert_eq!(outcome.points, vec![Some(gone), Some(late), None]);
        assert_eq!((plan.already_copied, plan.blobs_present), (4, 6));
        assert_eq!((plan.projection.points, outcome.blobs_written), (3, 2));
        assert_eq!(outcome.failed_blobs.len(), 1);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut v = serde_json::to_value(request()).unwrap();
        v["password"] = "hunter2".into();
        assert!(serde_json::from_value::<TaskRequest>(v).is_err());
    }

    #[test]
    fn names() {
        for ok in ["primary", "s3-eu.west_1", "A1"] {
            assert!(valid_repository_name(ok), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "..", "a b", "x:y", &"a".repeat(65)] {
            assert!(!valid_repository_name(bad), "{bad}");
        }
    }
}
