//! The memory budget of the large id tables, and where they spill. One budget for the
//! whole process (`--memory`, else a quarter of what the machine or its container
//! allows, at most [`DEFAULT_MOST`]): each table in memory holds a share of it; a table that cannot get its share
//! goes to a file in the cache directory (`--cache-dir`, else the system's temporary
//! directory) and is read from there. First come, first served: a copy's source index,
//! read first, stays in memory while the rest fits.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes the tables in memory may hold together (0: not set yet).
static LIMIT: AtomicU64 = AtomicU64::new(0);
static HELD: AtomicU64 = AtomicU64::new(0);
static CACHE_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Sets the budget and the cache directory (the command line does, once, at start).
pub fn configure(limit: Option<u64>, cache_dir: Option<PathBuf>) {
    if let Some(l) = limit {
        LIMIT.store(l.max(1), Ordering::Relaxed);
    }
    if let Some(d) = cache_dir {
        *CACHE_DIR.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
    }
}

/// The budget in bytes.
pub fn limit() -> u64 {
    match LIMIT.load(Ordering::Relaxed) {
        0 => {
            let l = default_limit();
            LIMIT.store(l, Ordering::Relaxed);
            l
        }
        l => l,
    }
}

/// Where spilled tables go.
pub fn cache_dir() -> PathBuf {
    let set = CACHE_DIR.lock().unwrap_or_else(|e| e.into_inner()).clone();
    set.unwrap_or_else(std::env::temp_dir)
}

/// The default budget's ceiling. Spilled tables cost little time (a copy of 10 M tiny
/// blobs took 128 s at 256 MiB, 143 s with everything in memory at 2.0 GiB: the page
/// cache serves the positioned reads), so memory past this buys nothing worth having on
/// a machine that runs other things too.
pub const DEFAULT_MOST: u64 = 256 << 20;

/// A quarter of the machine's memory, or of its container's limit when that is lower,
/// at most [`DEFAULT_MOST`] and at least 64 MiB; 256 MiB when neither can be read.
pub fn default_limit() -> u64 {
    let total = machine_memory();
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => t.min(c) / 4,
        (Some(t), None) => t / 4,
        (None, Some(c)) => c / 4,
        (None, None) => DEFAULT_MOST,
    }
    .clamp(64 << 20, DEFAULT_MOST)
}

fn machine_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A share of the budget, given back when dropped.
#[derive(Debug)]
pub struct Share(u64);

impl Share {
    /// `bytes` of the budget, if that much is left.
    pub fn take(bytes: u64) -> Option<Share> {
        let limit = limit();
        let mut held = HELD.load(Ordering::Relaxed);
        loop {
            if held.saturating_add(bytes) > limit {
                return None;
            }
            match HELD.compare_exchange_weak(
                held,
                held + bytes,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Share(bytes)),
                Err(now) => held = now,
            }
        }
    }

    /// Grows this share to `bytes`; false (and unchanged) when the budget has no room.
    pub fn grow_to(&mut self, bytes: u64) -> bool {
        if bytes <= self.0 {
            return true;
        }
        match Share::take(bytes - self.0) {
            Some(more) => {
                self.0 = bytes;
                std::mem::forget(more);
                true
            }
            None => false,
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        HELD.fetch_sub(self.0, Ordering::AcqRel);
    }
}
