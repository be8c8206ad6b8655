//! `offsite job simulate`: what a job keeps and costs over days to come, before anyone
//! buys storage. It runs the job's own schedule ([`super::runner::next_run`] with its
//! windows), its catch-up choice ([`super::catch_up`]), its retention
//! ([`crate::retention::Policy::apply`], GFS flags stored and honoured as `forget` does),
//! its prune cadence ([`super::timers`]) and its object lock durations
//! ([`Job::storage_policy`]) over simulated days, against a model of the target
//! ([`model`]: bytes per machine, not data) — the same code the runner decides with, so a
//! test holds the simulator against a real run.
//!
//! Each source machine is taken to make one point a day at `backup_at`. Requests are
//! estimates: per copy, a PUT per pack (the job's pack size) and per point, the index
//! file, the job's state and its locks; per interval the target's index files and points
//! read back; per prune its new index files.

pub mod model;
pub mod size;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Serialize;

use super::config::Job;
use super::runner::{Memory, next_run, ran};
use crate::Id;
use crate::retention::policy::{Candidate, Flag};
use model::MachineModel;

/// A machine to simulate: its size as stored and its daily change (a share, 0–1).
#[derive(Clone, Debug, Serialize)]
pub struct MachineSize {
    pub machine: String,
    pub size: u64,
    pub change: f64,
}

/// What the simulation runs on.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub start: DateTime<Utc>,
    pub days: u32,
    pub machines: Vec<MachineSize>,
    /// When each machine's daily point is made (local time).
    pub backup_at: NaiveTime,
    /// The target's prices (storage, PUT, GET, minimum days), when it has any.
    pub prices: Option<crate::prices::Class>,
}

/// One simulated day, at its end.
#[derive(Clone, Debug, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    /// Points kept in the target per machine.
    pub points: BTreeMap<String, usize>,
    pub stored_bytes: u64,
    pub objects: u64,
    /// Bytes under an object lock in force, and until when the last lock runs.
    pub locked_bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<DateTime<Utc>>,
    /// Points copied and bytes written that day; requests that day.
    pub points_copied: usize,
    pub bytes_written: u64,
    pub puts: u64,
    pub gets: u64,
    pub pruned: bool,
    /// What the day cost: storage, requests and early deletion.
    pub usd: f64,
}

/// A month's sums.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Month {
    pub month: String,
    /// At the month's last simulated day.
    pub stored_bytes: u64,
    pub puts: u64,
    pub gets: u64,
    pub storage_usd: f64,
    pub requests_usd: f64,
    pub early_delete_usd: f64,
    pub usd: f64,
}

/// A point kept at the end, and why.
#[derive(Clone, Debug, Serialize)]
pub struct KeptPoint {
    pub time: DateTime<Utc>,
    pub reasons: Vec<String>,
}

/// The simulation's answer.
#[derive(Clone, Debug, Serialize)]
pub struct Simulation {
    pub job: String,
    pub machines: Vec<MachineSize>,
    pub days: Vec<Day>,
    pub months: Vec<Month>,
    /// Per machine, the points kept at the end (oldest first).
    pub kept: BTreeMap<String, Vec<KeptPoint>>,
    pub usd: f64,
    /// Whether a price table applied (a folder target costs nothing we know of).
    pub priced: bool,
}

/// A point in the simulated target.
#[derive(Clone, Debug)]
struct Held {
    day: usize,
    time: DateTime<Utc>,
    flags: Vec<Flag>,
    locked_until: Option<DateTime<Utc>>,
    reasons: Vec<String>,
}

/// One simulated machine: its source points, what the target holds of it.
struct Machine {
    name: String,
    model: MachineModel,
    held: Vec<Held>,
    last_copied: Option<DateTime<Utc>>,
}

/// Counters of one day.
#[derive(Default)]
struct Tally {
    copied: usize,
    written: f64,
    puts: u64,
    gets: u64,
    pruned: bool,
    early_byte_days: f64,
}

