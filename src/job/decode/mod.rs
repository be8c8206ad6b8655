//! Decoding a jobs file (`JobsFile::parse`): TOML walked key by key (`toml_walk`) into
//! [`Job`]s, collecting every mistake with its line — an unknown key, a wrong type, a
//! bad duration, size or window, windows that overlap, a secret that is not there —
//! rather than stopping at the first.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::NaiveTime;
use toml::de::DeTable;

use super::config::{HealthCheckSpec, Job, JobsFile, Mode, SourceSpec, TargetSpec};
use super::script::OnFailure;
use super::toml_walk::{Doc, Problem, Table};
use crate::format::point::validate_name;
use crate::schedule::{Intervals, Window, Windows};
use crate::secret::EnvLookup;

mod parts;
use parts::{archivers, duration, prune, report, retention, script, source, target, throttle};

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
            let mut message = e.message().to_string();
            // The parser says "duplicate key" without the key: name it.
            let key = text
                .get(span.clone())
                .map(str::trim)
                .filter(|k| !k.is_empty());
            if let (Some(key), true) = (key, message.starts_with("duplicate key")) {
                message =
                    format!("duplicate key {key}: it is set twice in the same table; keep one");
            }
            doc.problem(&span, message);
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
    let name = job_name(doc, &mut t);
    t.path = format!("job {name:?}");
    name_out.clone_from(&name);
    let (mode, look_forward) = job_mode(doc, &mut t)?;
    let periodic = matches!(mode, Mode::Periodic { .. });
    let catch_up = t.boolean(doc, "catch_up").map_or(periodic, |b| b.value);
    let max_tasks = t
        .integer(doc, "max_tasks", 1, 64)
        .map_or(4, |n| n.value as usize);
    let windows = job_windows(doc, &mut t);
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
    let active_full = every_of(doc, active_full_table, "how often, e.g. \"30d\"", 86_400);
    let health_check_table = t.table(doc, "health_check");
    let health_check = every_of(
        doc,
        health_check_table,
        "how often the check runs, e.g. \"30d\"",
        3600,
    )
    .map(|every| HealthCheckSpec { every });
    refuse_archived_active_full(doc, &t.path, target.as_ref(), active_full_span);
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
        catch_up,
        line,
    })
}

/// A job's `name` (checked), or empty with a problem when it has none.
fn job_name(doc: &mut Doc<'_>, t: &mut Table<'_, '_>) -> String {
    match t.string(doc, "name") {
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
    }
}

/// A job's `mode` (periodic from `copy_every` and `start_at`, or immediate polling
/// every `poll_every`) and its `look_forward` poll, if it has one.
fn job_mode(doc: &mut Doc<'_>, t: &mut Table<'_, '_>) -> Option<(Mode, Option<Duration>)> {
    let mode_text = t.string(doc, "mode");
    let every = duration(doc, t, "copy_every", Duration::from_secs(60));
    let start_at = t.string(doc, "start_at").and_then(|s| {
        NaiveTime::parse_from_str(&s.value, "%H:%M")
            .map_err(|_| doc.problem(&s.span, format!("start_at = {:?}: a time, HH:MM", s.value)))
            .ok()
    });
    let poll_every = duration(doc, t, "poll_every", Duration::from_secs(10));
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
    // A key the mode never reads is a mistake the operator should hear of.
    let (copy_every, start_at) = (t.span_of("copy_every"), t.span_of("start_at"));
    let poll = t.span_of("poll_every");
    match &mode {
        Mode::Immediate { .. } => {
            for (key, span) in [("copy_every", copy_every), ("start_at", start_at)] {
                if let Some(span) = span {
                    let why = format!(
                        "{key}: only for mode = \"periodic\" (an immediate job polls every poll_every)"
                    );
                    doc.problem(&span, why);
                }
            }
        }
        Mode::Periodic { .. } if !look_forward.as_ref().is_some_and(|l| l.value) => {
            if let Some(span) = poll {
                doc.problem(
                    &span,
                    "poll_every: only for mode = \"immediate\" or with look_forward = true",
                );
            }
        }
        Mode::Periodic { .. } => {}
    }
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
    Some((mode, look_forward))
}

/// A job's copy `windows`, none overlapping another.
fn job_windows(doc: &mut Doc<'_>, t: &mut Table<'_, '_>) -> Vec<Window> {
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
    windows
}

/// The `every` of an optional table (`[job.active_full]`, `[job.health_check]`), at
/// least `min_secs`; a problem saying `what` when the table has none.
fn every_of(
    doc: &mut Doc<'_>,
    table: Option<Table<'_, '_>>,
    what: &str,
    min_secs: u64,
) -> Option<Duration> {
    let mut a = table?;
    let every = duration(doc, &mut a, "every", Duration::from_secs(min_secs));
    if every.is_none() && !a.has("every") {
        let span = a.span.clone();
        doc.problem(&span, format!("{}: no every ({what})", a.path));
    }
    a.finish(doc);
    every
}

/// An active full reads and rewrites every data pack of the newest points: in an
/// archive class each run would need a retrieval (hours, and a price) before it could
/// start. (A health check there reads the trees and looks at the archived packs.)
fn refuse_archived_active_full(
    doc: &mut Doc<'_>,
    job: &str,
    target: Option<&TargetSpec>,
    active_full: Option<std::ops::Range<usize>>,
) {
    let archived = target
        .and_then(|t| t.data_class.as_deref())
        .filter(|c| crate::store::class::is_archived(c));
    if let (Some(class), Some(span)) = (archived, active_full) {
        doc.problem(
            &span,
            format!(
                "{job}.active_full reads and rewrites every data pack of the newest points; in \
                 the archive class {class} each run would need a retrieval first (hours, and \
                 a price). Leave it out and test restores with `offsite restore --retrieve`, \
                 or keep data packs in a class read at once (GLACIER_IR, Cold)"
            ),
        );
    }
}
