//! Retention of a repository: [`policy`] decides, per machine, which restore points to
//! keep and why; [`forget`] deletes the others. It runs under the repository's exclusive
//! lock, so no backup or copy commits a point (or picks a parent) while points go.
//! Forgetting removes point objects only: the data no remaining point uses is freed by
//! prune.
//!
//! GFS choices that are final are stored as flags (`marks/<point>-weekly` …) before any
//! point goes, and a flag keeps its point until its period's keep ends, whatever later
//! runs decide. A forgotten point's marks go after it; marks of points that are gone
//! (a forget that died between the two) go on the next run.

pub mod policy;

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use crate::format::lock::{LockKind, Purpose};
use crate::format::mark::Mark;
use crate::format::point::Point;
use crate::format::point_name;
use crate::repo::Repository;
use crate::repo::lock::LockGuard;
use crate::{Error, Id, Result};
pub use policy::{Candidate, Decision, Flag, MonthPoint, Policy, Reason};

/// What to forget.
#[derive(Clone, Debug, Default)]
pub struct ForgetOptions {
    pub policy: Policy,
    /// Machine names or globs the policy applies to; empty: every machine.
    pub machines: Vec<String>,
    /// Decide and report, delete nothing.
    pub dry_run: bool,
}

/// A point kept, with every reason it is kept for.
#[derive(Clone, Debug, Serialize)]
pub struct KeptPoint {
    pub id: Id,
    pub time: DateTime<Utc>,
    pub reasons: Vec<Reason>,
    /// GFS flags set on it by this run (in a dry run: that would be set).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub flagged: Vec<Flag>,
}

/// A point forgotten (or, in a dry run, to be forgotten).
#[derive(Clone, Debug, Serialize)]
pub struct ForgottenPoint {
    pub id: Id,
    pub time: DateTime<Utc>,
}

/// One machine's retention.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MachineRetention {
    pub machine: String,
    pub kept: Vec<KeptPoint>,
    pub forgotten: Vec<ForgottenPoint>,
    /// Points the policy lets go whose object lock is still in force: kept until then
    /// (on a versioned bucket a delete would only hide them behind a delete marker).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locked: Vec<LockedPoint>,
}

/// A point the policy lets go, kept while its lock lasts.
#[derive(Clone, Debug, Serialize)]
pub struct LockedPoint {
    pub id: Id,
    pub time: DateTime<Utc>,
    pub locked_until: DateTime<Utc>,
}

/// What `forget` decided and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ForgetReport {
    pub repository: String,
    pub dry_run: bool,
    pub machines: Vec<MachineRetention>,
    /// On a locking repository: the flagged points' packs locked for their periods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locks: Option<crate::immutability::Hold>,
}

impl ForgetReport {
    pub fn forgotten(&self) -> usize {
        self.machines.iter().map(|m| m.forgotten.len()).sum()
    }

    pub fn kept(&self) -> usize {
        self.machines.iter().map(|m| m.kept.len()).sum()
    }

    /// GFS flags set (or, in a dry run, to be set).
    pub fn flagged(&self) -> usize {
        let kept = self.machines.iter().flat_map(|m| &m.kept);
        kept.map(|k| k.flagged.len()).sum()
    }
}

