//! A long list of planned reads within the memory budget: a copy of millions of blobs
//! plans as many pack entries (56 bytes each in memory), held from planning to the end
//! of its transfer. The list stays in memory while the budget (`repo::table::budget`)
//! has room for it; past that, it goes to an unlinked file in the cache directory, in
//! order, and is read back one read at a time as the transfer consumes it. Either way
//! its totals are kept aside, so what a plan costs is known without reading it through.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::reads::Read;
use super::table::budget::{self, Share};
use crate::Id;
use crate::format::pack::{ENTRY_LEN, PackEntry};

/// Bytes of a read's fixed part on disk: source, pack, start, end, blob count.
const HEAD: usize = 4 + 32 + 8 + 8 + 4;

/// Planned reads, in order, with their totals.
#[derive(Clone, Default)]
pub struct ReadList {
    memory: Vec<Read>,
    /// The budget held for `memory` (shared by clones of the list).
    share: Option<Arc<Share>>,
    disk: Option<Arc<Spilled>>,
    totals: Totals,
    /// Made from something incomplete (a sort's spilled run failed to read).
    broken: Option<String>,
}

/// What the reads add up to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub reads: u64,
    pub blobs: u64,
    /// Bytes the reads span (gaps included): what they fetch.
    pub span: u64,
    /// Stored (sealed) bytes of the blobs.
    pub stored: u64,
    /// Plaintext bytes of the blobs.
    pub raw: u64,
}

struct Spilled {
    /// `None` when the list could not be finished on disk (then `error` says why).
    file: Option<File>,
    len: u64,
    /// The first error writing or reading it: the list is then not whole (see
    /// [`ReadList::error`]).
    error: Mutex<Option<String>>,
}

/// Builds a [`ReadList`], spilling it once the budget has no room.
#[derive(Default)]
pub struct ReadListBuilder {
    list: ReadList,
    share: Option<Share>,
    held: u64,
    out: Option<(BufWriter<File>, u64)>,
    /// The cache directory refused a file: the list stays in memory, over the budget.
    stay: bool,
    /// Writing the spill failed: the list is not whole, and says so.
    error: Option<String>,
    buf: Vec<u8>,
}

impl ReadListBuilder {
    pub fn push(&mut self, r: Read) {
        let t = &mut self.list.totals;
        t.reads += 1;
        t.blobs += r.blobs.len() as u64;
        t.span += r.len();
        t.stored += r.blobs.iter().map(|e| u64::from(e.length)).sum::<u64>();
        t.raw += r.blobs.iter().map(|e| u64::from(e.raw_length)).sum::<u64>();
        if self.error.is_some() {
            return;
        }
        if self.out.is_some() {
            if let Err(e) = self.write(&r) {
                self.error = Some(spill_error(&e));
            }
            return;
        }
        self.held += footprint(&r);
        self.list.memory.push(r);
        let room = match &mut self.share {
            Some(s) => s.grow_to(self.held),
            None => {
                self.share = Share::take(self.held);
                self.share.is_some()
            }
        };
        if !room && !self.stay {
            self.spill();
        }
    }

