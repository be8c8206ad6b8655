//! The terminal's progress bar: an indicatif bar drawn only when standard error is a
//! terminal (pipes and CI logs stay quiet), fed by the library's progress observer.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use offsite::progress::{Observer, Progress};

struct Bar(ProgressBar);

impl Observer for Bar {
    fn add_total(&self, n: u64) {
        self.0.inc_length(n);
    }
    fn add_bytes(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// A bar on a terminal — `total` bytes if known (for an ETA), else a spinner — or a
/// silent observer elsewhere.
pub fn for_terminal(label: &str, total: Option<u64>) -> Progress {
    if !std::io::stderr().is_terminal() {
        return Progress::hidden();
    }
    let bar = match total {
        Some(t) => ProgressBar::new(t).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} {bytes_per_sec} {elapsed}")
                .expect("valid template"),
        ),
    };
    bar.set_message(label.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Progress::new(Arc::new(Bar(bar)))
}
