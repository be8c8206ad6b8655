//! The jobs file: backup copy jobs in TOML (every key in docs/JOBS.md). Decoding
//! collects every mistake with its line — an unknown key, a wrong type, a bad duration,
//! size or window, windows that overlap, a secret that is not there — rather than
//! stopping at the first. Secrets never sit in the file: it names the environment
//! variable or file each password comes from.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use toml::de::DeTable;

use super::archivers::ArchiversSpec;
use super::report::{ReportSpec, Webhook};
use super::script::{OnFailure, ScriptSpec};
use super::toml_walk::{At, Doc, Problem, Table};
use crate::copy::{ChainMode, Compression, Selection};
use crate::format::point::validate_name;
use crate::remote::pool::Redispatch;
use crate::retention::{MonthPoint, Policy};
use crate::schedule::{Intervals, Window, Windows};
pub use crate::secret::{EnvLookup, Secret};
use crate::store::throttle::{Rates, ThrottleSpec};
use crate::units::{parse_duration, parse_size};

/// A source repository and which of its points the job copies.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub url: String,
    pub password: Secret,
    pub machines: Vec<String>,
    pub jobs: Vec<String>,
    pub tags: Vec<(String, String)>,
    /// The line of its `url`, for later problems (unreachable).
    pub line: usize,
}

/// The target: a base URL under which the job writes its own repository (named after
/// the job), or — `map` — an existing repository the job continues.
#[derive(Clone, Debug)]
pub struct TargetSpec {
    pub url: String,
    pub map: bool,
    pub password: Secret,
    pub pack_size: Option<u64>,
    pub compression: Compression,
    pub chain: ChainMode,
    /// Class or tier of data packs (`target set --data-class`), checked per store.
    pub data_class: Option<String>,
    /// Object lock with each write; its days follow the retention (see `lock_days`).
    pub lock: Option<crate::format::config::LockMode>,
    pub lock_margin_days: u32,
    pub line: usize,
}

impl TargetSpec {
    /// The repository the job `job` writes.
    pub fn repository_url(&self, job: &str) -> String {
        match self.map {
            true => self.url.clone(),
            false => format!("{}/{job}", self.url.trim_end_matches('/')),
        }
    }
}

/// When a job copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// At the start of each interval, each machine's newest point not yet copied.
    Periodic { intervals: Intervals },
    /// Each new point as soon as it appears, the sources looked at every `poll_every`.
    Immediate { poll_every: Duration },
}

/// Prune, when due.
#[derive(Clone, Debug, PartialEq)]
pub struct PruneSpec {
    pub every: Duration,
    pub repack_below: f64,
    pub grace: Duration,
}

/// The health check, when due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckSpec {
    pub every: Duration,
}

/// One backup copy job.
#[derive(Clone, Debug)]
pub struct Job {
    pub name: String,
    pub mode: Mode,
    pub max_tasks: usize,
    pub windows: Windows,
    pub sources: Vec<SourceSpec>,
    pub target: TargetSpec,
    pub retention: Policy,
    pub prune: Option<PruneSpec>,
    /// Run before the interval's first phase, and after its last.
    pub pre_script: Option<ScriptSpec>,
    pub post_script: Option<ScriptSpec>,
    /// Where each interval's report goes besides the runner's output.
    pub report: ReportSpec,
    /// How often the health check runs (none: never).
    pub health_check: Option<HealthCheckSpec>,
    /// Bandwidth limits and the ceiling of requests in flight.
    pub throttle: ThrottleSpec,
    /// The archiver appliances its transfers run on (none: in the runner).
    pub archivers: Option<ArchiversSpec>,
    /// Periodic jobs with `look_forward`: wait within the interval for a point made
    /// after it began, looking this often.
    pub look_forward: Option<Duration>,
    /// How often an active full runs (none: never).
    pub active_full: Option<Duration>,
    pub line: usize,
}

impl Job {
    /// The target's storage policy this job asks for: its data class, and a lock as
    /// long as simple retention keeps a point — `keep` × the interval (a day per point
    /// for immediate jobs), at least a day; GFS points' locks are extended to their
    /// periods when they are flagged.
    pub fn storage_policy(&self) -> crate::format::config::StoragePolicy {
        let lock = self.target.lock.map(|mode| {
            let every = match &self.mode {
                Mode::Periodic { intervals } => intervals.every.num_seconds().max(0) as u64,
                Mode::Immediate { .. } => 86_400,
            };
            let keep = u64::from(self.retention.keep.max(1));
            let secs = every.saturating_mul(keep);
            crate::format::config::LockPolicy {
                mode,
                days: (secs.div_ceil(86_400).max(1))
                    .min(u64::from(crate::format::config::MAX_LOCK_DAYS))
                    as u32,
                margin_days: self.target.lock_margin_days,
            }
        });
        crate::format::config::StoragePolicy {
            data_class: self.target.data_class.clone(),
            lock,
        }
    }

