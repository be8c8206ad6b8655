//! Restore points in a repository: written last by every backup and copy (a point that
//! exists is complete), read back oldest first, found by `latest` or an id prefix.

use futures::{StreamExt, TryStreamExt};

use super::{IO_CONCURRENCY, Repository};
use crate::format::point::Point;
use crate::format::{self, POINTS};
use crate::{Error, Id, Result};

impl Repository {
    /// Writes a restore point — the last step of every backup or copy.
    pub async fn save_point(&self, point: &Point) -> Result<Id> {
        let sealed = point.seal(&self.key, self.config.compression);
        let id = Id::hash(&sealed);
        let name = format::point_name(&id);
        match self.new_lock()? {
            Some(lock) => self.put_new_locked(&name, sealed, None, lock).await?,
            None => self.put_new(&name, sealed.into()).await?,
        }
        Ok(id)
    }

    pub async fn load_point(&self, id: &Id) -> Result<Point> {
        let known = {
            let seen = self.points_read.lock().unwrap_or_else(|e| e.into_inner());
            seen.get(id).cloned()
        };
        if let Some(p) = known {
            return Ok(p);
        }
        let name = format::point_name(id);
        let bytes = self.get(&name).await?;
        let point = Point::open(&self.key, &name, &bytes)?;
        let mut seen = self.points_read.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(*id, point.clone());
        Ok(point)
    }

    /// All restore points, oldest first. An unreadable point fails the call, naming it.
    pub async fn load_points(&self) -> Result<Vec<(Id, Point)>> {
        let ids = self.point_ids().await?;
        {
            // Points gone from the listing (forgotten) leave the memory too: a
            // repository kept open for months holds only what is there.
            let listed: std::collections::HashSet<&Id> = ids.iter().collect();
            let mut seen = self.points_read.lock().unwrap_or_else(|e| e.into_inner());
            seen.retain(|id, _| listed.contains(id));
        }
        self.load_points_by_id(ids).await
    }

    /// The points `ids`, read several at a time, oldest first.
    pub async fn load_points_by_id(&self, ids: Vec<Id>) -> Result<Vec<(Id, Point)>> {
        let mut points: Vec<(Id, Point)> =
            futures::stream::iter(ids.into_iter().map(|id| async move {
                let p = self.load_point(&id).await?;
                Ok::<_, Error>((id, p))
            }))
            .buffer_unordered(IO_CONCURRENCY)
            .try_collect()
            .await?;
        points.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(points)
    }

    pub async fn point_ids(&self) -> Result<Vec<Id>> {
        let mut ids = Vec::new();
        for m in self.list(POINTS).await? {
            let name = self.loc.name_of(&m.location);
            match format::parse_point_name(&name) {
                Some(id) => ids.push(id),
                None => tracing::warn!("ignoring foreign object {name} among restore points"),
            }
        }
        Ok(ids)
    }

    /// Finds a point by `latest` (of `machine`), full id or unique id prefix.
    pub async fn find_point(&self, spec: &str, machine: Option<&str>) -> Result<(Id, Point)> {
        let points = self.load_points().await?;
        let matching: Vec<(Id, Point)> = points
            .into_iter()
            .filter(|(_, p)| machine.is_none_or(|m| p.machine == m))
            .collect();
        let what = || match machine {
            Some(m) => format!("{spec:?} for machine {m:?}"),
            None => format!("{spec:?}"),
        };
        if spec == "latest" {
            return matching
                .into_iter()
                .last()
                .ok_or_else(|| Error::NoSuchPoint { what: what() });
        }
        let spec_l = spec.to_ascii_lowercase();
        let mut found: Vec<(Id, Point)> = matching
            .into_iter()
            .filter(|(id, _)| id.to_hex().starts_with(&spec_l))
            .collect();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(Error::NoSuchPoint { what: what() }),
            n => Err(Error::Invalid(format!(
                "{spec:?} matches {n} restore points: give more digits of the id"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit;

    /// A point is read from the store once; a second look lists and reads nothing new,
    /// and a point forgotten since leaves the memory with the listing.
    #[tokio::test]
    async fn points_are_read_once() {
        let repo = testkit::repo(testkit::memory(), 1 << 20).await;
        let _files = testkit::backups(&repo, &["web", "db"]).await;
        let gets = || repo.loc.requests.snapshot().get;
        // (The backups read the points before them already.)
        repo.points_read.lock().unwrap().clear();
        let before = gets();
        assert_eq!(repo.load_points().await.unwrap().len(), 2);
        assert_eq!(gets() - before, 2, "each point read once");
        let again = gets();
        let points = repo.load_points().await.unwrap();
        assert_eq!(gets(), again, "nothing read again");
        repo.delete(&crate::format::point_name(&points[0].0))
            .await
            .unwrap();
        assert_eq!(repo.load_points().await.unwrap().len(), 1);
        assert_eq!(repo.points_read.lock().unwrap().len(), 1);
    }
}
