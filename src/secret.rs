//! Where a password comes from — an environment variable or a file — and reading it.
//! A leaf: the jobs file, the appliance's configuration and repository opening all name
//! secrets this way.

use std::path::PathBuf;

/// Where a password comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(PathBuf),
}

/// Looks up an environment variable (injected, so tests need not change the process's).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Secret {
    /// Reads the password (a file's trailing newline is not part of it).
    pub fn read(&self) -> Result<Vec<u8>, String> {
        self.read_with(&|v| std::env::var(v).ok())
    }

    /// [`Self::read`] with environment variables from `env`.
    pub fn read_with(&self, env: EnvLookup<'_>) -> Result<Vec<u8>, String> {
        match self {
            Secret::Env(v) => env(v)
                .map(String::into_bytes)
                .ok_or_else(|| format!("environment variable {v} is not set")),
            Secret::File(p) => std::fs::read(p)
                .map(|mut b| {
                    while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                        b.pop();
                    }
                    b
                })
                .map_err(|e| format!("password file {}: {e}", p.display())),
        }
    }
}
