//! `offsite demo`: the embedded default — a whole backup copy job with no cloud account
//! and nothing to configure. Sample machines are backed up into a primary folder
//! repository and copied into a second one under its own key; a day of changes later,
//! again (incrementally); then the copy is restored, compared bit for bit, and checked.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};

use super::sample::noise;
use offsite::backup::{self, BackupOptions};
use offsite::check::{self, CheckOptions};
use offsite::copy::{self, CopyOptions, PointsSpec, Selection};
use offsite::progress::Progress;
use offsite::repo::{InitOptions, Repository};
use offsite::{keys, restore, store};

use super::output::{size, table};

const MARKER: &str = ".offsite-demo";

pub async fn run(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.join(MARKER).exists() {
            bail!(
                "{} exists and is not a demo folder; pick another with --dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(MARKER),
        b"made by offsite demo; removed by the next demo\n",
    )?;
    let machines = dir.join("machines");
    println!(
        "offsite demo in {}: a backup copy job between two local repositories\n",
        dir.display()
    );

    println!("1. sample machines in {}", machines.display());
    make_machine_web(&machines.join("web01"), 1)?;
    make_machine_db(&machines.join("db01"), 2)?;

    let kdf = keys::kdf_from_env()?;
    let (primary, primary_pw) = new_repo(
        dir,
        "primary",
        InitOptions {
            kdf,
            ..Default::default()
        },
    )
    .await?;
    println!(
        "2. primary repository {} at {} (password in {})",
        primary.config.id.short(),
        primary.url(),
        primary_pw.display()
    );
    let copy_opts = InitOptions {
        pack_size: 64 << 20,
        chunker: Some(primary.config.chunker),
        kdf,
        ..Default::default()
    };
    let (offsite_repo, offsite_pw) = new_repo(dir, "offsite", copy_opts).await?;
    println!(
        "3. offsite repository {} at {}, with its own key (password in {})",
        offsite_repo.config.id.short(),
        offsite_repo.url(),
        offsite_pw.display()
    );

    let opts = CopyOptions {
        selection: Selection {
            points: PointsSpec::All,
            ..Default::default()
        },
        ..Default::default()
    };
    // The first night's backups are a day old; the second night's are now.
    let today = chrono::Utc::now();
    for round in 1..=2 {
        let nightly = today - chrono::Duration::days(2 - round);
        if round == 2 {
            println!("\n6. a day later: a few files change, backups run again");
            change_a_little(&machines)?;
        } else {
            println!("\n4. nightly backups into the primary repository");
        }
        nightly_backups(&primary, &machines, nightly).await?;
        println!(
            "\n{}. backup copy job: offsite copy --from {} --to {} --points all",
            if round == 1 { 5 } else { 7 },
            primary.url(),
            offsite_repo.url()
        );
        let mut report = copy::run(
            vec![primary.clone()],
            offsite_repo.clone(),
            &opts,
            &Progress::hidden(),
        )
        .await?;
        report.target = offsite_repo.url().to_string();
        super::copy::print_report(&report);
        if report.has_failures() {
            bail!("the copy failed");
        }
    }

    println!("\n8. restore the latest copied point of each machine from the offsite repository");
    restore_and_compare(&offsite_repo, &machines, &dir.join("restored")).await?;

    println!("\n9. check --read-data of the offsite repository");
    check_copy(&offsite_repo).await?;
    // The binary that runs now, by its full path: it need not be on the PATH.
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "offsite".into());
    println!(
        "\nTry it yourself:\n  OFFSITE_PASSWORD=$(cat {op}) {exe} points {o}\n  OFFSITE_PASSWORD=$(cat {pp}) OFFSITE_TARGET_PASSWORD=$(cat {op}) {exe} copy --from {p} --to {o} --dry-run",
        op = offsite_pw.display(),
        pp = primary_pw.display(),
        o = offsite_repo.url(),
        p = primary.url(),
    );
    Ok(())
}

/// Each sample machine backed up into `primary` as of `nightly`, in a table.
async fn nightly_backups(
    primary: &Arc<Repository>,
    machines: &Path,
    nightly: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for m in ["web01", "db01"] {
        let started = std::time::Instant::now();
        let (id, p) = backup::run(
            primary.clone(),
            backup_options(machines, m, nightly),
            Progress::hidden(),
        )
        .await?;
        rows.push(vec![
            m.to_string(),
            id.short(),
            p.summary.files.to_string(),
            size(p.summary.bytes),
            size(p.summary.bytes_added),
            format!("{:.2} s", started.elapsed().as_secs_f64()),
        ]);
    }
    table(
        &["MACHINE", "POINT", "FILES", "SIZE", "STORED", "TIME"],
        &rows,
    );
    Ok(())
}

