//! Which restore points of a machine a retention policy keeps, and why: the newest
//! `keep` (simple retention), and grandfather-father-son points — one a week on a chosen
//! weekday, one a month (its first or last point), one a year (from a chosen month) —
//! each kept for its number of periods, counted back from now. The newest point of a
//! machine is always kept. Pure: points and the time in, a decision per point out, so
//! years of schedule are tested in milliseconds.
//!
//! A period's point is its first point at or after the period's start (weekly: the
//! chosen weekday 00:00; yearly: the chosen month's 1st) — the point taken on the day,
//! or the next one when that day was missed; monthly may instead take the month's last.
//! Periods are in the time zone the caller gives (the runner's local time).
//!
//! A GFS choice that can no longer change (a week's or year's first point, or a month's
//! last once the month is over) comes back as a [`Flag`] to store beside the point: kept
//! until its period's keep ends (`weekly = 4`: four weeks from the week's start), whatever
//! later runs decide — a changed policy, a point copied late into the same week — so a
//! point once kept as a month's is not dropped early, and its lock (on immutable
//! targets) can be as long as its flag.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::Id;
use crate::format::mark::MarkKind;

/// Which point of a month is its monthly point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MonthPoint {
    #[default]
    First,
    Last,
}

impl std::str::FromStr for MonthPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "first" => Ok(MonthPoint::First),
            "last" => Ok(MonthPoint::Last),
            _ => Err(format!("'{s}': the monthly point is 'first' or 'last'")),
        }
    }
}

/// A retention policy. Counts of zero turn a kind off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The newest points kept per machine (simple retention).
    pub keep: u32,
    /// Weeks whose point is kept, and the day a week starts on.
    pub weekly: u32,
    pub weekly_on: Weekday,
    /// Months whose point is kept, and which point of the month that is.
    pub monthly: u32,
    pub monthly_on: MonthPoint,
    /// Years whose point is kept, and the month (1–12) a year's point is taken from.
    pub yearly: u32,
    pub yearly_in: u32,
}

impl Default for Policy {
    /// Seven restore points, no GFS: the job runner's default.
    fn default() -> Self {
        Policy {
            keep: 7,
            weekly: 0,
            weekly_on: Weekday::Sun,
            monthly: 0,
            monthly_on: MonthPoint::First,
            yearly: 0,
            yearly_in: 1,
        }
    }
}

/// Why a point is kept.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "period")]
pub enum Reason {
    /// The machine's newest point.
    Newest,
    /// Among the newest `keep`.
    Recent,
    /// The point of a week (the period's first day), month (`2026-11`) or year.
    Weekly(NaiveDate),
    Monthly(String),
    Yearly(i32),
    /// A GFS flag stored by an earlier run, still in force.
    Flagged(Flag),
}

/// A point's GFS flag: chosen as the point of `period` (a week's first day, `2026-11`,
/// `2026`) of `kind`, and kept until `until`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Flag {
    pub kind: MarkKind,
    pub period: String,
    pub until: DateTime<Utc>,
}

impl Reason {
    /// The GFS kind and period of a week's, month's or year's reason.
    fn gfs(&self) -> Option<(MarkKind, String)> {
        match self {
            Reason::Weekly(d) => Some((MarkKind::Weekly, d.to_string())),
            Reason::Monthly(m) => Some((MarkKind::Monthly, m.clone())),
            Reason::Yearly(y) => Some((MarkKind::Yearly, y.to_string())),
            Reason::Flagged(f) => Some((f.kind, f.period.clone())),
            Reason::Newest | Reason::Recent => None,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Newest => write!(f, "newest"),
            Reason::Recent => write!(f, "recent"),
            Reason::Weekly(d) => write!(f, "weekly {d}"),
            Reason::Monthly(m) => write!(f, "monthly {m}"),
            Reason::Yearly(y) => write!(f, "yearly {y}"),
            Reason::Flagged(g) => write!(
                f,
                "{} {} (flagged until {})",
                g.kind,
                g.period,
                g.until.format("%Y-%m-%d %H:%M UTC")
            ),
        }
    }
}

