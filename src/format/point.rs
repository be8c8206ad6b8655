//! Restore points (`points/<id>`): one machine at one time. Written last, with a
//! conditional create, so every point that exists references only stored data.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAGIC_POINT, envelope};
use crate::crypto::SecretKey;
use crate::{Error, Id, Result};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Bytes of file content in the point.
    pub bytes: u64,
    /// Blobs this point added to the repository.
    pub blobs_added: u64,
    /// Bytes (sealed) this point added to the repository.
    pub bytes_added: u64,
    /// Entries that could not be read and were left out (each was reported).
    #[serde(default)]
    pub errors: u64,
    /// Files the parent point showed unchanged, taken from it without being read.
    #[serde(default)]
    pub files_reused: u64,
    /// Their bytes.
    #[serde(default)]
    pub bytes_reused: u64,
}

/// Where a copied point came from (set by `offsite copy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub repository: Id,
    pub point: Id,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    pub machine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    pub time: DateTime<Utc>,
    pub host: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// The paths given to `backup`, as given.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Tree blobs, in order: their concatenation is the point's tree stream.
    pub tree: Vec<Id>,
    pub summary: Summary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Provenance>,
}

pub const MAX_NAME: usize = 256;

/// Machine and job names: printable, no slashes, at most 256 bytes.
pub fn validate_name(what: &str, name: &str) -> std::result::Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(format!(
            "{what} name {name:?} must be 1 to {MAX_NAME} printable characters without slashes"
        ));
    }
    Ok(())
}

impl Point {
    pub fn seal(&self, key: &SecretKey, level: i32) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("point serialises");
        envelope::seal_file(key, MAGIC_POINT, level.max(1), &json)
    }

    pub fn open(key: &SecretKey, object: &str, bytes: &[u8]) -> Result<Point> {
        let plain = envelope::open_file(key, object, MAGIC_POINT, bytes)?;
        let p: Point = serde_json::from_slice(&plain)
            .map_err(|e| Error::corrupt(object, format!("unreadable restore point: {e}")))?;
        validate_name("machine", &p.machine).map_err(|w| Error::corrupt(object, w))?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{config::Config, lock::Lock};
    use proptest::prelude::*;

    fn key() -> SecretKey {
        SecretKey::from_bytes(&[5; 32])
    }

    proptest! {
        /// Properly sealed but arbitrary (or JSON-shaped) payloads never panic the
        /// readers of points, configs and locks.
        #[test]
        fn sealed_garbage_is_an_error(raw in proptest::collection::vec(any::<u8>(), 0..200), s in "\\PC{0,80}") {
            for payload in [raw.clone(), format!("{{\"machine\":{s:?},\"tree\":[]}}").into_bytes()] {
                let p = envelope::seal_file(&key(), MAGIC_POINT, 3, &payload);
                let _ = Point::open(&key(), "points/x", &p);
                let c = envelope::seal_file(&key(), crate::format::MAGIC_CONFIG, 3, &payload);
                prop_assert!(Config::open(&key(), &c).is_err());
                let l = envelope::seal_file(&key(), crate::format::MAGIC_LOCK, 0, &payload);
                let _ = Lock::open(&key(), "locks/x", &l);
            }
        }
    }

    #[test]
    fn round_trip_and_name_rules() {
        let p = Point {
            machine: "web01".into(),
            job: None,
            time: chrono::Utc::now(),
            host: "h".into(),
            tags: BTreeMap::new(),
            parent: None,
            paths: vec![],
            tree: vec![Id::hash(b"t")],
            summary: Summary::default(),
            source: None,
        };
        let sealed = p.seal(&key(), 3);
        assert_eq!(Point::open(&key(), "points/x", &sealed).unwrap(), p);
        assert!(validate_name("machine", "a/b").is_err());
        assert!(validate_name("machine", "").is_err());
        assert!(validate_name("machine", "web-01.example").is_ok());
    }
}
