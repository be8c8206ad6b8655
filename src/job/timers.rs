//! A job's "every" timers — prune, the health check, the active full — counted in
//! interval starts: a timer is stamped with the start of the interval it ran in and is
//! due again in the interval that starts `every` later, so "every 7d" on a daily job is
//! every seventh interval however long the phases before it took. (Stamping the moment
//! it ran made "7d" fire after 7 or 8 days, as the transfer took more or less time.)

use chrono::{DateTime, TimeZone, Utc};

use super::config::{Job, Mode};

/// How much sooner than `every` a timer still fires: a day of the interval clock can be
/// 23 hours (daylight saving time), and "every 7d" must still be the seventh interval.
fn slack(every: chrono::Duration) -> chrono::Duration {
    (every / 4).min(chrono::Duration::minutes(90))
}

fn span(every: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX)
}

/// Whether something done every `every`, last stamped `last`, is due in the interval
/// that starts at `tick`.
pub fn due(every: std::time::Duration, last: Option<DateTime<Utc>>, tick: DateTime<Utc>) -> bool {
    let every = span(every);
    last.is_none_or(|last| tick - last >= every - slack(every))
}

/// The stamp of an interval begun at `started`: its start for a periodic job, the
/// moment itself for an immediate one.
pub fn tick<Tz: TimeZone>(job: &Job, started: DateTime<Utc>, tz: &Tz) -> DateTime<Utc> {
    match &job.mode {
        Mode::Periodic { intervals } => intervals.around(started, tz).start,
        Mode::Immediate { .. } => started,
    }
}

/// When the timer is due next after `now`: the start of the first interval at which
/// [`due`] holds (for an immediate job, `every` after `last`); `None` when it is due
/// now (at the next run).
pub fn next<Tz: TimeZone>(
    job: &Job,
    every: std::time::Duration,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Option<DateTime<Utc>> {
    let last = last?;
    let at = last + span(every) - slack(span(every));
    match &job.mode {
        _ if at <= now => None,
        Mode::Immediate { .. } => Some(at),
        Mode::Periodic { intervals } => {
            let holding = intervals.around(at, tz);
            Some(match holding.start >= at {
                true => holding.start,
                false => holding.end,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveTime;

    use super::*;
    use crate::job::config::{Secret, TargetSpec};
    use crate::schedule::Intervals;

    fn daily() -> Job {
        let target = TargetSpec::plain("memory://x", Secret::Env("X".into()));
        Job {
            mode: Mode::Periodic {
                intervals: Intervals {
                    every: chrono::Duration::days(1),
                    start_at: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
                },
            },
            ..Job::plain("j", Vec::new(), target)
        }
    }

    /// Over 60 daily intervals whose phases start anywhere from 1 to 50 minutes into
    /// the interval, "7d" fires on every 7th interval and "30d" on every 30th, and
    /// `next` names the interval it fires in.
    #[test]
    fn timers_fire_every_nth_interval() {
        let job = daily();
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap();
        for (every, n) in [(7u64, 7usize), (30, 30)] {
            let every = std::time::Duration::from_secs(every * 86_400);
            let mut last = None;
            let mut fired = Vec::new();
            for day in 0..60i64 {
                let ran_at = t0
                    + chrono::Duration::days(day)
                    + chrono::Duration::minutes(1 + (day * 37) % 50);
                let tick = tick(&job, ran_at, &Utc);
                if let Some(at) = next(&job, every, last, ran_at, &Utc) {
                    assert!(!due(every, last, tick), "day {day}: next says {at}");
                    assert!(at > tick);
                }
                if due(every, last, tick) {
                    fired.push(day as usize);
                    last = Some(tick);
                }
            }
            let want: Vec<usize> = (0..60).step_by(n).collect();
            assert_eq!(fired, want, "every {n}");
        }
    }

    /// A 23-hour day (daylight saving time begins) does not push a 7-day timer to the
    /// eighth interval.
    #[test]
    fn a_short_day_does_not_delay_the_timer() {
        let job = daily();
        let tz = chrono::FixedOffset::east_opt(0).unwrap();
        let week = std::time::Duration::from_secs(7 * 86_400);
        let last = Utc.with_ymd_and_hms(2026, 3, 23, 2, 0, 0).unwrap();
        let seven_days_less_an_hour = last + chrono::Duration::days(7) - chrono::Duration::hours(1);
        assert!(due(week, Some(last), seven_days_less_an_hour));
        assert!(!due(week, Some(last), last + chrono::Duration::days(6)));
        let _ = tick(&job, last, &tz);
    }
}
