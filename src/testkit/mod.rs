//! Support for the library's unit tests: in-memory repositories behind the flaky and
//! gated wrappers, timed by a clock that spends no real time, and small sources with
//! restore points to copy. No server, no real sleeping. `genrepo` writes large synthetic
//! repositories for benchmarks and the memory-budget test.

pub mod genrepo;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::memory::InMemory;

use crate::backup::{self, BackupOptions};
use crate::clock::ManualClock;
use crate::copy::{
    ChainMode, ChainPlan, PointsSpec, Selection, Sources, TargetState, TransferOptions,
    TransferOutcome, plan_chain,
};
use crate::progress::Progress;
use crate::repo::{InitOptions, Repository};
use crate::store::flaky::FlakyStore;
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

/// A repository behind a flaky store (memory underneath), on a clock whose waits — retry
/// backoff — cost no real time. Returns the flaky store, the store under it and the
/// repository; packs from `multipart` bytes on go up in parts.
pub async fn flaky(
    pack_size: u64,
    multipart: usize,
) -> (Arc<FlakyStore>, Arc<dyn ObjectStore>, Repository) {
    let under = memory();
    let flaky = Arc::new(FlakyStore::new(under.clone()));
    let made = repo(flaky.clone(), pack_size).await;
    let loc = Location::new(flaky.clone(), "", made.url(), StoreKind::Memory)
        .with_clock(Arc::new(ManualClock::auto_advance(chrono::Utc::now())));
    let mut r = Repository::open(loc, PW)
        .await
        .expect("the repository opens");
    r.multipart_threshold = multipart;
    (flaky, under, r)
}

/// Backs up each of `machines` (its own files) into `repo`; the files stay in the
/// returned folder.
pub async fn backups(repo: &Arc<Repository>, machines: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary folder");
    for (i, m) in machines.iter().enumerate() {
        backup_machine(repo, dir.path(), m, 100 + i as u64).await;
    }
    dir
}

/// Transfers one chain's plan with default options and no progress display.
pub async fn transfer(
    plan: &ChainPlan,
    sources: &Sources,
    target: &Arc<Repository>,
) -> crate::Result<TransferOutcome> {
    crate::copy::transfer(
        plan,
        &sources.repos(),
        target,
        &TransferOptions::default(),
        &Progress::hidden(),
    )
    .await
}

/// `check --read-data` of `repo`, with no progress display.
pub async fn check_read_data(repo: &Repository) -> crate::check::CheckReport {
    crate::check::run(
        repo,
        &crate::check::CheckOptions { read_data: true },
        &Progress::hidden(),
    )
    .await
    .expect("the check runs")
}

/// Awaits `fut`, failing the test with what it was waiting for after `secs` seconds of
/// real time: a wait that cannot end (a gate whose count is never reached) fails by
/// name instead of holding the test run.
pub async fn within<F: std::future::Future>(secs: u64, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(out) => out,
        Err(_) => panic!("gave up after {secs} s waiting for {what}"),
    }
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
    backup_machine_sized(repo, dir, machine, seed, 3 << 20).await;
}

/// [`backup_machine`] with a large file of `big` bytes.
pub async fn backup_machine_sized(
    repo: &Arc<Repository>,
    dir: &Path,
    machine: &str,
    seed: u64,
    big: usize,
) {
    let root = dir.join(machine);
    std::fs::create_dir_all(root.join("etc")).expect("test folder");
    std::fs::write(root.join("etc/hostname"), machine).expect("test file");
    std::fs::write(root.join("big.bin"), bytes(seed, big)).expect("test file");
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
        // Each plan stands alone here: none borrows from another.
        state.claims.release(&m);
    }
    (srcs, plans)
}

/// The largest blob `repo` indexes: its pack's name and its entry.
pub async fn largest_blob(repo: &Repository) -> (String, crate::format::pack::PackEntry) {
    let names = repo.index_names().await.expect("index names");
    let files = repo.load_index_files(names).await.expect("index files");
    let (pack, e) = files
        .iter()
        .flat_map(|(_, f)| &f.packs)
        .flat_map(|p| p.entries.iter().map(move |e| (p.id, *e)))
        .max_by_key(|(_, e)| e.length)
        .expect("a blob");
    (crate::format::pack_name(&pack), e)
}

/// Flips one bit of byte `at` of object `path` in `store`.
pub async fn flip_bit(store: &dyn ObjectStore, path: &object_store::path::Path, at: u64) {
    use object_store::ObjectStoreExt;
    let got = store.get(path).await.expect("the object");
    let mut b = got.bytes().await.expect("its bytes").to_vec();
    b[at as usize] ^= 1;
    store.put(path, b.into()).await.expect("written back");
}
