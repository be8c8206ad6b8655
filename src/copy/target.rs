//! What the target already holds, as far as a copy is concerned: which source points it
//! has (by provenance, or with `--map` by machine, time and tree), the newest point of
//! each machine (the parent of the next), and which blobs it stores.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::format::point::Point;
use crate::repo::Repository;
use crate::repo::adopt::adopt_orphans;
use crate::{Error, Id, Result};

#[derive(Debug, Default)]
pub struct TargetState {
    /// (source repository, source point) of every copied point.
    provenance: HashSet<(Id, Id)>,
    /// With `--map`: (machine, time, tree) of every point.
    mapped: HashSet<(String, DateTime<Utc>, Vec<Id>)>,
    /// The newest target point of each machine.
    pub last: HashMap<String, Id>,
    /// Every blob the target stores.
    pub known: HashSet<Id>,
    /// Packs left by an interrupted run that loading indexed (and their bytes).
    pub adopted: (u64, u64),
}

impl TargetState {
    /// Reads the target's points and index. Unless `dry_run`, packs an interrupted run
    /// left unindexed are adopted first. A target holding points that did not come from
    /// these sources is refused unless `map` says to continue on top of it.
    pub async fn load(
        target: &Repository,
        source_ids: &HashSet<Id>,
        map: bool,
        dry_run: bool,
    ) -> Result<TargetState> {
        let points = target.load_points().await?;
        let from_sources = |p: &Point| {
            p.source
                .as_ref()
                .is_some_and(|s| source_ids.contains(&s.repository))
        };
        let foreign = points.iter().filter(|(_, p)| !from_sources(p)).count();
        if foreign > 0 && !points.iter().any(|(_, p)| from_sources(p)) && !map {
            return Err(Error::Invalid(format!(
                "{}: the target already holds {foreign} restore point(s) that were not copied from these sources; \
                 pass --map to continue a chain on top of it",
                target.url()
            )));
        }
        let mut state = TargetState {
            provenance: points
                .iter()
                .filter_map(|(_, p)| p.source.as_ref().map(|s| (s.repository, s.point)))
                .collect(),
            ..Default::default()
        };
        if map {
            state.mapped = points
                .iter()
                .map(|(_, p)| (p.machine.clone(), p.time, p.tree.clone()))
                .collect();
        }
        // Points come oldest first: the last one seen per machine is its newest.
        for (id, p) in &points {
            state.last.insert(p.machine.clone(), *id);
        }
        let mut index = target.load_index().await?;
        if !dry_run {
            state.adopted = adopt_orphans(target, &mut index).await?;
        }
        state.known = index.ids().collect();
        Ok(state)
    }

    /// Whether the target holds source point `id` of repository `source` already.
    pub fn holds(&self, source: Id, id: Id, point: &Point) -> bool {
        self.provenance.contains(&(source, id))
            || (!self.mapped.is_empty()
                && self
                    .mapped
                    .contains(&(point.machine.clone(), point.time, point.tree.clone())))
    }

    /// Notes a point just committed.
    pub fn committed(&mut self, source: Id, id: Id, machine: &str, target_point: Id) {
        self.provenance.insert((source, id));
        self.last.insert(machine.to_string(), target_point);
    }
}
