//! A compact table keyed by blob id: the form every large set of blobs takes (the master
//! index, the ids a target stores, a copy's needed and present sets). Rows of fixed size
//! sorted by id — 32 bytes of id plus the value, no hashing overhead — with a small
//! hashed tail for what was added since the rows were last sorted. A HashMap of the same
//! rows costs about twice as much (buckets at most 7/8 full, rounded to a power of two).
//!
//! The rows live in memory while the process's memory budget has room for them
//! (`budget.rs`); else in a file (`disk.rs`), read by position. A table built from many
//! rows at once ([`TableBuilder`]) sorts them in runs that fit the budget and merges the
//! runs, so no step holds more than its share.
//!
//! Lookups go through a directory of the rows by the id's leading bits (about four rows a
//! slot, a byte a row): ids are hashes, spread evenly, so a lookup is one slot and a
//! search of a few neighbouring rows — two cache misses (or one positioned read) instead
//! of twenty-odd — and ids that are not spread (tests) still find their rows, in a longer
//! search.

pub mod budget;
mod disk;
pub mod sort;

use std::cmp::Ordering;
use std::collections::HashMap;

use budget::Share;
use disk::DiskRows;
use sort::{Sorted, Sorter, merge_two};

use crate::Id;

/// The value a table keeps per id, and its fixed encoding in a spilled table.
pub trait Value: Copy + std::fmt::Debug + Send + Sync + 'static {
    /// Bytes of the encoding.
    const SIZE: usize;
    /// Among rows of the same id added in one batch, the lowest rank is kept (the
    /// master index keeps a blob's first location: its pack's position).
    fn rank(&self) -> u64;
    fn put(&self, out: &mut [u8]);
    fn take(b: &[u8]) -> Self;
}

/// A record of fixed size, as spilled to disk (a table's row, a sort's record).
pub trait Record: Copy + Send + Sync + 'static {
    /// Bytes of the encoding.
    const SIZE: usize;
    fn put(&self, out: &mut [u8]);
    fn take(b: &[u8]) -> Self;
}

/// A table's row: the id, then the value.
impl<V: Value> Record for (Id, V) {
    const SIZE: usize = 32 + V::SIZE;
    fn put(&self, out: &mut [u8]) {
        out[..32].copy_from_slice(&self.0.0);
        self.1.put(&mut out[32..]);
    }
    fn take(b: &[u8]) -> Self {
        (disk::row_id(b), V::take(&b[32..]))
    }
}

impl Value for () {
    const SIZE: usize = 0;
    fn rank(&self) -> u64 {
        0
    }
    fn put(&self, _: &mut [u8]) {}
    fn take(_: &[u8]) -> Self {}
}

/// A small number (a source's position): the lowest stays.
impl Value for u32 {
    const SIZE: usize = 4;
    fn rank(&self) -> u64 {
        u64::from(*self)
    }
    fn put(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.to_le_bytes());
    }
    fn take(b: &[u8]) -> Self {
        let mut a = [0u8; 4];
        a.copy_from_slice(&b[..4]);
        u32::from_le_bytes(a)
    }
}

#[derive(Debug)]
enum Rows<V> {
    /// With the share of the budget it holds (none when the budget had no room and the
    /// spill failed too: then memory wins over a wrong answer).
    Memory(Vec<(Id, V)>, Option<Share>),
    Disk(DiskRows),
}

/// Ids with a value each; an id is in the table at most once (the first value stays).
#[derive(Debug)]
pub struct IdTable<V: Value> {
    /// Sorted by id, unique.
    rows: Rows<V>,
    /// `rows[dir[k]..dir[k + 1]]` are the rows whose id starts with the `bits` bits `k`.
    dir: Vec<u32>,
    bits: u32,
    /// Added since the last fold; none of its ids is in `rows`.
    tail: HashMap<Id, V>,
    /// A spilled file that failed to read while the rows were made: some may be missing.
    broken: Option<String>,
}

impl<V: Value> Default for IdTable<V> {
    fn default() -> Self {
        IdTable {
            rows: Rows::Memory(Vec::new(), None),
            dir: vec![0, 0],
            bits: 0,
            tail: HashMap::new(),
            broken: None,
        }
    }
}

