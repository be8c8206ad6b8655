//! The commands by name: each goes to its own file (`init`, `backup`, `points`,
//! `restore`, `check`, `copy`, …), which opens the repository, calls the library and
//! prints the result; the small ones (`ls`, `key`, `unlock`) are here.

use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;

use offsite::format::keyfile::KeyFile;
use offsite::format::{KEYS, key_id};
use offsite::keys;
use offsite::repo::WarmSpec;
use offsite::repo::lock::remove_locks;

use super::output::{json, table};
use super::repos::{open, open_warm};
use super::{Args, Command, KeyAction, password};

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pw_file = args.command.password_file();
    let pwf = pw_file.as_deref();
    match args.command {
        Command::Init(a) => super::init::run(*a, pwf).await,
        Command::Backup(a) => super::backup::run(*a, pwf).await,
        Command::Points(a) => super::points::run(*a, pwf).await,
        Command::Restore(a) => super::restore::run(*a, pwf).await,
        Command::Check(a) => super::check::run(*a, pwf).await,
        Command::Ls {
            repo,
            point,
            path,
            machine,
            json: as_json,
            ..
        } => {
            let r = open_warm(&repo, pwf, WarmSpec::READER).await?;
            let (id, p) = r.find_point(&point, machine.as_deref()).await?;
            super::ls::run(&r, &id, &p, path.as_deref(), as_json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Key { action } => key(action, pwf).await,
        Command::Target { action } => super::target::run(action, pwf).await,
        Command::Copy(c) => super::copy::run(*c, pwf).await,
        Command::Forget(f) => super::forget::run(*f, pwf).await,
        Command::Prune(p) => super::prune::run(*p, pwf).await,
        Command::Job { action } => super::job::run(action).await,
        Command::Demo { dir } => {
            super::demo::run(&dir).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Unlock { repo, all, .. } => {
            let r = open(&repo, pwf).await?;
            let now = r.clock().now();
            let removed = remove_locks(&r, all).await?;
            for l in &removed {
                println!("removed {}", l.describe(now));
            }
            println!("{} lock(s) removed", removed.len());
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn key(action: KeyAction, pwf: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    match action {
        KeyAction::Add {
            repo,
            new_password_file,
            ..
        } => {
            let r = open(&repo, pwf).await?;
            let pw = password::get(
                new_password_file.as_deref(),
                "OFFSITE_NEW_PASSWORD",
                "--new-password-file",
                "New password: ",
                true,
            )?;
            let name = r.add_key(&pw, keys::kdf_from_env()?).await?;
            println!("added key {name}");
        }
        KeyAction::List {
            repo,
            json: as_json,
            ..
        } => {
            let r = open(&repo, pwf).await?;
            let mut rows = Vec::new();
            let mut out = Vec::new();
            for m in r.list(KEYS).await? {
                let name = r.loc.name_of(&m.location);
                let bytes = r.get(&name).await?;
                let (kf, _) = KeyFile::decode(&name, &bytes)?;
                let id = key_id(&name).to_string();
                let created = chrono::DateTime::from_timestamp(kf.created, 0).unwrap_or_default();
                let current = name == r.key_name;
                rows.push(vec![
                    if current { "*".into() } else { String::new() },
                    id[..8.min(id.len())].to_string(),
                    created.format("%Y-%m-%d %H:%M:%S").to_string(),
                    kf.host.clone(),
                    format!(
                        "argon2id m={}MiB t={} p={}",
                        kf.params.m_cost_kib / 1024,
                        kf.params.t_cost,
                        kf.params.p_cost
                    ),
                ]);
                out.push(json!({"id": id, "current": current, "created": created, "host": kf.host, "kdf": kf.params}));
            }
            if as_json {
                json(&out);
            } else {
                table(&["", "ID", "CREATED (UTC)", "HOST", "KDF"], &rows);
            }
        }
        KeyAction::Remove { repo, id, .. } => {
            let r = open(&repo, pwf).await?;
            let names: Vec<String> = r
                .list(KEYS)
                .await?
                .iter()
                .map(|m| r.loc.name_of(&m.location))
                .collect();
            let matching: Vec<&String> = names
                .iter()
                .filter(|n| key_id(n).starts_with(&id.to_ascii_lowercase()))
                .collect();
            let name = match matching[..] {
                [one] => one.clone(),
                [] => bail!("no key {id:?}; `offsite key list` shows them"),
                _ => bail!("{id:?} matches {} keys: give more digits", matching.len()),
            };
            if name == r.key_name {
                bail!(
                    "{name} is the key you opened the repository with; open it with another password to remove this one"
                );
            }
            if names.len() < 2 {
                bail!("{name} is the last key: removing it would lock everyone out");
            }
            r.delete(&name).await.context("removing the key")?;
            println!("removed key {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