    /// A daily job from `sources` into `target` with every optional part at its
    /// default, for tests to change what they exercise.
    #[cfg(test)]
    pub(crate) fn plain(name: &str, sources: Vec<SourceSpec>, target: TargetSpec) -> Job {
        Job {
            name: name.into(),
            mode: Mode::Periodic {
                intervals: Intervals {
                    every: chrono::Duration::days(1),
                    start_at: NaiveTime::MIN,
                },
            },
            max_tasks: 4,
            windows: Windows(Vec::new()),
            sources,
            target,
            retention: Policy::default(),
            prune: None,
            pre_script: None,
            post_script: None,
            report: ReportSpec::default(),
            health_check: None,
            throttle: ThrottleSpec::default(),
            archivers: None,
            look_forward: None,
            active_full: None,
            line: 1,
        }
    }

    /// The copy engine's selection of one source's points.
    pub fn selection(&self, source: &SourceSpec) -> Selection {
        Selection {
            machines: source.machines.clone(),
            jobs: source.jobs.clone(),
            tags: source.tags.clone(),
            ..Default::default()
        }
    }
}

/// A decoded jobs file.
#[derive(Clone, Debug, Default)]
pub struct JobsFile {
    pub jobs: Vec<Job>,
}

impl JobsFile {
    /// Decodes `text`; every problem found, each with its line, or the jobs.
    pub fn parse(text: &str) -> Result<JobsFile, Vec<Problem>> {
        Self::parse_with(text, &|v| std::env::var(v).ok())
    }

    /// [`Self::parse`] with environment variables from `env`.
    pub fn parse_with(text: &str, env: EnvLookup<'_>) -> Result<JobsFile, Vec<Problem>> {
        let mut doc = Doc::new(text);
        doc.env = Some(env);
        let (root, syntax) = DeTable::parse_recoverable(text);
        for e in &syntax {
            let span = e.span().unwrap_or(0..0);
            doc.problem(&span, e.message().to_string());
        }
        if !syntax.is_empty() {
            return Err(doc.problems);
        }
        let span = root.span();
        let mut top = Table::new(root.get_ref(), span, "");
        let mut jobs = Vec::new();
        let mut names: BTreeMap<String, usize> = BTreeMap::new();
        let tables = top.tables(&mut doc, "job");
        if tables.is_empty() && !top.has("job") {
            doc.problem(&(0..0), "no [[job]]: a jobs file has at least one");
        }
        for t in tables {
            let (name, line, decoded) = job(&mut doc, t);
            if let Some(first) = names.get(&name) {
                doc.problems.push(Problem {
                    line,
                    message: format!("job {name:?} is named twice (first on line {first})"),
                });
            }
            names.insert(name, line);
            jobs.extend(decoded);
        }
        top.finish(&mut doc);
        match doc.problems.is_empty() {
            true => Ok(JobsFile { jobs }),
            false => {
                doc.problems.sort_by_key(|p| p.line);
                Err(doc.problems)
            }
        }
    }

    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }
}

fn duration(
    doc: &mut Doc<'_>,
    t: &mut Table<'_, '_>,
    key: &str,
    min: Duration,
) -> Option<Duration> {
    let v = t.string(doc, key)?;
    match parse_duration(&v.value) {
        Ok(d) if d >= min => Some(d),
        Ok(_) => {
            doc.problem(
                &v.span,
                format!("{key} = {:?}: at least {}s", v.value, min.as_secs()),
            );
            None
        }
        Err(e) => {
            doc.problem(&v.span, format!("{key}: {e}"));
            None
        }
    }
}

fn secret(doc: &mut Doc<'_>, t: &mut Table<'_, '_>) -> Option<Secret> {
    secret_named(doc, t, "password")
}

