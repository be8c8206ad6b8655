//! A warm start: the listings and small objects an operation reads first (restore points,
//! index files, the pack listing), fetched while the password's key is derived — half a
//! second of CPU by design — so that from a store far away their round trips cost
//! nothing. Each listing and object is handed out once, to its first reader; every later
//! read goes to the store.
//!
//! What is handed out is as old as the opening. Only operations that read again, under
//! their locks, whatever must be current may start warm: a copy refreshes its target
//! under each chain's lock and re-reads its points before committing; a restore or `ls`
//! reads one point. Prune and check do not: they must see the repository as it is once
//! their lock is held.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use futures::StreamExt;
use object_store::ObjectMeta;

use super::IO_CONCURRENCY;
use crate::format::{DATA, INDEX, POINTS};
use crate::store::Location;

/// Objects larger than this are not read ahead (read when asked for, as usual).
const MOST_PER_OBJECT: u64 = 16 << 20;
/// Nor more than this in all: a warm start must not cost memory a cold one would not.
const MOST_BYTES: u64 = 64 << 20;

/// What to read ahead: folders to list and read every object of, folders only to list.
#[derive(Clone, Copy, Debug)]
pub struct WarmSpec {
    pub read: &'static [&'static str],
    pub list: &'static [&'static str],
}

impl WarmSpec {
    /// Nothing: a cold start.
    pub const NOTHING: WarmSpec = WarmSpec {
        read: &[],
        list: &[],
    };
    /// A lister of points: `points`.
    pub const POINTS: WarmSpec = WarmSpec {
        read: &[POINTS],
        list: &[],
    };
    /// A reader of points: restore, `ls`, a copy's sources.
    pub const READER: WarmSpec = WarmSpec {
        read: &[POINTS, INDEX],
        list: &[],
    };
    /// A copy's target: its points and index, and the packs adoption looks at.
    pub const COPY_TARGET: WarmSpec = WarmSpec {
        read: &[POINTS, INDEX],
        list: &[DATA],
    };
}

/// Listings and objects read ahead, each to be taken once.
#[derive(Debug, Default)]
pub struct Warm {
    lists: Mutex<HashMap<String, Vec<ObjectMeta>>>,
    objects: Mutex<HashMap<String, Bytes>>,
}

impl Warm {
    /// Reads ahead what `spec` names. A read that fails is left out (the operation
    /// reads it itself and reports what is wrong), so nothing here fails.
    pub async fn fetch(loc: &Location, spec: WarmSpec) -> Warm {
        let folders = spec.read.iter().chain(spec.list);
        let listed = futures::future::join_all(folders.map(|dir| async move {
            let l = super::list(loc, dir).await;
            (*dir, l)
        }))
        .await;
        let mut lists = HashMap::new();
        let mut wanted = Vec::new();
        let mut budget = MOST_BYTES;
        for (dir, listing) in listed {
            let Ok(metas) = listing else {
                continue;
            };
            if spec.read.contains(&dir) {
                for m in &metas {
                    if m.size <= MOST_PER_OBJECT && m.size <= budget {
                        budget -= m.size;
                        wanted.push(loc.name_of(&m.location));
                    }
                }
            }
            lists.insert(dir.to_string(), metas);
        }
        let objects = futures::stream::iter(wanted.into_iter().map(|name| async move {
            let got = super::get(loc, &name).await;
            got.ok().map(|b| (name, b))
        }))
        .buffer_unordered(IO_CONCURRENCY * 2)
        .filter_map(|r| async move { r })
        .collect()
        .await;
        Warm {
            lists: Mutex::new(lists),
            objects: Mutex::new(objects),
        }
    }

    /// The listing of `dir` read ahead, if there is one not yet taken.
    pub fn take_list(&self, dir: &str) -> Option<Vec<ObjectMeta>> {
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        lists.remove(dir)
    }

    /// Object `name` read ahead, if it was and is not yet taken.
    pub fn take_object(&self, name: &str) -> Option<Bytes> {
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        objects.remove(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit;

    /// A warm repository answers its first listing and reads from what was read ahead,
    /// each once: the second look goes to the store and sees what changed meanwhile.
    #[tokio::test]
    async fn read_ahead_once_then_from_the_store() {
        let repo = testkit::repo(testkit::memory(), 1 << 20).await;
        let _files = testkit::backups(&repo, &["web"]).await;
        let warm = Warm::fetch(&repo.loc, WarmSpec::COPY_TARGET).await;
        let points = warm.take_list(POINTS).unwrap();
        assert_eq!(points.len(), 1);
        assert!(warm.take_list(POINTS).is_none());
        assert!(warm.take_list(DATA).is_some_and(|l| !l.is_empty()));
        let name = repo.loc.name_of(&points[0].location);
        assert_eq!(
            warm.take_object(&name).unwrap(),
            repo.get(&name).await.unwrap()
        );
        assert!(warm.take_object(&name).is_none());
    }
}
