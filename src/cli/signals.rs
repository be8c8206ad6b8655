//! SIGTERM and Ctrl-C as a [`Stop`]: the work in flight ends at its next safe point
//! (a pack boundary), what is whole is committed, locks are released and the report is
//! written, instead of the process dying with its work half done.

use offsite::stop::Stop;

/// A stop asked on SIGTERM or Ctrl-C (saying `why` on stderr).
pub fn stop_on_signal(why: &'static str) -> Stop {
    let stop = Stop::new();
    let asker = stop.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("cannot watch for SIGTERM: {e}");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        eprintln!("{why}");
        asker.stop();
    });
    stop
}
