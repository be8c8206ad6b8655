//! The continuous runner: decides, for each job, when its next interval runs, runs it,
//! and sleeps on the injected clock until the next is due — so tests drive years of
//! schedule in milliseconds. What an interval does is [`super::run::run_once`]; the
//! runner only says when.
//!
//! Periodic jobs run once per interval, at its start (or at once, when the runner starts
//! inside an interval the job has not run yet — a job created less than an interval
//! after a point appeared copies it at once). When the copy windows kept the transfer
//! from running, the job runs again when the next window opens, if that is still inside
//! the interval. Immediate jobs run every `poll_every`.

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use super::config::{Job, Mode};
use super::state::JobState;
use crate::clock::Clock;
use crate::repo::WarmSpec;

/// What the runner remembers of a job between its runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    /// The start of the last interval whose transfer ran.
    pub done_interval: Option<DateTime<Utc>>,
    /// When it last ran at all, and, if the copy windows held its transfer back, when
    /// the next window opens.
    pub last_run: Option<DateTime<Utc>>,
    pub waits_until: Option<DateTime<Utc>>,
}

/// When `job` should run next, at or after `now`.
pub fn next_run<Tz: TimeZone>(job: &Job, m: &Memory, now: DateTime<Utc>, tz: &Tz) -> DateTime<Utc> {
    match &job.mode {
        Mode::Periodic { intervals, .. } => {
            let current = intervals.around(now, tz);
            let done = m.done_interval.is_some_and(|d| d >= current.start);
            if !done {
                // Not yet run in this interval: now, unless the window opens later in it.
                return match m.waits_until {
                    Some(w) if w > now && w < current.end => w,
                    Some(w) if w >= current.end => current.end,
                    _ => now,
                };
            }
            current.end
        }
        Mode::Immediate { poll_every } => {
            let every = chrono::Duration::from_std(*poll_every).unwrap_or(chrono::Duration::MAX);
            match (m.last_run, m.waits_until) {
                (_, Some(w)) if w > now => w,
                (Some(last), _) => (last + every).max(now),
                (None, _) => now,
            }
        }
    }
}

/// Notes a run that started at `started` (the interval holding it): `waits_until` is
/// when the copy windows open next if they held the transfer back.
pub fn ran<Tz: TimeZone>(
    job: &Job,
    m: &mut Memory,
    started: DateTime<Utc>,
    waits_until: Option<DateTime<Utc>>,
    tz: &Tz,
) {
    m.last_run = Some(started);
    m.waits_until = waits_until;
    if waits_until.is_none()
        && let Mode::Periodic { intervals, .. } = &job.mode
    {
        m.done_interval = Some(intervals.around(started, tz).start);
    }
}

/// What the runner knows of `job` when it starts: the last interval whose transfer ran,
/// from the job's state in its target (nothing when the target or state is not there
/// yet, or cannot be read — the interval then runs, and reports what is wrong).
pub async fn remember(job: &Job, clock: &Arc<dyn Clock>) -> Memory {
    let read = async {
        let url = job.target.repository_url(&job.name);
        let secret = &job.target.password;
        let repo = crate::repo::open_repository(&url, secret, clock, WarmSpec::NOTHING).await;
        JobState::load(&repo.ok()??, &job.name).await.ok()
    };
    let state = read.await;
    Memory {
        done_interval: state.as_ref().and_then(|s| s.last_interval),
        last_run: state.and_then(|s| s.last_run),
        waits_until: None,
    }
}

