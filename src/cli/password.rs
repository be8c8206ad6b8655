//! Where passwords come from: a file, an environment variable, or a prompt on the
//! terminal — in that order. Nothing is ever read from a pipe by surprise.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, bail};

pub fn get(
    file: Option<&Path>,
    env: &str,
    flag: &str,
    prompt: &str,
    confirm: bool,
) -> anyhow::Result<Vec<u8>> {
    if let Some(f) = file {
        let s =
            std::fs::read(f).with_context(|| format!("reading password file {}", f.display()))?;
        let mut s = s;
        while matches!(s.last(), Some(b'\n' | b'\r')) {
            s.pop();
        }
        if s.is_empty() {
            bail!("password file {} is empty", f.display());
        }
        return Ok(s);
    }
    if let Ok(p) = std::env::var(env)
        && !p.is_empty()
    {
        return Ok(p.into_bytes());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no password given: set {env}, pass {flag} FILE, or run on a terminal to be asked");
    }
    let p = rpassword::prompt_password(prompt).context("reading the password")?;
    if p.is_empty() {
        bail!("an empty password is not allowed");
    }
    if confirm {
        let again = rpassword::prompt_password("Repeat it: ").context("reading the password")?;
        if again != p {
            bail!("the two passwords differ; nothing was changed");
        }
    }
    Ok(p.into_bytes())
}
