//! The `offsite` command line. Parsing, passwords and printing live here; the work is
//! done by the library. Exit codes: 0 success, 1 failure, 2 usage error, 3 finished but
//! with some entries skipped or some work failed (partial).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
    quiet_on_closed_pipe();
    let args = cli::Args::parse();
    // Deployment checks (terraform/check.sh): the arguments a container would be
    // started with are parsed, and nothing runs.
    if std::env::var_os("OFFSITE_CHECK_ARGS").is_some() {
        println!("offsite: arguments accepted");
        return ExitCode::SUCCESS;
    }
    cli::init_logging(args.verbose, args.quiet, args.log_format);
    cli::output::set_quiet(args.quiet);
    offsite::repo::table::budget::configure(args.memory, args.cache_dir.clone());
    let verbose = args.verbose > 0;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", explain(&e, verbose));
            ExitCode::FAILURE
        }
    }
}

/// An error as the operator reads it: the message, then each cause it does not already
/// say. The library's errors are complete sentences (with their raw cause on one line);
/// the chain under them — the HTTP exchange, repeated by each wrapping layer — is shown
/// only with `-v`.
fn explain(e: &anyhow::Error, verbose: bool) -> String {
    let mut out = e.to_string();
    let mut complete = e.downcast_ref::<offsite::Error>().is_some();
    for cause in e.chain().skip(1) {
        if complete && !verbose {
            break;
        }
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str("\n  caused by: ");
            out.push_str(&text);
        }
        complete = cause.downcast_ref::<offsite::Error>().is_some();
    }
    out
}

/// `offsite points | head` closes the pipe early: end quietly (exit 141, as a shell
/// reports a process ended by SIGPIPE), as other command-line tools do, instead of
/// reporting a panic on the failed write. SIGPIPE itself stays ignored (Rust's default):
/// restoring its default action would also kill the process when a store closes a
/// connection under a vectored socket write (`writev` has no MSG_NOSIGNAL), which
/// happened mid-copy against a busy S3 server.
fn quiet_on_closed_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to std") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info)
    }));
}

/// glibc gives each thread that allocates its own malloc arena (up to 8 per core), and
/// each arena keeps freed buffers. With the async runtime's blocking pool moving MiB-sized
/// buffers between many threads, that doubled peak RSS (280 MiB instead of 130 MiB for
/// the copy benchmark). Two arenas are plenty for a pipeline of a few CPU workers.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator tuning; it is called before any thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
