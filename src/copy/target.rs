//! What the target already holds, as far as a copy is concerned: which source points it
//! has (by provenance, or with `--map` by machine, time and tree), the newest point of
//! each machine (the parent of the next), and which blobs it stores. Other writers add to
//! the target while a copy runs, so the state is refreshed — only the point and index
//! objects not read before — under each chain's lock and again just before a commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::RwLock;

use super::claims::Claims;
use crate::format::index::{IndexFile, IndexedPack};
use crate::format::point::Point;
use crate::repo::IndexBuilder;
use crate::repo::Repository;
use crate::repo::adopt::{PackLook, adopt_looked};
use crate::repo::table::IdTable;
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
    pub known: IdTable<()>,
    /// Packs left by a dead writer that loading indexed (and their bytes).
    pub adopted: (u64, u64),
    /// Their ids: written (and locked) before this run, though indexed by it.
    pub adopted_packs: HashSet<Id>,
    /// Blobs the chains of this run are bringing (concurrent chains store each once).
    pub claims: Arc<Claims>,
    /// Points and index files read so far: a refresh reads only the others.
    seen_points: HashSet<Id>,
    seen_indexes: HashSet<String>,
}

impl TargetState {
    /// The index files read so far (at load, then by each refresh).
    pub fn seen_indexes(&self) -> &HashSet<String> {
        &self.seen_indexes
    }

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
        // set is made from that once, after adoption. Adoption's look at the locks and
        // packs goes side by side with the points and index.
        let look = async {
            match dry_run {
                true => Ok(None),
                false => PackLook::read(target, &[]).await.map(Some),
            }
        };
        let (News { points, indexes }, look) = tokio::try_join!(state.news(target, true), look)?;
        let mut index = IndexBuilder::default();
        for (name, f) in indexes {
            index.add_file(&name, &f);
            state.seen_indexes.insert(name);
        }
        let mut index = index.finish();
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
        if let Some(look) = look {
            // Adoption appends the packs it indexes.
            let had = index.packs().len();
            state.adopted = adopt_looked(target, &mut index, look).await?;
            state.adopted_packs = index.packs()[had..].iter().map(|p| p.id).collect();
        }
        state.known = IdTable::from_rows(index.ids().map(|id| (id, ())).collect());
        Ok(state)
    }

    /// Reads, without changing the state, the points — and with `indexes` the index
    /// files — written since the last look (one LIST each, side by side).
    pub async fn news(&self, target: &Repository, indexes: bool) -> Result<News> {
        let listed = Listing::read(target, indexes).await?;
        listed.unseen(self).load(target).await
    }

    /// [`Self::news`] of a state chains share: it is held (shared) only to pick the
    /// names not read before, never across a request — a writer waiting for it would
    /// hold up every reader behind it.
    pub async fn shared_news(
        state: &RwLock<TargetState>,
        target: &Repository,
        indexes: bool,
    ) -> Result<News> {
        let listed = Listing::read(target, indexes).await?;
        let unseen = listed.unseen(&*state.read().await);
        unseen.load(target).await
    }

    /// Takes in what [`Self::news`] read (twice is harmless).
    pub fn apply(&mut self, news: News) {
        for (id, p) in &news.points {
            self.note_point(*id, p);
        }
        for (name, f) in news.indexes {
            for p in &f.packs {
                for e in &p.entries {
                    self.known.insert(e.id, ());
                }
            }
            self.seen_indexes.insert(name);
        }
    }

    /// Notes index files this run wrote itself, listing `packs`: their blobs are known,
    /// and a refresh does not read them back.
    pub fn indexed(&mut self, names: Vec<String>, packs: &[IndexedPack]) {
        self.seen_indexes.extend(names);
        for p in packs {
            for e in &p.entries {
                self.known.insert(e.id, ());
            }
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

/// The names of the target's points and index files, as one look listed them.
struct Listing {
    points: Vec<Id>,
    indexes: Vec<String>,
}

impl Listing {
    async fn read(target: &Repository, indexes: bool) -> Result<Listing> {
        let index_names = async {
            match indexes {
                true => target.index_names().await,
                false => Ok(Vec::new()),
            }
        };
        let (points, indexes) = tokio::try_join!(target.point_ids(), index_names)?;
        Ok(Listing { points, indexes })
    }

    /// Only the names `state` has not read.
    fn unseen(mut self, state: &TargetState) -> Listing {
        self.points.retain(|id| !state.seen_points.contains(id));
        self.indexes.retain(|n| !state.seen_indexes.contains(n));
        self
    }

    async fn load(self, target: &Repository) -> Result<News> {
        let (points, indexes) = tokio::try_join!(
            target.load_points_by_id(self.points),
            target.load_index_files(self.indexes)
        )?;
        Ok(News { points, indexes })
    }
}
