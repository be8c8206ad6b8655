//! The commit of a chain, after its transfer: the index of the packs written, then — last —
//! each point whose blobs all arrived, oldest first, with its provenance (source
//! repository and point) and its parent (the machine's previous point in the target).
//! A per-job chain commits all its points or none. Only the runner commits: a transfer
//! run elsewhere hands its outcome back, and what it wrote becomes visible here.
//!
//! Just before the points, the target's points are read once more: a source point that
//! another run committed meanwhile (one that did not share this chain's lock, such as a
//! per-job copy of the same machine) is not written a second time.

use super::failure::Failure;
use super::plan::ChainPlan;
use super::report::{CopiedPoint, FailedPoint};
use super::settings::ChainMode;
use super::target::TargetState;
use super::transfer::TransferOutcome;
use tokio::sync::RwLock;

use crate::format::point::{Point, Provenance};
use crate::repo::Repository;
use crate::{Id, Result};

/// What the commit wrote, and what it could not.
#[derive(Debug, Default)]
pub struct Committed {
    pub copied: Vec<CopiedPoint>,
    pub failed: Vec<FailedPoint>,
    /// Source points another run committed while this one transferred them.
    pub already_copied: Vec<Id>,
    /// Bytes of machine data in the points committed.
    pub bytes_logical: u64,
}

/// Indexes the transfer's packs, then writes the points that can be committed.
pub async fn commit(
    plan: &ChainPlan,
    outcome: &TransferOutcome,
    target: &Repository,
    state: &RwLock<TargetState>,
) -> Result<Committed> {
    commit_index(outcome, target, state).await?;
    commit_points(plan, point_failures(plan, &[outcome]), target, state).await
}

/// Indexes the transfer's packs. They are whole and useful even when a point fails:
/// indexed, the next run does not fetch their blobs again. The index is written without
/// the state held (chains beside this one go on), then noted in it.
pub async fn commit_index(
    outcome: &TransferOutcome,
    target: &Repository,
    state: &RwLock<TargetState>,
) -> Result<()> {
    let written = target.save_indexes(&outcome.packs).await?;
    state.write().await.indexed(written, &outcome.packs);
    Ok(())
}

/// Per point of the plan, why it cannot be committed: the planner's reason, else the
/// first transfer (of `outcomes`, each of the plan's points in the same order) that
/// failed one of its blobs.
pub fn point_failures(plan: &ChainPlan, outcomes: &[&TransferOutcome]) -> Vec<Option<Failure>> {
    plan.points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.failure.clone().or_else(|| {
                outcomes
                    .iter()
                    .find_map(|o| o.points.get(i).cloned().flatten())
            })
        })
        .collect()
}

/// Writes the points whose blobs are all in the target (after [`commit_index`]),
/// oldest first, each with provenance and parent; none of a per-job chain when any
/// fails. The points other runs committed meanwhile are read first — as late as can be,
/// after the index however long that took — so none is written twice.
///
/// Per-machine chains never share a machine, so each writes its points (and picks their
/// parents) without holding the state; per-job chains may share machines, so they
/// write theirs one job at a time, holding it.
pub async fn commit_points(
    plan: &ChainPlan,
    failures: Vec<Option<Failure>>,
    target: &Repository,
    state: &RwLock<TargetState>,
) -> Result<Committed> {
    match plan.mode {
        ChainMode::PerMachine => {
            let news = TargetState::shared_news(state, target, false).await?;
            state.write().await.apply(news);
            let (mut done, todo) = points_to_write(plan, failures, &*state.read().await);
            let written = write_points(todo, target, &mut done).await?;
            let mut state = state.write().await;
            for (id, copy) in &written {
                state.committed(*id, copy);
            }
            Ok(done)
        }
        ChainMode::PerJob => {
            let mut state = state.write().await;
            let news = state.news(target, false).await?;
            state.apply(news);
            let (mut done, todo) = points_to_write(plan, failures, &state);
            let written = write_points(todo, target, &mut done).await?;
            for (id, copy) in &written {
                state.committed(*id, copy);
            }
            Ok(done)
        }
    }
}

/// The points of `plan` to write now, each with its provenance and its parent (the
/// machine's newest point in `state`): those with a failure, or held by the target
/// already, are recorded in the returned [`Committed`] instead.
fn points_to_write(
    plan: &ChainPlan,
    failures: Vec<Option<Failure>>,
    state: &TargetState,
) -> (Committed, Vec<Point>) {
    let all_or_none = plan.mode == ChainMode::PerJob && failures.iter().any(Option::is_some);
    let mut done = Committed::default();
    let mut todo = Vec::new();
    for (p, failure) in plan.points.iter().zip(failures) {
        let failure = failure.or_else(|| {
            all_or_none.then(|| Failure::NotCommitted {
                chain: plan.chain.clone(),
            })
        });
        if let Some(f) = failure {
            done.failed.push(FailedPoint::new(&p.point, p.id, f));
            continue;
        }
        let source = plan.sources[p.source];
        if state.holds(source, p.id, &p.point) {
            tracing::warn!(
                "{} point {} of {}: already copied by another run; not writing it twice",
                p.point.machine,
                p.id.short(),
                p.point.time.format("%Y-%m-%d %H:%M:%S")
            );
            done.already_copied.push(p.id);
            continue;
        }
        let mut copy = p.point.clone();
        copy.source = Some(Provenance {
            repository: source,
            point: p.id,
        });
        copy.parent = state.parent(&p.point.machine);
        todo.push(copy);
    }
    (done, todo)
}

/// Writes `todo` (from [`points_to_write`]) oldest first; a later point of a machine
/// gets the one written before it as parent. Returns the points written, with their ids,
/// for the state to note.
async fn write_points(
    todo: Vec<Point>,
    target: &Repository,
    done: &mut Committed,
) -> Result<Vec<(Id, Point)>> {
    let mut written: Vec<(Id, Point)> = Vec::new();
    for mut copy in todo {
        if let Some((id, _)) = written
            .iter()
            .rev()
            .find(|(_, w)| w.machine == copy.machine)
        {
            copy.parent = Some(*id);
        }
        let new_id = target.save_point(&copy).await?;
        let Some(source) = copy.source.clone() else {
            continue;
        };
        done.bytes_logical += copy.summary.bytes;
        done.copied.push(CopiedPoint {
            machine: copy.machine.clone(),
            time: copy.time,
            source_repository: source.repository,
            source_point: source.point,
            target_point: Some(new_id),
        });
        written.push((new_id, copy));
    }
    Ok(written)
}
