//! The commands: each opens the repository, calls the library, prints the result.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::json;

use offsite::backup::{self, BackupOptions};
use offsite::check::{self, CheckOptions};
use offsite::format::keyfile::KeyFile;
use offsite::format::lock::LockKind;
use offsite::format::{KEYS, key_id};
use offsite::repo::lock::{list_locks, remove_locks};
use offsite::repo::{InitOptions, Repository, WarmSpec};
use offsite::{keys, restore, store};

use super::output::{json, size, table};
use super::repos::{PARTIAL, open, open_warm};
use super::{Args, Command, KeyAction, password};

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let pw_file = args.command.password_file();
    let pwf = pw_file.as_deref();
    match args.command {
        Command::Init {
            repo,
            compression,
            pack_size,
            json: as_json,
            ..
        } => {
            let loc = store::open(&repo, true)?;
            let pw = password::get(
                pwf,
                "OFFSITE_PASSWORD",
                "--password-file",
                "New repository password: ",
                true,
            )?;
            let opts = InitOptions {
                compression,
                pack_size,
                kdf: keys::kdf_from_env()?,
                ..Default::default()
            };
            let r = Repository::init(loc, &pw, opts).await?;
            if as_json {
                json(
                    &json!({"repository": r.config.id, "url": repo, "key": r.key_name, "config": r.config}),
                );
            } else {
                println!(
                    "created repository {} at {repo}\n  key {}\n  zstd level {}, packs of {}, chunks ~{}",
                    r.config.id.short(),
                    r.key_name,
                    r.config.compression,
                    size(r.config.pack_size),
                    size(u64::from(r.config.chunker.avg))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup {
            repo,
            machine,
            job,
            tags,
            base,
            host,
            json: as_json,
            paths,
            ..
        } => {
            let r = open(&repo, pwf).await?;
            let opts = BackupOptions {
                machine,
                job,
                tags: tags.into_iter().collect::<BTreeMap<_, _>>(),
                paths,
                base,
                host,
                time: None,
            };
            let started = std::time::Instant::now();
            let progress = super::progress::for_terminal("backup", None);
            let (id, point) = backup::run(r, opts, progress).await?;
            let secs = started.elapsed().as_secs_f64();
            let s = &point.summary;
            if as_json {
                json(
                    &json!({"point": id, "machine": point.machine, "job": point.job, "time": point.time,
                    "parent": point.parent, "summary": s, "seconds": secs}),
                );
            } else {
                println!(
                    "restore point {} of {} written\n  {} files, {} folders, {} symlinks, {}\n  added {} in {} new blobs\n  {:.1} s, {}/s",
                    id.short(),
                    point.machine,
                    s.files,
                    s.dirs,
                    s.symlinks,
                    size(s.bytes),
                    size(s.bytes_added),
                    s.blobs_added,
                    secs,
                    size((s.bytes as f64 / secs.max(1e-3)) as u64)
                );
                if s.errors > 0 {
                    println!(
                        "  {} entries could not be read and were left out (see the warnings above)",
                        s.errors
                    );
                }
            }
            Ok(if s.errors > 0 {
                ExitCode::from(PARTIAL)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Points {
            repo,
            machine,
            json: as_json,
            ..
        } => {
            let r = open_warm(&repo, pwf, WarmSpec::POINTS).await?;
            let points: Vec<_> = r
                .load_points()
                .await?
                .into_iter()
                .filter(|(_, p)| machine.as_ref().is_none_or(|m| &p.machine == m))
                .collect();
            let marks = r.load_marks().await?;
            let marks_of = |id: &offsite::Id| marks.get(id).map(Vec::as_slice).unwrap_or_default();
            let now = r.clock().now();
            let locks = list_locks(&r).await?;
            let writing: Vec<_> = locks
                .iter()
                .filter(|l| !l.lock.is_stale(now) && l.lock.machine.is_some())
                .filter(|l| {
                    machine
                        .as_ref()
                        .is_none_or(|m| l.lock.machine.as_ref() == Some(m))
                })
                .collect();
            let stale: Vec<_> = locks.iter().filter(|l| l.lock.is_stale(now)).collect();
            if as_json {
                let pts: Vec<_> = points
                    .iter()
                    .map(|(id, p)| {
                        json!({"id": id, "time": p.time, "machine": p.machine, "job": p.job, "host": p.host,
                            "tags": p.tags, "parent": p.parent, "paths": p.paths, "summary": p.summary, "source": p.source,
                            "marks": marks_of(id).iter().map(|m| json!({"kind": m.kind, "detail": m.detail,
                                "set_at": m.set_at, "until": m.until})).collect::<Vec<_>>()})
                    })
                    .collect();
                let w: Vec<_> = writing
                    .iter()
                    .map(|l| json!({"machine": l.lock.machine, "operation": l.lock.operation, "host": l.lock.host,
                        "pid": l.lock.pid, "since": l.lock.created, "lock": l.name}))
                    .collect();
                let st: Vec<_> = stale
                    .iter()
                    .map(|l| json!({"lock": l.name, "machine": l.lock.machine, "host": l.lock.host, "expired": l.lock.expires}))
                    .collect();
                json(&json!({"points": pts, "in_progress": w, "stale_locks": st}));
            } else {
                let rows: Vec<Vec<String>> = points
                    .iter()
                    .map(|(id, p)| {
                        vec![
                            id.short(),
                            p.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                            p.machine.clone(),
                            p.job.clone().unwrap_or_default(),
                            p.host.clone(),
                            p.summary.files.to_string(),
                            size(p.summary.bytes),
                            p.tags
                                .iter()
                                .map(|(k, v)| format!("{k}={v}"))
                                .collect::<Vec<_>>()
                                .join(","),
                            marks_of(id)
                                .iter()
                                .filter(|m| m.until.is_none_or(|u| u > now))
                                .map(|m| m.kind.to_string())
                                .collect::<Vec<_>>()
                                .join(","),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "ID",
                        "TIME (UTC)",
                        "MACHINE",
                        "JOB",
                        "HOST",
                        "FILES",
                        "SIZE",
                        "TAGS",
                        "MARKS",
                    ],
                    &rows,
                );
                println!("{} restore point(s)", points.len());
                for l in writing {
                    println!("being written: {}", l.describe(now));
                }
                for l in stale {
                    println!("warning: {}", l.describe(now));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore {
            repo,
            point,
            machine,
            to,
            connections,
            include,
            exclude,
            retrieve,
            json: as_json,
            ..
        } => {
            let r = open_warm(&repo, pwf, WarmSpec::READER).await?;
            let (id, p) = r.find_point(&point, machine.as_deref()).await?;
            let started = std::time::Instant::now();
            let before = r.loc.requests.snapshot();
            let filter = restore::PathFilter::new(&include, &exclude)?;
            // On a tiered target, what the point reads is looked at (and retrieved when
            // asked) before anything is written.
            let index = match super::retrieve::worth_a_look(&r, &retrieve) {
                true => {
                    Some(super::retrieve::prepare(&r, &id, &p, &filter, &retrieve, false).await?)
                }
                false => None,
            };
            let progress = super::progress::for_terminal("restore", Some(p.summary.bytes));
            let opts = restore::RestoreOptions {
                connections,
                filter,
                index,
            };
            let stats = restore::run_with(&r, &id, &p, &to, &opts, &progress).await?;
            let secs = started.elapsed().as_secs_f64();
            let requests = r.loc.requests.snapshot().since(&before);
            if as_json {
                json(
                    &json!({"point": id, "machine": p.machine, "to": to, "stats": stats, "seconds": secs, "requests": requests}),
                );
            } else {
                println!(
                    "restored point {} of {} to {}\n  {} files, {} folders, {} symlinks, {} in {:.1} s ({} GETs, {} read)",
                    id.short(),
                    p.machine,
                    to.display(),
                    stats.files,
                    stats.dirs,
                    stats.symlinks,
                    size(stats.bytes),
                    secs,
                    requests.get,
                    size(requests.bytes_in)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            repo,
            read_data,
            retrieve,
            json: as_json,
            ..
        } => {
            let r = open(&repo, pwf).await?;
            if read_data && super::retrieve::worth_a_look(&r, &retrieve) {
                super::retrieve::prepare_check(&r, &retrieve).await?;
            }
            let lock = offsite::repo::lock::LockGuard::acquire(&r, LockKind::Shared, "check", None)
                .await?;
            let progress = super::progress::for_terminal("check", None);
            let report = check::run(&r, &CheckOptions { read_data }, &progress).await;
            lock.release().await?;
            let report = report?;
            if as_json {
                json(&report);
            } else {
                for w in &report.warnings {
                    println!("warning: {}: {}", w.object, w.message);
                }
                for e in &report.errors {
                    println!("error: {}: {}", e.object, e.message);
                }
                println!(
                    "checked {} index file(s), {} pack(s), {} blob(s), {} restore point(s){}: {}",
                    report.indexes,
                    report.packs,
                    report.blobs,
                    report.points,
                    if read_data {
                        format!(", read {}", size(report.bytes_read))
                    } else {
                        String::new()
                    },
                    if report.is_ok() {
                        "no errors".to_string()
                    } else {
                        format!("{} ERROR(S)", report.errors.len())
                    }
                );
            }
            Ok(if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
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