/// A point as retention sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub id: Id,
    pub machine: String,
    pub time: DateTime<Utc>,
    /// Its stored GFS flags (expired ones too: they no longer keep it).
    pub flags: Vec<Flag>,
}

/// The decision for one point: kept (with every reason) or forgotten (no reason), and
/// the GFS flags to store for it that it does not have yet.
#[derive(Clone, Debug)]
pub struct Decision {
    pub point: Candidate,
    pub reasons: Vec<Reason>,
    pub new_flags: Vec<Flag>,
}

impl Decision {
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

impl Policy {
    /// Checks the settings; the message names the one that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=12).contains(&self.yearly_in) {
            return Err(format!(
                "yearly_in = {}: a month is 1 (January) to 12 (December)",
                self.yearly_in
            ));
        }
        Ok(())
    }

    /// Decides, per machine, which of `points` to keep at `now`, periods taken in `tz`.
    /// Returns one decision per point, by machine then oldest first.
    pub fn apply<Tz: TimeZone>(
        &self,
        points: &[Candidate],
        now: DateTime<Utc>,
        tz: &Tz,
    ) -> Vec<Decision> {
        let mut by_machine: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
        for p in points {
            by_machine.entry(&p.machine).or_default().push(p);
        }
        let mut out = Vec::with_capacity(points.len());
        for (_, mut ps) in by_machine {
            ps.sort_by_key(|p| (p.time, p.id));
            let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); ps.len()];
            let mut new_flags: Vec<Vec<Flag>> = vec![Vec::new(); ps.len()];
            if let Some(last) = reasons.last_mut() {
                last.push(Reason::Newest);
            }
            let recent = ps.len().saturating_sub(self.keep as usize);
            for r in &mut reasons[recent..] {
                r.push(Reason::Recent);
            }
            let today = now.with_timezone(tz).date_naive();
            let periods = [
                (self.weekly, Kind::Week(self.weekly_on)),
                (self.monthly, Kind::Month(self.monthly_on)),
                (self.yearly, Kind::Year(self.yearly_in)),
            ];
            for (count, kind) in periods {
                if count == 0 {
                    continue;
                }
                let current = kind.index(today);
                // Each period's point: its first (or, for a month's last, its last).
                let mut chosen: BTreeMap<i64, usize> = BTreeMap::new();
                for (i, p) in ps.iter().enumerate() {
                    let day = p.time.with_timezone(tz).date_naive();
                    let period = kind.index(day);
                    let take_last = matches!(kind, Kind::Month(MonthPoint::Last));
                    if take_last || !chosen.contains_key(&period) {
                        chosen.insert(period, i);
                    }
                }
                let take_last = matches!(kind, Kind::Month(MonthPoint::Last));
                for (period, i) in chosen {
                    if current - period < i64::from(count) && period <= current {
                        let reason = kind.reason(period);
                        // Final once no later point can take the period's place.
                        let last_may_change = take_last && period == current;
                        if let (Some((k, name)), false) = (reason.gfs(), last_may_change) {
                            let stored =
                                ps[i].flags.iter().any(|f| f.kind == k && f.period == name);
                            if !stored {
                                new_flags[i].push(Flag {
                                    kind: k,
                                    period: name,
                                    until: kind.keep_until(period, count, tz),
                                });
                            }
                        }
                        reasons[i].push(reason);
                    }
                }
            }
            for ((p, mut r), new) in ps.into_iter().zip(reasons).zip(new_flags) {
                // Stored flags in force keep the point too, unless this run chose it for
                // the same period anyway.
                for f in p.flags.iter().chain(&new).filter(|f| f.until > now) {
                    let same = |x: &Reason| x.gfs() == Some((f.kind, f.period.clone()));
                    if !r.iter().any(same) {
                        r.push(Reason::Flagged(f.clone()));
                    }
                }
                r.sort();
                out.push(Decision {
                    point: p.clone(),
                    reasons: r,
                    new_flags: new,
                });
            }
        }
        out
    }
}

