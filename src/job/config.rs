//! The jobs file's jobs: backup copy jobs as the runner uses them (every key in
//! docs/JOBS.md) — sources, target, mode, windows, retention, prune, scripts, reports,
//! throttle, archivers, health check and active full. Decoding them from TOML, with every
//! mistake and its line, is [`super::decode`]. Secrets never sit in the file: it names
//! the environment variable or file each password comes from.

use std::time::Duration;

use super::archivers::ArchiversSpec;
use super::report::ReportSpec;
use super::script::ScriptSpec;
use crate::copy::{ChainMode, Compression, Selection};
use crate::retention::Policy;
use crate::schedule::{Intervals, Windows};
pub use crate::secret::{EnvLookup, Secret};
use crate::store::throttle::ThrottleSpec;

/// A source repository and which of its points the job copies.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub url: String,
    pub password: Secret,
    pub machines: Vec<String>,
    pub jobs: Vec<String>,
    pub tags: Vec<(String, String)>,
    /// The line of its `url`, for later problems (unreachable).
    pub line: usize,
}

/// The target: a base URL under which the job writes its own repository (named after
/// the job), or — `map` — an existing repository the job continues.
#[derive(Clone, Debug)]
pub struct TargetSpec {
    pub url: String,
    pub map: bool,
    pub password: Secret,
    pub pack_size: Option<u64>,
    pub compression: Compression,
    pub chain: ChainMode,
    /// Class or tier of data packs (`target set --data-class`), checked per store.
    pub data_class: Option<String>,
    /// Object lock with each write; its days follow the retention (see `lock_days`).
    pub lock: Option<crate::format::config::LockMode>,
    pub lock_margin_days: u32,
    pub line: usize,
}

#[cfg(any(test, feature = "testkit"))]
impl SourceSpec {
    /// Every point of every machine of the repository at `url`, for tests.
    pub fn plain(url: &str, password: Secret) -> SourceSpec {
        SourceSpec {
            url: url.to_string(),
            password,
            machines: Vec::new(),
            jobs: Vec::new(),
            tags: Vec::new(),
            line: 1,
        }
    }
}

impl TargetSpec {
    /// A target at `url` (`URL/JOB` per job) with every optional part at its default,
    /// for tests.
    #[cfg(any(test, feature = "testkit"))]
    pub fn plain(url: &str, password: Secret) -> TargetSpec {
        TargetSpec {
            url: url.to_string(),
            map: false,
            password,
            pack_size: None,
            compression: crate::copy::Compression::Target,
            chain: crate::copy::ChainMode::PerMachine,
            line: 1,
            data_class: None,
            lock: None,
            lock_margin_days: 7,
        }
    }

    /// The repository the job `job` writes.
    pub fn repository_url(&self, job: &str) -> String {
        match self.map {
            true => self.url.clone(),
            false => format!("{}/{job}", self.url.trim_end_matches('/')),
        }
    }
}

/// When a job copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// At the start of each interval, each machine's newest point not yet copied.
    Periodic { intervals: Intervals },
    /// Each new point as soon as it appears, the sources looked at every `poll_every`.
    Immediate { poll_every: Duration },
}

/// Prune, when due.
#[derive(Clone, Debug, PartialEq)]
pub struct PruneSpec {
    pub every: Duration,
    pub repack_below: f64,
    pub grace: Duration,
}

/// The health check, when due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckSpec {
    pub every: Duration,
}

/// One backup copy job.
#[derive(Clone, Debug)]
pub struct Job {
    pub name: String,
    pub mode: Mode,
    pub max_tasks: usize,
    pub windows: Windows,
    pub sources: Vec<SourceSpec>,
    pub target: TargetSpec,
    pub retention: Policy,
    pub prune: Option<PruneSpec>,
    /// Run before the interval's first phase, and after its last.
    pub pre_script: Option<ScriptSpec>,
    pub post_script: Option<ScriptSpec>,
    /// Where each interval's report goes besides the runner's output.
    pub report: ReportSpec,
    /// How often the health check runs (none: never).
    pub health_check: Option<HealthCheckSpec>,
    /// Bandwidth limits and the ceiling of requests in flight.
    pub throttle: ThrottleSpec,
    /// The archiver appliances its transfers run on (none: in the runner).
    pub archivers: Option<ArchiversSpec>,
    /// Periodic jobs with `look_forward`: wait within the interval for a point made
    /// after it began, looking this often.
    pub look_forward: Option<Duration>,
    /// How often an active full runs (none: never).
    pub active_full: Option<Duration>,
    /// Copy, besides each machine's newest point, the points made since the last one
    /// copied that retention would keep (a point missed on a failed day still becomes
    /// its week's or month's point). On by default for periodic jobs.
    pub catch_up: bool,
    pub line: usize,
}

