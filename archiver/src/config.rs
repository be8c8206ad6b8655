//! The appliance's configuration file (TOML; every key in docs/ARCHIVER.md): where it
//! listens, its TLS certificate and key, the hashes of the tokens it accepts, its task
//! slots, and the repositories it may touch by name, each with the file or environment
//! variable holding its password. Store credentials come from the environment (or the
//! cloud's instance identity), never from the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use offsite::remote::api::valid_repository_name;
use offsite::remote::tokens::{TokenSpec, parse_token_hash};
use offsite::remote::workshop::RepoSpec;
use offsite::secret::Secret;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    listen: SocketAddr,
    #[serde(default = "four")]
    task_slots: usize,
    #[serde(default)]
    tokens: Vec<String>,
    tokens_file: Option<PathBuf>,
    /// Named tokens with scopes.
    #[serde(default, rename = "token")]
    named: Vec<NamedToken>,
    tls: Option<Tls>,
    throttle: Option<Throttle>,
    /// How long a task whose runner asks for no lease lives without a poll.
    lease: Option<String>,
    /// How long a stopping appliance keeps answering for its runners' last packs.
    drain_timeout: Option<String>,
    /// Bounds on connections (docs/ARCHIVER.md).
    connections: Option<Connections>,
    /// What the large blob tables of all tasks hold in memory together, as `"512MiB"`
    /// (the command line's `--memory`); past it they spill to `cache_dir`.
    memory: Option<String>,
    /// Where spilled tables go (the command line's `--cache-dir`).
    cache_dir: Option<PathBuf>,
    #[serde(default, rename = "repository")]
    repositories: Vec<Repo>,
}

/// Caps on the appliance's store traffic, as rates such as `"20MB/s"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Throttle {
    read: Option<String>,
    write: Option<String>,
}

