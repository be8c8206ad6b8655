//! Catch-up: which points of a source an interval copies. Without it, each machine's
//! newest point (made since the interval began, with `look_forward`). With it (`catch_up
//! = true`, the default for periodic jobs), also the points made since the last one the
//! job copied of the machine that the job's retention would keep — so a Sunday missed
//! while a source was down still becomes that week's point, oldest first. A machine the
//! job never copied starts at its newest point, as before.
//!
//! Retention is asked about the source's points of the machine (the target holds a
//! subset of them): the same `Policy::apply` the retention phase runs, at the same time
//! and in the same time zone.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};

use super::config::{Job, SourceSpec};
use super::state::JobState;
use crate::copy::{self, PointsSpec};
use crate::repo::Repository;
use crate::retention::policy::Candidate as Kept;
use crate::{Id, Result};

/// The points of `source` this interval copies, as a selection's `points`.
pub(super) async fn points<Tz: TimeZone>(
    job: &Job,
    spec: &SourceSpec,
    source: &Repository,
    state: &JobState,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Result<PointsSpec> {
    if !job.catch_up {
        return Ok(since.map_or(PointsSpec::Latest, PointsSpec::LatestSince));
    }
    let every = copy::Selection {
        points: PointsSpec::All,
        ..job.selection(spec)
    };
    let chosen = every.points_in(source).await?;
    let mut by_machine: BTreeMap<String, Vec<(Id, DateTime<Utc>)>> = BTreeMap::new();
    for c in chosen {
        let at = by_machine.entry(c.point.machine.clone()).or_default();
        at.push((c.id, c.point.time));
    }
    let mut ids = BTreeSet::new();
    for (machine, points) in by_machine {
        let last = state.machines.get(&machine).map(|m| m.time);
        ids.extend(choose(job, &machine, &points, last, since, now, tz));
    }
    Ok(PointsSpec::Ids(ids))
}

/// One machine's points to copy, from its points at the source (oldest first): the
/// newest (at or after `since`, if given) and, with catch-up, when the job copied it
/// before (`last`), those after `last` that retention keeps.
pub(super) fn choose<Tz: TimeZone>(
    job: &Job,
    machine: &str,
    points: &[(Id, DateTime<Utc>)],
    last: Option<DateTime<Utc>>,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Vec<Id> {
    let Some(&(newest, newest_time)) = points.last() else {
        return Vec::new();
    };
    if since.is_some_and(|s| newest_time < s) {
        // look_forward: no point of this interval yet; the machine waits.
        return Vec::new();
    }
    let Some(last) = last.filter(|_| job.catch_up) else {
        return vec![newest];
    };
    let as_kept: Vec<Kept> = (points.iter())
        .map(|(id, time)| Kept {
            id: *id,
            machine: machine.to_string(),
            time: *time,
            flags: Vec::new(),
        })
        .collect();
    let kept: BTreeSet<Id> = (job.retention.apply(&as_kept, now, tz).into_iter())
        .filter(|d| d.keep())
        .map(|d| d.point.id)
        .collect();
    let mut out: Vec<Id> = (points.iter())
        .filter(|(id, time)| *time > last && kept.contains(id))
        .map(|(id, _)| *id)
        .collect();
    // The newest always: when the target holds it already, the copy says up to date.
    if !out.contains(&newest) {
        out.push(newest);
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::job::config::{Secret, TargetSpec};
    use crate::retention::Policy;

    fn job(policy: Policy) -> Job {
        let target = TargetSpec::plain("memory://x", Secret::Env("X".into()));
        Job {
            retention: policy,
            ..Job::plain("j", Vec::new(), target)
        }
    }

    fn id(n: u8) -> Id {
        Id([n; 32])
    }

    /// Daily points for three weeks, the job's last copy on day 5 (a Friday), missed
    /// since: with keep 3 + 4 weekly (weeks from Sunday), the two missed Sundays (days 7
    /// and 14) are copied as their weeks' points with the three newest — nothing older
    /// than the last copy, nothing retention would forget at once.
    #[test]
    fn a_missed_sunday_is_copied_as_its_weeks_point() {
        let day0 = Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).unwrap(); // a Sunday
        let points: Vec<(Id, DateTime<Utc>)> = (0..21u8)
            .map(|d| (id(d), day0 + Duration::days(d.into())))
            .collect();
        let policy = Policy {
            keep: 3,
            weekly: 4,
            ..Policy::default()
        };
        let now = day0 + Duration::days(20) + Duration::hours(1);
        let last = Some(day0 + Duration::days(5));
        let got = choose(&job(policy.clone()), "web", &points, last, None, now, &Utc);
        assert_eq!(got, vec![id(7), id(14), id(18), id(19), id(20)]);

        // Never copied: the newest only. Off: see `points`.
        let got = choose(&job(policy), "web", &points, None, None, now, &Utc);
        assert_eq!(got, vec![id(20)]);
    }

    /// With look_forward, a machine without a point of this interval waits, even with
    /// missed points.
    #[test]
    fn look_forward_waits_for_the_intervals_point() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 1, 2, 0, 0).unwrap();
        let points = vec![(id(1), t0), (id(2), t0 + Duration::days(1))];
        let since = Some(t0 + Duration::days(2));
        let j = job(Policy::default());
        let now = t0 + Duration::days(2);
        assert!(choose(&j, "web", &points, Some(t0), since, now, &Utc).is_empty());
    }
}
