//! The sources of a copy: each repository with its index, the restore points it offers,
//! and the machines left out because a point of theirs is still being written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::locks::wait_for_writers;
use super::select::{Candidate, Selection};
use crate::Result;
use crate::repo::{MasterIndex, Repository};

/// A source repository with what planning needs of it.
pub struct Source {
    pub repo: Arc<Repository>,
    /// Shared by the chains of one copy.
    pub index: Arc<MasterIndex>,
}

/// The sources, opened for planning.
pub struct Sources {
    pub list: Vec<Source>,
    /// Every point of every source, for the selection.
    pub candidates: Vec<Candidate>,
    /// Machines skipped, with the reason (a point still being written after the wait).
    pub skipped: BTreeMap<String, String>,
}

impl Sources {
    /// Waits out selected machines' points being written (up to `wait`), then loads each
    /// source's points and index.
    pub async fn open(
        repos: Vec<Arc<Repository>>,
        selection: &Selection,
        wait: Duration,
    ) -> Result<Sources> {
        let mut s = Sources {
            list: Vec::new(),
            candidates: Vec::new(),
            skipped: BTreeMap::new(),
        };
        for (n, repo) in repos.into_iter().enumerate() {
            s.skipped
                .extend(wait_for_writers(&repo, selection, wait).await?);
            let points = repo.load_points().await?;
            s.candidates
                .extend(points.into_iter().map(|(id, point)| Candidate {
                    source: n,
                    id,
                    point,
                }));
            let index = repo.load_index().await?;
            s.list.push(Source {
                repo,
                index: Arc::new(index),
            });
        }
        let skipped = &s.skipped;
        s.candidates
            .retain(|c| !skipped.contains_key(&c.point.machine));
        Ok(s)
    }

    pub fn repos(&self) -> Vec<Arc<Repository>> {
        self.list.iter().map(|s| s.repo.clone()).collect()
    }

    /// The sources as one chain sees them: the same stores and indexes, with request
    /// counters of the chain's own (chains run side by side).
    pub fn metered_view(&self) -> Vec<Source> {
        let view = |s: &Source| Source {
            repo: Arc::new(s.repo.metered_view()),
            index: s.index.clone(),
        };
        self.list.iter().map(view).collect()
    }
}
