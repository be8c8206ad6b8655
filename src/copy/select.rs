//! Which restore points a copy takes: by machine name or glob, source job, tag, and
//! `latest` / `all` / `since=DATE`; and which machines fall into shard I of N.

use chrono::{DateTime, NaiveDate, Utc};

use crate::format::point::Point;
use crate::{Error, Id, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PointsSpec {
    /// The latest point of each selected machine.
    Latest,
    All,
    Since(DateTime<Utc>),
    /// The latest point of each selected machine among those made at or after a time.
    LatestSince(DateTime<Utc>),
    /// Exactly these points (a job runner's catch-up decides them).
    Ids(std::collections::BTreeSet<Id>),
}

impl std::str::FromStr for PointsSpec {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "latest" => Ok(PointsSpec::Latest),
            "all" => Ok(PointsSpec::All),
            _ => {
                let d = s
                    .strip_prefix("since=")
                    .ok_or_else(|| format!("{s:?}: use latest, all or since=YYYY-MM-DD"))?;
                if let Ok(t) = DateTime::parse_from_rfc3339(d) {
                    return Ok(PointsSpec::Since(t.with_timezone(&Utc)));
                }
                let day = NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| format!("{d:?} is not a date like 2026-11-01"))?;
                Ok(PointsSpec::Since(
                    day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc(),
                ))
            }
        }
    }
}

/// A deterministic split of machines across N workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based, as Kubernetes' JOB_COMPLETION_INDEX and AWS Batch's array index are.
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: write I/N, e.g. 0/4"))?;
        let index: u32 = i.parse().map_err(|_| format!("{i:?} is not a number"))?;
        let count: u32 = n.parse().map_err(|_| format!("{n:?} is not a number"))?;
        if count == 0 || index >= count {
            return Err(format!("shard {s}: I must be in 0..N"));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether `machine` belongs to this shard: BLAKE3 of its name, modulo N.
    pub fn contains(&self, machine: &str) -> bool {
        let h = blake3::hash(machine.as_bytes());
        let v = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
        v % u64::from(self.count) == u64::from(self.index)
    }
}

#[derive(Clone, Debug)]
pub struct Selection {
    /// Machine names or globs (`web*`); empty means all.
    pub machines: Vec<String>,
    /// Source job names; empty means all.
    pub jobs: Vec<String>,
    /// KEY=VALUE tags every selected point must carry.
    pub tags: Vec<(String, String)>,
    pub points: PointsSpec,
    pub shard: Option<Shard>,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            machines: Vec::new(),
            jobs: Vec::new(),
            tags: Vec::new(),
            points: PointsSpec::Latest,
            shard: None,
        }
    }
}

impl Selection {
    fn patterns(&self) -> Result<Vec<glob::Pattern>> {
        self.machines
            .iter()
            .map(|m| {
                glob::Pattern::new(m)
                    .map_err(|e| Error::Invalid(format!("machine pattern {m:?}: {e}")))
            })
            .collect()
    }

    pub fn machine_selected(&self, machine: &str) -> Result<bool> {
        let pats = self.patterns()?;
        Ok((pats.is_empty() || pats.iter().any(|p| p.matches(machine)))
            && self.shard.is_none_or(|s| s.contains(machine)))
    }

    /// Whether a point's source job and tags are selected (machines aside).
    pub fn matches_point(&self, point: &Point) -> bool {
        (self.jobs.is_empty() || point.job.as_ref().is_some_and(|j| self.jobs.contains(j)))
            && self.tags.iter().all(|(k, v)| point.tags.get(k) == Some(v))
    }

    /// The points of `repo` the selection takes (candidates of source 0), oldest first.
    pub async fn points_in(&self, repo: &crate::repo::Repository) -> Result<Vec<Candidate>> {
        let candidates = (repo.load_points().await?.into_iter())
            .map(|(id, point)| Candidate {
                source: 0,
                id,
                point,
            })
            .collect();
        self.apply(candidates)
    }

    /// Applies the selection to candidates from all sources; returns them oldest first.
    pub fn apply(&self, candidates: Vec<Candidate>) -> Result<Vec<Candidate>> {
        let pats = self.patterns()?;
        let mut chosen: Vec<Candidate> = candidates
            .into_iter()
            .filter(|c| pats.is_empty() || pats.iter().any(|g| g.matches(&c.point.machine)))
            .filter(|c| self.shard.is_none_or(|s| s.contains(&c.point.machine)))
            .filter(|c| self.matches_point(&c.point))
            .collect();
        chosen.sort_by(Candidate::oldest_first);
        match &self.points {
            PointsSpec::All => {}
            PointsSpec::Since(t) => chosen.retain(|c| c.point.time >= *t),
            PointsSpec::Ids(ids) => chosen.retain(|c| ids.contains(&c.id)),
            PointsSpec::Latest | PointsSpec::LatestSince(_) => {
                if let PointsSpec::LatestSince(t) = &self.points {
                    chosen.retain(|c| c.point.time >= *t);
                }
                let mut latest: std::collections::BTreeMap<String, Candidate> = Default::default();
                for c in chosen {
                    latest.insert(c.point.machine.clone(), c);
                }
                chosen = latest.into_values().collect();
                chosen.sort_by(Candidate::oldest_first);
            }
        }
        Ok(chosen)
    }
}

/// A restore point of one of the sources, offered to the selection.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Position of its repository among the copy's sources.
    pub source: usize,
    pub id: Id,
    pub point: Point,
}

impl Candidate {
    fn oldest_first(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
        a.point.time.cmp(&b.point.time).then(a.id.cmp(&b.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Every machine lands in exactly one shard.
        #[test]
        fn shards_partition(machines in proptest::collection::vec("[a-z0-9-]{1,12}", 1..40), n in 1u32..8) {
            for m in &machines {
                let hits = (0..n).filter(|i| Shard { index: *i, count: n }.contains(m)).count();
                prop_assert_eq!(hits, 1);
            }
        }
    }

    #[test]
    fn parses() {
        assert_eq!("latest".parse::<PointsSpec>().unwrap(), PointsSpec::Latest);
        assert!(matches!(
            "since=2026-11-01".parse::<PointsSpec>().unwrap(),
            PointsSpec::Since(_)
        ));
        assert!("since=yesterday".parse::<PointsSpec>().is_err());
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        assert!("4/4".parse::<Shard>().is_err());
    }
}