/// A kind of GFS period, numbered so that consecutive periods differ by one.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Week(Weekday),
    Month(MonthPoint),
    Year(u32),
}

impl Kind {
    /// The number of the period `day` falls in.
    fn index(self, day: NaiveDate) -> i64 {
        match self {
            Kind::Week(start) => {
                let back =
                    (7 + day.weekday().num_days_from_monday() - start.num_days_from_monday()) % 7;
                let first = day - Duration::days(i64::from(back));
                // Days since 1970-01-01, in weeks (the first day is a `start`).
                i64::from(first.num_days_from_ce()).div_euclid(7)
            }
            Kind::Month(_) => i64::from(day.year()) * 12 + i64::from(day.month0()),
            Kind::Year(month) => {
                let y = i64::from(day.year());
                if day.month() >= month { y } else { y - 1 }
            }
        }
    }

    /// The first day of `period`.
    fn first_day(self, period: i64) -> NaiveDate {
        let day = match self {
            Kind::Week(start) => {
                // Back from the week's number to its first day: day 1 of the era is a
                // Monday, so a week starting on `start` begins on a day ≡ 1 + its
                // distance from Monday (mod 7).
                let r = (1 + i64::from(start.num_days_from_monday())) % 7;
                let first = i32::try_from(period * 7 + r).ok();
                first.and_then(NaiveDate::from_num_days_from_ce_opt)
            }
            Kind::Month(_) => i32::try_from(period.div_euclid(12))
                .ok()
                .and_then(|y| NaiveDate::from_ymd_opt(y, period.rem_euclid(12) as u32 + 1, 1)),
            Kind::Year(month) => i32::try_from(period)
                .ok()
                .and_then(|y| NaiveDate::from_ymd_opt(y, month, 1)),
        };
        day.unwrap_or(NaiveDate::MAX)
    }

    /// When a point chosen for `period` stops being kept with `count` periods: the start
    /// (local midnight in `tz`) of the period `count` after it.
    fn keep_until<Tz: TimeZone>(self, period: i64, count: u32, tz: &Tz) -> DateTime<Utc> {
        let day = self.first_day(period + i64::from(count));
        let midnight = day.and_time(chrono::NaiveTime::MIN);
        // A zone that skips midnight (a DST change) starts the day an hour later.
        let local = tz.from_local_datetime(&midnight).earliest().or_else(|| {
            tz.from_local_datetime(&(midnight + Duration::hours(1)))
                .earliest()
        });
        local.map_or_else(|| midnight.and_utc(), |t| t.with_timezone(&Utc))
    }