/// The id's first eight bytes as a number: ids compare as these first.
fn lead(id: &Id) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(b)
}

/// The order of ids (the bytes' order), settled by one word compare nearly always.
fn order(a: &Id, b: &Id) -> Ordering {
    lead(a).cmp(&lead(b)).then_with(|| a.0.cmp(&b.0))
}

/// The tail is folded into the rows when it reaches this many ids or an eighth of the
/// rows: folding costs one pass over the rows, so a table built one id at a time is
/// sorted about log(n) times, and the hashed tail never costs more than a few bytes a
/// row. A spilled table's tail stops at [`DISK_TAIL`] ids (~80 MB).
const FOLD_AT: usize = 4096;
const DISK_TAIL: usize = 1 << 20;

/// The directory of sorted ids, built as they pass.
struct DirBuilder {
    bits: u32,
    dir: Vec<u32>,
    n: usize,
}

impl DirBuilder {
    /// For at most `n` rows.
    fn new(n: usize) -> DirBuilder {
        // About four rows a slot; the slots' numbers fit the u32 positions.
        let bits = (usize::BITS - (n / 4).leading_zeros()).min(30);
        let mut dir = Vec::new();
        dir.reserve_exact((1 << bits) + 1);
        DirBuilder { bits, dir, n: 0 }
    }

    fn push(&mut self, id: &Id) {
        let k = slot(self.bits, id);
        while self.dir.len() <= k {
            self.dir.push(self.n as u32);
        }
        self.n += 1;
    }

    fn finish(mut self) -> (u32, Vec<u32>) {
        self.dir.resize((1 << self.bits) + 1, self.n as u32);
        (self.bits, self.dir)
    }
}

fn slot(bits: u32, id: &Id) -> usize {
    match bits {
        0 => 0,
        b => (lead(id) >> (64 - b)) as usize,
    }
}

impl<V: Value> IdTable<V> {
    /// A table of `rows` in any order; of rows with the same id, the lowest rank stays.
    pub fn from_rows(mut rows: Vec<(Id, V)>) -> IdTable<V> {
        sort_rows(&mut rows);
        IdTable::settle_vec(rows, None)
    }

    /// The table of `rows` (sorted, unique): kept as they are if the budget has room
    /// (`share` is what the caller holds for them already), else spilled.
    fn settle_vec(rows: Vec<(Id, V)>, share: Option<Share>) -> IdTable<V> {
        let share = share_for::<V>(share, rows.len());
        if share.is_none()
            && let Some(t) = IdTable::spill(|| rows.iter().copied(), rows.len())
        {
            return t;
        }
        IdTable::in_memory(rows, share)
    }

    /// The table of the rows `make` streams (at most `n`, sorted, unique; `make` can
    /// stream them again when a spill fails half-way).
    fn settle_stream<I: Iterator<Item = (Id, V)>>(make: impl Fn() -> I, n: usize) -> IdTable<V> {
        let share = share_for::<V>(None, n);
        if share.is_none()
            && let Some(t) = IdTable::spill(&make, n)
        {
            return t;
        }
        IdTable::in_memory(make().collect(), share)
    }

    /// The rows written to a file in the cache directory; `None` when that failed
    /// (then they stay in memory, over the budget: memory wins over a wrong answer).
    fn spill<I: Iterator<Item = (Id, V)>>(make: impl Fn() -> I, n: usize) -> Option<IdTable<V>> {
        let mut dir = DirBuilder::new(n);
        let dest = budget::cache_dir();
        match DiskRows::write(&dest, make().inspect(|r| dir.push(&r.0))) {
            Ok(d) => {
                let (bits, dir) = dir.finish();
                Some(IdTable {
                    rows: Rows::Disk(d),
                    dir,
                    bits,
                    tail: HashMap::new(),
                    broken: None,
                })
            }
            Err(e) => {
                tracing::warn!(
                    "could not spill an index table to {}: {e}; it stays in memory, over the --memory budget",
                    dest.display()
                );
                None
            }
        }
    }