/// A secret by `{what}_env` or `{what}_file`, never its value.
fn secret_named(doc: &mut Doc<'_>, t: &mut Table<'_, '_>, what: &str) -> Option<Secret> {
    let env = t.string(doc, &format!("{what}_env"));
    let file = t.string(doc, &format!("{what}_file"));
    let s = match (env, file) {
        (Some(e), None) => At {
            value: Secret::Env(e.value),
            span: e.span,
        },
        (None, Some(f)) => At {
            value: Secret::File(PathBuf::from(f.value)),
            span: f.span,
        },
        (Some(e), Some(_)) => {
            doc.problem(
                &e.span,
                format!("{}: give {what}_env or {what}_file, not both", t.path),
            );
            return None;
        }
        (None, None) => {
            let span = t.span.clone();
            doc.problem(
                &span,
                format!(
                    "{}: no {what}_env or {what}_file (secrets never sit in the jobs file)",
                    t.path
                ),
            );
            return None;
        }
    };
    let read = match doc.env {
        Some(env) => s.value.read_with(env),
        None => s.value.read(),
    };
    if let Err(e) = read {
        doc.problem(&s.span, format!("{}: {e}", t.path));
    }
    Some(s.value)
}

fn url(doc: &mut Doc<'_>, t: &mut Table<'_, '_>) -> Option<At<String>> {
    let Some(u) = t.string(doc, "url") else {
        if !t.has("url") {
            let span = t.span.clone();
            doc.problem(&span, format!("{}: no url", t.path));
        }
        return None;
    };
    if let Err(e) = crate::store::check_url(&u.value) {
        doc.problem(&u.span, format!("{}.url: {e}", t.path));
    }
    Some(u)
}

fn source(doc: &mut Doc<'_>, mut t: Table<'_, '_>) -> Option<SourceSpec> {
    let url = url(doc, &mut t);
    let password = secret(doc, &mut t);
    let machines: Vec<String> = t
        .strings(doc, "machines")
        .into_iter()
        .map(|m| m.value)
        .collect();
    for m in &machines {
        if let Err(e) = glob::Pattern::new(m) {
            let span = t.span.clone();
            doc.problem(&span, format!("{}.machines: {m:?}: {e}", t.path));
        }
    }
    let jobs = t
        .strings(doc, "jobs")
        .into_iter()
        .map(|j| j.value)
        .collect();
    let mut tags = Vec::new();
    for tag in t.strings(doc, "tags") {
        match tag.value.split_once('=') {
            Some((k, v)) if !k.is_empty() => tags.push((k.to_string(), v.to_string())),
            _ => doc.problem(
                &tag.span,
                format!("{}.tags: {:?} is not KEY=VALUE", t.path, tag.value),
            ),
        }
    }
    t.finish(doc);
    let url = url?;
    Some(SourceSpec {
        line: doc.line(url.span.start),
        url: url.value,
        password: password?,
        machines,
        jobs,
        tags,
    })
}

fn target(doc: &mut Doc<'_>, mut t: Table<'_, '_>) -> Option<TargetSpec> {
    let url = url(doc, &mut t);
    let password = secret(doc, &mut t);
    let map = t.boolean(doc, "map").is_some_and(|m| m.value);
    let pack_size = t
        .string(doc, "pack_size")
        .and_then(|s| match parse_size(&s.value) {
            Ok(n) if (1 << 20..=(16u64 << 30)).contains(&n) => Some(n),
            Ok(_) => {
                doc.problem(
                    &s.span,
                    format!("pack_size = {:?}: from 1MiB to 16GiB", s.value),
                );
                None
            }
            Err(e) => {
                doc.problem(&s.span, format!("pack_size: {e}"));
                None
            }
        });
    let compression = match t.string(doc, "compression") {
        None => Compression::Target,
        Some(c) if c.value == "target" => Compression::Target,
        Some(c) => c.value.parse().unwrap_or_else(|e| {
            doc.problem(&c.span, format!("compression: {e} (or target)"));
            Compression::Target
        }),
    };
    let chain = match t.string(doc, "chain") {
        None => ChainMode::PerMachine,
        Some(c) => c.value.parse().unwrap_or_else(|e| {
            doc.problem(&c.span, format!("chain: {e}"));
            ChainMode::PerMachine
        }),
    };
    let data_class = t.string(doc, "data_class").and_then(|c| {
        let kind = url.as_ref().and_then(|u| crate::store::kind_of(&u.value));
        match kind.map(|k| crate::store::class::check(k, &c.value)) {
            Some(Ok(spelt)) => Some(spelt),
            Some(Err(e)) => {
                doc.problem(&c.span, format!("data_class: {e}"));
                None
            }
            None => Some(c.value),
        }
    });
    let lock = t
        .string(doc, "object_lock")
        .and_then(|m| match m.value.parse() {
            Ok(mode) => Some(mode),
            Err(e) => {
                doc.problem(&m.span, format!("object_lock: {e}"));
                None
            }
        });
    let lock_margin_days = match t.string(doc, "lock_margin") {
        None => 7,
        Some(m) => match parse_duration(&m.value) {
            Ok(d) => (d.as_secs().div_ceil(86_400)) as u32,
            Err(e) => {
                doc.problem(&m.span, format!("lock_margin: {e}"));
                7
            }
        },
    };
    t.finish(doc);
    let url = url?;
    Some(TargetSpec {
        line: doc.line(url.span.start),
        url: url.value,
        map,
        password: password?,
        pack_size,
        compression,
        chain,
        data_class,
        lock,
        lock_margin_days,
    })
}