    fn reason(self, period: i64) -> Reason {
        match self {
            Kind::Week(_) => Reason::Weekly(self.first_day(period)),
            Kind::Month(_) => Reason::Monthly(format!(
                "{:04}-{:02}",
                period.div_euclid(12),
                period.rem_euclid(12) + 1
            )),
            Kind::Year(_) => Reason::Yearly(period as i32),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use chrono::{FixedOffset, NaiveTime};
    use proptest::prelude::*;

    use super::*;

    fn at(day: NaiveDate, hour: u32) -> DateTime<Utc> {
        day.and_time(NaiveTime::from_hms_opt(hour, 0, 0).unwrap())
            .and_utc()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn point(n: u64, machine: &str, time: DateTime<Utc>) -> Candidate {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&n.to_be_bytes());
        Candidate {
            id: Id(id),
            machine: machine.into(),
            time,
            flags: Vec::new(),
        }
    }

    fn kept_days(decisions: &[Decision]) -> BTreeSet<NaiveDate> {
        decisions
            .iter()
            .filter(|d| d.keep())
            .map(|d| d.point.time.date_naive())
            .collect()
    }

    /// Two years of daily points with keep = 7, weekly = 4 (Sundays), monthly = 12
    /// (firsts), yearly = 3 (Januaries) keep exactly the days worked out by hand.
    #[test]
    fn two_years_of_daily_points_keep_the_gfs_set() {
        let mut points = Vec::new();
        let mut day = date(2024, 1, 1);
        while day <= date(2025, 12, 31) {
            points.push(point(points.len() as u64, "web", at(day, 3)));
            day = day.succ_opt().unwrap();
        }
        let policy = Policy {
            keep: 7,
            weekly: 4,
            monthly: 12,
            yearly: 3,
            ..Default::default()
        };
        // Thursday 1 January 2026: this week, month and year have no point yet.
        let now = at(date(2026, 1, 1), 12);
        let decisions = policy.apply(&points, now, &Utc);
        let mut expected = BTreeSet::new();
        for d in 25..=31 {
            expected.insert(date(2025, 12, d)); // the newest 7
        }
        for d in [28, 21, 14, 7] {
            expected.insert(date(2025, 12, d)); // this Sunday-week and the 3 before
        }
        for m in 2..=12 {
            expected.insert(date(2025, m, 1)); // Jan 2026 (none) and the 11 before
        }
        expected.insert(date(2025, 1, 1)); // 2026 (none), 2025, 2024
        expected.insert(date(2024, 1, 1));
        assert_eq!(kept_days(&decisions), expected);
        let newest = decisions
            .iter()
            .find(|d| d.point.time.date_naive() == date(2025, 12, 31));
        assert!(newest.unwrap().reasons.contains(&Reason::Newest));
        let sunday = decisions
            .iter()
            .find(|d| d.point.time.date_naive() == date(2025, 12, 7));
        assert_eq!(
            sunday.unwrap().reasons,
            vec![Reason::Weekly(date(2025, 12, 7))]
        );
    }

    /// A missed day: the week's point is the first one after the chosen weekday; the
    /// last-of-month point is the month's last.
    #[test]
    fn a_missed_weekday_takes_the_next_point_and_last_of_month_the_last() {
        // Sunday 2 November 2025 missed; Monday 3rd and Tuesday 4th taken.
        let points = vec![
            point(1, "db", at(date(2025, 11, 3), 1)),
            point(2, "db", at(date(2025, 11, 4), 1)),
            point(3, "db", at(date(2025, 11, 30), 1)),
            point(4, "db", at(date(2025, 12, 2), 1)),
        ];
        let policy = Policy {
            keep: 1,
            weekly: 10,
            monthly: 3,
            monthly_on: MonthPoint::Last,
            ..Default::default()
        };
        let decisions = policy.apply(&points, at(date(2025, 12, 3), 0), &Utc);
        let reasons: Vec<_> = decisions.iter().map(|d| d.reasons.clone()).collect();
        assert_eq!(reasons[0], vec![Reason::Weekly(date(2025, 11, 2))]);
        assert!(reasons[1].is_empty(), "{reasons:?}");
        assert_eq!(
            reasons[2],
            vec![
                Reason::Weekly(date(2025, 11, 30)),
                Reason::Monthly("2025-11".into())
            ]
        );
        assert_eq!(
            reasons[3],
            vec![
                Reason::Newest,
                Reason::Recent,
                Reason::Monthly("2025-12".into())
            ]
        );
    }

    /// Periods are days in the zone given: 23:30 UTC on a Saturday is Sunday in UTC+1.
    #[test]
    fn periods_follow_the_time_zone() {
        let points = vec![
            point(1, "a", at(date(2025, 11, 1), 23)),
            point(2, "a", at(date(2025, 11, 5), 1)),
        ];
        let policy = Policy {
            keep: 0,
            weekly: 1,
            ..Default::default()
        };
        let now = at(date(2025, 11, 6), 0);
        let utc = policy.apply(&points, now, &Utc);
        assert!(
            utc[0].reasons.is_empty(),
            "Saturday in UTC: last week's point"
        );
        let plus_one = FixedOffset::east_opt(3600).unwrap();
        let local = policy.apply(&points, now, &plus_one);
        assert_eq!(local[0].reasons, vec![Reason::Weekly(date(2025, 11, 2))]);
    }

    /// The oracle: whether `p` is kept, worked out point by point, by walking days back
    /// and comparing with every other point of its machine.
    fn oracle(p: &Candidate, all: &[Candidate], policy: &Policy, now: DateTime<Utc>) -> bool {
        let mine: Vec<&Candidate> = all.iter().filter(|q| q.machine == p.machine).collect();
        let newer = |q: &&&Candidate| (q.time, q.id) > (p.time, p.id);
        let newer_count = mine.iter().filter(newer).count();
        if newer_count == 0 || newer_count < policy.keep as usize {
            return true;
        }
        let week_start = |mut d: NaiveDate| {
            while d.weekday() != policy.weekly_on {
                d = d.pred_opt().unwrap();
            }
            d
        };
        let day = p.time.date_naive();
        let today = now.date_naive();
        let first_in = |same: &dyn Fn(&Candidate) -> bool| {
            mine.iter()
                .filter(|q| same(q))
                .min_by_key(|q| (q.time, q.id))
                .map(|q| q.id)
        };
        let last_in = |same: &dyn Fn(&Candidate) -> bool| {
            mine.iter()
                .filter(|q| same(q))
                .max_by_key(|q| (q.time, q.id))
                .map(|q| q.id)
        };
        if policy.weekly > 0 {
            let ws = week_start(day);
            let weeks_ago = (week_start(today) - ws).num_days() / 7;
            let same = |q: &Candidate| week_start(q.time.date_naive()) == ws;
            if weeks_ago < i64::from(policy.weekly) && first_in(&same) == Some(p.id) {
                return true;
            }
        }
        if policy.monthly > 0 {
            let months = |d: NaiveDate| d.year() * 12 + d.month() as i32;
            let ago = months(today) - months(day);
            let same = |q: &Candidate| months(q.time.date_naive()) == months(day);
            let chosen = match policy.monthly_on {
                MonthPoint::First => first_in(&same),
                MonthPoint::Last => last_in(&same),
            };
            if ago < policy.monthly as i32 && chosen == Some(p.id) {
                return true;
            }
        }
        if policy.yearly > 0 {
            let year = |d: NaiveDate| {
                if d.month() < policy.yearly_in {
                    d.year() - 1
                } else {
                    d.year()
                }
            };
            let ago = year(today) - year(day);
            let same = |q: &Candidate| year(q.time.date_naive()) == year(day);
            if ago < policy.yearly as i32 && first_in(&same) == Some(p.id) {
                return true;
            }
        }
        false
    }

    proptest! {
        /// Any history, any policy: exactly the points the oracle keeps are kept, and
        /// each machine's newest point always is.
        #[test]
        fn decisions_match_the_oracle(
            gaps in proptest::collection::vec((0u32..3, 0i64..20 * 24), 1..120),
            keep in 0u32..10,
            weekly in 0u32..6,
            weekday in 0u8..7,
            monthly in 0u32..8,
            last in any::<bool>(),
            yearly in 0u32..4,
            yearly_in in 1u32..=12,
            ahead in 0i64..400,
        ) {
            let policy = Policy {
                keep,
                weekly,
                weekly_on: Weekday::try_from(weekday).unwrap(),
                monthly,
                monthly_on: if last { MonthPoint::Last } else { MonthPoint::First },
                yearly,
                yearly_in,
            };
            let mut t = at(date(2023, 3, 1), 0);
            let mut points = Vec::new();
            for (n, (machine, hours)) in gaps.iter().enumerate() {
                t += Duration::hours(*hours);
                points.push(point(n as u64, ["a", "b", "c"][*machine as usize], t));
            }
            let now = t + Duration::days(ahead);
            let decisions = policy.apply(&points, now, &Utc);
            prop_assert_eq!(decisions.len(), points.len());
            for d in &decisions {
                prop_assert_eq!(d.keep(), oracle(&d.point, &points, &policy, now), "{:?}", d);
            }
            for m in ["a", "b", "c"] {
                let newest = decisions.iter().rfind(|d| d.point.machine == m);
                prop_assert!(newest.is_none_or(|d| d.reasons.contains(&Reason::Newest)));
            }
        }
    }
}