fn rate(p: &mut Problems, key: &str, v: &Option<String>) -> Option<u64> {
    let v = v.as_ref()?;
    let bytes = v
        .strip_suffix("/s")
        .and_then(|s| offsite::units::parse_size(s).ok())
        .filter(|b| *b > 0);
    if bytes.is_none() {
        let path = format!("throttle.{key}");
        p.add(
            At::Key(&path),
            format!("{path} = {v:?}: a rate such as \"20MB/s\""),
        );
    }
    bytes
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Connections {
    header_timeout: Option<String>,
    request_timeout: Option<String>,
    max: Option<usize>,
    max_unauthenticated: Option<usize>,
}

impl Connections {
    fn limits(&self, p: &mut Problems) -> offsite::remote::listen::Limits {
        let d = offsite::remote::listen::Limits::default();
        let mut count = |key: &str, v: Option<usize>, default: usize| match v {
            None => default,
            Some(n) if (1..=100_000).contains(&n) => n,
            Some(n) => {
                let path = format!("connections.{key}");
                p.add(At::Key(&path), format!("{path} = {n}: 1 to 100000"));
                default
            }
        };
        let max_connections = count("max", self.max, d.max_connections);
        let max_unauthenticated = count(
            "max_unauthenticated",
            self.max_unauthenticated,
            d.max_unauthenticated,
        );
        offsite::remote::listen::Limits {
            header_read: duration(
                p,
                "connections.header_timeout",
                &self.header_timeout,
                d.header_read,
                1..=600,
            ),
            request: duration(
                p,
                "connections.request_timeout",
                &self.request_timeout,
                d.request,
                1..=3600,
            ),
            max_connections,
            max_unauthenticated,
            ..d
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamedToken {
    name: String,
    hash: String,
    /// The repositories its tasks may name (all when absent).
    repositories: Option<Vec<String>>,
    #[serde(default)]
    admin: bool,
}

fn four() -> usize {
    4
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Repo {
    name: String,
    role: Option<offsite::remote::workshop::Role>,
    url: String,
    password_file: Option<PathBuf>,
    password_env: Option<String>,
}

/// Where a mistake is, for its line: a key (`task_slots`, `throttle.write`), the
/// `[[repository]]` or `[[token]]` of a name.
enum At<'a> {
    Key(&'a str),
    Repository(&'a str),
    Token(&'a str),
    File,
}

/// Every mistake found, each with its line: a file is checked whole, not to its first.
struct Problems<'t> {
    text: &'t str,
    found: Vec<String>,
}

impl<'t> Problems<'t> {
    fn add(&mut self, at: At<'_>, what: impl std::fmt::Display) {
        match self.line(&at) {
            Some(n) => self.found.push(format!("line {n}: {what}")),
            None => self.found.push(what.to_string()),
        }
    }

    /// The line of `at` in the text (1-based), when it can be told.
    fn line(&self, at: &At<'_>) -> Option<usize> {
        let lines: Vec<&str> = self.text.lines().collect();
        let key_of = |l: &str| l.split('=').next().map(str::trim).unwrap_or("").to_string();
        let named = |table: &str, name: &str| {
            let mut inside = false;
            lines.iter().position(|l| {
                let t = l.trim();
                if t.starts_with('[') {
                    inside = t == table;
                }
                inside && key_of(t) == "name" && t.contains(&format!("\"{name}\""))
            })
        };
        let found = match at {
            At::Key(path) => {
                let (table, key) = match path.split_once('.') {
                    Some((t, k)) => (format!("[{t}]"), k),
                    None => (String::new(), *path),
                };
                let mut current = String::new();
                lines.iter().position(|l| {
                    let t = l.trim();
                    if t.starts_with('[') {
                        current = t.to_string();
                    }
                    current == table && key_of(t) == key && t.contains('=')
                })
            }
            At::Repository(name) => named("[[repository]]", name),
            At::Token(name) => named("[[token]]", name),
            At::File => None,
        };
        found.map(|i| i + 1)
    }
}

/// The configuration, checked.
#[derive(Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub task_slots: usize,
    pub tokens: Vec<TokenSpec>,
    pub tls: Option<Tls>,
    pub rates: offsite::store::throttle::Rates,
    pub repositories: Vec<RepoSpec>,
    pub lease: std::time::Duration,
    pub drain_timeout: std::time::Duration,
    pub limits: offsite::remote::listen::Limits,
    /// The memory budget (`None`: the default, sized from the machine or container).
    pub memory: Option<u64>,
    pub cache_dir: Option<PathBuf>,
}

/// `key = "90s"`, within `range`, or `default`.
fn duration(
    p: &mut Problems,
    key: &str,
    v: &Option<String>,
    default: std::time::Duration,
    range: std::ops::RangeInclusive<u64>,
) -> std::time::Duration {
    let Some(v) = v else { return default };
    match offsite::units::parse_duration(v) {
        Ok(d) if range.contains(&d.as_secs()) => d,
        _ => {
            let what = format!(
                "{key} = {v:?}: a duration such as \"60s\" or \"2m\", {} to {} seconds",
                range.start(),
                range.end()
            );
            p.add(At::Key(key), what);
            default
        }
    }
}

/// The accepted tokens: bare hashes (`tokens`, `tokens_file`: named `token-N`, every
/// repository, admin) and `[[token]]`s with a name and a scope.
fn tokens(f: &File, p: &mut Problems) -> Vec<TokenSpec> {
    let mut hashes = f.tokens.clone();
    if let Some(file) = &f.tokens_file {
        match std::fs::read_to_string(file) {
            Ok(t) => {
                let lines = t.lines().map(str::trim).filter(|l| !l.is_empty());
                hashes.extend(lines.map(String::from));
            }
            Err(e) => p.add(
                At::Key("tokens_file"),
                format!("tokens_file {}: {e}", file.display()),
            ),
        }
    }
    let not_a_hash = "not a hash made by `offsite-archiver hash-token` (blake3:<64 hex>); the \
                      file holds hashes of tokens, never tokens";
    let mut tokens = Vec::new();
    for (n, h) in hashes.iter().enumerate() {
        match parse_token_hash(h) {
            Some(hash) => tokens.push(TokenSpec::unscoped(n + 1, hash)),
            None => p.add(At::Key("tokens"), format!("token {}: {not_a_hash}", n + 1)),
        }
    }
    for t in &f.named {
        let at = || At::Token(&t.name);
        if !valid_repository_name(&t.name) {
            let what = format!(
                "[[token]] name {:?}: 1 to 64 letters, digits, '.', '_' or '-'",
                t.name
            );
            p.add(at(), what);
        }
        if tokens.iter().any(|o: &TokenSpec| o.name == t.name) {
            p.add(at(), format!("[[token]] {:?} is named twice", t.name));
        }
        let unknown = (t.repositories.iter().flatten())
            .filter(|r| !f.repositories.iter().any(|c| &c.name == *r));
        for r in unknown {
            p.add(
                at(),
                format!(
                    "[[token]] {:?}: repository {r:?} is not configured here",
                    t.name
                ),
            );
        }
        match parse_token_hash(&t.hash) {
            Some(hash) => tokens.push(TokenSpec {
                name: t.name.clone(),
                hash,
                repositories: t.repositories.clone(),
                admin: t.admin,
            }),
            None => p.add(at(), format!("[[token]] {:?}: {not_a_hash}", t.name)),
        }
    }
    if tokens.is_empty() && p.found.is_empty() {
        p.add(
            At::File,
            "no token: set tokens = [\"blake3:…\"], tokens_file or [[token]] (make hashes with \
             `offsite-archiver hash-token`)",
        );
    }
    tokens
}

/// The `[[repository]]`s, checked.
fn repositories(f: Vec<Repo>, p: &mut Problems) -> Vec<RepoSpec> {
    let mut repositories: Vec<RepoSpec> = Vec::new();
    for r in f {
        let at = || At::Repository(&r.name);
        if !valid_repository_name(&r.name) {
            let what = format!(
                "repository {:?}: a name is 1 to 64 letters, digits, '.', '_' or '-', not \
                 starting with '.'",
                r.name
            );
            p.add(at(), what);
        }
        if repositories.iter().any(|s| s.name == r.name) {
            p.add(at(), format!("repository {:?} is named twice", r.name));
        }
        let password = match (&r.password_file, &r.password_env) {
            (Some(f), None) => Some(Secret::File(f.clone())),
            (None, Some(e)) => Some(Secret::Env(e.clone())),
            _ => {
                let what = format!(
                    "repository {:?}: give exactly one of password_file and password_env",
                    r.name
                );
                p.add(at(), what);
                None
            }
        };
        if r.role.is_none() {
            let what = format!(
                "repository {:?}: say its role: role = \"source\" (only ever read) or \
                 role = \"target\" (written into)",
                r.name
            );
            p.add(at(), what);
        }
        if let (Some(password), Some(role)) = (password, r.role) {
            repositories.push(RepoSpec {
                name: r.name.clone(),
                url: r.url.clone(),
                password,
                role,
            });
        }
    }
    if repositories.is_empty() && p.found.is_empty() {
        p.add(
            At::File,
            "no [[repository]]: name the repositories the appliance may touch",
        );
    }
    repositories
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// The configuration in `text`, or every mistake in it, each with its line.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let f: File = toml::from_str(text)?;
        let mut p = Problems {
            text,
            found: Vec::new(),
        };
        if !(1..=256).contains(&f.task_slots) {
            let what = format!("task_slots = {}: 1 to 256", f.task_slots);
            p.add(At::Key("task_slots"), what);
        }
        let tokens = tokens(&f, &mut p);
        let rates = match &f.throttle {
            Some(t) => offsite::store::throttle::Rates {
                read: rate(&mut p, "read", &t.read),
                write: rate(&mut p, "write", &t.write),
            },
            None => Default::default(),
        };
        let (lease, drain) = (&f.lease, &f.drain_timeout);
        let leases = offsite::remote::api::LEASES;
        let lease = duration(
            &mut p,
            "lease",
            lease,
            offsite::remote::tasks::DEFAULT_LEASE,
            leases,
        );
        let two_minutes = std::time::Duration::from_secs(120);
        let drain_timeout = duration(&mut p, "drain_timeout", drain, two_minutes, 0..=3600);
        let limits = f
            .connections
            .as_ref()
            .map_or_else(Default::default, |c| c.limits(&mut p));
        let memory = f.memory.as_ref().and_then(|m| {
            let bytes = offsite::units::parse_size(m).ok().filter(|b| *b >= 1 << 20);
            if bytes.is_none() {
                let what = format!("memory = {m:?}: a size such as \"512MiB\", at least 1MiB");
                p.add(At::Key("memory"), what);
            }
            bytes
        });
        let repositories = repositories(f.repositories, &mut p);
        if !p.found.is_empty() {
            bail!("{}", p.found.join("\n"));
        }
        Ok(Config {
            memory,
            cache_dir: f.cache_dir,
            limits,
            lease,
            drain_timeout,
            listen: f.listen,
            task_slots: f.task_slots,
            tokens,
            tls: f.tls,
            rates,
            repositories,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    fn with(extra: &str) -> String {
        format!(
            "listen = \"127.0.0.1:9443\"\ntokens = [\"{HASH}\"]\n{extra}\n\
             [[repository]]\nname = \"primary\"\nrole = \"source\"\nurl = \"s3://b/p\"\npassword_env = \"PW\"\n"
        )
    }

    #[test]
    fn a_good_file_parses() {
        let c = Config::parse(&with("task_slots = 2")).unwrap();
        assert_eq!(
            (c.task_slots, c.repositories.len(), c.tokens.len()),
            (2, 1, 1)
        );
        assert_eq!((c.memory, c.cache_dir), (None, None));
        let c = Config::parse(&with("memory = \"512MiB\"\ncache_dir = \"/var/cache/o\"")).unwrap();
        assert_eq!(c.memory, Some(512 << 20));
        assert_eq!(c.cache_dir.as_deref(), Some(Path::new("/var/cache/o")));
    }

    /// Every mistake of a file at once, each with its line.
    #[test]
    fn every_mistake_with_its_line() {
        let text = format!(
            "listen = \"127.0.0.1:9443\"\ntokens = [\"{HASH}\"]\ntask_slots = 0\nlease = \"1s\"\n\
             [[repository]]\nname = \"primary\"\nurl = \"s3://b/p\"\npassword_env = \"PW\"\n\
             [[repository]]\nname = \"offsite\"\nrole = \"target\"\nurl = \"s3://b/q\"\n"
        );
        let e = format!("{:#}", Config::parse(&text).unwrap_err());
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 4, "{e}");
        assert!(lines[0].starts_with("line 3: task_slots"), "{e}");
        assert!(lines[1].starts_with("line 4: lease"), "{e}");
        assert!(
            lines[2].starts_with("line 6: repository \"primary\": say its role"),
            "{e}"
        );
        assert!(
            lines[3].starts_with("line 10: repository \"offsite\": give exactly one"),
            "{e}"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (with("colour = 1"), "unknown field `colour`"),
            (with("task_slots = 0"), "task_slots"),
            (with("lease = \"1s\""), "lease"),
            (with("[connections]\nmax = 0"), "connections.max"),
            (
                with("[connections]\nheader_timeout = \"0s\""),
                "connections.header_timeout",
            ),
            (with("drain_timeout = \"soon\""), "drain_timeout"),
            (with("memory = \"lots\""), "memory = \"lots\": a size"),
            (with("[throttle]\nwrite = \"fast\""), "throttle.write"),
            (
                "listen = \"127.0.0.1:1\"\ntokens = [\"hunter2\"]".to_string(),
                "not a hash",
            ),
            (
                with("").replace("name = \"primary\"", "name = \"../x\""),
                "a name is",
            ),
            (
                with("").replace("password_env = \"PW\"", ""),
                "exactly one of password_file and password_env",
            ),
            (
                with("").replace(&format!("tokens = [\"{HASH}\"]"), ""),
                "no token",
            ),
        ];
        for (text, says) in cases {
            let e = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(e.contains(says), "{e} (wanted {says})");
        }
    }
}