fn weekday(s: &str) -> Option<Weekday> {
    s.parse::<Weekday>().ok()
}

fn retention(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>) -> Policy {
    let mut p = Policy::default();
    let Some(mut t) = t else {
        return p;
    };
    let count = |doc: &mut Doc<'_>, t: &mut Table<'_, '_>, key: &str| {
        t.integer(doc, key, 0, 100_000).map(|n| n.value as u32)
    };
    if let Some(n) = count(doc, &mut t, "keep") {
        p.keep = n;
    }
    p.weekly = count(doc, &mut t, "weekly").unwrap_or(0);
    p.monthly = count(doc, &mut t, "monthly").unwrap_or(0);
    p.yearly = count(doc, &mut t, "yearly").unwrap_or(0);
    if let Some(d) = t.string(doc, "weekly_on") {
        match weekday(&d.value) {
            Some(w) => p.weekly_on = w,
            None => doc.problem(
                &d.span,
                format!("weekly_on = {:?}: a day, mon to sun", d.value),
            ),
        }
    }
    if let Some(m) = t.string(doc, "monthly_on") {
        match m.value.parse::<MonthPoint>() {
            Ok(v) => p.monthly_on = v,
            Err(e) => doc.problem(&m.span, format!("monthly_on: {e}")),
        }
    }
    if let Some(m) = t.integer(doc, "yearly_in", 1, 12) {
        p.yearly_in = m.value as u32;
    }
    t.finish(doc);
    p
}

fn prune(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>) -> Option<PruneSpec> {
    let mut t = t?;
    let every = duration(doc, &mut t, "every", Duration::from_secs(3600));
    let repack_below = t
        .number(doc, "repack_below", 0.0, 1.0)
        .map_or(0.5, |n| n.value);
    let grace =
        duration(doc, &mut t, "grace", Duration::ZERO).unwrap_or(Duration::from_secs(86_400));
    if every.is_none() && !t.has("every") {
        let span = t.span.clone();
        doc.problem(
            &span,
            format!("{}: no every (how often prune runs, e.g. \"7d\")", t.path),
        );
    }
    t.finish(doc);
    Some(PruneSpec {
        every: every?,
        repack_below,
        grace,
    })
}

/// A `[job.pre_script]` or `[job.post_script]`; a failed pre-job script fails the
/// interval unless told otherwise, a failed post-job script warns.
fn script(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>, default: OnFailure) -> Option<ScriptSpec> {
    let mut t = t?;
    let command: Vec<String> = t
        .strings(doc, "command")
        .into_iter()
        .map(|c| c.value)
        .collect();
    if command.first().is_none_or(|p| p.is_empty()) {
        let span = t.span.clone();
        doc.problem(
            &span,
            format!(
                "{}: command must be a list naming the program first, e.g. [\"/usr/local/bin/quiesce\", \"--all\"] (or [\"sh\", \"-c\", \"…\"])",
                t.path
            ),
        );
    }
    let timeout = duration(doc, &mut t, "timeout", Duration::from_secs(1))
        .unwrap_or(Duration::from_secs(900));
    let on_failure = match t.string(doc, "on_failure") {
        None => default,
        Some(v) => v.value.parse().unwrap_or_else(|e: String| {
            doc.problem(&v.span, format!("{}: {e}", t.path));
            default
        }),
    };
    t.finish(doc);
    (!command.is_empty()).then_some(ScriptSpec {
        command,
        timeout,
        on_failure,
    })
}

