//! Sizing the simulation from the job's real sources: per machine the job selects, the
//! bytes its newest point needs as stored (compressed and sealed: what a copy writes),
//! and its daily change — the bytes each of its recent points added over the one
//! before, per day between them, as a share of its size.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use super::MachineSize;
use crate::clock::Clock;
use crate::copy::{PointsSpec, Selection};
use crate::format::point::Point;
use crate::job::config::Job;
use crate::repo::reach::{Files, reach};
use crate::repo::{MasterIndex, Repository, WarmSpec};
use crate::{Error, Id, Result};

/// How many of a machine's newest points its change is measured over.
const MEASURED: usize = 8;

/// Each machine's size and change, from the job's sources. A machine with a single point
/// has no change to measure: `None` there (the caller's default applies).
pub async fn measure(job: &Job, clock: &Arc<dyn Clock>) -> Result<Vec<(String, u64, Option<f64>)>> {
    let mut out = BTreeMap::new();
    for spec in &job.sources {
        let (url, pw) = (&spec.url, &spec.password);
        let repo = crate::repo::open_repository(url, pw, clock, WarmSpec::READER)
            .await?
            .ok_or_else(|| Error::NoRepository { url: url.clone() })?;
        let index = repo.load_index().await?;
        let every = Selection {
            points: PointsSpec::All,
            ..job.selection(spec)
        };
        let mut by_machine: BTreeMap<String, Vec<(Id, Point)>> = BTreeMap::new();
        for c in every.points_in(&repo).await? {
            by_machine
                .entry(c.point.machine.clone())
                .or_default()
                .push((c.id, c.point));
        }
        for (machine, points) in by_machine {
            if out.contains_key(&machine) {
                continue;
            }
            let sized = size_of(&repo, &index, &points).await?;
            out.insert(machine, sized);
        }
    }
    Ok(out.into_iter().map(|(m, (s, c))| (m, s, c)).collect())
}

/// A machine's size (its newest point's blobs as stored) and daily change, from its
/// points oldest first.
async fn size_of(
    repo: &Repository,
    index: &MasterIndex,
    points: &[(Id, Point)],
) -> Result<(u64, Option<f64>)> {
    let recent = &points[points.len().saturating_sub(MEASURED)..];
    let mut sets: Vec<HashSet<Id>> = Vec::new();
    for (id, p) in recent {
        let blobs = reach(repo, index, [(id, p)], Files::All).await?.blobs;
        sets.push(blobs.into_iter().collect());
    }
    let stored = |b: &Id| index.get(b).map_or(0, |l| u64::from(l.length));
    let size: u64 = sets.last().map_or(0, |s| s.iter().map(stored).sum());
    let (mut added, mut days) = (0u64, 0.0);
    for (i, pair) in sets.windows(2).enumerate() {
        added += pair[1].difference(&pair[0]).map(stored).sum::<u64>();
        let between = recent[i + 1].1.time - recent[i].1.time;
        days += between.num_seconds().max(0) as f64 / 86_400.0;
    }
    // Points made the same day count as that day's change (the model makes one a day).
    let days = days.max(1.0);
    let change = (sets.len() > 1 && size > 0).then(|| (added as f64 / days / size as f64).min(1.0));
    Ok((size, change))
}

/// The machines to simulate: the measured ones, each with its measured change (or
/// `default_change`); or, given `count` and `size`, that many alike.
pub fn machines(
    measured: Vec<(String, u64, Option<f64>)>,
    count: Option<usize>,
    size: Option<u64>,
    change: Option<f64>,
) -> Vec<MachineSize> {
    const DEFAULT_CHANGE: f64 = 0.02;
    if let (Some(n), Some(size)) = (count, size) {
        return (1..=n)
            .map(|i| MachineSize {
                machine: format!("machine-{i}"),
                size,
                change: change.unwrap_or(DEFAULT_CHANGE),
            })
            .collect();
    }
    (measured.into_iter())
        .map(|(machine, measured_size, measured_change)| MachineSize {
            machine,
            size: size.unwrap_or(measured_size),
            change: change.or(measured_change).unwrap_or(DEFAULT_CHANGE),
        })
        .collect()
}
