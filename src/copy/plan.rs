//! The plan of one chain: which of its points the target lacks, which blobs those points
//! need that the target does not store (found by walking each point's tree), and how to
//! read them — grouped into ranged reads per source pack, where neighbouring blobs share
//! a request when the gap between them is small, so an incremental copy costs few GETs
//! and reads little more than the changed bytes. The plan is plain data: it is what a
//! transfer needs besides the repositories, and what a dry run prints.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::claims::Claim;
use super::failure::Failure;
use super::report::Plan as Projection;
use super::select::Candidate;
use super::settings::ChainMode;
use super::source::Source;
use super::target::TargetState;
use crate::Id;
use crate::format::point::Point;
use crate::format::point_name;
use crate::repo::reach::{self, Files, Role};
use crate::repo::read_list::{ReadList, ReadListBuilder};
use crate::repo::reads::coalesce_each;
use crate::repo::table::IdTable;
use crate::repo::{BLOBS_PER_INDEX, MULTIPART_PART, MasterIndex, PACKS_PER_INDEX};

/// No single read of a copy is longer than this (bounds memory per read in flight).
pub const COPY_READ: u64 = 4 << 20;

/// One chain's plan: everything [`super::transfer::transfer`] and
/// [`super::commit::commit`] need besides the repositories.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainPlan {
    /// The machine (per-machine chains) or `job:NAME` (per-job chains).
    pub chain: String,
    pub mode: ChainMode,
    /// The source repositories' ids; reads and points refer to them by position.
    pub sources: Vec<Id>,
    /// The points to copy, oldest first.
    pub points: Vec<PlannedPoint>,
    /// In memory, or spilled past the memory budget (`repo/read_list.rs`).
    pub reads: ReadList,
    /// The target pack size, balanced for the bytes planned.
    pub pack_size: u64,
    /// Chosen points the target holds already.
    pub already_copied: u64,
    /// Blobs the points need that the target stores already.
    pub blobs_present: u64,
    /// What the transfer will cost.
    pub projection: Projection,
}

/// A point to copy and what it needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlannedPoint {
    /// Position of its repository in [`ChainPlan::sources`].
    pub source: usize,
    pub id: Id,
    pub point: Point,
    /// The blobs of this point that the transfer brings (the target lacks them); empty
    /// when [`Self::needs_all`].
    pub needs: Vec<Id>,
    /// The point needs every blob the plan's reads bring (the only point of its plan):
    /// its needs are not listed — 32 bytes a blob less for a chain of millions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_all: bool,
    /// Blobs of this point that another chain of the same run brings (see
    /// `copy/claims.rs`): the point is committed only once they are indexed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub borrowed: Vec<Id>,
    /// Why it cannot be copied, when planning found out already.
    pub failure: Option<Failure>,
}

impl ChainPlan {
    pub fn machines(&self) -> Vec<String> {
        let mut m: Vec<String> = self
            .points
            .iter()
            .map(|p| p.point.machine.clone())
            .collect();
        m.sort();
        m.dedup();
        m
    }
}

/// Plans one chain: drops the points the target holds, walks the others' trees (reading
/// only tree blobs from the sources), and coalesces the blobs the target lacks into
/// reads. A point whose tree cannot be read or whose blobs are in no index fails here,
/// by itself; the rest of the chain is still planned.
pub async fn plan_chain(
    chain: &str,
    mode: ChainMode,
    candidates: Vec<Candidate>,
    sources: &[Source],
    target: &TargetState,
    pack_size: u64,
    multipart_threshold: u64,
) -> ChainPlan {
    // Sets of blobs are compact tables (`repo/table.rs`): a chain of millions of blobs
    // holds them side by side with the sources' indexes.
    let mut needed: IdTable<u32> = IdTable::default();
    let mut present: IdTable<()> = IdTable::default();
    let mut points = Vec::new();
    let mut already = 0;
    let id = |c: &Candidate| sources[c.source].repo.config.id;
    let to_copy = candidates
        .iter()
        .filter(|c| !target.holds(id(c), c.id, &c.point));
    let alone = to_copy.count() == 1;
    for c in candidates {
        let s = &sources[c.source];
        if target.holds(s.repo.config.id, c.id, &c.point) {
            already += 1;
            continue;
        }
        let pname = point_name(&c.id);
        let (mut needs, mut borrowed) = (Vec::new(), Vec::new());
        let mut failure: Option<Failure> = None;
        // What the point uses (`repo::reach`), each blob sorted: the target has it, a
        // chain beside this one brings it (borrowed), this chain brings it, or no source
        // index has it (the point fails, by itself).
        let walked = reach::walk(&s.repo, &s.index, &c.id, &c.point, Files::All, |u| {
            let b = u.blob;
            if target.known.contains(&b) {
                present.insert(b, ());
            } else if u.at.is_none() {
                let what = match u.role {
                    Role::Tree => "tree",
                    Role::Data => "data",
                };
                failure.get_or_insert_with(|| Failure::Missing {
                    object: pname.clone(),
                    what: format!(
                        "{what} blob {} is in no index of the source {}",
                        b.short(),
                        s.repo.url()
                    ),
                });
            } else if target.claims.claim(b, chain) == Claim::Borrowed {
                present.insert(b, ());
                borrowed.push(b);
            } else {
                if !alone {
                    needs.push(b);
                }
                needed.insert(b, c.source as u32);
            }
            Ok(())
        })
        .await;
        if let Err(e) = walked {
            failure.get_or_insert(Failure::from_error(&e));
        }
        if let Some(e) = target.known.failure() {
            failure.get_or_insert(Failure::from_error(&crate::Error::Spill(e)));
        }
        points.push(PlannedPoint {
            source: c.source,
            id: c.id,
            point: c.point,
            needs: sorted(needs),
            needs_all: alone,
            borrowed: sorted(borrowed),
            failure,
        });
    }
    let reads = reads_for(needed.iter().map(|(b, s)| (s as usize, b)), sources);
    drop(needed);
    fail_if_incomplete(&mut points, &reads);
    let bytes = reads.totals().stored;
    let size = balanced_pack_size(bytes, pack_size);
    let copyable = points.iter().filter(|p| p.failure.is_none()).count() as u64;
    let projection = project(&reads, size, multipart_threshold, copyable);
    ChainPlan {
        chain: chain.to_string(),
        mode,
        sources: sources.iter().map(|s| s.repo.config.id).collect(),
        points,
        reads,
        pack_size: size,
        already_copied: already,
        blobs_present: present.len() as u64,
        projection,
    }
}

