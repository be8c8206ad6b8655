//! When a job copies: its intervals (`copy_every` from `start_at`, in local wall-clock
//! time) and its copy windows (weekly slots when transfer is allowed). Pure functions of
//! a time and a time zone, so tests run years of schedule in milliseconds.

use std::ops::Range;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc,
};

/// Minutes in a week; minute 0 is Monday 00:00.
const WEEK: u32 = 7 * 24 * 60;

/// Periodic intervals: each starts `every` after the one before, counted from
/// `start_at` on Monday 5 January 1970 in local time (so daily intervals start at
/// `start_at` every day, weekly ones on Mondays).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intervals {
    pub every: Duration,
    pub start_at: NaiveTime,
}

impl Intervals {
    /// The interval holding `t`: its start and end.
    pub fn around<Tz: TimeZone>(&self, t: DateTime<Utc>, tz: &Tz) -> Range<DateTime<Utc>> {
        let anchor = NaiveDate::from_ymd_opt(1970, 1, 5)
            .unwrap_or_default()
            .and_time(self.start_at);
        let local = t.with_timezone(tz).naive_local();
        let every = self.every.num_seconds().max(60);
        let k = (local - anchor).num_seconds().div_euclid(every);
        let start = anchor + Duration::seconds(k * every);
        let end = start + Duration::seconds(every);
        to_utc(tz, start)..to_utc(tz, end)
    }
}

/// A local wall-clock time as an instant; in a gap (spring forward) the first instant
/// after it, in a fold (fall back) the earlier one.
fn to_utc<Tz: TimeZone>(tz: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    let mut l = local;
    for _ in 0..180 {
        if let Some(t) = tz.from_local_datetime(&l).earliest() {
            return t.with_timezone(&Utc);
        }
        l += Duration::minutes(1);
    }
    local.and_utc()
}

/// One copy window, as written (`"mon-fri 20:00-06:00"`): the minutes of the week it
/// covers, split where it wraps past Sunday midnight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub text: String,
    slots: Vec<Range<u32>>,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const DAY_NAMES: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// A day by its short or full name, in any case (`sun`, `Sunday`).
fn day(s: &str) -> Option<u32> {
    let s = s.to_ascii_lowercase();
    (DAYS.iter().zip(DAY_NAMES))
        .position(|(short, long)| *short == s || long == s)
        .map(|p| p as u32)
}

fn minute_of_day(s: &str, end: bool) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if h == 24 && m == 0 && end {
        return Some(24 * 60);
    }
    (h < 24 && m < 60 && h.to_string().len() <= 2 && m.to_string().len() <= 2).then_some(h * 60 + m)
}

