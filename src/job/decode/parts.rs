//! The parts of a `[[job]]` table, each decoded on its own with its problems: durations,
//! secrets, URLs, the sources and the target, retention, prune, scripts, archivers,
//! report and throttle.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Weekday;

use super::super::archivers::ArchiversSpec;
use super::super::config::{PruneSpec, SourceSpec, TargetSpec};
use super::super::report::{ReportSpec, Webhook};
use super::super::script::{OnFailure, ScriptSpec};
use super::super::toml_walk::{At, Doc, Table};
use crate::copy::{ChainMode, Compression};
use crate::remote::address::Address;
use crate::remote::api::LEASES;
use crate::remote::pool::{PoolOptions, Redispatch};
use crate::retention::{MonthPoint, Policy};
use crate::schedule::Window;
use crate::secret::Secret;
use crate::store::throttle::{Rates, ThrottleSpec};
use crate::units::{parse_duration, parse_size};

pub(super) fn duration(
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

pub(super) fn secret(doc: &mut Doc<'_>, t: &mut Table<'_, '_>) -> Option<Secret> {
    secret_named(doc, t, "password")
}

/// A secret by `{what}_env` or `{what}_file`, never its value.
pub(super) fn secret_named(doc: &mut Doc<'_>, t: &mut Table<'_, '_>, what: &str) -> Option<Secret> {
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

pub(super) fn url(doc: &mut Doc<'_>, t: &mut Table<'_, '_>) -> Option<At<String>> {
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

pub(super) fn source(doc: &mut Doc<'_>, mut t: Table<'_, '_>) -> Option<SourceSpec> {
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

pub(super) fn target(doc: &mut Doc<'_>, mut t: Table<'_, '_>) -> Option<TargetSpec> {
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

pub(super) fn weekday(s: &str) -> Option<Weekday> {
    s.parse::<Weekday>().ok()
}

pub(super) fn retention(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>) -> Policy {
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

pub(super) fn prune(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>) -> Option<PruneSpec> {
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
pub(super) fn script(
    doc: &mut Doc<'_>,
    t: Option<Table<'_, '_>>,
    default: OnFailure,
) -> Option<ScriptSpec> {
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
pub(super) fn archivers(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>) -> Option<ArchiversSpec> {
    let mut t = t?;
    let mut urls = Vec::new();
    for u in t.strings(doc, "urls") {
        let plain = |s: &str| reqwest::Url::parse(s).is_ok_and(|p| p.scheme().starts_with("http"));
        match Address::parse(&u.value) {
            Ok(Address::Dns { .. }) => urls.push(u.value),
            Ok(Address::Url(url)) if plain(&url) => urls.push(u.value),
            _ => doc.problem(
                &u.span,
                format!(
                    "{}: {:?} is neither an http(s):// URL nor dns+https://NAME:PORT",
                    t.path, u.value
                ),
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
    let lease = duration(doc, &mut t, "lease", Duration::from_secs(*LEASES.start()))
        .unwrap_or(PoolOptions::default().lease);
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
        lease,
    })
}

/// A `[job.report]`: a folder for report files, a webhook.
pub(super) fn report(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>) -> ReportSpec {
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
        None => super::super::report::SendOn::Always,
        Some(v) => v.value.parse().unwrap_or_else(|e: String| {
            doc.problem(&v.span, format!("{}: {e}", t.path));
            super::super::report::SendOn::Always
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
pub(super) fn rate(doc: &mut Doc<'_>, t: &mut Table<'_, '_>, key: &str) -> Option<u64> {
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

pub(super) fn rates(doc: &mut Doc<'_>, t: &mut Table<'_, '_>) -> Rates {
    Rates {
        read: rate(doc, t, "read"),
        write: rate(doc, t, "write"),
    }
}

/// A `[job.throttle]`: default rates, a weekly schedule of others, the ceiling of
/// requests in flight.
pub(super) fn throttle(doc: &mut Doc<'_>, t: Option<Table<'_, '_>>) -> ThrottleSpec {
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
