//! Object-lock upkeep on a locking repository (`config.storage.lock`): a pack stays
//! locked at least as long as the latest point that references it. New objects are
//! locked with their write (`repo/immutable.rs`); here a point's date is carried to the
//! packs it reuses — after a copy commits new points, and when `forget` flags a GFS point
//! for its period (a yearly point's packs locked for years, a daily one's for days) —
//! and `verify` checks that every object a point needs is locked long enough.
//!
//! Current dates are read from the provider (one HEAD per pack), never from a record of
//! our own: someone holding the runner's key could forge a record and stop extensions.
//! An extension goes to the needed date plus half the lock's days, so a pack reused by
//! every daily point is extended about once per half period, not every day.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use crate::format::point::Point;
use crate::format::{pack_name, point_name};
use crate::repo::immutable::LOOKS_IN_FLIGHT;
use crate::repo::reach::{Files, reach};
use crate::repo::{MasterIndex, Repository};
use crate::{Id, Result};

/// A lock this close to the date asked for counts as held: a copy's new packs are
/// locked with their writes, seconds before its points, and need no extension.
const TOLERANCE: chrono::Duration = chrono::Duration::hours(1);

/// The date a point must stay locked until under `policy`: its time + the policy's days,
/// or the end of the keep of a GFS flag among its `marks` if later; plus the margin.
pub fn point_until(
    policy: &crate::format::config::LockPolicy,
    point: &Point,
    marks: &[crate::format::mark::Mark],
) -> DateTime<Utc> {
    let margin = chrono::Duration::days(i64::from(policy.margin_days));
    let simple = point.time + chrono::Duration::days(i64::from(policy.days));
    marks
        .iter()
        .filter(|m| m.kind.is_gfs())
        .filter_map(|m| m.until)
        .fold(simple, DateTime::max)
        + margin
}

/// What an upkeep pass did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Hold {
    pub points: usize,
    /// Objects (packs and points) whose lock was looked at.
    pub looked: u64,
    /// Objects whose lock was extended.
    pub extended: u64,
}

/// The packs (with the latest date each must stay locked until) that `points` reference
/// (`repo::reach`); a blob in no index is an error naming it.
async fn packs_of(
    repo: &Repository,
    index: &MasterIndex,
    points: &[(Id, Point, DateTime<Utc>)],
) -> Result<BTreeMap<Id, DateTime<Utc>>> {
    let mut need: BTreeMap<Id, DateTime<Utc>> = BTreeMap::new();
    for (id, point, until) in points {
        let used = reach(repo, index, [(id, point)], Files::All).await?;
        used.all_indexed()?;
        for pack in used.packs(index, None).into_keys() {
            let e = need.entry(pack).or_insert(*until);
            *e = (*e).max(*until);
        }
    }
    Ok(need)
}

/// Makes each of `points` and every pack it references locked at least until its date,
/// extending (never shortening) what is locked for less. Nothing on a repository that
/// does not lock.
pub async fn hold(
    repo: &Repository,
    index: &MasterIndex,
    points: &[(Id, Point, DateTime<Utc>)],
) -> Result<Hold> {
    hold_except(repo, index, points, &Fresh::default()).await
}

/// Objects just written under the lock [`Repository::new_lock`] gives: locked with
/// their write from that moment, so no later than the points that need them are dated
/// (a point's date is its backup's time), and not looked at again.
#[derive(Debug, Default)]
pub struct Fresh {
    pub packs: std::collections::HashSet<Id>,
    /// The points themselves were just written.
    pub points: bool,
}