/// The simulation's state between runs.
struct Sim<'a, Tz: TimeZone> {
    job: &'a Job,
    opts: &'a SimOptions,
    tz: &'a Tz,
    machines: Vec<Machine>,
    pack_size: f64,
    index_files: u64,
    last_prune: Option<DateTime<Utc>>,
    last_health_check: Option<DateTime<Utc>>,
    /// The day being simulated, and its counters.
    day: usize,
    today: Tally,
}

/// A synthetic point id for `machine`'s point of day `day`.
fn point_id(machine: &str, day: usize) -> Id {
    Id(*blake3::hash(format!("{machine}/{day}").as_bytes()).as_bytes())
}

/// Runs `job` for `opts.days` days from `opts.start`, periods and windows in `tz`.
pub fn simulate<Tz: TimeZone>(job: &Job, opts: &SimOptions, tz: &Tz) -> Simulation {
    let days = opts.days as usize;
    let mut sim = Sim {
        job,
        opts,
        tz,
        machines: (opts.machines.iter())
            .map(|m| Machine {
                name: m.machine.clone(),
                model: MachineModel::new(m.size, m.change, days + 1),
                held: Vec::new(),
                last_copied: None,
            })
            .collect(),
        pack_size: job.target.pack_size.unwrap_or(64 << 20) as f64,
        index_files: 0,
        last_prune: None,
        last_health_check: None,
        day: 0,
        today: Tally::default(),
    };
    let mut memory = Memory::default();
    let mut now = opts.start;
    let mut out = Vec::new();
    for d in 0..days {
        sim.day = d;
        let day_end = opts.start + chrono::Duration::days(d as i64 + 1);
        loop {
            let at = next_run(job, &memory, now, tz);
            if at >= day_end {
                break;
            }
            now = at;
            let open = job.windows.open_at(now, tz);
            let waits = match open {
                true => None,
                false => job.windows.next_open(now, tz),
            };
            if open {
                sim.interval(now);
            }
            ran(job, &mut memory, now, waits, tz);
            // An interval takes a while: the next look is not at the same instant.
            now += chrono::Duration::minutes(1);
        }
        out.push(sim.sample(d, day_end));
    }
    sim.finish(out)
}

