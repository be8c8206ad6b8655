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

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Id;
use crate::copy::plan::ChainPlan;
use crate::copy::transfer::TransferOutcome;
use crate::copy::{ChainMode, Compression};
use crate::format::index::IndexedPack;

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
    /// When finished: the plan made (its reads left out: the runner commits by its
    /// points) and the transfer's outcome (its packs are those reported in `packs`).
    #[serde(default)]
    pub plan: Option<ChainPlan>,
    #[serde(default)]
    pub outcome: Option<TransferOutcome>,
    /// Why the task failed as a whole.
    #[serde(default)]
    pub error: Option<String>,
}

/// `GET /v1/health`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    pub version: String,
    /// The repository format it writes.
    pub format: u16,
    pub slots: usize,
    pub busy: usize,
    /// Shutting down: it takes no new task.
    pub stopping: bool,
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
        ];
        for (r, what) in bad {
            let e = r.validate().unwrap_err();
            assert!(e.contains(what), "{e} (wanted {what})");
        }
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
