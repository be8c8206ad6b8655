//! Reading and writing the marks on restore points (`format::mark`): GFS flags set by
//! retention, damage found by a health check.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};

use super::{IO_CONCURRENCY, Repository};
use crate::format::MARKS;
use crate::format::mark::{Mark, damaged_name, parse_mark_name};
use crate::{Error, Id, Result};

/// Every mark, by point.
pub type Marks = BTreeMap<Id, Vec<Mark>>;

impl Repository {
    /// Every mark in the repository, by point. An unreadable mark is an error naming it:
    /// a lost GFS flag could let retention forget a point it must keep.
    pub async fn load_marks(&self) -> Result<Marks> {
        let mut names = Vec::new();
        for m in self.list(MARKS).await? {
            let name = self.loc.name_of(&m.location);
            match parse_mark_name(&name) {
                Some(_) => names.push(name),
                None => tracing::warn!("ignoring foreign object {name} among marks"),
            }
        }
        let marks: Vec<Mark> = futures::stream::iter(names.into_iter().map(|name| async move {
            let bytes = self.get(&name).await?;
            Mark::open(self.key(), &name, &bytes)
        }))
        .buffer_unordered(IO_CONCURRENCY)
        .try_collect()
        .await?;
        let mut out = Marks::new();
        for m in marks {
            out.entry(m.point).or_default().push(m);
        }
        for v in out.values_mut() {
            v.sort_by_key(|m| m.kind);
        }
        Ok(out)
    }

    /// Sets a GFS flag: a conditional create, so a flag never changes once written; one
    /// already there (set by an earlier run that died before it could say so) stands.
    pub async fn set_flag(&self, mark: &Mark) -> Result<()> {
        match self
            .put_new(&mark.name(), mark.seal(self.key())?.into())
            .await
        {
            Ok(()) | Err(Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Marks a point damaged, replacing an earlier finding.
    pub async fn set_damaged(&self, mark: &Mark) -> Result<()> {
        self.put_overwrite(&mark.name(), mark.seal(self.key())?.into())
            .await
    }

    /// Takes back a point's damaged mark (none there is fine).
    pub async fn clear_damaged(&self, point: &Id) -> Result<()> {
        self.delete_all(vec![damaged_name(point)]).await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::format::mark::MarkKind;
    use crate::testkit;

    #[tokio::test]
    async fn flags_are_written_once_and_damage_is_replaced() {
        let repo = testkit::repo(testkit::memory(), 1 << 20).await;
        let flag = Mark {
            point: Id([1; 32]),
            kind: MarkKind::Weekly,
            detail: "2026-11-22".into(),
            set_at: Utc::now(),
            until: Some(Utc::now()),
        };
        repo.set_flag(&flag).await.unwrap();
        let mut again = flag.clone();
        again.detail = "another week".into();
        repo.set_flag(&again).await.unwrap();
        let damaged = Mark {
            kind: MarkKind::Damaged,
            detail: "first".into(),
            until: None,
            ..flag.clone()
        };
        repo.set_damaged(&damaged).await.unwrap();
        let second = Mark {
            detail: "second".into(),
            ..damaged.clone()
        };
        repo.set_damaged(&second).await.unwrap();
        let marks = repo.load_marks().await.unwrap();
        assert_eq!(marks[&flag.point], vec![flag.clone(), second]);
        repo.clear_damaged(&flag.point).await.unwrap();
        let marks = repo.load_marks().await.unwrap();
        assert_eq!(marks[&flag.point], vec![flag]);
    }
}
