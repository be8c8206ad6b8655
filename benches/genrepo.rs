//! A synthetic large repository for memory and time benchmarks: MACHINES machines with
//! one restore point each, together BLOBS tiny unique files of 40–2,000 bytes (one blob
//! each), written straight through the library (`offsite::testkit::genrepo`), so ten
//! million blobs need no file data on disk. Deterministic for a SEED.
//!
//!   cargo bench --bench genrepo -- OUT BLOBS [MACHINES] [SEED]
//!
//! OUT is a repository URL or folder (made here; OFFSITE_PASSWORD is its password).
//! Prints blobs, packs, stored bytes and seconds.

use std::sync::Arc;
use std::time::Instant;

use offsite::repo::{InitOptions, Repository};
use offsite::store;
use offsite::testkit::genrepo;

struct Args {
    out: String,
    blobs: u64,
    machines: u64,
    seed: u64,
}

fn args() -> Result<Args, String> {
    // `cargo bench` adds `--bench`; everything else is ours.
    let a: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let usage = "usage: cargo bench --bench genrepo -- OUT BLOBS [MACHINES] [SEED]";
    let num = |i: usize, default: u64| -> Result<u64, String> {
        a.get(i).map_or(Ok(default), |s| {
            s.parse().map_err(|_| format!("{s}: not a number; {usage}"))
        })
    };
    Ok(Args {
        out: a.first().ok_or(usage)?.clone(),
        blobs: num(1, 0).and_then(|n| if n > 0 { Ok(n) } else { Err(usage.to_string()) })?,
        machines: num(2, 10)?.max(1),
        seed: num(3, 1)?,
    })
}

async fn generate(a: Args) -> Result<(), String> {
    let err = |e: offsite::Error| e.to_string();
    let started = Instant::now();
    let password =
        std::env::var("OFFSITE_PASSWORD").map_err(|_| "set OFFSITE_PASSWORD".to_string())?;
    let loc = store::open(&a.out, true).map_err(err)?;
    let opts = InitOptions {
        kdf: offsite::keys::kdf_from_env().map_err(err)?,
        ..Default::default()
    };
    let repo = Arc::new(
        Repository::init(loc, password.as_bytes(), opts)
            .await
            .map_err(err)?,
    );
    let done = genrepo::generate(&repo, a.blobs, a.machines, a.seed, |name, files| {
        eprintln!(
            "{name}: {files} files, {:.0} s so far",
            started.elapsed().as_secs_f64()
        )
    })
    .await
    .map_err(err)?;
    println!(
        "{}: {} blobs in {} points, {} packs, {} bytes stored, {:.1} s",
        a.out,
        a.blobs,
        a.machines,
        done.packs,
        done.stored,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> std::process::ExitCode {
    // A test runner listing the workspace's targets (cargo nextest) asks this binary
    // for its tests: it has none.
    if std::env::args().any(|a| a == "--list") {
        return std::process::ExitCode::SUCCESS;
    }
    let run = || -> Result<(), String> {
        let a = args()?;
        let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
        rt.block_on(generate(a))
    };
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("genrepo: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
