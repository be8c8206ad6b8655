//! Support for the library's unit tests: in-memory repositories behind the flaky and
//! gated wrappers, timed by a clock that spends no real time, and small sources with
//! restore points to copy. No server, no real sleeping.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::memory::InMemory;

use crate::backup::{self, BackupOptions};
use crate::clock::ManualClock;
use crate::copy::{ChainMode, ChainPlan, PointsSpec, Selection, Sources, TargetState, plan_chain};
use crate::progress::Progress;
use crate::repo::{InitOptions, Repository};
use crate::store::{Location, StoreKind};

pub const PW: &[u8] = b"unit test";

pub fn memory() -> Arc<dyn ObjectStore> {
    Arc::new(InMemory::new())
}

/// A repository location over `store`.
pub fn location(store: Arc<dyn ObjectStore>) -> Location {
    let url = format!(
        "memory://unit-{}",
        hex::encode(crate::crypto::random_bytes::<6>())
    );
    Location::new(store, "", &url, StoreKind::Memory)
}

/// A new repository with cheap keys and `pack_size` packs, on the system clock (backups
/// hold locks, whose refresher must not race a simulated clock).
pub async fn repo(store: Arc<dyn ObjectStore>, pack_size: u64) -> Arc<Repository> {
    let opts = InitOptions {
        pack_size,
        kdf: crate::keys::DRY_RUN_KDF,
        ..Default::default()
    };
    Arc::new(
        Repository::init(location(store), PW, opts)
            .await
            .expect("a new in-memory repository"),
    )
}

/// The repository in `store` opened again on a clock whose waits (retry backoff) cost
/// no real time: for targets behind a flaky store.
pub async fn reopen_fast(store: Arc<dyn ObjectStore>, url_of: &Repository) -> Arc<Repository> {
    let loc = Location::new(store, "", url_of.url(), StoreKind::Memory)
        .with_clock(Arc::new(ManualClock::auto_advance(chrono::Utc::now())));
    Arc::new(
        Repository::open(loc, PW)
            .await
            .expect("the repository opens"),
    )
}

/// `len` deterministic, incompressible bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Backs up a small machine (a few files, some larger than a chunk) into `repo`.
pub async fn backup_machine(repo: &Arc<Repository>, dir: &Path, machine: &str, seed: u64) {
    let root = dir.join(machine);
    std::fs::create_dir_all(root.join("etc")).expect("test folder");
    std::fs::write(root.join("etc/hostname"), machine).expect("test file");
    std::fs::write(root.join("big.bin"), bytes(seed, 3 << 20)).expect("test file");
    std::fs::write(
        root.join("text"),
        format!("line of {machine}\n").repeat(20_000),
    )
    .expect("test file");
    let opts = BackupOptions {
        machine: machine.to_string(),
        paths: vec![root],
        base: Some(dir.to_path_buf()),
        ..Default::default()
    };
    backup::run(repo.clone(), opts, Progress::hidden())
        .await
        .expect("backup of a test machine");
}

/// Plans the copy of every point of `source` into `target`, one chain per machine.
pub async fn plans(source: &Arc<Repository>, target: &Repository) -> (Sources, Vec<ChainPlan>) {
    let mut srcs = Sources::open(
        vec![source.clone()],
        &Selection {
            points: PointsSpec::All,
            ..Default::default()
        },
        Duration::ZERO,
    )
    .await
    .expect("sources open");
    let ids = [source.config.id].into_iter().collect();
    let state = TargetState::load(target, &ids, false, false)
        .await
        .expect("target loads");
    let mut by_machine: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    for c in std::mem::take(&mut srcs.candidates) {
        by_machine
            .entry(c.point.machine.clone())
            .or_default()
            .push(c);
    }
    let mut plans = Vec::new();
    for (m, cands) in by_machine {
        let threshold = target.multipart_threshold as u64;
        plans.push(
            plan_chain(
                &m,
                ChainMode::PerMachine,
                cands,
                &srcs.list,
                &state,
                1 << 20,
                threshold,
            )
            .await,
        );
    }
    (srcs, plans)
}