    fn in_memory(rows: Vec<(Id, V)>, share: Option<Share>) -> IdTable<V> {
        let mut dir = DirBuilder::new(rows.len());
        rows.iter().for_each(|r| dir.push(&r.0));
        let (bits, dir) = dir.finish();
        IdTable {
            rows: Rows::Memory(rows, share),
            dir,
            bits,
            tail: HashMap::new(),
            broken: None,
        }
    }

    pub fn len(&self) -> usize {
        self.rows_len() + self.tail.len()
    }

    fn rows_len(&self) -> usize {
        match &self.rows {
            Rows::Memory(r, _) => r.len(),
            Rows::Disk(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the rows are in a file rather than in memory.
    pub fn spilled(&self) -> bool {
        matches!(self.rows, Rows::Disk(_))
    }

    /// Why a spilled table could not be read, if it could not: its lookups answered
    /// "absent" since. Whoever decides on lookups' answers asks this before acting.
    pub fn failure(&self) -> Option<String> {
        match &self.rows {
            Rows::Disk(d) => d.error().or_else(|| self.broken.clone()),
            Rows::Memory(..) => self.broken.clone(),
        }
    }

    pub fn get(&self, id: &Id) -> Option<V> {
        self.in_rows(id).or_else(|| self.tail.get(id).copied())
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.get(id).is_some()
    }

    /// Adds `id` unless it is there already; true when it was added.
    pub fn insert(&mut self, id: Id, v: V) -> bool {
        if self.in_rows(&id).is_some() {
            return false;
        }
        let added = match self.tail.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(v);
                true
            }
        };
        let n = self.rows_len();
        let at = match self.rows {
            Rows::Memory(..) => FOLD_AT.max(n / 8),
            Rows::Disk(_) => FOLD_AT.max(n / 8).min(DISK_TAIL),
        };
        if self.tail.len() >= at {
            self.fold();
        }
        added
    }

    /// Every row, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Id, V)> + '_ {
        let (mem, disk) = match &self.rows {
            Rows::Memory(r, _) => (Some(r.iter().copied()), None),
            Rows::Disk(d) => (None, Some(d.iter::<(Id, V)>())),
        };
        let tail = self.tail.iter().map(|(k, v)| (*k, *v));
        mem.into_iter()
            .flatten()
            .chain(disk.into_iter().flatten())
            .chain(tail)
    }

    /// Merges the tail into the rows. In memory, from the back, in place, when the
    /// budget has room for the grown rows; else into a new file.
    fn fold(&mut self) {
        let mut tail: Vec<(Id, V)> = self.tail.drain().collect();
        self.tail.shrink_to(FOLD_AT);
        tail.sort_unstable_by(|a, b| order(&a.0, &b.0));
        let n = self.rows_len() + tail.len();
        let broken = self.broken.take();
        let rows = std::mem::replace(&mut self.rows, Rows::Memory(Vec::new(), None));
        *self = match rows {
            Rows::Memory(mut rows, share) => match share_for::<V>(share, n) {
                Some(share) => {
                    merge_in_place(&mut rows, &tail);
                    IdTable::in_memory(rows, Some(share))
                }
                None => {
                    let merged =
                        || merge_two(rows.iter().copied(), tail.iter().copied(), by_id_rank);
                    IdTable::settle_stream(merged, n)
                }
            },
            Rows::Disk(d) => {
                let merged = || merge_two(d.iter::<(Id, V)>(), tail.iter().copied(), by_id_rank);
                let mut t = IdTable::settle_stream(merged, n);
                t.broken = d.error();
                t
            }
        };
        self.broken = self.broken.take().or(broken);
    }

    /// The value of `id` in the rows.
    fn in_rows(&self, id: &Id) -> Option<V> {
        let k = slot(self.bits, id);
        let (lo, hi) = (self.dir[k] as usize, self.dir[k + 1] as usize);
        match &self.rows {
            Rows::Memory(rows, _) => rows[lo..hi]
                .binary_search_by(|r| order(&r.0, id))
                .ok()
                .map(|i| rows[lo + i].1),
            Rows::Disk(d) => d.find(id, lo, hi),
        }
    }
}