/// The latest copied point of each machine restored into `restored` and compared with
/// its source, bit for bit.
async fn restore_and_compare(
    copy: &Repository,
    machines: &Path,
    restored: &Path,
) -> anyhow::Result<()> {
    for m in ["web01", "db01"] {
        let (id, p) = copy.find_point("latest", Some(m)).await?;
        let stats = restore::run(copy, &id, &p, restored, &Progress::hidden()).await?;
        let same = digest(&machines.join(m))? == digest(&restored.join(m))?;
        println!(
            "   {m}: point {} -> {} files, {}: {}",
            id.short(),
            stats.files,
            size(stats.bytes),
            if same {
                "identical to the source, bit for bit"
            } else {
                "DIFFERENT"
            }
        );
        if !same {
            bail!("restored {m} differs from its source");
        }
    }
    Ok(())
}

/// `check --read-data` of the copy; its errors fail the demo.
async fn check_copy(copy: &Repository) -> anyhow::Result<()> {
    let report = check::run(copy, &CheckOptions { read_data: true }, &Progress::hidden()).await?;
    println!(
        "   {} packs, {} blobs, {} points, read {}: {}",
        report.packs,
        report.blobs,
        report.points,
        size(report.bytes_read),
        if report.is_ok() {
            "no errors"
        } else {
            "ERRORS"
        }
    );
    if !report.is_ok() {
        bail!("check found errors: {:?}", report.errors);
    }
    Ok(())
}

/// A folder repository `dir/name` with a random password kept in `dir/name.password`.
async fn new_repo(
    dir: &Path,
    name: &str,
    opts: InitOptions,
) -> anyhow::Result<(Arc<Repository>, PathBuf)> {
    let password = hex::encode(offsite::crypto::random_bytes::<16>());
    let pw_file = dir.join(format!("{name}.password"));
    std::fs::write(&pw_file, format!("{password}\n"))?;
    std::fs::set_permissions(&pw_file, std::fs::Permissions::from_mode(0o600))?;
    let loc = store::open(&dir.join(name).display().to_string(), true)?;
    let repo = Repository::init(loc, password.as_bytes(), opts).await?;
    Ok((Arc::new(repo), pw_file))
}

fn backup_options(machines: &Path, m: &str, time: chrono::DateTime<chrono::Utc>) -> BackupOptions {
    BackupOptions {
        time: Some(time),
        machine: m.to_string(),
        job: Some("nightly".into()),
        tags: BTreeMap::from([("demo".to_string(), "yes".to_string())]),
        paths: vec![machines.join(m)],
        base: Some(machines.to_path_buf()),
        ..Default::default()
    }
}

fn make_machine_web(root: &Path, seed: u64) -> anyhow::Result<()> {
    let site = root.join("var/www/site");
    std::fs::create_dir_all(&site)?;
    std::fs::create_dir_all(root.join("etc/nginx"))?;
    for i in 0..200 {
        let page: String = (0..200)
            .map(|l| format!("<p>page {i} paragraph {l} of the site</p>\n"))
            .collect();
        std::fs::write(site.join(format!("page{i:03}.html")), page)?;
    }
    for i in 0..20 {
        std::fs::write(
            site.join(format!("image{i:02}.jpg")),
            noise(seed * 100 + i, 300_000),
        )?;
    }
    std::fs::write(
        root.join("etc/nginx/nginx.conf"),
        "worker_processes auto;\n",
    )?;
    std::os::unix::fs::symlink("../../var/www/site", root.join("etc/nginx/site"))?;
    Ok(())
}

fn make_machine_db(root: &Path, seed: u64) -> anyhow::Result<()> {
    std::fs::create_dir_all(root.join("images"))?;
    // A raw disk image: long runs of zeros around data extents.
    let mut img = vec![0u8; 48 << 20];
    for (i, at) in [1usize << 20, 9 << 20, 30 << 20].iter().enumerate() {
        let extent = noise(seed * 10 + i as u64, 2 << 20);
        img[*at..*at + extent.len()].copy_from_slice(&extent);
    }
    std::fs::write(root.join("images/disk0.raw"), img)?;
    let log: String = (0..50_000)
        .map(|i| format!("2026-11-27 12:00:{:02} db: committed txn {i}\n", i % 60))
        .collect();
    std::fs::write(root.join("postgres.log"), log)?;
    Ok(())
}

fn change_a_little(machines: &Path) -> anyhow::Result<()> {
    std::fs::write(
        machines.join("web01/var/www/site/page007.html"),
        "<p>edited</p>\n",
    )?;
    std::fs::write(
        machines.join("web01/var/www/site/new.html"),
        "<p>new page</p>\n",
    )?;
    let img = machines.join("db01/images/disk0.raw");
    let mut data = std::fs::read(&img)?;
    data[20 << 20..(20 << 20) + 65536].copy_from_slice(&noise(77, 65536));
    std::fs::write(&img, data)?;
    Ok(())
}

/// Path -> (kind, mode, content hash) for every entry under `root`.
fn digest(root: &Path) -> anyhow::Result<BTreeMap<PathBuf, String>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            let m = std::fs::symlink_metadata(&p)?;
            let what = if m.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&p)?)
            } else if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", m.permissions().mode())
            } else {
                format!(
                    "file {:o} {}",
                    m.permissions().mode(),
                    blake3::hash(&std::fs::read(&p)?)
                )
            };
            out.insert(p.strip_prefix(root)?.to_path_buf(), what);
        }
    }
    Ok(out)
}
