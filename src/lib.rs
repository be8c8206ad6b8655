//! offsite: backup repositories in object stores, and backup copies between them.
//!
//! The library holds everything but argument parsing: the on-store format (`format`),
//! the keys and ciphers (`crypto`, `keys`), the abstract store (`store`), the repository
//! that ties them together (`repo`), and the operations (`backup`, `restore`, `check`).

pub mod backup;
pub mod check;
pub mod chunker;
pub mod clock;
pub mod copy;
pub mod crypto;
pub mod error;
pub mod format;
pub mod health;
pub mod id;
pub mod immutability;
pub mod job;
pub mod keys;
pub mod prices;
pub mod probe;
pub mod progress;
pub mod prune;
pub mod remote;
pub mod repo;
pub mod restore;
pub mod retention;
pub mod retrieval;
pub mod schedule;
pub mod secret;
pub mod stop;
pub mod store;
pub mod target;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod units;

pub use error::{Error, Result};
pub use id::Id;

/// CPU cores this process may use (2 when the system does not say): the CPU-bound
/// stages — sealing in backup, writing in restore — size their threads by it.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}
