//! The `offsite` command line. Parsing, passwords and printing live here; the work is
//! done by the library. Exit codes: 0 success, 1 failure, 2 usage error, 3 finished but
//! with some entries skipped or some work failed (partial).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    limit_malloc_arenas();
    let args = cli::Args::parse();
    cli::init_logging(args.verbose, args.quiet);
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
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