/// `held` grown to what `n` rows take, or a new share of that; `None` when the budget
/// has no room.
fn share_for<V: Value>(held: Option<Share>, n: usize) -> Option<Share> {
    let bytes = (n * std::mem::size_of::<(Id, V)>()) as u64;
    match held {
        Some(mut s) => s.grow_to(bytes).then_some(s),
        None => Share::take(bytes),
    }
}

/// Sorts rows by id, the lowest rank first among equal ids, and keeps that one.
fn sort_rows<V: Value>(rows: &mut Vec<(Id, V)>) {
    rows.sort_unstable_by(by_id_rank);
    first_of_each_in_place(rows);
}

/// Of rows sorted by id and rank, the first of each id (its lowest rank).
fn first_of_each_in_place<V: Value>(rows: &mut Vec<(Id, V)>) {
    rows.dedup_by(|later, first| later.0 == first.0);
    rows.shrink_to_fit();
}

/// `tail` (sorted, none of its ids in `rows`) merged into `rows` (sorted) from the back:
/// the rows grow by the tail's length and nothing else is allocated.
fn merge_in_place<V: Value>(rows: &mut Vec<(Id, V)>, tail: &[(Id, V)]) {
    let Some(&fill) = tail.first() else { return };
    let old = rows.len();
    rows.reserve_exact(tail.len());
    rows.resize(old + tail.len(), fill);
    let (mut i, mut j, mut k) = (old, tail.len(), old + tail.len());
    while j > 0 {
        k -= 1;
        if i > 0 && order(&rows[i - 1].0, &tail[j - 1].0).is_gt() {
            rows[k] = rows[i - 1];
            i -= 1;
        } else {
            rows[k] = tail[j - 1];
            j -= 1;
        }
    }
}

/// Rows in the order of a table: by id, the lowest rank first among equal ids.
fn by_id_rank<V: Value>(a: &(Id, V), b: &(Id, V)) -> Ordering {
    order(&a.0, &b.0).then(a.1.rank().cmp(&b.1.rank()))
}

/// Builds a table from many rows in any order within the memory budget: rows are sorted
/// in runs that fit (`sort.rs`) and merged at the end (a blob's lowest rank wins across
/// runs too).
pub struct TableBuilder<V: Value> {
    rows: Sorter<(Id, V)>,
}

impl<V: Value> Default for TableBuilder<V> {
    fn default() -> Self {
        TableBuilder {
            rows: Sorter::new(by_id_rank::<V>),
        }
    }
}

impl<V: Value> TableBuilder<V> {
    pub fn push(&mut self, id: Id, v: V) {
        self.rows.push((id, v));
    }

    pub fn finish(self) -> IdTable<V> {
        let n = self.rows.len();
        match self.rows.finish() {
            Sorted::Memory(mut rows, share) => {
                first_of_each_in_place(&mut rows);
                IdTable::settle_vec(rows, share)
            }
            runs => {
                let mut table = IdTable::settle_stream(|| first_of_each(runs.iter()), n);
                table.broken = runs.error();
                table
            }
        }
    }
}