impl Window {
    /// Parses `DAYS HH:MM-HH:MM`: DAYS is a day (`mon`), a range (`mon-fri`, `fri-mon`),
    /// a list (`sat,sun`) or `daily`; a slot whose end is not after its start runs past
    /// midnight into the next day; `24:00` ends a day.
    pub fn parse(s: &str) -> Result<Window, String> {
        let bad = |why: &str| {
            format!(
                "window {s:?}: {why} (write it like \"mon-fri 20:00-06:00\" or \"daily 01:00-05:00\")"
            )
        };
        let (days_text, times) = s
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("days and times"))?;
        let mut days = Vec::new();
        for part in days_text.split(',') {
            let part = part.trim().to_ascii_lowercase();
            if part == "daily" {
                days.extend(0..7);
            } else if let Some((a, b)) = part.split_once('-') {
                let (a, b) = (
                    day(a).ok_or_else(|| bad("unknown day"))?,
                    day(b).ok_or_else(|| bad("unknown day"))?,
                );
                let mut d = a;
                loop {
                    days.push(d);
                    if d == b {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            } else {
                days.push(day(&part).ok_or_else(|| bad("unknown day"))?);
            }
        }
        let (from, to) = times.trim().split_once('-').ok_or_else(|| bad("times"))?;
        let from = minute_of_day(from.trim(), false).ok_or_else(|| bad("a time is HH:MM"))?;
        let to = minute_of_day(to.trim(), true).ok_or_else(|| bad("a time is HH:MM"))?;
        if from == to {
            return Err(bad("a slot cannot start and end at the same time"));
        }
        let length = if to > from {
            to - from
        } else {
            24 * 60 - from + to
        };
        days.sort();
        days.dedup();
        let mut slots = Vec::new();
        for d in days {
            let start = d * 24 * 60 + from;
            let end = start + length;
            if end <= WEEK {
                slots.push(start..end);
            } else {
                slots.push(start..WEEK);
                slots.push(0..end - WEEK);
            }
        }
        Ok(Window {
            text: s.trim().to_string(),
            slots,
        })
    }

    fn contains(&self, minute: u32) -> bool {
        self.slots.iter().any(|r| r.contains(&minute))
    }

    /// Whether this window is open at `t` (in `tz`).
    pub fn open_at<Tz: TimeZone>(&self, t: DateTime<Utc>, tz: &Tz) -> bool {
        self.contains(minute_of_week(t, tz))
    }

    /// Whether this window and `other` share a minute.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.slots.iter().any(|a| {
            other
                .slots
                .iter()
                .any(|b| a.start < b.end && b.start < a.end)
        })
    }
}

/// A job's copy windows: transfer is allowed inside any of them; none means always.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Windows(pub Vec<Window>);

fn minute_of_week<Tz: TimeZone>(t: DateTime<Utc>, tz: &Tz) -> u32 {
    let l = t.with_timezone(tz);
    l.weekday().num_days_from_monday() * 24 * 60 + l.hour() * 60 + l.minute()
}

impl Windows {
    /// Whether transfer is allowed at `t`.
    pub fn open_at<Tz: TimeZone>(&self, t: DateTime<Utc>, tz: &Tz) -> bool {
        self.0.is_empty() || {
            let m = minute_of_week(t, tz);
            self.0.iter().any(|w| w.contains(m))
        }
    }

    /// The first minute at or after `t` when transfer is allowed (`t` itself when open);
    /// `None` when no window ever opens.
    pub fn next_open<Tz: TimeZone>(&self, t: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        if self.open_at(t, tz) {
            return Some(t);
        }
        let whole = t
            - Duration::seconds(i64::from(t.second()))
            - Duration::nanoseconds(i64::from(t.nanosecond()));
        // A week and a day of minutes covers every slot, even across a clock change.
        (1..=(8 * 24 * 60))
            .map(|m| whole + Duration::minutes(m))
            .find(|c| self.open_at(*c, tz))
    }

    /// When the window open at `t` closes (the first minute after `t` outside every
    /// window); `None` when transfer is always allowed from `t` on.
    pub fn closes_after<Tz: TimeZone>(&self, t: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        if self.0.is_empty() {
            return None;
        }
        let whole = t
            - Duration::seconds(i64::from(t.second()))
            - Duration::nanoseconds(i64::from(t.nanosecond()));
        (1..=(8 * 24 * 60))
            .map(|m| whole + Duration::minutes(m))
            .find(|c| !self.open_at(*c, tz))
    }
}