/// Runs `jobs` until `stop` is asked: each job when [`next_run`] says, one interval
/// at a time, sleeping on `clock` in between. `interval` runs one interval of a job and
/// returns when the copy windows open next if they held its transfer back. A stop
/// request ends the wait between intervals; the interval in progress is given the same
/// stop and ends at its next safe point.
pub async fn run_forever<Tz, F, Fut>(
    jobs: &[Job],
    memory: Vec<Memory>,
    clock: Arc<dyn Clock>,
    tz: &Tz,
    mut interval: F,
    stop: crate::stop::Stop,
) where
    Tz: TimeZone,
    F: FnMut(&Job, DateTime<Utc>) -> Fut,
    Fut: Future<Output = Option<DateTime<Utc>>>,
{
    let mut memory = memory;
    memory.resize(jobs.len(), Memory::default());
    loop {
        if stop.is_stopped() {
            return;
        }
        let now = clock.now();
        let next: Vec<DateTime<Utc>> = jobs
            .iter()
            .zip(&memory)
            .map(|(j, m)| next_run(j, m, now, tz))
            .collect();
        let Some((i, at)) = next.iter().enumerate().min_by_key(|(_, t)| **t) else {
            return;
        };
        if *at > now {
            let wait = (*at - now).to_std().unwrap_or_default();
            tokio::select! {
                _ = clock.sleep(wait) => {}
                _ = stop.stopped() => {}
            }
            continue;
        }
        let started = clock.now();
        let waits = interval(&jobs[i], started).await;
        ran(&jobs[i], &mut memory[i], started, waits, tz);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::NaiveTime;

    use super::*;
    use crate::job::config::{Secret, TargetSpec};
    use crate::schedule::{Intervals, Window, Windows};

    fn job(mode: Mode, windows: &[&str]) -> Job {
        let target = TargetSpec::plain("memory://x", Secret::Env("X".into()));
        Job {
            mode,
            max_tasks: 1,
            windows: Windows(windows.iter().map(|w| Window::parse(w).unwrap()).collect()),
            ..Job::plain("j", Vec::new(), target)
        }
    }

    fn daily(start_at: u32) -> Mode {
        Mode::Periodic {
            intervals: Intervals {
                every: chrono::Duration::days(1),
                start_at: NaiveTime::from_hms_opt(start_at, 0, 0).unwrap(),
            },
        }
    }

    /// Drives the runner's decisions over `days` simulated days from `t0`; returns the
    /// times the job ran. `window_opens(t)`: when the windows would open, if closed.
    fn simulate(j: &Job, t0: DateTime<Utc>, days: i64) -> Vec<DateTime<Utc>> {
        let mut m = Memory::default();
        let mut now = t0;
        let mut runs = Vec::new();
        while now < t0 + chrono::Duration::days(days) {
            let at = next_run(j, &m, now, &Utc);
            assert!(at >= now);
            now = at;
            if now >= t0 + chrono::Duration::days(days) {
                break;
            }
            let waits = match j.windows.open_at(now, &Utc) {
                true => None,
                false => j.windows.next_open(now, &Utc),
            };
            if waits.is_none() {
                runs.push(now);
            }
            ran(j, &mut m, now, waits, &Utc);
            // The interval takes a while.
            now += chrono::Duration::minutes(7);
        }
        runs
    }

    /// A daily job started mid-interval runs at once, then at each interval's start:
    /// two years, one run a day.
    #[test]
    fn daily_job_runs_once_per_interval_for_two_years() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 15, 0, 0).unwrap();
        let runs = simulate(&job(daily(2), &[]), t0, 730);
        // The interval begun at t0, and each day's 02:00 up to the last day's.
        assert_eq!(runs.len(), 731);
        assert_eq!(runs[0], t0, "the first interval runs at once");
        assert_eq!(runs[1], Utc.with_ymd_and_hms(2026, 1, 2, 2, 0, 0).unwrap());
        for w in runs.windows(2).skip(1) {
            assert_eq!(w[1] - w[0], chrono::Duration::days(1));
        }
    }

    /// Outside its window a job waits for the window inside the interval: a daily job
    /// at 00:00 with a window at 01:00–05:00 transfers at 01:00 every day.
    #[test]
    fn a_closed_window_moves_the_run_to_its_opening() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        let runs = simulate(&job(daily(0), &["daily 01:00-05:00"]), t0, 30);
        assert_eq!(runs.len(), 30);
        for r in &runs {
            assert_eq!(r.time(), NaiveTime::from_hms_opt(1, 0, 0).unwrap(), "{r}");
        }
    }

    /// A window that opens only after the interval ended leaves that interval without a
    /// transfer: a daily job with a Monday window transfers on Mondays only.
    #[test]
    fn a_window_outside_the_interval_skips_it() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap(); // a Monday
        let runs = simulate(&job(daily(0), &["mon 01:00-05:00"]), t0, 28);
        assert_eq!(runs.len(), 4, "{runs:?}");
    }

    /// The loop itself on a simulated clock: thirty days of a daily job in milliseconds,
    /// then a stop request ends it.
    #[tokio::test]
    async fn the_loop_runs_each_interval_and_stops_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 15, 0, 0).unwrap();
        let clock = Arc::new(crate::clock::ManualClock::auto_advance(t0));
        let jobs = vec![job(daily(2), &[])];
        let stop = crate::stop::Stop::new();
        let runs = std::sync::Mutex::new(Vec::new());
        let c: Arc<dyn Clock> = clock.clone();
        let started = std::time::Instant::now();
        run_forever(
            &jobs,
            Vec::new(),
            c,
            &Utc,
            |_, at| {
                let mut r = runs.lock().unwrap();
                r.push(at);
                if r.len() == 30 {
                    stop.stop();
                }
                async { None }
            },
            stop.clone(),
        )
        .await;
        let runs = runs.into_inner().unwrap();
        assert_eq!(runs.len(), 30);
        assert_eq!(
            runs[29],
            Utc.with_ymd_and_hms(2026, 1, 30, 2, 0, 0).unwrap()
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn immediate_jobs_poll() {
        let mode = Mode::Immediate {
            poll_every: Duration::from_secs(300),
        };
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
        let runs = simulate(&job(mode, &[]), t0, 1);
        // Every 5 minutes, or every 7 when a run takes longer than the period.
        assert_eq!(runs.len(), 24 * 60 / 7 + 1);
    }
}
