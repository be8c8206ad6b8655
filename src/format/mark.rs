//! Marks on restore points, `marks/<point id>-<kind>[-<period>]`: what is learned about a point after
//! it was written — that retention chose it as a week's, month's or year's point (a GFS
//! flag, kept until the end of its period), or that a health check found data of it that
//! no source could give back (damaged). A point is immutable (and may sit under an object
//! lock), so these live beside it as small sealed objects of their own: one per point,
//! kind and period (a point can be the point of a week by two weekday settings), so a
//! flag is written once by a conditional create and never rewritten.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAGIC_MARK, MARKS, envelope};
use crate::crypto::SecretKey;
use crate::{Error, Id, Result};

/// What a mark says of its point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkKind {
    Weekly,
    Monthly,
    Yearly,
    Damaged,
}

impl MarkKind {
    pub const ALL: [MarkKind; 4] = [
        MarkKind::Weekly,
        MarkKind::Monthly,
        MarkKind::Yearly,
        MarkKind::Damaged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MarkKind::Weekly => "weekly",
            MarkKind::Monthly => "monthly",
            MarkKind::Yearly => "yearly",
            MarkKind::Damaged => "damaged",
        }
    }

    /// A GFS flag (as opposed to a finding).
    pub fn is_gfs(self) -> bool {
        !matches!(self, MarkKind::Damaged)
    }
}

impl std::fmt::Display for MarkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A mark: the sealed JSON payload of a `marks/…` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub point: Id,
    pub kind: MarkKind,
    /// The GFS period the point stands for (`2026-11-29` for a week's first day,
    /// `2026-11`, `2026`); for damage, what is wrong, in words.
    pub detail: String,
    pub set_at: DateTime<Utc>,
    /// A GFS flag keeps its point until this time (the end of its period's keep).
    #[serde(default)]
    pub until: Option<DateTime<Utc>>,
}

impl Mark {
    pub fn name(&self) -> String {
        match self.kind.is_gfs() {
            true => flag_name(&self.point, self.kind, &self.detail),
            false => damaged_name(&self.point),
        }
    }

    /// The sealed object.
    pub fn seal(&self, key: &SecretKey) -> Result<Vec<u8>> {
        let plain = serde_json::to_vec(self).map_err(|e| Error::Internal(format!("mark: {e}")))?;
        Ok(envelope::seal_file(key, MAGIC_MARK, 3, &plain))
    }

    /// Opens the object `name`; its payload must name the same point and kind as its
    /// name does, so a mark cannot be passed off as another point's.
    pub fn open(key: &SecretKey, name: &str, bytes: &[u8]) -> Result<Mark> {
        let plain = envelope::open_file(key, name, MAGIC_MARK, bytes)?;
        let mark: Mark = serde_json::from_slice(&plain)
            .map_err(|e| Error::corrupt(name, format!("mark: {e}")))?;
        if mark.name() != name {
            return Err(Error::corrupt(
                name,
                format!(
                    "the mark inside is for point {} ({}), not the one its name says; \
                     delete the object",
                    mark.point, mark.kind
                ),
            ));
        }
        Ok(mark)
    }
}

/// `marks/<point id>-<kind>-<period>`: a GFS flag. Periods are digits and dashes
/// (`2026-11-29`, `2026-11`, `2026`).
pub fn flag_name(point: &Id, kind: MarkKind, period: &str) -> String {
    format!("{MARKS}/{point}-{kind}-{period}")
}

/// `marks/<point id>-damaged`.
pub fn damaged_name(point: &Id) -> String {
    format!("{MARKS}/{point}-damaged")
}

/// The point and kind a `marks/…` name stands for; `None` for any other name.
pub fn parse_mark_name(name: &str) -> Option<(Id, MarkKind)> {
    let rest = name.strip_prefix(MARKS)?.strip_prefix('/')?;
    let (id, rest) = rest.split_once('-')?;
    let id: Id = id.parse().ok()?;
    let (kind, period) = match rest.split_once('-') {
        Some((kind, period)) => (kind, Some(period)),
        None => (rest, None),
    };
    let kind = MarkKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
    let fits = match (kind.is_gfs(), period) {
        (true, Some(p)) => {
            !p.is_empty() && p.len() <= 16 && p.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        }
        (false, None) => true,
        _ => false,
    };
    fits.then_some((id, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(kind: MarkKind) -> Mark {
        Mark {
            point: Id([9; 32]),
            kind,
            detail: "2026-11".into(),
            set_at: Utc::now(),
            until: Some(Utc::now()),
        }
    }

    #[test]
    fn names_round_trip_and_foreign_names_are_refused() {
        for kind in MarkKind::ALL {
            let m = mark(kind);
            assert_eq!(parse_mark_name(&m.name()), Some((m.point, kind)));
        }
        let id = Id([9; 32]);
        assert!(mark(MarkKind::Weekly).name().ends_with("-weekly-2026-11"));
        assert!(mark(MarkKind::Damaged).name().ends_with("-damaged"));
        for bad in [
            "marks/xyz-weekly-2026",
            "marks/0909-weekly-2026",
            &format!("marks/{id}-daily-2026"),
            &format!("marks/{id}-weekly"),
            &format!("marks/{id}-weekly-"),
            &format!("marks/{id}-damaged-2026"),
            &format!("points/{id}-weekly-2026"),
            &format!("marks/{id}-weekly-2026/x"),
        ] {
            assert_eq!(parse_mark_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn sealed_marks_open_and_a_moved_one_is_refused() {
        let key = SecretKey::from_bytes(&[5; 32]);
        let m = mark(MarkKind::Monthly);
        let sealed = m.seal(&key).unwrap();
        assert_eq!(Mark::open(&key, &m.name(), &sealed).unwrap(), m);
        let other = flag_name(&Id([8; 32]), MarkKind::Monthly, "2026-11");
        let e = Mark::open(&key, &other, &sealed).unwrap_err().to_string();
        assert!(
            e.contains(&other) && e.contains("not the one its name says"),
            "{e}"
        );
        for wrong in [
            flag_name(&m.point, MarkKind::Yearly, "2026-11"),
            flag_name(&m.point, MarkKind::Monthly, "2026-12"),
            damaged_name(&m.point),
        ] {
            assert!(Mark::open(&key, &wrong, &sealed).is_err(), "{wrong}");
        }
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(Mark::open(&key, &m.name(), &flipped).is_err());
    }
}