impl<Tz: TimeZone> Sim<'_, Tz> {
    /// Day `d`'s point time (the machines' daily backup).
    fn point_time(&self, d: usize) -> DateTime<Utc> {
        let day = self.opts.start.with_timezone(self.tz).date_naive() + chrono::Days::new(d as u64);
        let local = day.and_time(self.opts.backup_at);
        let at = self.tz.from_local_datetime(&local).earliest();
        at.map_or(local.and_utc(), |t| t.with_timezone(&Utc))
    }

    /// The source points made by `now`, oldest first.
    fn made_by(&self, machine: &str, now: DateTime<Utc>) -> Vec<(Id, DateTime<Utc>)> {
        (0..=self.opts.days as usize)
            .map(|d| (point_id(machine, d), self.point_time(d)))
            .take_while(|(_, t)| *t <= now)
            .collect()
    }

    /// One interval that transfers: the copies, retention, prune when due, the health
    /// check when due.
    fn interval(&mut self, now: DateTime<Utc>) {
        let tick = super::timers::tick(self.job, now, self.tz);
        if let Some(h) = &self.job.health_check
            && super::timers::due(h.every, self.last_health_check, tick)
            && self.machines.iter().any(|m| !m.held.is_empty())
        {
            // Each machine's newest point read back: its size in 4 MiB reads.
            let bytes: f64 = self.machines.iter().map(|m| m.model.size).sum();
            self.today.gets += (bytes / f64::from(4u32 << 20)).ceil() as u64;
            self.last_health_check = Some(tick);
        }
        self.copy(now);
        self.retention(now);
        if let Some(p) = &self.job.prune
            && super::timers::due(p.every, self.last_prune, tick)
        {
            self.prune();
            self.last_prune = Some(tick);
        }
    }

    fn copy(&mut self, now: DateTime<Utc>) {
        let today = self.day;
        let lock = self.job.storage_policy().lock;
        let mut copied_any = false;
        for i in 0..self.machines.len() {
            let name = self.machines[i].name.clone();
            let made = self.made_by(&name, now);
            let last = self.machines[i].last_copied;
            let job = self.job;
            let chosen = super::catch_up::choose(job, &name, &made, last, None, now, self.tz);
            let m = &mut self.machines[i];
            for id in chosen {
                let Some(day) = made.iter().position(|(p, _)| *p == id) else {
                    continue;
                };
                if m.held.iter().any(|h| h.day == day) {
                    continue;
                }
                let written = m.model.copy(day, today);
                let locked_until = lock.map(|l| {
                    now + chrono::Duration::days(i64::from(l.days) + i64::from(l.margin_days))
                });
                m.held.push(Held {
                    day,
                    time: made[day].1,
                    flags: Vec::new(),
                    locked_until,
                    reasons: Vec::new(),
                });
                m.held.sort_by_key(|h| h.day);
                m.last_copied = m.last_copied.max(Some(made[day].1));
                self.today.copied += 1;
                self.today.written += written;
                // A PUT per pack of the machine's chain, and one for the point.
                self.today.puts += (written / self.pack_size).ceil() as u64 + 1;
                // Source reads: coalesced ranges of up to 4 MiB, the point and its tree.
                self.today.gets += (written / f64::from(4u32 << 20)).ceil() as u64 + 2;
                copied_any = true;
            }
        }
        // The target read back (config, key, index files, points), the job's state and
        // locks written.
        let points: usize = self.machines.iter().map(|m| m.held.len()).sum();
        self.today.gets += 3 + self.index_files + points as u64;
        self.today.puts += 2 + self.machines.len() as u64;
        if copied_any {
            self.index_files += 1;
            self.today.puts += 1;
        }
    }

    /// The job's retention at `now`: the policy over each machine's held points with
    /// their stored flags; new flags stored; points not kept forgotten unless locked.
    fn retention(&mut self, now: DateTime<Utc>) {
        let margin = self.job.storage_policy().lock.map(|l| l.margin_days);
        for m in &mut self.machines {
            let candidates: Vec<Candidate> = (m.held.iter())
                .map(|h| Candidate {
                    id: point_id(&m.name, h.day),
                    machine: m.name.clone(),
                    time: h.time,
                    flags: h.flags.clone(),
                })
                .collect();
            let decisions = self.job.retention.apply(&candidates, now, self.tz);
            let mut kept = Vec::new();
            for (d, mut h) in decisions.into_iter().zip(std::mem::take(&mut m.held)) {
                let locked = h.locked_until.is_some_and(|u| u > now);
                if !d.keep() && !locked {
                    continue;
                }
                self.today.puts += d.new_flags.len() as u64;
                if let Some(days) = margin {
                    // A GFS point's lock runs to its period's end (plus the margin).
                    for f in &d.new_flags {
                        let until = f.until + chrono::Duration::days(i64::from(days));
                        h.locked_until = h.locked_until.max(Some(until));
                    }
                }
                h.flags.extend(d.new_flags);
                h.reasons = d.reasons.iter().map(|r| r.to_string()).collect();
                if h.reasons.is_empty() {
                    h.reasons.push("locked".into());
                }
                kept.push(h);
            }
            m.held = kept;
        }
    }

    fn prune(&mut self) {
        let today = self.day;
        let min_days = self.opts.prices.as_ref().map_or(0, |c| c.min_days as usize);
        let mut packs = 0.0;
        for m in &mut self.machines {
            let kept: Vec<usize> = m.held.iter().map(|h| h.day).collect();
            let (_, early) = m.model.prune(&kept, today, min_days);
            self.today.early_byte_days += early;
            packs += (m.model.stored() / self.pack_size).ceil();
        }
        // The index written anew.
        let per_file = crate::repo::PACKS_PER_INDEX as f64;
        self.index_files = (packs / per_file).ceil().max(1.0) as u64;
        self.today.puts += self.index_files + 2;
        self.today.gets += self.index_files;
        self.today.pruned = true;
    }

    /// The state at the end of day `d` (at `end`), and what the day cost.
    fn sample(&mut self, d: usize, end: DateTime<Utc>) -> Day {
        let t = std::mem::take(&mut self.today);
        let stored: f64 = self.machines.iter().map(|m| m.model.stored()).sum();
        let mut locked = 0.0;
        let mut locked_until = None;
        for m in &self.machines {
            let days: Vec<usize> = (m.held.iter())
                .filter(|h| h.locked_until.is_some_and(|u| u > end))
                .map(|h| h.day)
                .collect();
            locked += m.model.needed(&days);
            let last = m.held.iter().filter_map(|h| h.locked_until).max();
            locked_until = locked_until.max(last.filter(|u| *u > end));
        }
        let points: BTreeMap<String, usize> = (self.machines.iter())
            .map(|m| (m.name.clone(), m.held.len()))
            .collect();
        let held: usize = points.values().sum();
        let flags: usize = (self.machines.iter())
            .flat_map(|m| &m.held)
            .map(|h| h.flags.len())
            .sum();
        let packs: f64 = (self.machines.iter())
            .map(|m| (m.model.stored() / self.pack_size).ceil())
            .sum();
        let objects = packs as u64 + held as u64 + flags as u64 + self.index_files + 3;
        let (storage, requests, early) = self.cost(stored, &t);
        Day {
            date: (self.opts.start.with_timezone(self.tz).date_naive())
                + chrono::Days::new(d as u64),
            points,
            stored_bytes: stored as u64,
            objects,
            locked_bytes: locked as u64,
            locked_until,
            points_copied: t.copied,
            bytes_written: t.written as u64,
            puts: t.puts,
            gets: t.gets,
            pruned: t.pruned,
            usd: storage + requests + early,
        }
    }

    /// A day's storage of `stored` bytes, its requests and its early deletions, in USD.
    fn cost(&self, stored: f64, t: &Tally) -> (f64, f64, f64) {
        let Some(c) = &self.opts.prices else {
            return (0.0, 0.0, 0.0);
        };
        const GB: f64 = 1e9;
        let per_day = c.storage_gb_month * 12.0 / 365.0;
        let storage = stored / GB * per_day;
        let requests = c.requests_usd(t.puts, t.gets);
        let early = t.early_byte_days / GB * per_day;
        (storage, requests, early)
    }

    fn finish(self, days: Vec<Day>) -> Simulation {
        let mut months: Vec<Month> = Vec::new();
        for d in &days {
            let key = d.date.format("%Y-%m").to_string();
            if months.last().is_none_or(|m| m.month != key) {
                months.push(Month {
                    month: key,
                    ..Month::default()
                });
            }
            let Some(m) = months.last_mut() else { continue };
            m.stored_bytes = d.stored_bytes;
            m.puts += d.puts;
            m.gets += d.gets;
            m.usd += d.usd;
        }
        // The month's parts again, for the table.
        for m in &mut months {
            let of_month = days
                .iter()
                .filter(|d| d.date.format("%Y-%m").to_string() == m.month);
            for d in of_month {
                let t = Tally {
                    puts: d.puts,
                    gets: d.gets,
                    ..Tally::default()
                };
                let (storage, requests, _) = self.cost(d.stored_bytes as f64, &t);
                m.storage_usd += storage;
                m.requests_usd += requests;
            }
            m.early_delete_usd = (m.usd - m.storage_usd - m.requests_usd).max(0.0);
        }
        let kept = (self.machines.iter())
            .map(|m| {
                let points = (m.held.iter())
                    .map(|h| KeptPoint {
                        time: h.time,
                        reasons: h.reasons.clone(),
                    })
                    .collect();
                (m.name.clone(), points)
            })
            .collect();
        Simulation {
            job: self.job.name.clone(),
            machines: self.opts.machines.clone(),
            usd: days.iter().map(|d| d.usd).sum(),
            priced: self.opts.prices.is_some(),
            days,
            months,
            kept,
        }
    }
}