/// A `[job.archivers]`: the appliances the job's transfers run on.
fn archivers(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>) -> Option<ArchiversSpec> {
    let mut t = t?;
    let mut urls = Vec::new();
    for u in t.strings(doc, "urls") {
        match reqwest::Url::parse(&u.value) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => urls.push(u.value),
            _ => doc.problem(
                &u.span,
                format!("{}: {:?} is not an http(s):// URL", t.path, u.value),
            ),
        }
    }
    let token = secret_named(doc, &mut t, "token");
    let ca_file = t.string(doc, "ca_file").map(|c| PathBuf::from(c.value));
    let redispatch = match t.string(doc, "redispatch") {
        None => Redispatch::Pool,
        Some(v) => v.value.parse().unwrap_or_else(|e: String| {
            doc.problem(&v.span, format!("{}: {e}", t.path));
            Redispatch::Pool
        }),
    };
    let start_table = t.table(doc, "start");
    let start = script(doc, start_table, OnFailure::Fail);
    let stop_table = t.table(doc, "stop");
    let stop = script(doc, stop_table, OnFailure::Warn);
    let ready_timeout = duration(doc, &mut t, "ready_timeout", Duration::from_secs(1))
        .unwrap_or(Duration::from_secs(300));
    if urls.is_empty() && start.is_none() {
        let span = t.span.clone();
        doc.problem(
            &span,
            format!(
                "{}: no urls and no [start] command: name the appliances or how to start them",
                t.path
            ),
        );
    }
    t.finish(doc);
    Some(ArchiversSpec {
        urls,
        token: token?,
        ca_file,
        redispatch,
        start,
        stop,
        ready_timeout,
    })
}

/// A `[job.report]`: a folder for report files, a webhook.
fn report(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>) -> ReportSpec {
    let Some(mut t) = t else {
        return ReportSpec::default();
    };
    let dir = t.string(doc, "dir").map(|d| PathBuf::from(d.value));
    let url = t.string(doc, "webhook_url");
    let token_env = t.string(doc, "webhook_token_env").map(|v| v.value);
    let on = t.string(doc, "webhook_on");
    if let Some(u) = &url
        && !(u.value.starts_with("http://") || u.value.starts_with("https://"))
    {
        doc.problem(
            &u.span,
            format!(
                "{}.webhook_url = {:?}: an http:// or https:// URL",
                t.path, u.value
            ),
        );
    }
    let on = match on {
        None => super::report::SendOn::Always,
        Some(v) => v.value.parse().unwrap_or_else(|e: String| {
            doc.problem(&v.span, format!("{}: {e}", t.path));
            super::report::SendOn::Always
        }),
    };
    t.finish(doc);
    ReportSpec {
        dir,
        webhook: url.map(|u| Webhook {
            url: u.value,
            token_env,
            on,
        }),
    }
}

/// A rate such as `"20MB/s"` (bytes per second).
fn rate(doc: &mut Doc<'_>, t: &mut Table<'_, '_>, key: &str) -> Option<u64> {
    let v = t.string(doc, key)?;
    let n = v
        .value
        .strip_suffix("/s")
        .ok_or_else(|| "a rate such as \"20MB/s\"".to_string())
        .and_then(parse_size);
    match n {
        Ok(n) if n >= 1024 => Some(n),
        Ok(_) => {
            doc.problem(
                &v.span,
                format!("{}.{key} = {:?}: at least 1KiB/s", t.path, v.value),
            );
            None
        }
        Err(e) => {
            doc.problem(&v.span, format!("{}.{key} = {:?}: {e}", t.path, v.value));
            None
        }
    }
}

fn rates(doc: &mut Doc<'_>, t: &mut Table<'_, '_>) -> Rates {
    Rates {
        read: rate(doc, t, "read"),
        write: rate(doc, t, "write"),
    }
}

