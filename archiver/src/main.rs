//! `offsite-archiver`: the appliance that runs next to a source bucket and does the heavy
//! part of a backup copy (read, verify, re-seal, pack, upload) for a job runner that plans
//! and commits. Here it only says which version it is and which repository format it
//! writes; its API, task slots and health arrive with the archiver issue.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("--version" | "-V" | "version") => {
            println!(
                "offsite-archiver {} (repository format {})",
                env!("CARGO_PKG_VERSION"),
                offsite::format::VERSION
            );
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!(
                "offsite-archiver {}: unknown argument {other:?}; this version only answers --version",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::from(2)
        }
    }
}