    /// Everything so far to a file in the cache directory, and what comes after too.
    fn spill(&mut self) {
        let dir = budget::cache_dir();
        let made = std::fs::create_dir_all(&dir).and_then(|()| tempfile::tempfile_in(&dir));
        let file = match made {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(
                    "could not spill planned reads to {}: {e}; they stay in memory, over the --memory budget",
                    dir.display()
                );
                self.stay = true;
                return;
            }
        };
        self.out = Some((BufWriter::with_capacity(1 << 20, file), 0));
        for r in std::mem::take(&mut self.list.memory) {
            if let Err(e) = self.write(&r) {
                self.error = Some(spill_error(&e));
                break;
            }
        }
        self.share = None;
        self.held = 0;
    }

    fn write(&mut self, r: &Read) -> std::io::Result<()> {
        let Some((out, len)) = self.out.as_mut() else {
            return Err(std::io::Error::other("no spill file"));
        };
        let buf = &mut self.buf;
        buf.clear();
        buf.extend_from_slice(&(r.source as u32).to_le_bytes());
        buf.extend_from_slice(&r.pack.0);
        buf.extend_from_slice(&r.start.to_le_bytes());
        buf.extend_from_slice(&r.end.to_le_bytes());
        buf.extend_from_slice(&(r.blobs.len() as u32).to_le_bytes());
        let at = buf.len();
        buf.resize(at + r.blobs.len() * ENTRY_LEN, 0);
        for (e, out) in r.blobs.iter().zip(buf[at..].chunks_exact_mut(ENTRY_LEN)) {
            e.write_to(out);
        }
        out.write_all(buf)?;
        *len += buf.len() as u64;
        Ok(())
    }

    pub fn finish(mut self) -> ReadList {
        if let Some((mut out, len)) = self.out.take() {
            let file = match out.flush() {
                Ok(()) => out.into_inner().ok(),
                Err(e) => {
                    self.error.get_or_insert_with(|| spill_error(&e));
                    None
                }
            };
            if file.is_none() {
                self.error
                    .get_or_insert_with(|| spill_error(&std::io::Error::other("flush")));
            }
            self.list.disk = Some(Arc::new(Spilled {
                file,
                len,
                error: Mutex::new(self.error),
            }));
        }
        self.list.share = self.share.map(Arc::new);
        self.list
    }
}

fn spill_error(e: &std::io::Error) -> String {
    format!(
        "the planned reads spilled to {} (past the --memory budget) could not be written \
         or read back: {e}; check that disk, or give --cache-dir another one (or more \
         --memory), and run again",
        budget::cache_dir().display()
    )
}

/// Bytes a read holds in memory.
fn footprint(r: &Read) -> u64 {
    (std::mem::size_of::<Read>() + r.blobs.capacity() * std::mem::size_of::<PackEntry>()) as u64
}

impl ReadList {
    pub fn totals(&self) -> Totals {
        self.totals
    }

    pub fn len(&self) -> usize {
        self.totals.reads as usize
    }

    pub fn is_empty(&self) -> bool {
        self.totals.reads == 0
    }

    /// Whether the list is in a file.
    pub fn spilled(&self) -> bool {
        self.disk.is_some()
    }

    /// The reads in order. Reading a spilled list that fails ends it early: check
    /// [`Self::error`] once through.
    pub fn iter(&self) -> Box<dyn Iterator<Item = Read> + Send + '_> {
        match &self.disk {
            None => Box::new(self.memory.iter().cloned()),
            Some(d) => {
                let Some(file) = &d.file else {
                    return Box::new(std::iter::empty());
                };
                let at = At {
                    file,
                    len: d.len,
                    pos: 0,
                };
                let mut input = BufReader::with_capacity(1 << 20, at);
                let mut left = d.len;
                Box::new(std::iter::from_fn(move || {
                    if left == 0 {
                        return None;
                    }
                    match next_read(&mut input) {
                        Ok((r, n)) => {
                            left = left.saturating_sub(n);
                            Some(r)
                        }
                        Err(e) => {
                            let mut slot = d.error.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert_with(|| spill_error(&e));
                            left = 0;
                            None
                        }
                    }
                }))
            }
        }
    }

    /// Why the list is not whole, if it is not: what it was made from failed (a sort's
    /// spilled run), or writing or reading its spill did.
    pub fn error(&self) -> Option<String> {
        if let Some(e) = &self.broken {
            return Some(e.clone());
        }
        let d = self.disk.as_ref()?;
        d.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The list, marked not whole when `made` failed.
    pub fn failing(mut self, made: Option<crate::Error>) -> ReadList {
        self.broken = made.map(|e| match e {
            crate::Error::Spill(s) => s,
            e => e.to_string(),
        });
        self
    }
}