/// A `[job.throttle]`: default rates, a weekly schedule of others, the ceiling of
/// requests in flight.
fn throttle(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>) -> ThrottleSpec {
    let mut spec = ThrottleSpec::default();
    let Some(mut t) = t else {
        return spec;
    };
    spec.rates = rates(doc, &mut t);
    if let Some(n) = t.integer(doc, "max_requests", 1, 1024) {
        spec.max_requests = n.value as usize;
    }
    for mut slot in t.tables(doc, "schedule") {
        let when = slot.string(doc, "when");
        let r = rates(doc, &mut slot);
        match when {
            Some(w) => match Window::parse(&w.value) {
                Ok(win) => spec.schedule.push((win, r)),
                Err(e) => doc.problem(&w.span, format!("{}.when: {e}", slot.path)),
            },
            None => {
                let span = slot.span.clone();
                doc.problem(
                    &span,
                    format!("{}: no when (e.g. \"mon-fri 08:00-18:00\")", slot.path),
                );
            }
        }
        slot.finish(doc);
    }
    t.finish(doc);
    spec
}

/// Decodes one `[[job]]`: its name and line (for duplicates), and the job unless it has
/// problems.
fn job(doc: &mut Doc<'_>, t: Table<'_, '_>) -> (String, usize, Option<Job>) {
    let line = doc.line(t.span.start);
    let mut name = String::new();
    let job = decode_job(doc, t, &mut name);
    (name, line, job)
}

