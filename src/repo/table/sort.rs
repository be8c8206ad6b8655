//! Sorting more records than the memory budget holds: records are gathered while the
//! budget has room, sorted and written to a file as a run when it has not, and the runs
//! merged as they are read back. Whatever needs many fixed-size records in an order
//! sorts them here: a table's rows ([`super::TableBuilder`]) and a copy's blobs by pack
//! and offset (`repo::reads::coalesce`).

use std::cmp::Ordering;

use super::Record;
use super::budget::{self, Share};
use super::disk::DiskRows;

/// Records a sorter adds room for at a time (no doubling: the budget is taken in steps
/// and a run is written when the next step does not fit).
pub const STEP: usize = 1 << 16;

/// Gathers records, then gives them back in order ([`Sorted`]).
pub struct Sorter<R: Record> {
    rows: Vec<R>,
    share: Option<Share>,
    runs: Vec<DiskRows>,
    cmp: fn(&R, &R) -> Ordering,
    pushed: usize,
    step: usize,
}

impl<R: Record> Sorter<R> {
    /// A sorter putting records in `cmp`'s order.
    pub fn new(cmp: fn(&R, &R) -> Ordering) -> Sorter<R> {
        Sorter {
            rows: Vec::new(),
            share: Share::take(0),
            runs: Vec::new(),
            cmp,
            pushed: 0,
            step: STEP,
        }
    }

    /// Room added `step` records at a time (tests: many runs from few records).
    #[cfg(test)]
    pub fn stepping(mut self, step: usize) -> Sorter<R> {
        self.step = step;
        self
    }

    pub fn push(&mut self, r: R) {
        if self.rows.len() == self.rows.capacity() {
            self.make_room();
        }
        self.rows.push(r);
        self.pushed += 1;
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.pushed
    }

    pub fn is_empty(&self) -> bool {
        self.pushed == 0
    }

    /// Room for a step more records within the budget, or a run written.
    fn make_room(&mut self) {
        let want = (self.rows.len() + self.step) * std::mem::size_of::<R>();
        let room = self.share.as_mut().is_some_and(|s| s.grow_to(want as u64));
        if !room && !self.rows.is_empty() {
            self.rows.sort_unstable_by(self.cmp);
            match DiskRows::write(&budget::cache_dir(), self.rows.drain(..)) {
                Ok(run) => {
                    self.runs.push(run);
                    self.rows = Vec::new();
                }
                Err(e) => tracing::warn!(
                    "could not spill sorted rows to {}: {e}; they stay in memory, over the --memory budget",
                    budget::cache_dir().display()
                ),
            }
        }
        self.rows.reserve_exact(self.step);
    }

    /// The records in order: in memory (with the share they hold) when they fit, else
    /// runs on disk and the last records gathered, merged as they are read.
    pub fn finish(mut self) -> Sorted<R> {
        self.rows.sort_unstable_by(self.cmp);
        if self.runs.is_empty() {
            return Sorted::Memory(self.rows, self.share);
        }
        // The share goes back: whoever reads the merged records may need it.
        drop(self.share.take());
        self.rows.shrink_to_fit();
        Sorted::Runs {
            runs: self.runs,
            rows: self.rows,
            cmp: self.cmp,
        }
    }
}

/// Sorted records: all in memory, or runs to merge.
pub enum Sorted<R: Record> {
    Memory(Vec<R>, Option<Share>),
    Runs {
        runs: Vec<DiskRows>,
        rows: Vec<R>,
        cmp: fn(&R, &R) -> Ordering,
    },
}

impl<R: Record> Sorted<R> {
    /// Every record in order. A run that fails to read ends early: [`Self::error`] says
    /// so, and whoever trusts the records checks it once they are read.
    pub fn iter(&self) -> Box<dyn Iterator<Item = R> + Send + '_> {
        match self {
            Sorted::Memory(rows, _) => Box::new(rows.iter().copied()),
            Sorted::Runs { runs, rows, cmp } => {
                let mut streams: Vec<Box<dyn Iterator<Item = R> + Send + '_>> =
                    runs.iter().map(|r| Box::new(r.iter::<R>()) as _).collect();
                streams.push(Box::new(rows.iter().copied()));
                merge(streams, *cmp)
            }
        }
    }

    /// The first read error of a run, if any.
    pub fn error(&self) -> Option<String> {
        match self {
            Sorted::Memory(..) => None,
            Sorted::Runs { runs, .. } => runs.iter().find_map(DiskRows::error),
        }
    }
}

/// Sorted streams as one, merged pairwise level by level: a record passes log2(runs)
/// comparisons' worth of merges, not one per run. Of equal records, the earlier
/// stream's comes first.
fn merge<'a, R: Record>(
    mut streams: Vec<Box<dyn Iterator<Item = R> + Send + 'a>>,
    cmp: fn(&R, &R) -> Ordering,
) -> Box<dyn Iterator<Item = R> + Send + 'a> {
    while streams.len() > 1 {
        let mut level = streams.into_iter();
        let mut next: Vec<Box<dyn Iterator<Item = R> + Send + 'a>> = Vec::new();
        while let Some(a) = level.next() {
            match level.next() {
                Some(b) => next.push(Box::new(merge_two(a, b, cmp))),
                None => next.push(a),
            }
        }
        streams = next;
    }
    streams
        .pop()
        .unwrap_or_else(|| Box::new(std::iter::empty()))
}

pub(super) fn merge_two<R: Record>(
    a: impl Iterator<Item = R>,
    b: impl Iterator<Item = R>,
    cmp: fn(&R, &R) -> Ordering,
) -> impl Iterator<Item = R> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) => match cmp(x, y) {
            Ordering::Greater => b.next(),
            _ => a.next(),
        },
        (Some(_), None) => a.next(),
        (None, _) => b.next(),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Id;

    fn by_id(a: &(Id, u32), b: &(Id, u32)) -> Ordering {
        a.0.cmp(&b.0).then(a.1.cmp(&b.1))
    }

    proptest! {
        /// Whatever the budget (a byte: every step a run on disk), the records come
        /// back all, in order, as a sort of them in memory gives them.
        #[test]
        fn sorted_as_in_memory(seeds in prop::collection::vec((0u64..500, 0u32..4), 0..3000),
                               spill in any::<bool>()) {
            let rows: Vec<(Id, u32)> =
                seeds.iter().map(|&(s, v)| (Id::hash(&s.to_le_bytes()), v)).collect();
            // No room at all: every step of 100 records is a run on disk.
            budget::configure(Some(if spill { 1 } else { u64::MAX }), None);
            let mut s = Sorter::new(by_id).stepping(100);
            rows.iter().for_each(|r| s.push(*r));
            let sorted = s.finish();
            let got: Vec<(Id, u32)> = sorted.iter().collect();
            let mut want = rows.clone();
            want.sort_by(by_id);
            prop_assert_eq!(got, want);
            prop_assert_eq!(sorted.error(), None);
            let runs = match &sorted {
                Sorted::Runs { runs, .. } => runs.len(),
                Sorted::Memory(..) => 0,
            };
            prop_assert_eq!(runs, if spill { (rows.len().max(1) - 1) / 100 } else { 0 });
        }
    }
}
