//! `offsite target`: prepare a target's bucket (`create`, `verify`) and set a target
//! repository's storage policy (`set`: the class of its data packs, its object lock).

use std::process::ExitCode;

use offsite::format::config::{LockMode, LockPolicy, StoragePolicy};

use super::PasswordFile;
use super::output::json;
use super::repos::open;

#[derive(clap::Subcommand, Debug)]
pub enum TargetAction {
    /// Set where data packs go and how long what is written is locked. Applies to what
    /// is written from now on; everything a plan reads (config, keys, index, points,
    /// locks, job state, tree blobs) stays in the store's default class.
    Set(Box<SetArgs>),
    /// Create the bucket (or Azure container) a target lives in, or complete it:
    /// versioning and object lock when asked, and a lifecycle rule aborting incomplete
    /// multipart uploads. Says what could not be done (Azure's immutability is set on
    /// the account, through Resource Manager: terraform/azure).
    Create(BucketArgs),
    /// Check the bucket (or Azure container) a target lives in has what offsite needs,
    /// and say what is missing (exit 1 when something is).
    Verify(BucketArgs),
    /// Verify that every restore point, and every object it needs, is locked at least
    /// until its date (its time + the lock's days, or its GFS flag's end; + margin).
    /// Exit 1 when something is not.
    CheckImmutable {
        #[command(flatten)]
        pw: PasswordFile,
        repo: String,
        /// Extend every lock found too short to the date it needs.
        #[arg(long)]
        extend: bool,
        /// Print the result as JSON (the shapes are in docs/CLI.md).
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct BucketArgs {
    /// s3://bucket[/prefix]
    pub url: String,
    /// Object lock on the bucket (set on creation only; the mode is chosen per write by
    /// `offsite target set --lock`).
    #[arg(long, value_name = "MODE")]
    pub object_lock: Option<LockMode>,
    /// Versioning on (object lock turns it on too).
    #[arg(long)]
    pub versioning: bool,
    /// Print the result as JSON (the shapes are in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    #[command(flatten)]
    pub pw: PasswordFile,
    pub repo: String,
    /// Storage class (S3: STANDARD_IA, GLACIER_IR, GLACIER, DEEP_ARCHIVE, …) or access
    /// tier (Azure: Hot, Cool, Cold, Archive) of new data packs.
    #[arg(long, value_name = "CLASS", conflicts_with = "default_class")]
    pub data_class: Option<String>,
    /// Put new data packs in the store's default class again.
    #[arg(long)]
    pub default_class: bool,
    /// Lock each pack and point with its write: governance or compliance.
    #[arg(long, value_name = "MODE", conflicts_with = "no_lock")]
    pub lock: Option<LockMode>,
    /// How long a new point and its packs stay locked at least (a job sets it from its
    /// retention), e.g. 30d.
    #[arg(long, value_name = "DAYS", value_parser = parse_days, requires = "lock")]
    pub lock_days: Option<u32>,
    /// Added to every retain-until date, e.g. 7d.
    #[arg(long, value_name = "DAYS", value_parser = parse_days, default_value = "7d", requires = "lock")]
    pub lock_margin: u32,
    /// Stop locking new writes (what is locked stays locked until its date).
    #[arg(long)]
    pub no_lock: bool,
    /// Print the result as JSON (the shapes are in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

/// `30d`, `2w`, `1y` or a bare number of days.
pub fn parse_days(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (n, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "d"),
    };
    let n: u32 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a number of days (30d, 2w, 1y)"))?;
    let per = match unit {
        "d" => 1,
        "w" => 7,
        "y" => 365,
        _ => return Err(format!("{s:?}: write days as 30d, 2w or 1y")),
    };
    n.checked_mul(per)
        .ok_or_else(|| format!("{s:?} is too many days"))
}

impl TargetAction {
    pub fn password_file(&self) -> Option<&PasswordFile> {
        match self {
            TargetAction::Set(a) => Some(&a.pw),
            TargetAction::CheckImmutable { pw, .. } => Some(pw),
            TargetAction::Create(_) | TargetAction::Verify(_) => None,
        }
    }
}

pub async fn run(action: TargetAction, pwf: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    match action {
        TargetAction::Set(a) => set(*a, pwf).await,
        TargetAction::Create(a) => bucket(a, true).await,
        TargetAction::Verify(a) => bucket(a, false).await,
        TargetAction::CheckImmutable {
            repo, json, extend, ..
        } => check_immutable(&repo, json, extend, pwf).await,
    }
}

async fn check_immutable(
    url: &str,
    as_json: bool,
    extend: bool,
    pwf: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let repo = open(url, pwf).await?;
    let Some(policy) = repo.config.storage.lock else {
        anyhow::bail!(
            "{url}: the repository does not lock what it writes; turn it on with `offsite \
             target set {url} --lock governance --lock-days N`"
        );
    };
    let (index, marks) = tokio::try_join!(repo.load_index(), repo.load_marks())?;
    let until = |id: &offsite::Id, p: &offsite::format::point::Point| {
        let m = marks.get(id).map(Vec::as_slice).unwrap_or_default();
        offsite::immutability::point_until(&policy, p, m)
    };
    let mut v = offsite::immutability::verify(&repo, &index, until).await?;
    if extend && !v.unlocked.is_empty() {
        let short: std::collections::HashSet<offsite::Id> =
            v.unlocked.iter().map(|u| u.point).collect();
        let points: Vec<_> = repo
            .load_points_by_id(short.into_iter().collect())
            .await?
            .into_iter()
            .map(|(id, p)| {
                let u = until(&id, &p);
                (id, p, u)
            })
            .collect();
        let h = offsite::immutability::hold(&repo, &index, &points).await?;
        eprintln!(
            "extended {} lock(s) of {} object(s) looked at",
            h.extended, h.looked
        );
        v = offsite::immutability::verify(&repo, &index, until).await?;
    }
    if as_json {
        json(&v);
    } else {
        for u in &v.unlocked {
            println!(
                "{}: needed by point {} of {} until {}, {}",
                u.object,
                u.point.short(),
                u.machine,
                u.needed.format("%Y-%m-%d"),
                match u.locked_until {
                    Some(t) => format!("locked only until {}", t.format("%Y-%m-%d")),
                    None => "not locked".to_string(),
                }
            );
        }
        println!(
            "{} restore point(s), {} object(s) looked at: {}",
            v.points,
            v.objects,
            match v.unlocked.len() {
                0 => "every one is locked long enough".to_string(),
                n => format!("{n} not locked long enough (--extend extends them)"),
            }
        );
    }
    Ok(match v.unlocked.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

async fn bucket(a: BucketArgs, create: bool) -> anyhow::Result<ExitCode> {
    let loc = offsite::store::open(&a.url, false)?;
    let wants = offsite::target::Wants {
        object_lock: a.object_lock.is_some(),
        versioning: a.versioning,
    };
    let v = match create {
        true => offsite::target::create(&loc, wants).await?,
        false => offsite::target::verify(&loc, wants).await?,
    };
    if a.json {
        json(&v);
    } else {
        for c in &v.changed {
            println!("{c}");
        }
        let s = &v.settings;
        if s.exists && loc.kind == offsite::store::StoreKind::Azure {
            println!(
                "container {}: version-level immutability {}; uncommitted blocks are \
                 discarded by the service after 7 days",
                v.bucket,
                on_off(s.object_lock),
            );
        } else if s.exists {
            println!(
                "bucket {}: versioning {}, object lock {}, incomplete multipart uploads {}",
                v.bucket,
                on_off(s.versioning),
                on_off(s.object_lock),
                match s.abort_incomplete_multipart_days {
                    Some(d) => format!("aborted after {d} days"),
                    None => "kept forever".to_string(),
                }
            );
        }
        for m in &v.missing {
            println!("missing: {m}");
        }
        if v.missing.is_empty() {
            println!("ready for offsite");
        }
    }
    Ok(match v.missing.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

async fn set(a: SetArgs, pwf: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let repo = open(&a.repo, pwf).await?;
    let mut repo = (*repo).clone();
    let mut storage: StoragePolicy = repo.config.storage.clone();
    if a.default_class {
        storage.data_class = None;
    } else if let Some(c) = a.data_class {
        storage.data_class = Some(c);
    }
    if a.no_lock {
        storage.lock = None;
    } else if let Some(mode) = a.lock {
        let days = match (a.lock_days, storage.lock) {
            (Some(d), _) => d,
            (None, Some(l)) => l.days,
            (None, None) => anyhow::bail!(
                "--lock needs --lock-days the first time: how long a new point stays locked \
                 at least (a job sets it from its retention)"
            ),
        };
        storage.lock = Some(LockPolicy {
            mode,
            days,
            margin_days: a.lock_margin,
        });
    }
    repo.set_storage(storage).await?;
    let s = &repo.config.storage;
    if a.json {
        json(&s);
    } else {
        println!(
            "data packs: {}",
            s.data_class
                .as_deref()
                .unwrap_or("the store's default class")
        );
        match &s.lock {
            Some(l) => println!(
                "lock: {} for at least {} days (+{} days margin) from each write",
                l.mode.as_str(),
                l.days,
                l.margin_days
            ),
            None => println!("lock: none"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