/// Applies `opts.policy` to the repository's points at the repository clock's now,
/// periods taken in `tz`, and deletes the points it does not keep (unless a dry run).
pub async fn forget<Tz: TimeZone>(
    repo: &Arc<Repository>,
    opts: &ForgetOptions,
    tz: &Tz,
) -> Result<ForgetReport> {
    opts.policy.validate().map_err(Error::Invalid)?;
    let patterns = opts
        .machines
        .iter()
        .map(|m| {
            glob::Pattern::new(m).map_err(|e| Error::Invalid(format!("machine pattern '{m}': {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let lock = match opts.dry_run {
        true => None,
        false => Some(LockGuard::acquire(repo, LockKind::Exclusive, Purpose::Forget, None).await?),
    };
    let result = decide_and_delete(repo, opts, &patterns, tz).await;
    match lock {
        Some(lock) => lock.release_after(result).await,
        None => result,
    }
}

async fn decide_and_delete<Tz: TimeZone>(
    repo: &Arc<Repository>,
    opts: &ForgetOptions,
    patterns: &[glob::Pattern],
    tz: &Tz,
) -> Result<ForgetReport> {
    let points = repo.load_points().await?;
    let marks = repo.load_marks().await?;
    let selected = |m: &str| patterns.is_empty() || patterns.iter().any(|p| p.matches(m));
    let candidates: Vec<Candidate> = points
        .iter()
        .filter(|(_, p)| selected(&p.machine))
        .map(|(id, p)| Candidate {
            id: *id,
            machine: p.machine.clone(),
            time: p.time,
            flags: marks.get(id).map_or_else(Vec::new, |m| flags(m)),
        })
        .collect();
    let now = repo.clock().now();
    let decisions = opts.policy.apply(&candidates, now, tz);
    let mut report = ForgetReport {
        repository: repo.url().to_string(),
        dry_run: opts.dry_run,
        machines: Vec::new(),
        locks: None,
    };
    for d in decisions {
        if report
            .machines
            .last()
            .is_none_or(|m| m.machine != d.point.machine)
        {
            report.machines.push(MachineRetention {
                machine: d.point.machine.clone(),
                ..Default::default()
            });
        }
        let Some(m) = report.machines.last_mut() else {
            continue;
        };
        let (id, time) = (d.point.id, d.point.time);
        match d.keep() {
            true => m.kept.push(KeptPoint {
                id,
                time,
                reasons: d.reasons,
                flagged: d.new_flags,
            }),
            false => m.forgotten.push(ForgottenPoint { id, time }),
        }
    }
    if repo.config.storage.lock.is_some() {
        keep_locked(repo, &mut report, now).await?;
    }
    if opts.dry_run {
        return Ok(report);
    }
    // Flags first: a run that dies after them has lost nothing.
    let kept = report.machines.iter().flat_map(|m| &m.kept);
    let to_flag = kept.flat_map(|k| k.flagged.iter().map(|f| (k.id, f)));
    futures::stream::iter(to_flag.map(|(point, f)| {
        let mark = Mark {
            point,
            kind: f.kind,
            detail: f.period.clone(),
            set_at: now,
            until: Some(f.until),
        };
        async move { repo.set_flag(&mark).await }
    }))
    .buffer_unordered(8)
    .try_collect::<Vec<()>>()
    .await?;
    // A flagged point's packs stay locked for its period (a yearly point's for years):
    // the flags set now, and those set before whose point is not yet locked that long
    // (a run that died after its flags, before this step).
    if let Some(policy) = repo.config.storage.lock {
        let margin = chrono::Duration::days(i64::from(policy.margin_days));
        let by_id: std::collections::HashMap<Id, &Point> =
            points.iter().map(|(id, p)| (*id, p)).collect();
        let candidates: Vec<(Id, Point, DateTime<Utc>)> = report
            .machines
            .iter()
            .flat_map(|m| &m.kept)
            .filter_map(|k| {
                let stored = marks.get(&k.id).map_or_else(Vec::new, |m| flags(m));
                let until = k.flagged.iter().chain(&stored).map(|f| f.until).max()?;
                Some((k.id, (*by_id.get(&k.id)?).clone(), until + margin))
            })
            .collect();
        let flagged = crate::immutability::not_yet_held(repo, candidates).await?;
        if !flagged.is_empty() {
            let index = repo.load_index().await?;
            report.locks = Some(crate::immutability::hold(repo, &index, &flagged).await?);
        }
    }
    let forgotten: Vec<Id> = report
        .machines
        .iter()
        .flat_map(|m| m.forgotten.iter().map(|f| f.id))
        .collect();
    repo.delete_all(forgotten.iter().map(point_name).collect())
        .await?;
    // Then the marks of points that are gone: forgotten now, or by a run that died.
    let forgotten: HashSet<Id> = forgotten.into_iter().collect();
    let live: HashSet<Id> = points.iter().map(|(id, _)| *id).collect();
    let gone = marks
        .into_values()
        .flatten()
        .filter(|m| forgotten.contains(&m.point) || !live.contains(&m.point));
    repo.delete_all(gone.map(|m| m.name()).collect()).await?;
    Ok(report)
}

/// Moves the points to forget whose lock is still in force into `locked`.
async fn keep_locked(
    repo: &Repository,
    report: &mut ForgetReport,
    now: DateTime<Utc>,
) -> Result<()> {
    let ids: Vec<Id> = report
        .machines
        .iter()
        .flat_map(|m| m.forgotten.iter().map(|f| f.id))
        .collect();
    let names: Vec<String> = ids.iter().map(point_name).collect();
    let states = repo.object_states(&names).await?;
    let locks: std::collections::HashMap<Id, Option<DateTime<Utc>>> = ids
        .into_iter()
        .zip(states)
        .map(|(id, s)| (id, s.locked_until()))
        .collect();
    for m in &mut report.machines {
        let (go, stay): (Vec<_>, Vec<_>) = std::mem::take(&mut m.forgotten)
            .into_iter()
            .partition(|f| locks.get(&f.id).copied().flatten().is_none_or(|u| u <= now));
        m.forgotten = go;
        m.locked = stay
            .into_iter()
            .map(|f| LockedPoint {
                id: f.id,
                time: f.time,
                locked_until: locks.get(&f.id).copied().flatten().unwrap_or(now),
            })
            .collect();
    }
    Ok(())
}

/// The GFS flags among a point's marks.
fn flags(marks: &[Mark]) -> Vec<Flag> {
    marks
        .iter()
        .filter(|m| m.kind.is_gfs())
        .filter_map(|m| {
            Some(Flag {
                kind: m.kind,
                period: m.detail.clone(),
                until: m.until?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, NaiveDate, Weekday};

    use super::*;
    use crate::clock::ManualClock;
    use crate::format::mark::MarkKind;
    use crate::format::point::{Point, Summary};
    use crate::testkit;

    fn noon(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
        day.and_hms_opt(12, 0, 0).unwrap().and_utc()
    }

    /// A repository on a manual clock at `now`, with a point of `machine` every day
    /// from `first` for `days` days.
    async fn daily(first: DateTime<Utc>, days: i64) -> (Arc<Repository>, Arc<ManualClock>) {
        let made = testkit::repo(testkit::memory(), 1 << 20).await;
        let clock = Arc::new(ManualClock::auto_advance(first + Duration::days(days)));
        let repo = Arc::new((*made).clone().with_clock(clock.clone()));
        for d in 0..days {
            let p = Point {
                machine: "web".into(),
                job: None,
                time: first + Duration::days(d),
                host: "h".into(),
                tags: Default::default(),
                parent: None,
                paths: vec![],
                tree: vec![],
                summary: Summary::default(),
                source: None,
            };
            repo.save_point(&p).await.unwrap();
        }
        (repo, clock)
    }

    fn kept_days(r: &ForgetReport) -> Vec<String> {
        let kept = r.machines.iter().flat_map(|m| &m.kept);
        kept.map(|k| k.time.format("%m-%d").to_string()).collect()
    }

    async fn weekly_marks(repo: &Repository) -> Vec<(String, String)> {
        let marks = repo.load_marks().await.unwrap();
        let mut out: Vec<(String, String)> = marks
            .into_values()
            .flatten()
            .filter(|m| m.kind == MarkKind::Weekly)
            .map(|m| (m.detail, m.until.unwrap().format("%m-%d").to_string()))
            .collect();
        out.sort();
        out
    }

    /// GFS choices are stored as flags; a flag keeps its point after the policy changes
    /// until its period's keep ends; a forgotten point's flags go with it; a dry run
    /// writes nothing.
    #[tokio::test]
    async fn gfs_flags_are_stored_and_keep_their_points_for_their_period() {
        // Thursday 1 January to Tuesday 31 March 2026, one point a day.
        let (repo, clock) = daily(noon(2026, 1, 1), 90).await;
        let sundays = ForgetOptions {
            policy: Policy {
                keep: 10,
                weekly: 3,
                weekly_on: Weekday::Sun,
                ..Policy::default()
            },
            ..Default::default()
        };
        let dry = ForgetOptions {
            dry_run: true,
            ..sundays.clone()
        };
        let r = forget(&repo, &dry, &Utc).await.unwrap();
        assert_eq!(r.flagged(), 3);
        assert!(
            repo.load_marks().await.unwrap().is_empty(),
            "a dry run set flags"
        );

        let r = forget(&repo, &sundays, &Utc).await.unwrap();
        let days: Vec<String> = (22..=31).map(|d| format!("03-{d}")).collect();
        assert_eq!(kept_days(&r), [&["03-15".to_string()][..], &days].concat());
        // Each Sunday's flag lasts three weeks from its week's start.
        let expected = [
            ("2026-03-15", "04-05"),
            ("2026-03-22", "04-12"),
            ("2026-03-29", "04-19"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(weekly_marks(&repo).await, expected);

        // Weeks now start on Monday, two recent: the Sunday points stay, by their flags.
        let mondays = ForgetOptions {
            policy: Policy {
                keep: 2,
                weekly_on: Weekday::Mon,
                ..sundays.policy.clone()
            },
            ..Default::default()
        };
        let r = forget(&repo, &mondays, &Utc).await.unwrap();
        assert_eq!(
            kept_days(&r),
            ["03-15", "03-22", "03-23", "03-29", "03-30", "03-31"]
        );
        let sunday = r.machines[0]
            .kept
            .iter()
            .find(|k| k.time == noon(2026, 3, 15));
        let why: Vec<String> = sunday
            .unwrap()
            .reasons
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            why,
            ["weekly 2026-03-15 (flagged until 2026-04-05 00:00 UTC)"]
        );

        // A week on, with the simple policy only: what the flags still hold stays, the
        // rest goes, and so do the forgotten points' marks.
        clock.set(noon(2026, 4, 7));
        let simple = ForgetOptions {
            policy: Policy {
                keep: 1,
                ..Policy::default()
            },
            ..Default::default()
        };
        let r = forget(&repo, &simple, &Utc).await.unwrap();
        assert_eq!(kept_days(&r), ["03-22", "03-23", "03-29", "03-30", "03-31"]);
        let left = weekly_marks(&repo).await;
        let periods: Vec<&str> = left.iter().map(|(p, _)| p.as_str()).collect();
        let expected = [
            "2026-03-16",
            "2026-03-22",
            "2026-03-23",
            "2026-03-29",
            "2026-03-30",
        ];
        assert_eq!(periods, expected);
        assert_eq!(repo.load_points().await.unwrap().len(), 5);
    }

    /// A month's last point is flagged only once the month is over, and marks of points
    /// that are gone are cleaned up.
    #[tokio::test]
    async fn a_months_last_point_is_flagged_when_the_month_ends() {
        let (repo, clock) = daily(noon(2026, 1, 20), 20).await; // to 8 February
        let opts = ForgetOptions {
            policy: Policy {
                keep: 1,
                monthly: 2,
                monthly_on: MonthPoint::Last,
                ..Policy::default()
            },
            ..Default::default()
        };
        let r = forget(&repo, &opts, &Utc).await.unwrap();
        assert_eq!(kept_days(&r), ["01-31", "02-08"]);
        let marks = repo.load_marks().await.unwrap();
        let flagged: Vec<&Mark> = marks.values().flatten().collect();
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        assert_eq!(flagged[0].detail, "2026-01");
        assert_eq!(
            flagged[0].until,
            Some(noon(2026, 3, 1) - Duration::hours(12))
        );
        // A mark whose point is gone (a forget that died between the two).
        let orphan = Mark {
            point: Id([3; 32]),
            ..flagged[0].clone()
        };
        repo.set_flag(&orphan).await.unwrap();
        clock.advance(Duration::days(1));
        forget(&repo, &opts, &Utc).await.unwrap();
        let marks = repo.load_marks().await.unwrap();
        assert!(!marks.contains_key(&orphan.point));
        assert_eq!(marks.len(), 1);
    }
}
