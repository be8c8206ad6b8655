//! What the target already holds, as far as a copy is concerned: which source points it
//! has (by provenance, or with `--map` by machine, time and tree), the newest point of
//! each machine (the parent of the next), and which blobs it stores. Other writers add to
//! the target while a copy runs, so the state is refreshed — only the point and index
//! objects not read before — under each chain's lock and again just before a commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::claims::Claims;
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::point::Point;
use crate::repo::adopt::adopt_orphans;
use crate::repo::{MasterIndex, Repository};
use crate::{Error, Id, Result};

/// What `--map` matches a source point by: its machine, time and tree.
type MapKey = (String, DateTime<Utc>, Vec<Id>);

/// Points and index files another writer added, read by [`TargetState::news`].
#[derive(Debug, Default)]
pub struct News {
    points: Vec<(Id, Point)>,
    indexes: Vec<(String, IndexFile)>,
}

#[derive(Debug, Default)]
pub struct TargetState {
    /// (source repository, source point) of every copied point.
    provenance: HashSet<(Id, Id)>,
    /// With `--map`: (machine, time, tree) of every point.
    mapped: Option<HashSet<MapKey>>,
    /// The newest target point of each machine, with its time.
    last: HashMap<String, (DateTime<Utc>, Id)>,
    /// Every blob the target stores.
    pub known: HashSet<Id>,
    /// Packs left by a dead writer that loading indexed (and their bytes).
    pub adopted: (u64, u64),
    /// Blobs the chains of this run are bringing (concurrent chains store each once).
    pub claims: Arc<Claims>,
    /// Points and index files read so far: a refresh reads only the others.
    seen_points: HashSet<Id>,
    seen_indexes: HashSet<String>,
}

impl TargetState {
    /// Reads the target's points and index. Unless `dry_run`, packs a dead writer left
    /// unindexed are adopted first. A target holding points that did not come from these
    /// sources is refused unless `map` says to continue on top of it.
    pub async fn load(
        target: &Repository,
        source_ids: &HashSet<Id>,
        map: bool,
        dry_run: bool,
    ) -> Result<TargetState> {
        let mut state = TargetState {
            mapped: map.then(HashSet::new),
            ..Default::default()
        };
        // The index files go into a master index (adoption needs it) and the known
        // set is made from that once, after adoption.
        let News { points, indexes } = state.news(target, true).await?;
        let mut index = MasterIndex::default();
        for (name, f) in indexes {
            index.add_file(&name, &f);
            state.seen_indexes.insert(name);
        }
        state.apply(News {
            points,
            indexes: Vec::new(),
        });
        let from_sources = |p: &(Id, Id)| source_ids.contains(&p.0);
        let ours = state.provenance.iter().filter(|p| from_sources(p)).count();
        let foreign = state.seen_points.len() - ours;
        if foreign > 0 && ours == 0 && !map {
            return Err(Error::Invalid(format!(
                "{}: the target already holds {foreign} restore point(s) that were not copied from these sources; \
                 pass --map to continue a chain on top of it",
                target.url()
            )));
        }
        if !dry_run {
            state.adopted = adopt_orphans(target, &mut index, &[]).await?;
        }
        state.known = index.ids().collect();
        Ok(state)
    }

    /// Reads what other writers committed since the last look: new points (provenance,
    /// parents) and new index files (known blobs).
    pub async fn refresh(&mut self, target: &Repository) -> Result<()> {
        let news = self.news(target, true).await?;
        self.apply(news);
        Ok(())
    }

    /// Reads, without changing the state, the points — and with `indexes` the index
    /// files — written since the last look (one LIST each, side by side), so chains
    /// sharing the state read at once and hold it exclusively only to [`Self::apply`].
    pub async fn news(&self, target: &Repository, indexes: bool) -> Result<News> {
        let points = async {
            let mut new = target.point_ids().await?;
            new.retain(|id| !self.seen_points.contains(id));
            target.load_points_by_id(new).await
        };
        let index_files = async {
            if !indexes {
                return Ok(Vec::new());
            }
            let mut names = target.index_names().await?;
            names.retain(|n| !self.seen_indexes.contains(n));
            target.load_index_files(names).await
        };
        let (points, indexes) = tokio::try_join!(points, index_files)?;
        Ok(News { points, indexes })
    }

    /// Takes in what [`Self::news`] read (twice is harmless).
    pub fn apply(&mut self, news: News) {
        for (id, p) in &news.points {
            self.note_point(*id, p);
        }
        for (name, f) in news.indexes {
            for p in &f.packs {
                self.known.extend(p.entries.iter().map(|e| e.id));
            }
            self.seen_indexes.insert(name);
        }
    }

    /// Notes index files this run wrote itself, listing `packs`: their blobs are known,
    /// and a refresh does not read them back.
    pub fn indexed(&mut self, names: Vec<String>, packs: &[IndexedPack]) {
        self.seen_indexes.extend(names);
        for p in packs {
            self.known.extend(p.entries.iter().map(|e| e.id));
        }
    }

    fn note_point(&mut self, id: Id, p: &Point) {
        self.seen_points.insert(id);
        if let Some(s) = &p.source {
            self.provenance.insert((s.repository, s.point));
        }
        if let Some(m) = &mut self.mapped {
            m.insert((p.machine.clone(), p.time, p.tree.clone()));
        }
        let newer = self
            .last
            .get(&p.machine)
            .is_none_or(|(t, i)| (p.time, id) >= (*t, *i));
        if newer {
            self.last.insert(p.machine.clone(), (p.time, id));
        }
    }

    /// Whether the target holds source point `id` of repository `source` already.
    pub fn holds(&self, source: Id, id: Id, point: &Point) -> bool {
        self.provenance.contains(&(source, id))
            || self.mapped.as_ref().is_some_and(|m| {
                m.contains(&(point.machine.clone(), point.time, point.tree.clone()))
            })
    }

    /// The machine's newest point in the target: the parent of the next one.
    pub fn parent(&self, machine: &str) -> Option<Id> {
        self.last.get(machine).map(|(_, id)| *id)
    }

    /// Notes a point just committed: `copy` as stored under `target_point`.
    pub fn committed(&mut self, target_point: Id, copy: &Point) {
        self.note_point(target_point, copy);
    }
}