/// Of rows sorted by id and rank, the first of each id (its lowest rank).
fn first_of_each<V: Value>(rows: impl Iterator<Item = (Id, V)>) -> impl Iterator<Item = (Id, V)> {
    let mut last: Option<Id> = None;
    rows.filter(move |r| {
        let new = last != Some(r.0);
        last = Some(r.0);
        new
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct V(u32);
    impl Value for V {
        const SIZE: usize = 4;
        fn rank(&self) -> u64 {
            u64::from(self.0)
        }
        fn put(&self, out: &mut [u8]) {
            self.0.put(out)
        }
        fn take(b: &[u8]) -> Self {
            V(u32::take(b))
        }
    }

    fn id(n: u64) -> Id {
        Id::hash(&n.to_le_bytes())
    }

    /// Ids that are not spread: the directory puts them in few slots.
    fn clustered(n: u64) -> Id {
        let mut b = [0u8; 32];
        b[24..].copy_from_slice(&n.to_be_bytes());
        Id(b)
    }

    /// Builds a table from `ops` — the first `bulk` through a builder, the rest one at a
    /// time — and checks it against a HashMap doing the same.
    fn against_a_hash_map(ops: &[(u64, u32, bool)], bulk: usize) -> Result<bool, TestCaseError> {
        let mk = |n: u64, spread: bool| if spread { id(n) } else { clustered(n) };
        let mut model: HashMap<Id, V> = HashMap::new();
        let (first, rest) = ops.split_at(bulk.min(ops.len()));
        let mut b = TableBuilder::default();
        for &(n, v, s) in first {
            let e = model.entry(mk(n, s)).or_insert(V(v));
            e.0 = e.0.min(v);
            b.push(mk(n, s), V(v));
        }
        let mut t = b.finish();
        for &(n, v, s) in rest {
            let fresh = !model.contains_key(&mk(n, s));
            model.entry(mk(n, s)).or_insert(V(v));
            prop_assert_eq!(t.insert(mk(n, s), V(v)), fresh);
        }
        prop_assert_eq!(t.len(), model.len());
        for n in 0..3000 {
            for s in [true, false] {
                prop_assert_eq!(t.get(&mk(n, s)), model.get(&mk(n, s)).copied());
            }
        }
        let mut all: Vec<(Id, V)> = t.iter().collect();
        all.sort_by_key(|r| r.0);
        let mut want: Vec<(Id, V)> = model.into_iter().collect();
        want.sort_by_key(|r| r.0);
        prop_assert_eq!(all, want);
        prop_assert_eq!(t.failure(), None);
        Ok(t.spilled())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn a_table_in_memory_answers_as_a_hash_map_does(
            ops in proptest::collection::vec((0u64..3000, 0u32..1000, any::<bool>()), 1..12000),
            bulk in 0usize..12000,
        ) {
            budget::configure(Some(u64::MAX), None);
            prop_assert!(!against_a_hash_map(&ops, bulk)?);
        }

        #[test]
        fn a_spilled_table_answers_as_one_in_memory_does(
            ops in proptest::collection::vec((0u64..3000, 0u32..1000, any::<bool>()), 1..12000),
            bulk in 0usize..12000,
        ) {
            // No room at all: every table and every builder's run goes to disk.
            budget::configure(Some(1), None);
            let spilled = against_a_hash_map(&ops, bulk)?;
            prop_assert!(spilled || ops.len() < FOLD_AT && bulk == 0);
        }
    }

    #[test]
    fn a_large_table_built_one_id_at_a_time_stays_sorted() {
        budget::configure(Some(u64::MAX), None);
        let mut t = IdTable::<()>::default();
        for n in 0..100_000 {
            assert!(t.insert(id(n), ()));
        }
        assert!(!t.insert(id(5), ()));
        assert_eq!(t.len(), 100_000);
        let Rows::Memory(rows, _) = &t.rows else {
            panic!("spilled with room to spare")
        };
        assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(t.dir.len(), (1 << t.bits) + 1);
        assert!((0..100_000).all(|n| t.contains(&id(n))));
        assert!(!t.contains(&id(100_000)));
    }

    #[test]
    fn a_builder_over_its_budget_merges_runs_keeping_the_lowest_rank() {
        let dir = tempfile::tempdir().unwrap();
        // Room for about three build steps: the rest goes out in runs.
        let step = (sort::STEP * std::mem::size_of::<(Id, V)>()) as u64;
        budget::configure(Some(3 * step), Some(dir.path().to_path_buf()));
        let mut b = TableBuilder::default();
        for round in 0..3u32 {
            for n in 0..200_000 {
                b.push(id(n), V(round * 7 % 5 + 1));
            }
        }
        let t = b.finish();
        assert!(
            !anything_left(dir.path()),
            "spill files are unlinked as they are made"
        );
        assert!(t.spilled());
        assert_eq!(t.len(), 200_000);
        assert!(
            (0..200_000)
                .step_by(997)
                .all(|n| t.get(&id(n)) == Some(V(1)))
        );
        assert_eq!(t.failure(), None);
    }

    /// Whether anything is left in the cache directory: a run killed mid-way leaves
    /// nothing a later one could pick up.
    fn anything_left(dir: &std::path::Path) -> bool {
        std::fs::read_dir(dir).unwrap().next().is_some()
    }
}