/// One read as [`ReadListBuilder::write`] put it, and its bytes on disk.
fn next_read(input: &mut impl std::io::Read) -> std::io::Result<(Read, u64)> {
    let mut head = [0u8; HEAD];
    input.read_exact(&mut head)?;
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let long = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[..8]);
        u64::from_le_bytes(a)
    };
    let mut pack = [0u8; 32];
    pack.copy_from_slice(&head[4..36]);
    let n = word(&head[52..56]) as usize;
    let mut body = vec![0u8; n * ENTRY_LEN];
    input.read_exact(&mut body)?;
    let read = Read {
        source: word(&head[..4]) as usize,
        pack: Id(pack),
        start: long(&head[36..44]),
        end: long(&head[44..52]),
        blobs: body
            .chunks_exact(ENTRY_LEN)
            .map(PackEntry::read_from)
            .collect(),
    };
    Ok((read, (HEAD + body.len()) as u64))
}

/// A file read from a position of its own (clones of a list share the file).
struct At<'a> {
    file: &'a File,
    len: u64,
    pos: u64,
}

impl std::io::Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(self.pos) as usize;
        let n = buf.len().min(left);
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl From<Vec<Read>> for ReadList {
    fn from(reads: Vec<Read>) -> ReadList {
        let mut b = ReadListBuilder::default();
        reads.into_iter().for_each(|r| b.push(r));
        b.finish()
    }
}

impl std::fmt::Debug for ReadList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadList")
            .field("totals", &self.totals)
            .field("spilled", &self.spilled())
            .finish()
    }
}

/// On the wire (the appliance's API, dry runs as JSON) a list of reads, as ever.
impl Serialize for ReadList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for ReadList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ReadList, D::Error> {
        Vec::<Read>::deserialize(d).map(ReadList::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::pack::BlobKind;

    fn reads(n: usize) -> Vec<Read> {
        (0..n)
            .map(|i| Read {
                source: i % 3,
                pack: Id::hash(&i.to_le_bytes()),
                start: i as u64 * 100,
                end: i as u64 * 100 + 90,
                blobs: (0..i % 5)
                    .map(|k| PackEntry {
                        kind: if k % 2 == 0 {
                            BlobKind::Data
                        } else {
                            BlobKind::Tree
                        },
                        id: Id::hash(&(i * 10 + k).to_le_bytes()),
                        offset: i as u64 * 100 + k as u64 * 10,
                        length: 10,
                        raw_length: 7 + k as u32,
                    })
                    .collect(),
            })
            .collect()
    }

    /// In memory or spilled (a budget of one byte), the list gives back the reads it
    /// was given, in order, with their totals, and nothing is left in the cache folder.
    #[test]
    fn a_list_gives_back_its_reads_in_memory_or_spilled() {
        let dir = tempfile::tempdir().unwrap();
        for (limit, spilled) in [(u64::MAX, false), (1, true)] {
            budget::configure(Some(limit), Some(dir.path().to_path_buf()));
            let want = reads(2000);
            let list = ReadList::from(want.clone());
            assert_eq!(list.spilled(), spilled);
            assert_eq!(list.iter().collect::<Vec<_>>(), want);
            assert_eq!(
                list.clone().iter().count(),
                2000,
                "a clone reads on its own"
            );
            let t = list.totals();
            assert_eq!(t.reads, 2000);
            assert_eq!(
                t.blobs,
                want.iter().map(|r| r.blobs.len() as u64).sum::<u64>()
            );
            assert_eq!(t.span, 2000 * 90);
            assert_eq!(list.error(), None);
            let json = serde_json::to_string(&list).unwrap();
            assert_eq!(json, serde_json::to_string(&want).unwrap());
            let back: ReadList = serde_json::from_str(&json).unwrap();
            assert_eq!(back.iter().collect::<Vec<_>>(), want);
            assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
        }
    }

    /// A spilled list whose file ends early says so, naming the cache folder, instead
    /// of ending as if it were all.
    #[test]
    fn a_damaged_spill_is_an_error_not_a_short_list() {
        let dir = tempfile::tempdir().unwrap();
        budget::configure(Some(1), Some(dir.path().to_path_buf()));
        let list = ReadList::from(reads(100));
        let d = list.disk.as_ref().unwrap();
        d.file.as_ref().unwrap().set_len(d.len / 2).unwrap();
        let got = list.iter().count();
        assert!(got < 100, "{got}");
        let e = list.error().expect("an error");
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
    }
}