/// [`hold`], skipping what `fresh` says was locked with its write in this run: a copy
/// looks only at the older packs its new points reuse.
pub async fn hold_except(
    repo: &Repository,
    index: &MasterIndex,
    points: &[(Id, Point, DateTime<Utc>)],
    fresh: &Fresh,
) -> Result<Hold> {
    let Some(policy) = repo.config.storage.lock else {
        return Ok(Hold::default());
    };
    let packs: Vec<(String, DateTime<Utc>)> = packs_of(repo, index, points)
        .await?
        .into_iter()
        .filter(|(p, _)| !fresh.packs.contains(p))
        .map(|(p, until)| (pack_name(&p), until))
        .collect();
    let own: Vec<(String, DateTime<Utc>)> = match fresh.points {
        true => Vec::new(),
        false => points
            .iter()
            .map(|(id, _, until)| (point_name(id), *until))
            .collect(),
    };
    let slack = chrono::Duration::days(i64::from(policy.days / 2));
    // Packs first, the points after them: a point locked long enough says its packs are
    // too (`not_yet_held` relies on it).
    let mut extended = 0;
    for objects in [&packs, &own] {
        let names: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();
        let states = repo.object_states(&names).await?;
        let short: Vec<&(String, DateTime<Utc>)> = objects
            .iter()
            .zip(&states)
            .filter(|((_, until), s)| !held(s.locked_until(), *until))
            .map(|(o, _)| o)
            .collect();
        futures::stream::iter(&short)
            .map(|(name, until)| repo.extend_lock(name, (policy.mode, *until + slack)))
            .buffer_unordered(LOOKS_IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        extended += short.len() as u64;
    }
    Ok(Hold {
        points: points.len(),
        looked: (packs.len() + own.len()) as u64,
        extended,
    })
}

/// Of `points` (each with the date it must be locked until), those whose own object is
/// locked for less: one HEAD each. [`hold`] extends a point only after its packs, so a
/// point locked long enough has packs that are too.
pub async fn not_yet_held(
    repo: &Repository,
    points: Vec<(Id, Point, DateTime<Utc>)>,
) -> Result<Vec<(Id, Point, DateTime<Utc>)>> {
    let names: Vec<String> = points.iter().map(|(id, _, _)| point_name(id)).collect();
    let states = repo.object_states(&names).await?;
    Ok(points
        .into_iter()
        .zip(states)
        .filter(|((_, _, until), s)| !held(s.locked_until(), *until))
        .map(|(p, _)| p)
        .collect())
}

/// Whether a lock until `current` holds an object until `until`. Packs written by the
/// copy that asks were locked moments before its points: within [`TOLERANCE`] counts.
fn held(current: Option<DateTime<Utc>>, until: DateTime<Utc>) -> bool {
    current.is_some_and(|c| c >= until - TOLERANCE)
}

/// An object a point needs that is not locked long enough.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Unlocked {
    pub object: String,
    pub point: Id,
    pub machine: String,
    /// Until when it must be locked, and until when it is (`None`: not at all).
    pub needed: DateTime<Utc>,
    pub locked_until: Option<DateTime<Utc>>,
}

/// What `verify` found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Verification {
    pub points: usize,
    pub objects: u64,
    pub unlocked: Vec<Unlocked>,
}

/// Checks that every point, and every object it needs, is locked at least until the
/// point's date: `until(point)` (its write time + the policy's days + margin, or its GFS
/// flag's end + margin). Reads trees and HEADs each object once.
pub async fn verify<F>(repo: &Repository, index: &MasterIndex, until: F) -> Result<Verification>
where
    F: Fn(&Id, &Point) -> DateTime<Utc>,
{
    let points = repo.load_points().await?;
    let mut needs: BTreeMap<String, (DateTime<Utc>, Id, String)> = BTreeMap::new();
    for (id, p) in &points {
        let u = until(id, p);
        let one = [(*id, p.clone(), u)];
        let packs = packs_of(repo, index, &one).await?;
        for (name, u) in packs
            .into_iter()
            .map(|(p, u)| (pack_name(&p), u))
            .chain([(point_name(id), u)])
        {
            let e = needs.entry(name).or_insert((u, *id, p.machine.clone()));
            if u > e.0 {
                *e = (u, *id, p.machine.clone());
            }
        }
    }
    let names: Vec<String> = needs.keys().cloned().collect();
    let states = repo.object_states(&names).await?;
    // `needs` is ordered by name, so the list comes out sorted.
    let unlocked: Vec<Unlocked> = needs
        .iter()
        .zip(states)
        .filter_map(|((name, (needed, point, machine)), s)| {
            let current = s.locked_until();
            current.is_none_or(|c| c < *needed).then(|| Unlocked {
                object: name.clone(),
                point: *point,
                machine: machine.clone(),
                needed: *needed,
                locked_until: current,
            })
        })
        .collect();
    Ok(Verification {
        points: points.len(),
        objects: needs.len() as u64,
        unlocked,
    })
}
