//! `offsite init`: a new repository with its own key.

use std::path::Path;
use std::process::ExitCode;

use offsite::repo::{InitOptions, Repository};
use offsite::{keys, store};
use serde_json::json;

use super::output::{json, size};
use super::{PasswordFile, password};

#[derive(clap::Args, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub pw: PasswordFile,
    /// s3://bucket/prefix, az://container/prefix, file:///path or a path, memory://name
    pub repo: String,
    /// zstd level for new data (0 = store raw).
    #[arg(long, default_value_t = 3)]
    pub compression: i32,
    /// Target pack size, e.g. 16MiB.
    #[arg(long, default_value = "16MiB", value_parser = super::output::parse_size)]
    pub pack_size: u64,
    /// Print the result as JSON (the shapes are in docs/CLI.md).
    #[arg(long)]
    pub json: bool,
}

pub async fn run(a: InitArgs, pwf: Option<&Path>) -> anyhow::Result<ExitCode> {
    let InitArgs {
        repo,
        compression,
        pack_size,
        json: as_json,
        ..
    } = a;
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
    } else if !super::output::quiet() {
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