impl Job {
    /// The target's storage policy this job asks for: its data class, and a lock as
    /// long as simple retention keeps a point — `keep` × the interval (a day per point
    /// for immediate jobs), at least a day; GFS points' locks are extended to their
    /// periods when they are flagged.
    pub fn storage_policy(&self) -> crate::format::config::StoragePolicy {
        let lock = self.target.lock.map(|mode| {
            let every = match &self.mode {
                Mode::Periodic { intervals } => intervals.every.num_seconds().max(0) as u64,
                Mode::Immediate { .. } => 86_400,
            };
            let keep = u64::from(self.retention.keep.max(1));
            let secs = every.saturating_mul(keep);
            crate::format::config::LockPolicy {
                mode,
                days: (secs.div_ceil(86_400).max(1))
                    .min(u64::from(crate::format::config::MAX_LOCK_DAYS))
                    as u32,
                margin_days: self.target.lock_margin_days,
            }
        });
        crate::format::config::StoragePolicy {
            data_class: self.target.data_class.clone(),
            lock,
        }
    }

    /// A daily job from `sources` into `target` with every optional part at its
    /// default, for tests to change what they exercise.
    #[cfg(any(test, feature = "testkit"))]
    pub fn plain(name: &str, sources: Vec<SourceSpec>, target: TargetSpec) -> Job {
        Job {
            name: name.into(),
            mode: Mode::Periodic {
                intervals: Intervals {
                    every: chrono::Duration::days(1),
                    start_at: chrono::NaiveTime::MIN,
                },
            },
            max_tasks: 4,
            windows: Windows(Vec::new()),
            sources,
            target,
            retention: Policy::default(),
            prune: None,
            pre_script: None,
            post_script: None,
            report: ReportSpec::default(),
            health_check: None,
            throttle: ThrottleSpec::default(),
            archivers: None,
            look_forward: None,
            active_full: None,
            catch_up: true,
            line: 1,
        }
    }

    /// The copy engine's selection of one source's points.
    pub fn selection(&self, source: &SourceSpec) -> Selection {
        Selection {
            machines: source.machines.clone(),
            jobs: source.jobs.clone(),
            tags: source.tags.clone(),
            ..Default::default()
        }
    }
}

/// A decoded jobs file.
#[derive(Clone, Debug, Default)]
pub struct JobsFile {
    pub jobs: Vec<Job>,
}

impl JobsFile {
    pub fn job(&self, name: &str) -> Option<&Job> {
        self.jobs.iter().find(|j| j.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Option<String> {
        v.starts_with("OFFSITE_").then(|| "secret".to_string())
    }

    /// The example in docs/JOBS.md is accepted as written.
    #[test]
    fn the_documented_example_is_valid() {
        let doc = include_str!("../../docs/JOBS.md");
        let start = doc.find("```toml\n").expect("JOBS.md has a TOML example") + 8;
        let end = start + doc[start..].find("```").expect("the example ends");
        let file = JobsFile::parse_with(&doc[start..end], &env).unwrap_or_else(|p| {
            panic!("docs/JOBS.md's example: {p:?}");
        });
        let j = &file.jobs[0];
        assert_eq!(j.name, "offsite-nightly");
        assert_eq!(
            j.target.repository_url(&j.name),
            "s3://offsite-copies/jobs/offsite-nightly"
        );
        assert_eq!(j.windows.0.len(), 3);
        assert_eq!(j.retention.monthly, 12);
        assert_eq!(
            j.prune.as_ref().map(|p| p.every),
            Some(Duration::from_secs(7 * 86_400))
        );
        assert_eq!(
            j.sources[0].tags,
            vec![("env".to_string(), "prod".to_string())]
        );
    }

    /// Every mistake is reported at once, each at its own line.
    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let text = r#"
[[job]]
name = "a"
copy_every = "1 fortnight"
max_tasks = "four"
windows = ["mon-fri 20:00-06:00", "sat 01:00-02:00", "tue 22:00-23:00"]
colour = "blue"

[[job.sources]]
url = "s3://src/x"
password_env = "NOT_SET_ANYWHERE"

[job.target]
url = "s3://dst"
password_env = "OFFSITE_T"
pack_size = "huge"

[job.retention]
keep = -1
weekly_on = "caturday"

[[job]]
name = "a"
[[job.sources]]
url = "ftp://nowhere"
password_env = "OFFSITE_S"
password_file = "/x"
[job.pre_script]
command = []
on_failure = "ignore"
[job.throttle]
read = "20MB"
[[job.throttle.schedule]]
write = "1MB/s"
[job.archivers]
urls = ["ftp://archiver"]
redispatch = "sometimes"
"#;
        let problems = JobsFile::parse_with(text, &env).unwrap_err();
        let at = |line: usize, part: &str| {
            assert!(
                problems
                    .iter()
                    .any(|p| p.line == line && p.message.contains(part)),
                "no problem with {part:?} on line {line}: {problems:#?}"
            );
        };
        at(4, "copy_every");
        at(5, "max_tasks must be a whole number");
        at(6, "overlaps window \"mon-fri 20:00-06:00\"");
        at(7, "unknown key job \"a\".colour");
        at(11, "NOT_SET_ANYWHERE is not set");
        at(16, "pack_size");
        at(19, "keep = -1");
        at(20, "caturday");
        at(22, "named twice");
        at(25, "unknown scheme");
        at(26, "not both");
        at(22, "no [job.target]");
        at(
            28,
            "pre_script: command must be a list naming the program first",
        );
        at(30, "pre_script: on_failure = \"ignore\": fail or warn");
        at(32, "throttle.read = \"20MB\": a rate such as \"20MB/s\"");
        at(33, "no when");
        at(36, "\"ftp://archiver\" is neither an http(s):// URL");
        at(37, "redispatch is pool, local or fail");
        at(35, "no token_env or token_file");
    }

    /// A key set twice is named; keys a mode never reads are refused at their line;
    /// `catch_up` is on for periodic jobs unless turned off, off for immediate ones.
    #[test]
    fn duplicate_and_idle_keys_are_named() {
        let dup = "[[job]]\nname = \"a\"\nname = \"b\"\n";
        let problems = JobsFile::parse_with(dup, &env).unwrap_err();
        assert_eq!(problems[0].line, 3, "{problems:?}");
        assert!(
            problems[0].message.contains("duplicate key name"),
            "{problems:?}"
        );
        let job = |keys: &str| {
            format!(
                "[[job]]\nname = \"a\"\n{keys}\n[[job.sources]]\nurl = \"s3://s/x\"\npassword_env = \"OFFSITE_S\"\n[job.target]\nurl = \"s3://t\"\npassword_env = \"OFFSITE_T\"\n"
            )
        };
        let idle = job("mode = \"immediate\"\ncopy_every = \"1d\"\nstart_at = \"02:00\"");
        let problems = JobsFile::parse_with(&idle, &env).unwrap_err();
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![4, 5], "{problems:?}");
        assert!(
            problems[0]
                .message
                .contains("copy_every: only for mode = \"periodic\"")
        );
        let poll = job("poll_every = \"5m\"");
        let problems = JobsFile::parse_with(&poll, &env).unwrap_err();
        assert!(
            problems[0].message.starts_with("poll_every: only"),
            "{problems:?}"
        );
        assert!(
            JobsFile::parse_with(&job("look_forward = true\npoll_every = \"5m\""), &env).is_ok()
        );
        let periodic = JobsFile::parse_with(&job(""), &env).unwrap();
        assert!(periodic.jobs[0].catch_up);
        let off = JobsFile::parse_with(&job("catch_up = false"), &env).unwrap();
        assert!(!off.jobs[0].catch_up);
        let immediate = JobsFile::parse_with(&job("mode = \"immediate\""), &env).unwrap();
        assert!(!immediate.jobs[0].catch_up);
    }

