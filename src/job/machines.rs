//! The machine table of an interval's report: a row per machine the job protects,
//! from the copies that ran ([`note_copies`]) and, for the machines no copy reached —
//! a source that cannot be read, the copy windows closed, a failed pre-job script, the
//! target unreachable — from what the readable sources offer and what the job's state
//! remembers ([`mark_rest`]), so an operator (and `OFFSITE_UNPROTECTED`) always sees
//! every machine and why.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::config::{Job, SourceSpec};
use super::interval::{IntervalReport, MachineReport, MachineResult};
use super::state::{JobState, MachineState};
use crate::Id;
use crate::copy::{self, ChainStatus, CopyReport, Failure, PointsSpec};
use crate::repo::Repository;

/// The sources that could be opened, and their entries in the jobs file, side by side.
#[derive(Default)]
pub struct Reachable<'a> {
    pub specs: Vec<&'a SourceSpec>,
    pub repos: Vec<Arc<Repository>>,
}

/// The machines each readable source offers the job (any point the job's selection
/// takes), each with its newest point there. A source whose points cannot be read adds
/// an error.
pub(super) async fn offered(
    job: &Job,
    up: &Reachable<'_>,
    report: &mut IntervalReport,
) -> BTreeMap<String, Id> {
    let mut all = BTreeMap::new();
    for (spec, source) in up.specs.iter().zip(&up.repos) {
        let every_point = copy::Selection {
            points: PointsSpec::All,
            ..job.selection(spec)
        };
        let chosen = match every_point.points_in(source).await {
            Ok(c) => c,
            Err(e) => {
                report.errors.push(format!("source {}: {e}", spec.url));
                continue;
            }
        };
        // Oldest first: the last one seen is the newest.
        for c in chosen {
            all.insert(c.point.machine, c.id);
        }
    }
    all
}

/// A row for every machine the job protects that has none yet: those the readable
/// sources offer and those the state remembers — up to date when the state says the
/// target holds its newest point, else with `result` and `why`.
pub(super) async fn mark_rest(
    job: &Job,
    up: &Reachable<'_>,
    state: Option<&JobState>,
    report: &mut IntervalReport,
    result: MachineResult,
    why: &str,
) {
    let newest = offered(job, up, report).await;
    let copied = |m: &str| {
        state
            .and_then(|s| s.machines.get(m))
            .map(|s| s.source_point)
    };
    let (mut held, mut lagging) = (Vec::new(), Vec::new());
    for (m, id) in newest {
        match copied(&m) == Some(id) {
            true => held.push(m),
            false => lagging.push(m),
        }
    }
    add_rows(report, held, MachineResult::UpToDate, "");
    add_rows(report, lagging, result.clone(), why);
    let remembered = state.map(|s| s.machines.keys().cloned().collect::<Vec<_>>());
    add_rows(report, remembered.unwrap_or_default(), result, why);
}

/// Rows for the machines last copied from a source that cannot be read now (the
/// state remembers which): unprotected, with the source's error.
pub(super) fn mark_down(
    down: &[(&SourceSpec, String)],
    state: &JobState,
    report: &mut IntervalReport,
) {
    for (spec, e) in down {
        let of_source = (state.machines.iter())
            .filter(|(_, s)| s.source.as_deref() == Some(spec.url.as_str()))
            .map(|(m, _)| m.clone());
        let why = format!("its source {} could not be read: {e}", spec.url);
        add_rows(report, of_source, MachineResult::Unprotected, &why);
    }
}

fn add_rows(
    report: &mut IntervalReport,
    machines: impl IntoIterator<Item = String>,
    result: MachineResult,
    why: &str,
) {
    for machine in machines {
        if report.machines.iter().any(|r| r.machine == machine) {
            continue;
        }
        report.machines.push(MachineReport {
            machine,
            result: result.clone(),
            points_copied: 0,
            reason: (!why.is_empty()).then(|| why.to_string()),
        });
    }
}

/// Per machine of `source`'s copy: copied, up to date, deferred (the window closed
/// before its chain was whole), or unprotected (and why); copied points go into the
/// state with their source.
pub(super) fn note_copies(
    source: &SourceSpec,
    r: &CopyReport,
    report: &mut IntervalReport,
    state: &mut JobState,
    now: DateTime<Utc>,
) {
    for c in &r.chains {
        // Meant for an archiver and copied here: the machines are protected, but the
        // pool did not do its work, and the operator hears of it.
        if let Some(f) = c.fallback.as_ref().filter(|f| !f.chosen) {
            report.warnings.push(format!(
                "{}: copied by the runner, not an archiver: {}",
                c.chain, f.why
            ));
        }
        // A chain held whole, or skipped before it started, names no machines: its
        // name is its machine's.
        let machines = match c.machines.is_empty() {
            true => std::slice::from_ref(&c.chain),
            false => &c.machines[..],
        };
        for m in machines {
            let copied: Vec<_> = c.copied.iter().filter(|p| &p.machine == m).collect();
            for p in &copied {
                state.machines.insert(
                    m.clone(),
                    MachineState {
                        source_point: p.source_point,
                        time: p.time,
                        copied_at: now,
                        source: Some(source.url.clone()),
                    },
                );
            }
            let interrupted = matches!(c.failure, Some(Failure::Interrupted { .. }));
            let (result, reason) = match c.status {
                ChainStatus::Copied => (MachineResult::Copied, None),
                ChainStatus::UpToDate => (MachineResult::UpToDate, None),
                _ => (
                    match interrupted {
                        true => MachineResult::Deferred,
                        false => MachineResult::Unprotected,
                    },
                    c.failure
                        .as_ref()
                        .map(|f| f.to_string())
                        .or_else(|| c.failed.first().map(|f| f.reason.clone()))
                        .or_else(|| c.warnings.first().cloned()),
                ),
            };
            report.machines.push(MachineReport {
                machine: m.clone(),
                result,
                points_copied: copied.len(),
                reason,
            });
        }
    }
}
