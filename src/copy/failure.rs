//! Why a point or a chain was not copied, as variants a caller decides on: a job runner
//! retries a transient failure on the next interval, heals a corrupt or missing blob from
//! another copy (or asks for a new backup), and waits out a lock. Serialisable, so a
//! transfer run elsewhere (the archiver appliance) reports them unchanged.

use serde::{Deserialize, Serialize};

use crate::{Error, Id};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Failure {
    /// A blob failed authentication or did not hash to its id: the source's copy of it
    /// is damaged (or was tampered with). Nothing of it was written to the target.
    #[error(
        "source {object}, blob {blob}: {what} — the source is damaged there; run `offsite check --read-data` on it"
    )]
    Corrupt {
        object: String,
        blob: Id,
        what: String,
    },
    /// Data a point needs is not in the source: no index lists the blob, or its pack
    /// is gone.
    #[error("{object}: {what}")]
    Missing { object: String, what: String },
    /// The store kept failing after every retry; a later run may well succeed.
    #[error("{object}: {what} (a transient store failure: the next run tries again)")]
    Transient { object: String, what: String },
    /// Another copy of the chain held the target's lock for longer than the wait.
    #[error("{what}")]
    LockTimeout { what: String },
    /// A per-job chain commits all its points or none, and another point failed.
    #[error("another point of {chain} failed, and a per-job chain commits all or none")]
    NotCommitted { chain: String },
    /// The copy was asked to stop (SIGTERM, the copy window's end) before the point
    /// was whole; what arrived is indexed and the next run brings the rest.
    #[error("{what}")]
    Interrupted { what: String },
    /// Anything else: a permanent store answer (permission denied), a local error.
    #[error("{what}")]
    Other { what: String },
}

impl Failure {
    /// The failure an error of the library stands for.
    pub fn from_error(e: &Error) -> Failure {
        match e {
            Error::Corrupt {
                object,
                what,
                blob: Some(blob),
            } => Failure::Corrupt {
                object: object.clone(),
                blob: *blob,
                what: what.clone(),
            },
            Error::NotFound { object } => Failure::Missing {
                object: object.clone(),
                what: "the object is gone from the store".into(),
            },
            Error::Locked(what) => Failure::LockTimeout { what: what.clone() },
            e if e.is_transient() => Failure::Transient {
                object: e.object().unwrap_or_default().to_string(),
                what: e.to_string(),
            },
            e => Failure::Other {
                what: e.to_string(),
            },
        }
    }

    /// Whether running the same copy again may succeed without anyone repairing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Failure::Transient { .. }
                | Failure::LockTimeout { .. }
                | Failure::NotCommitted { .. }
                | Failure::Interrupted { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_the_failure_a_runner_acts_on() {
        let gone = Failure::from_error(&Error::NotFound {
            object: "data/ab/x".into(),
        });
        assert!(matches!(gone, Failure::Missing { .. }));
        assert!(!gone.is_retryable());
        let short = Failure::from_error(&Error::ShortRead {
            object: "data/ab/x".into(),
        });
        assert!(matches!(&short, Failure::Transient { object, .. } if object == "data/ab/x"));
        assert!(short.is_retryable());
        let locked = Failure::from_error(&Error::Locked("held".into()));
        assert!(matches!(locked, Failure::LockTimeout { .. }));
        let id = Id::hash(b"b");
        let bad = Failure::from_error(&Error::corrupt_blob("data/ab/x", id, "blob: tag"));
        let unnamed = Failure::from_error(&Error::corrupt("data/ab/x", format!("blob {id}: tag")));
        assert!(
            matches!(unnamed, Failure::Other { .. }),
            "no blob is read out of prose"
        );
        assert!(matches!(bad, Failure::Corrupt { blob, .. } if blob == id));
        let json = serde_json::to_value(&bad).unwrap();
        assert_eq!(json["kind"], "corrupt");
        let back: Failure = serde_json::from_value(json).unwrap();
        assert_eq!(back, bad);
    }
}
