//! Retention of a repository: [`policy`] decides, per machine, which restore points to
//! keep and why; [`forget`] deletes the others. It runs under the repository's exclusive
//! lock, so no backup or copy commits a point (or picks a parent) while points go.
//! Forgetting removes point objects only: the data no remaining point uses is freed by
//! prune.

pub mod policy;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::format::lock::LockKind;
use crate::format::point_name;
use crate::repo::Repository;
use crate::repo::lock::LockGuard;
use crate::{Error, Id, Result};
pub use policy::{Candidate, Decision, MonthPoint, Policy, Reason};

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
}

/// What `forget` decided and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ForgetReport {
    pub repository: String,
    pub dry_run: bool,
    pub machines: Vec<MachineRetention>,
}

impl ForgetReport {
    pub fn forgotten(&self) -> usize {
        self.machines.iter().map(|m| m.forgotten.len()).sum()
    }

    pub fn kept(&self) -> usize {
        self.machines.iter().map(|m| m.kept.len()).sum()
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
        false => Some(LockGuard::acquire(repo, LockKind::Exclusive, "forget", None).await?),
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
    let selected = |m: &str| patterns.is_empty() || patterns.iter().any(|p| p.matches(m));
    let candidates: Vec<Candidate> = points
        .iter()
        .filter(|(_, p)| selected(&p.machine))
        .map(|(id, p)| Candidate {
            id: *id,
            machine: p.machine.clone(),
            time: p.time,
        })
        .collect();
    let decisions = opts.policy.apply(&candidates, repo.clock().now(), tz);
    let mut report = ForgetReport {
        repository: repo.url().to_string(),
        dry_run: opts.dry_run,
        machines: Vec::new(),
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
            }),
            false => m.forgotten.push(ForgottenPoint { id, time }),
        }
    }
    if opts.dry_run {
        return Ok(report);
    }
    let doomed: Vec<String> = report
        .machines
        .iter()
        .flat_map(|m| m.forgotten.iter().map(|f| point_name(&f.id)))
        .collect();
    repo.delete_all(doomed).await?;
    Ok(report)
}
