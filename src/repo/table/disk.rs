//! Fixed-size records in a file — a table's sorted rows, or a sort's run — written once
//! in order, read by position with
//! positioned reads (the page cache holds what is hot; none of it counts against the
//! process's memory). The file is unlinked as soon as it is made, so nothing a run
//! leaves behind — killed mid-write or not — is ever read by another: each run builds
//! its own from the index files, which stay the only truth.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use super::{Record, Value};
use crate::Id;

/// Rows read per positioned read when streaming the whole file.
const STREAM_ROWS: usize = 16 << 10;

#[derive(Debug)]
pub struct DiskRows {
    file: File,
    /// The cache directory it is in (for the error).
    dir: std::path::PathBuf,
    len: usize,
    /// The first read error (the table answers "absent" after it; see
    /// [`super::IdTable::failure`]).
    error: Mutex<Option<String>>,
}

impl DiskRows {
    /// Writes `rows` to a new unlinked file in `dir`, in the order given.
    pub fn write<R: Record>(
        dir: &Path,
        rows: impl Iterator<Item = R>,
    ) -> std::io::Result<DiskRows> {
        std::fs::create_dir_all(dir)?;
        let file = tempfile::tempfile_in(dir)?;
        let mut out = BufWriter::with_capacity(1 << 20, &file);
        let mut row = vec![0u8; R::SIZE];
        let mut len = 0;
        for r in rows {
            r.put(&mut row);
            out.write_all(&row)?;
            len += 1;
        }
        out.flush()?;
        drop(out);
        Ok(DiskRows {
            file,
            dir: dir.to_path_buf(),
            len,
            error: Mutex::new(None),
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Rows `lo..hi` into `buf` (resized to fit).
    fn read(&self, lo: usize, hi: usize, size: usize, buf: &mut Vec<u8>) -> bool {
        buf.resize((hi - lo) * size, 0);
        match self.file.read_exact_at(buf, (lo * size) as u64) {
            Ok(()) => true,
            Err(e) => {
                self.fail(&e);
                false
            }
        }
    }

    fn fail(&self, e: &std::io::Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert_with(|| {
            format!(
                "reading rows spilled to {} (past the --memory budget) failed: {e}; check that disk, or give \
                 --cache-dir another one (or more --memory), and run again",
                self.dir.display()
            )
        });
    }

    pub fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The value of `id` among rows `lo..hi`, where it must be if anywhere.
    pub fn find<V: Value>(&self, id: &Id, mut lo: usize, mut hi: usize) -> Option<V> {
        let size = <(Id, V)>::SIZE;
        let mut buf = Vec::new();
        // Narrow a long range row by row first (ids that are not spread); then read
        // what is left at once.
        while hi - lo > 64 {
            let mid = lo + (hi - lo) / 2;
            if !self.read(mid, mid + 1, size, &mut buf) {
                return None;
            }
            match super::order(&row_id(&buf), id) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(V::take(&buf[32..])),
            }
        }
        if lo == hi || !self.read(lo, hi, size, &mut buf) {
            return None;
        }
        buf.chunks_exact(size)
            .find(|r| r[..32] == id.0)
            .map(|r| V::take(&r[32..]))
    }

    /// Every row in order (a read error ends it early and is recorded: [`Self::error`]).
    pub fn iter<R: Record>(&self) -> impl Iterator<Item = R> + '_ {
        let mut buf = Vec::new();
        (0..self.len.div_ceil(STREAM_ROWS)).flat_map(move |chunk| {
            let lo = chunk * STREAM_ROWS;
            let hi = (lo + STREAM_ROWS).min(self.len);
            let rows: Vec<R> = match self.read(lo, hi, R::SIZE, &mut buf) {
                true => buf.chunks_exact(R::SIZE).map(R::take).collect(),
                false => Vec::new(),
            };
            rows
        })
    }
}

pub(super) fn row_id(r: &[u8]) -> Id {
    let mut id = [0u8; 32];
    id.copy_from_slice(&r[..32]);
    Id(id)
}
