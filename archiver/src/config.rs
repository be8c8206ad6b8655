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

fn rate(key: &str, v: &Option<String>) -> anyhow::Result<Option<u64>> {
    let Some(v) = v else { return Ok(None) };
    let bytes = v
        .strip_suffix("/s")
        .and_then(|s| offsite::units::parse_size(s).ok())
        .filter(|b| *b > 0);
    match bytes {
        Some(b) => Ok(Some(b)),
        None => bail!("throttle.{key} = {v:?}: a rate such as \"20MB/s\""),
    }
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
    fn limits(&self) -> anyhow::Result<offsite::remote::listen::Limits> {
        let d = offsite::remote::listen::Limits::default();
        let count = |key: &str, v: Option<usize>, default: usize| match v {
            None => Ok(default),
            Some(n) if (1..=100_000).contains(&n) => Ok(n),
            Some(n) => bail!("connections.{key} = {n}: 1 to 100000"),
        };
        Ok(offsite::remote::listen::Limits {
            header_read: duration(
                "connections.header_timeout",
                &self.header_timeout,
                d.header_read,
                1..=600,
            )?,
            request: duration(
                "connections.request_timeout",
                &self.request_timeout,
                d.request,
                1..=3600,
            )?,
            max_connections: count("max", self.max, d.max_connections)?,
            max_unauthenticated: count(
                "max_unauthenticated",
                self.max_unauthenticated,
                d.max_unauthenticated,
            )?,
            ..d
        })
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
}

/// `key = "90s"`, within `range`, or `default`.
fn duration(
    key: &str,
    v: &Option<String>,
    default: std::time::Duration,
    range: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<std::time::Duration> {
    let Some(v) = v else { return Ok(default) };
    match offsite::units::parse_duration(v) {
        Ok(d) if range.contains(&d.as_secs()) => Ok(d),
        _ => bail!(
            "{key} = {v:?}: a duration such as \"60s\" or \"2m\", {} to {} seconds",
            range.start(),
            range.end()
        ),
    }
}

/// The accepted tokens: bare hashes (`tokens`, `tokens_file`: named `token-N`, every
/// repository, admin) and `[[token]]`s with a name and a scope.
fn tokens(f: &File) -> anyhow::Result<Vec<TokenSpec>> {
    let mut hashes = f.tokens.clone();
    if let Some(p) = &f.tokens_file {
        let t =
            std::fs::read_to_string(p).with_context(|| format!("tokens_file {}", p.display()))?;
        let lines = t.lines().map(str::trim).filter(|l| !l.is_empty());
        hashes.extend(lines.map(String::from));
    }
    let not_a_hash = |what: String| {
        anyhow::anyhow!(
            "{what}: not a hash made by `offsite-archiver hash-token` (blake3:<64 hex>); the \
             file holds hashes of tokens, never tokens"
        )
    };
    let mut tokens = Vec::new();
    for (n, h) in hashes.iter().enumerate() {
        let hash = parse_token_hash(h).ok_or_else(|| not_a_hash(format!("token {}", n + 1)))?;
        tokens.push(TokenSpec::unscoped(n + 1, hash));
    }
    for t in &f.named {
        if !valid_repository_name(&t.name) {
            bail!(
                "[[token]] name {:?}: 1 to 64 letters, digits, '.', '_' or '-'",
                t.name
            );
        }
        if tokens.iter().any(|o: &TokenSpec| o.name == t.name) {
            bail!("[[token]] {:?} is named twice", t.name);
        }
        let hash = parse_token_hash(&t.hash)
            .ok_or_else(|| not_a_hash(format!("[[token]] {:?}", t.name)))?;
        if let Some(r) = t
            .repositories
            .iter()
            .flatten()
            .find(|r| !f.repositories.iter().any(|c| &c.name == *r))
        {
            bail!(
                "[[token]] {:?}: repository {r:?} is not configured here",
                t.name
            );
        }
        tokens.push(TokenSpec {
            name: t.name.clone(),
            hash,
            repositories: t.repositories.clone(),
            admin: t.admin,
        });
    }
    if tokens.is_empty() {
        bail!(
            "no token: set tokens = [\"blake3:…\"], tokens_file or [[token]] (make hashes with \
             `offsite-archiver hash-token`)"
        );
    }
    Ok(tokens)
}

impl Config {
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the configuration {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let f: File = toml::from_str(text)?;
        if !(1..=256).contains(&f.task_slots) {
            bail!("task_slots = {}: 1 to 256", f.task_slots);
        }
        let tokens = tokens(&f)?;
        let mut repositories: Vec<RepoSpec> = Vec::new();
        for r in f.repositories {
            if !valid_repository_name(&r.name) {
                bail!(
                    "repository {:?}: a name is 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'",
                    r.name
                );
            }
            if repositories.iter().any(|s| s.name == r.name) {
                bail!("repository {:?} is named twice", r.name);
            }
            let password = match (r.password_file, r.password_env) {
                (Some(p), None) => Secret::File(p),
                (None, Some(e)) => Secret::Env(e),
                _ => bail!(
                    "repository {:?}: give exactly one of password_file and password_env",
                    r.name
                ),
            };
            let Some(role) = r.role else {
                bail!(
                    "repository {:?}: say its role: role = \"source\" (only ever read) or \
                     role = \"target\" (written into)",
                    r.name
                );
            };
            repositories.push(RepoSpec {
                name: r.name,
                url: r.url,
                password,
                role,
            });
        }
        if repositories.is_empty() {
            bail!("no [[repository]]: name the repositories the appliance may touch");
        }
        let rates = match &f.throttle {
            Some(t) => offsite::store::throttle::Rates {
                read: rate("read", &t.read)?,
                write: rate("write", &t.write)?,
            },
            None => Default::default(),
        };
        let lease = duration(
            "lease",
            &f.lease,
            offsite::remote::tasks::DEFAULT_LEASE,
            offsite::remote::api::LEASES,
        )?;
        let drain_timeout = duration(
            "drain_timeout",
            &f.drain_timeout,
            std::time::Duration::from_secs(120),
            0..=3600,
        )?;
        let limits = f.connections.unwrap_or_default().limits()?;
        Ok(Config {
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
