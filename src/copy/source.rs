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
    pub index: MasterIndex,
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
            s.list.push(Source { repo, index });
        }
        let skipped = &s.skipped;
        s.candidates
            .retain(|c| !skipped.contains_key(&c.point.machine));
        Ok(s)
    }

    pub fn repos(&self) -> Vec<Arc<Repository>> {
        self.list.iter().map(|s| s.repo.clone()).collect()
    }
}