#[cfg(test)]
mod tests {
    use chrono::FixedOffset;

    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn daily_intervals_start_at_start_at_in_local_time() {
        let i = Intervals {
            every: Duration::days(1),
            start_at: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
        };
        let cet = FixedOffset::east_opt(3600).unwrap();
        // 00:30 UTC on 28 November is 01:30 CET: still the interval that began the day
        // before at 02:00 CET (01:00 UTC).
        let r = i.around(utc(2026, 11, 28, 0, 30), &cet);
        assert_eq!(r, utc(2026, 11, 27, 1, 0)..utc(2026, 11, 28, 1, 0));
        let six_hours = Intervals {
            every: Duration::hours(6),
            start_at: NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
        };
        let r = six_hours.around(utc(2026, 11, 28, 13, 5), &Utc);
        assert_eq!(r, utc(2026, 11, 28, 12, 0)..utc(2026, 11, 28, 18, 0));
        // Weekly intervals start on Mondays.
        let weekly = Intervals {
            every: Duration::days(7),
            start_at: NaiveTime::from_hms_opt(0, 0, 0).unwrap(),
        };
        let r = weekly.around(utc(2026, 11, 28, 13, 5), &Utc);
        assert_eq!(r.start, utc(2026, 11, 23, 0, 0));
    }

    /// Years of intervals: consecutive, each `every` long, each holding its own start.
    #[test]
    fn intervals_tile_time() {
        let i = Intervals {
            every: Duration::hours(5),
            start_at: NaiveTime::from_hms_opt(3, 30, 0).unwrap(),
        };
        let mut t = utc(2024, 1, 1, 0, 0);
        let mut last = i.around(t, &Utc);
        for _ in 0..(2 * 365 * 24 / 5) {
            t = last.end;
            let r = i.around(t, &Utc);
            assert_eq!(r.start, last.end);
            assert_eq!(r.end - r.start, Duration::hours(5));
            last = r;
        }
    }

    #[test]
    fn windows_parse_wrap_and_overlap() {
        let nights = Window::parse("mon-fri 20:00-06:00").unwrap();
        let weekend = Window::parse("sat,sun 00:00-24:00").unwrap();
        let ws = Windows(vec![nights.clone(), weekend.clone()]);
        // Friday 23:00 (28 Nov 2026 is a Saturday).
        assert!(ws.open_at(utc(2026, 11, 27, 23, 0), &Utc));
        assert!(ws.open_at(utc(2026, 11, 28, 12, 0), &Utc), "Saturday");
        assert!(!ws.open_at(utc(2026, 11, 30, 12, 0), &Utc), "Monday noon");
        assert!(
            ws.open_at(utc(2026, 12, 1, 5, 59), &Utc),
            "Tuesday before 06:00"
        );
        assert_eq!(
            ws.next_open(utc(2026, 11, 30, 12, 0), &Utc),
            Some(utc(2026, 11, 30, 20, 0))
        );
        assert_eq!(
            ws.closes_after(utc(2026, 11, 30, 21, 0), &Utc),
            Some(utc(2026, 12, 1, 6, 0))
        );
        // Friday night's slot runs into Saturday: it overlaps the weekend window.
        assert!(nights.overlaps(&weekend));
        let mornings = Window::parse("mon 08:00-12:00").unwrap();
        assert!(!mornings.overlaps(&weekend));
        // Days by their full names too, in any case.
        let long = Window::parse("Monday-Friday 20:00-06:00").unwrap();
        assert_eq!(
            long.open_at(utc(2026, 11, 27, 23, 0), &Utc),
            nights.open_at(utc(2026, 11, 27, 23, 0), &Utc)
        );
        assert!(Window::parse("Sunday 01:00-02:00").is_ok());
        // Sunday 22:00 to Monday 02:00 wraps past the end of the week.
        let sunday = Window::parse("sun 22:00-02:00").unwrap();
        assert!(Windows(vec![sunday.clone()]).open_at(utc(2026, 11, 30, 1, 0), &Utc));
        for bad in [
            "mon",
            "funday 01:00-02:00",
            "mon 25:00-26:00",
            "mon 01:00-01:00",
            "mon 1:00-2:00x",
        ] {
            assert!(Window::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn no_windows_means_always() {
        let ws = Windows::default();
        let t = utc(2026, 11, 28, 3, 0);
        assert!(ws.open_at(t, &Utc));
        assert_eq!(ws.next_open(t, &Utc), Some(t));
        assert_eq!(ws.closes_after(t, &Utc), None);
    }
}