fn decode_job(doc: &mut Doc<'_>, mut t: Table<'_, '_>, name_out: &mut String) -> Option<Job> {
    let line = doc.line(t.span.start);
    let name = match t.string(doc, "name") {
        Some(n) => {
            if let Err(e) = validate_name("job", &n.value) {
                doc.problem(&n.span, e);
            }
            n.value
        }
        None => {
            if !t.has("name") {
                let span = t.span.clone();
                doc.problem(&span, format!("{}: no name", t.path));
            }
            String::new()
        }
    };
    t.path = format!("job {name:?}");
    name_out.clone_from(&name);
    let mode_text = t.string(doc, "mode");
    let every = duration(doc, &mut t, "copy_every", Duration::from_secs(60));
    let start_at = t.string(doc, "start_at").and_then(|s| {
        NaiveTime::parse_from_str(&s.value, "%H:%M")
            .map_err(|_| doc.problem(&s.span, format!("start_at = {:?}: a time, HH:MM", s.value)))
            .ok()
    });
    let poll_every = duration(doc, &mut t, "poll_every", Duration::from_secs(10));
    let look_forward = t.boolean(doc, "look_forward");
    let mode = match mode_text.as_ref().map(|m| m.value.as_str()) {
        None | Some("periodic") => Mode::Periodic {
            intervals: Intervals {
                every: chrono::Duration::from_std(every.unwrap_or(Duration::from_secs(86_400)))
                    .unwrap_or(chrono::Duration::days(1)),
                start_at: start_at.unwrap_or_default(),
            },
        },
        Some("immediate") => Mode::Immediate {
            poll_every: poll_every.unwrap_or(Duration::from_secs(300)),
        },
        Some(other) => {
            let span = mode_text
                .as_ref()
                .map(|m| m.span.clone())
                .unwrap_or_default();
            doc.problem(&span, format!("mode = {other:?}: periodic or immediate"));
            return None;
        }
    };
    let look_forward = match (look_forward, &mode) {
        (Some(l), Mode::Immediate { .. }) if l.value => {
            doc.problem(
                &l.span,
                "look_forward: only for mode = \"periodic\" (an immediate job copies each point as it appears)",
            );
            None
        }
        (Some(l), Mode::Periodic { .. }) if l.value => {
            Some(poll_every.unwrap_or(Duration::from_secs(300)))
        }
        _ => None,
    };
    let max_tasks = t
        .integer(doc, "max_tasks", 1, 64)
        .map_or(4, |n| n.value as usize);
    let mut windows = Vec::new();
    for w in t.strings(doc, "windows") {
        match Window::parse(&w.value) {
            Ok(win) => {
                if let Some(o) = windows.iter().find(|o: &&Window| o.overlaps(&win)) {
                    doc.problem(
                        &w.span,
                        format!("window {:?} overlaps window {:?}", w.value, o.text),
                    );
                }
                windows.push(win);
            }
            Err(e) => doc.problem(&w.span, e),
        }
    }
    let source_tables = t.tables(doc, "sources");
    if source_tables.is_empty() && !t.has("sources") {
        let span = t.span.clone();
        doc.problem(&span, format!("{}: no [[job.sources]]", t.path));
    }
    let sources: Vec<SourceSpec> = source_tables
        .into_iter()
        .filter_map(|s| source(doc, s))
        .collect();
    let target = match t.table(doc, "target") {
        Some(tt) => target(doc, tt),
        None => {
            if !t.has("target") {
                let span = t.span.clone();
                doc.problem(&span, format!("{}: no [job.target]", t.path));
            }
            None
        }
    };
    let retention_table = t.table(doc, "retention");
    let retention = retention(doc, retention_table);
    let prune_table = t.table(doc, "prune");
    let prune = prune(doc, prune_table);
    let pre = t.table(doc, "pre_script");
    let pre_script = script(doc, pre, OnFailure::Fail);
    let post = t.table(doc, "post_script");
    let post_script = script(doc, post, OnFailure::Warn);
    let report_table = t.table(doc, "report");
    let report = report(doc, report_table);
    let throttle_table = t.table(doc, "throttle");
    let throttle = throttle(doc, throttle_table);
    let archivers_table = t.table(doc, "archivers");
    let archivers = archivers(doc, archivers_table);
    let active_full_table = t.table(doc, "active_full");
    let active_full_span = active_full_table.as_ref().map(|a| a.span.clone());
    let active_full = active_full_table.and_then(|mut a| {
        let every = duration(doc, &mut a, "every", Duration::from_secs(86_400));
        if every.is_none() && !a.has("every") {
            let span = a.span.clone();
            doc.problem(
                &span,
                format!("{}: no every (how often, e.g. \"30d\")", a.path),
            );
        }
        a.finish(doc);
        every
    });
    let health_check_table = t.table(doc, "health_check");
    let health_check = health_check_table.and_then(|mut h| {
        let every = duration(doc, &mut h, "every", Duration::from_secs(3600));
        if every.is_none() && !h.has("every") {
            let span = h.span.clone();
            doc.problem(
                &span,
                format!(
                    "{}: no every (how often the check runs, e.g. \"30d\")",
                    h.path
                ),
            );
        }
        h.finish(doc);
        every.map(|every| HealthCheckSpec { every })
    });
    // An active full reads and rewrites every data pack of the newest points: in an
    // archive class each run would need a retrieval (hours, and a price) before it could
    // start. (A health check there reads the trees and looks at the archived packs.)
    let archived = target
        .as_ref()
        .and_then(|t| t.data_class.as_deref())
        .filter(|c| crate::store::class::is_archived(c));
    if let (Some(class), Some(span)) = (archived, active_full_span) {
        doc.problem(
            &span,
            format!(
                "{}.active_full reads and rewrites every data pack of the newest points; in \
                 the archive class {class} each run would need a retrieval first (hours, and \
                 a price). Leave it out and test restores with `offsite restore --retrieve`, \
                 or keep data packs in a class read at once (GLACIER_IR, Cold)",
                t.path
            ),
        );
    }
    t.finish(doc);
    Some(Job {
        name,
        mode,
        max_tasks,
        windows: Windows(windows),
        sources,
        target: target?,
        retention,
        prune,
        pre_script,
        post_script,
        report,
        health_check,
        throttle,
        archivers,
        look_forward,
        active_full,
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Option<String> {
        v.starts_with("OFFSITE_").then(|| "secret".to_string())
    }

    /// The example in docs/JOBS.md is accepted as written.
    #[test]
    fn the_documented_example_is_valid() {
        let doc = include_str!("../../docs/JOBS.md");
        let start = doc.find("```toml\n").expect("JOBS.md has a TOML example") + 8;
        let end = start + doc[start..].find("```").expect("the example ends");
        let file = JobsFile::parse_with(&doc[start..end], &env).unwrap_or_else(|p| {
            panic!("docs/JOBS.md's example: {p:?}");
        });
        let j = &file.jobs[0];
        assert_eq!(j.name, "offsite-nightly");
        assert_eq!(
            j.target.repository_url(&j.name),
            "s3://offsite-copies/jobs/offsite-nightly"
        );
        assert_eq!(j.windows.0.len(), 3);
        assert_eq!(j.retention.monthly, 12);
        assert_eq!(
            j.prune.as_ref().map(|p| p.every),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            j.sources[0].tags,
            vec![("env".to_string(), "prod".to_string())]
        );
    }

    /// Every mistake is reported at once, each at its own line.
    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let text = r#"
[[job]]
name = "a"
copy_every = "1 fortnight"
max_tasks = "four"
windows = ["mon-fri 20:00-06:00", "sat 01:00-02:00", "tue 22:00-23:00"]
colour = "blue"

[[job.sources]]
url = "s3://src/x"
password_env = "NOT_SET_ANYWHERE"

[job.target]
url = "s3://dst"
password_env = "OFFSITE_T"
pack_size = "huge"

[job.retention]
keep = -1
weekly_on = "caturday"

[[job]]
name = "a"
[[job.sources]]
url = "ftp://nowhere"
password_env = "OFFSITE_S"
password_file = "/x"
[job.pre_script]
command = []
on_failure = "ignore"
[job.throttle]
read = "20MB"
[[job.throttle.schedule]]
write = "1MB/s"
[job.archivers]
urls = ["ftp://archiver"]
redispatch = "sometimes"
"#;
        let problems = JobsFile::parse_with(text, &env).unwrap_err();
        let at = |line: usize, part: &str| {
            assert!(
                problems
                    .iter()
                    .any(|p| p.line == line && p.message.contains(part)),
                "no problem with {part:?} on line {line}: {problems:#?}"
            );
        };
        at(4, "copy_every");
        at(5, "max_tasks must be a whole number");
        at(6, "overlaps window \"mon-fri 20:00-06:00\"");
        at(7, "unknown key job \"a\".colour");
        at(11, "NOT_SET_ANYWHERE is not set");
        at(16, "pack_size");
        at(19, "keep = -1");
        at(20, "caturday");
        at(22, "named twice");
        at(25, "unknown scheme");
        at(26, "not both");
        at(22, "no [job.target]");
        at(
            28,
            "pre_script: command must be a list naming the program first",
        );
        at(30, "pre_script: on_failure = \"ignore\": fail or warn");
        at(32, "throttle.read = \"20MB\": a rate such as \"20MB/s\"");
        at(33, "no when");
        at(36, "\"ftp://archiver\" is not an http(s):// URL");
        at(37, "redispatch is pool, local or fail");
        at(35, "no token_env or token_file");
    }

    /// The target's storage keys: the class is checked against the URL's provider and
    /// spelt as it spells it; the lock lasts `keep` × the interval (+ margin).
    #[test]
    fn a_targets_class_and_lock_follow_its_provider_and_retention() {
        let file = |target: &str| {
            format!(
                "[[job]]\nname = \"a\"\ncopy_every = \"12h\"\n[[job.sources]]\nurl = \"s3://src/x\"\n\
                 password_env = \"OFFSITE_S\"\n[job.target]\npassword_env = \"OFFSITE_T\"\n{target}\n\
                 [job.retention]\nkeep = 5\n"
            )
        };
        let ok = JobsFile::parse_with(
            &file("url = \"s3://dst\"\ndata_class = \"deep_archive\"\nobject_lock = \"compliance\"\nlock_margin = \"2d\""),
            &env,
        )
        .unwrap();
        let p = ok.jobs[0].storage_policy();
        assert_eq!(p.data_class.as_deref(), Some("DEEP_ARCHIVE"));
        let l = p.lock.unwrap();
        // Five points twelve hours apart: three days (2.5 rounded up), plus two.
        assert_eq!(
            (l.mode, l.days, l.margin_days),
            (crate::format::config::LockMode::Compliance, 3, 2)
        );
        let problems = JobsFile::parse_with(
            &file("url = \"az://dst\"\ndata_class = \"GLACIER\"\nobject_lock = \"forever\""),
            &env,
        )
        .unwrap_err();
        let said = |line: usize, part: &str| {
            assert!(
                problems
                    .iter()
                    .any(|p| p.line == line && p.message.contains(part)),
                "no problem with {part:?} on line {line}: {problems:#?}"
            );
        };
        said(10, "not an Azure access tier");
        said(11, "not a lock mode");
        // A health check is allowed there (it looks at archived packs); an active full,
        // which must read them, is refused at its table's line.
        let checked = format!(
            "{}[job.health_check]\nevery = \"7d\"\n",
            file("url = \"s3://dst\"\ndata_class = \"GLACIER\"")
        );
        JobsFile::parse_with(&checked, &env).unwrap();
        let problems = JobsFile::parse_with(
            &format!(
                "{}[job.active_full]\nevery = \"30d\"\n",
                file("url = \"s3://dst\"\ndata_class = \"GLACIER\"")
            ),
            &env,
        )
        .unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.line == 13 && p.message.contains("retrieval")),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let problems = JobsFile::parse_with("[[job]]\nname = \"a\nx = 1\n", &env).unwrap_err();
        assert_eq!(problems[0].line, 2, "{problems:?}");
    }
}