/// The plan for what lenders did not bring: of the blobs `plan`'s points borrowed from
/// other chains, those the target still lacks (`known` says what it holds now). Each
/// point needs only those of its own; `None` when nothing is missing.
pub fn supplement(plan: &ChainPlan, sources: &[Source], known: &IdTable<()>) -> Option<ChainPlan> {
    let mut needed: Vec<(usize, Id)> = Vec::new();
    let mut seen = HashSet::new();
    let mut points = plan.points.clone();
    for p in &mut points {
        p.needs = std::mem::take(&mut p.borrowed);
        p.needs_all = false;
        p.needs.retain(|b| !known.contains(b));
        needed.extend(
            p.needs
                .iter()
                .filter(|b| seen.insert(**b))
                .map(|b| (p.source, *b)),
        );
    }
    if needed.is_empty() {
        return None;
    }
    let reads = reads_for(needed, sources);
    fail_if_incomplete(&mut points, &reads);
    Some(ChainPlan {
        points,
        pack_size: balanced_pack_size(reads.totals().stored, plan.pack_size),
        reads,
        ..plan.clone()
    })
}

/// The coalesced reads that fetch `needed` (source, blob) from the sources, within the
/// memory budget. Its [`ReadList::error`] says the list is not whole (a spill failed).
fn reads_for(needed: impl IntoIterator<Item = (usize, Id)>, sources: &[Source]) -> ReadList {
    let indexes: Vec<&MasterIndex> = sources.iter().map(|s| &*s.index).collect();
    let mut list = ReadListBuilder::default();
    let made = coalesce_each(needed, &indexes, COPY_READ, |r| list.push(r));
    list.finish().failing(made.err())
}

/// A spill that failed leaves the reads incomplete: then no point is copied.
fn fail_if_incomplete(points: &mut [PlannedPoint], reads: &ReadList) {
    if let Some(e) = reads.error() {
        for p in points {
            p.failure
                .get_or_insert(Failure::from_error(&crate::Error::Spill(e.clone())));
        }
    }
}

fn sorted(mut ids: Vec<Id>) -> Vec<Id> {
    ids.sort_unstable();
    ids.dedup();
    ids.shrink_to_fit();
    ids
}

/// What the transfer and commit will cost: reads as planned; target objects from the
/// blobs' stored sizes and the pack size (copies put data and tree blobs in the same
/// packs), plus one index and one object per point.
fn project(reads: &ReadList, size: u64, multipart_threshold: u64, points: u64) -> Projection {
    let totals = reads.totals();
    let bytes = totals.stored;
    let objects = bytes.div_ceil(size);
    // A pack at or above the multipart threshold costs create + parts + complete.
    let puts_for = |n: u64| -> u64 {
        match n {
            0 => 0,
            n if n < multipart_threshold => 1,
            n => n.div_ceil(MULTIPART_PART as u64) + 2,
        }
    };
    let uploads = (bytes / size) * puts_for(size) + puts_for(bytes % size);
    let blobs = totals.blobs;
    // Index files: bounded by packs and by blobs each (`Repository::save_indexes`).
    let indexes = match objects {
        0 => 0,
        _ => (blobs.div_ceil(BLOBS_PER_INDEX as u64)).max(objects.div_ceil(PACKS_PER_INDEX as u64)),
    };
    Projection {
        points,
        blobs,
        bytes_to_read: totals.span,
        get_requests: totals.reads,
        target_objects: objects + indexes + points,
        // Besides packs, index and points: the chain's lock (created; deleted after).
        put_requests: uploads + indexes + points + u64::from(points > 0),
    }
}

/// The pack size that splits `planned` bytes into whole packs of at least `target`
/// bytes each: a chain of 170 MiB at a 64 MiB target becomes two packs of 85 MiB, not
/// 64 + 64 + 42 — at most one object per target size of packed data.
pub fn balanced_pack_size(planned: u64, target: u64) -> u64 {
    let target = target.max(1);
    let packs = (planned / target).max(1);
    planned.div_ceil(packs).max(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_are_balanced() {
        let mib = 1 << 20;
        assert_eq!(balanced_pack_size(170 * mib, 64 * mib), 85 * mib);
        assert_eq!(balanced_pack_size(10 * mib, 64 * mib), 64 * mib);
        assert_eq!(balanced_pack_size(0, 64 * mib), 64 * mib);
    }
}