    /// The target's storage keys: the class is checked against the URL's provider and
    /// spelt as it spells it; the lock lasts `keep` × the interval (+ margin).
    #[test]
    fn a_targets_class_and_lock_follow_its_provider_and_retention() {
        let file = |target: &str| {
            format!(
                "[[job]]\nname = \"a\"\ncopy_every = \"12h\"\n[[job.sources]]\nurl = \"s3://src/x\"\n\
                 password_env = \"OFFSITE_S\"\n[job.target]\npassword_env = \"OFFSITE_T\"\n{target}\n\
                 [job.retention]\nkeep = 5\n"
            )
        };
        let ok = JobsFile::parse_with(
            &file("url = \"s3://dst\"\ndata_class = \"deep_archive\"\nobject_lock = \"compliance\"\nlock_margin = \"2d\""),
            &env,
        )
        .unwrap();
        let p = ok.jobs[0].storage_policy();
        assert_eq!(p.data_class.as_deref(), Some("DEEP_ARCHIVE"));
        let l = p.lock.unwrap();
        // Five points twelve hours apart: three days (2.5 rounded up), plus two.
        assert_eq!(
            (l.mode, l.days, l.margin_days),
            (crate::format::config::LockMode::Compliance, 3, 2)
        );
        let problems = JobsFile::parse_with(
            &file("url = \"az://dst\"\ndata_class = \"GLACIER\"\nobject_lock = \"forever\""),
            &env,
        )
        .unwrap_err();
        let said = |line: usize, part: &str| {
            assert!(
                problems
                    .iter()
                    .any(|p| p.line == line && p.message.contains(part)),
                "no problem with {part:?} on line {line}: {problems:#?}"
            );
        };
        said(10, "not an Azure access tier");
        said(11, "not a lock mode");
        // A health check is allowed there (it looks at archived packs); an active full,
        // which must read them, is refused at its table's line.
        let checked = format!(
            "{}[job.health_check]\nevery = \"7d\"\n",
            file("url = \"s3://dst\"\ndata_class = \"GLACIER\"")
        );
        JobsFile::parse_with(&checked, &env).unwrap();
        let problems = JobsFile::parse_with(
            &format!(
                "{}[job.active_full]\nevery = \"30d\"\n",
                file("url = \"s3://dst\"\ndata_class = \"GLACIER\"")
            ),
            &env,
        )
        .unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.line == 13 && p.message.contains("retrieval")),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let problems = JobsFile::parse_with("[[job]]\nname = \"a\nx = 1\n", &env).unwrap_err();
        assert_eq!(problems[0].line, 2, "{problems:?}");
    }
}
