//! The simulator (`offsite job simulate`) held against the real runner: 90 simulated
//! days of a daily job with GFS retention and weekly prune, run for real (in-memory
//! repositories, a simulated clock) and simulated — the same points kept, the stored
//! bytes within 5 %.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};

use offsite::clock::{Clock, ManualClock};
use offsite::job::config::{Job, PruneSpec, Secret, SourceSpec, TargetSpec};
use offsite::job::run::run_once;
use offsite::job::simulate::{self, SimOptions};
use offsite::progress::Progress;
use offsite::repo::{InitOptions, Repository};
use offsite::retention::Policy;
use offsite::schedule::Intervals;
use offsite::stop::Stop;
use offsite::{store, testkit};

const FILES: usize = 64;
const FILE_SIZE: usize = 48 << 10;
/// Files rewritten a day: 4 of 64, a 6.25 % daily change.
const CHANGED: usize = 4;

/// A small deterministic generator (xorshift), so the run is the same every time.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn write_file(dir: &std::path::Path, i: usize, rng: &mut Rng) {
    let bytes = testkit::bytes(rng.next(), FILE_SIZE);
    std::fs::write(dir.join(format!("f{i:03}")), bytes).unwrap();
}

async fn backup(src: &Arc<Repository>, base: &std::path::Path, machine: &str, at: DateTime<Utc>) {
    let opts = offsite::backup::BackupOptions {
        machine: machine.into(),
        paths: vec![base.join(machine)],
        base: Some(base.to_path_buf()),
        time: Some(at),
        ..Default::default()
    };
    offsite::backup::run(src.clone(), opts, Progress::hidden())
        .await
        .unwrap();
}

/// The target's data packs, in bytes.
async fn stored(target: &Repository) -> u64 {
    use futures::TryStreamExt;
    let prefix = target.loc.path("data");
    let all: Vec<_> = target
        .loc
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .unwrap();
    all.iter().map(|m| m.size).sum()
}

#[tokio::test]
async fn the_simulator_agrees_with_a_real_90_day_run() {
    let src_url = "memory://simulate-src/repo";
    let opts = InitOptions {
        kdf: offsite::keys::DRY_RUN_KDF,
        ..Default::default()
    };
    let src = Arc::new(
        Repository::init(store::open(src_url, true).unwrap(), testkit::PW, opts)
            .await
            .unwrap(),
    );
    let pw = tempfile::tempdir().unwrap();
    std::fs::write(pw.path().join("pw"), testkit::PW).unwrap();
    let secret = Secret::File(pw.path().join("pw"));
    let target = TargetSpec {
        pack_size: Some(1 << 20),
        ..TargetSpec::plain("memory://simulate-dst/jobs", secret.clone())
    };
    let job = Job {
        mode: offsite::job::Mode::Periodic {
            intervals: Intervals {
                every: chrono::Duration::days(1),
                start_at: NaiveTime::from_hms_opt(2, 0, 0).unwrap(),
            },
        },
        retention: Policy {
            keep: 7,
            weekly: 4,
            monthly: 3,
            ..Policy::default()
        },
        prune: Some(PruneSpec {
            every: std::time::Duration::from_secs(7 * 86_400),
            repack_below: 1.0,
            grace: std::time::Duration::ZERO,
        }),
        ..Job::plain("daily", vec![SourceSpec::plain(src_url, secret)], target)
    };

    // 90 days: at 01:00 each machine's backup (4 files rewritten), at 02:00 the job.
    let files = tempfile::tempdir().unwrap();
    let machines = ["web", "db"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for m in machines {
        std::fs::create_dir_all(files.path().join(m)).unwrap();
        for i in 0..FILES {
            write_file(&files.path().join(m), i, &mut rng);
        }
    }
    let day0 = Utc.with_ymd_and_hms(2026, 3, 2, 2, 0, 0).unwrap();
    let clock = Arc::new(ManualClock::new(day0));
    for d in 0..90 {
        let at = day0 + chrono::Duration::days(d);
        for m in machines {
            if d > 0 {
                for _ in 0..CHANGED {
                    let i = (rng.next() % FILES as u64) as usize;
                    write_file(&files.path().join(m), i, &mut rng);
                }
            }
            backup(&src, files.path(), m, at - chrono::Duration::hours(1)).await;
        }
        clock.set(at);
        let c: Arc<dyn Clock> = clock.clone();
        let r = run_once(&job, c, &Utc, &Progress::hidden(), &Stop::new()).await;
        assert_eq!(
            r.outcome,
            offsite::job::run::Outcome::Success,
            "day {d}: {r:?}"
        );
    }
    let target = Repository::open(
        store::open(&job.target.repository_url(&job.name), false).unwrap(),
        testkit::PW,
    )
    .await
    .unwrap();
    let mut real: BTreeMap<String, Vec<DateTime<Utc>>> = BTreeMap::new();
    for (_, p) in target.load_points().await.unwrap() {
        real.entry(p.machine).or_default().push(p.time);
    }
    let real_bytes = stored(&target).await;

    // The simulator, sized from the source as `job simulate` sizes it.
    let c: Arc<dyn Clock> = clock.clone();
    let measured = simulate::size::measure(&job, &c).await.unwrap();
    let opts = SimOptions {
        start: day0,
        days: 90,
        machines: simulate::size::machines(measured, None, None, None),
        backup_at: NaiveTime::from_hms_opt(1, 0, 0).unwrap(),
        prices: None,
    };
    for m in &opts.machines {
        assert!((0.05..0.08).contains(&m.change), "measured {m:?}");
    }
    let sim = simulate::simulate(&job, &opts, &Utc);
    let simulated: BTreeMap<String, Vec<DateTime<Utc>>> = (sim.kept.iter())
        .map(|(m, kept)| (m.clone(), kept.iter().map(|k| k.time).collect()))
        .collect();
    for v in real.values_mut() {
        v.sort();
    }
    assert_eq!(simulated, real, "the same points kept");
    let sim_bytes = sim.days.last().unwrap().stored_bytes;
    let off = (sim_bytes as f64 - real_bytes as f64).abs() / real_bytes as f64;
    eprintln!("stored after 90 days: real {real_bytes}, simulated {sim_bytes}; kept {simulated:?}");
    assert!(
        off < 0.05,
        "stored: simulated {sim_bytes}, real {real_bytes} ({:.1} % apart)",
        off * 100.0
    );
}
