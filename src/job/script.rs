//! A job's pre- and post-job scripts: a command run before the interval's first phase
//! (quiesce an application, mount a share, check a precondition) and after its last
//! (notify, unmount), with a timeout and a policy for failure. The command is an argument
//! list, run without a shell (`["sh", "-c", "…"]` when one is wanted), in a process group
//! of its own so a timeout ends everything it started. It gets the job's name, the
//! phase, the interval and — after — the result in its environment.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::AsyncReadExt;

/// The output kept in a report: the tail, where the reason for a failure usually is.
const OUTPUT_KEPT: usize = 4 << 10;

/// What a failed script does to the interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// A failed pre-job script stops the interval before it transfers anything; a
    /// failed post-job script fails it. The report's outcome is `failed`.
    Fail,
    /// The interval goes on; its outcome is at best `warning`.
    Warn,
}

impl std::str::FromStr for OnFailure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fail" => Ok(OnFailure::Fail),
            "warn" => Ok(OnFailure::Warn),
            other => Err(format!("on_failure = {other:?}: fail or warn")),
        }
    }
}

/// A script as the jobs file gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptSpec {
    /// Program and arguments.
    pub command: Vec<String>,
    pub timeout: Duration,
    pub on_failure: OnFailure,
}

/// What a script did.
#[derive(Clone, Debug, Serialize)]
pub struct ScriptReport {
    /// `pre` or `post`.
    pub phase: String,
    pub command: String,
    /// Its exit status (none when it was killed or could not start).
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub seconds: f64,
    /// The last 4 KiB of what it wrote (stdout and stderr, each in order).
    pub output: String,
    pub ok: bool,
    pub on_failure: OnFailure,
    /// Why it failed, in a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs `spec` as the `phase` script with `env` added to its environment; waits at most
/// its timeout, then kills its process group.
pub async fn run(spec: &ScriptSpec, phase: &str, env: &[(String, String)]) -> ScriptReport {
    let started = Instant::now();
    let command = spec.command.join(" ");
    let mut report = ScriptReport {
        phase: phase.to_string(),
        command: command.clone(),
        exit_code: None,
        timed_out: false,
        seconds: 0.0,
        output: String::new(),
        ok: false,
        on_failure: spec.on_failure,
        error: None,
    };
    let Some((program, args)) = spec.command.split_first() else {
        report.error = Some(format!("{phase}-job script: no command"));
        return report;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            report.error = Some(format!(
                "{phase}-job script {command:?} could not start: {e}"
            ));
            return report;
        }
    };
    let pgid = child.id();
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let waited = async {
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let status = {
            let read_out = async {
                if let Some(s) = out.as_mut() {
                    let _ = s.read_to_end(&mut o).await;
                }
            };
            let read_err = async {
                if let Some(s) = err.as_mut() {
                    let _ = s.read_to_end(&mut e).await;
                }
            };
            let read = async { tokio::join!(read_out, read_err) };
            tokio::pin!(read);
            let mut read_done = false;
            let status = loop {
                tokio::select! {
                    st = child.wait() => break st,
                    _ = &mut read, if !read_done => read_done = true,
                }
            };
            // The script ended. A process it started in the background (an ephemeral
            // appliance, say) may hold its output open for ever: take what is there
            // within a moment, not the end of the pipe.
            if !read_done {
                let _ = tokio::time::timeout(Duration::from_millis(500), &mut read).await;
            }
            status
        };
        (status, (o, e))
    };
    let (status, (o, e)) = match tokio::time::timeout(spec.timeout, waited).await {
        Ok((status, output)) => (status.ok(), output),
        Err(_) => {
            report.timed_out = true;
            // The whole group: a shell's children would otherwise outlive it.
            if let Some(id) = pgid.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) with a negative pid signals the process group this
                // child leads; it touches no memory of ours.
                unsafe {
                    libc::kill(-id, libc::SIGKILL);
                }
            }
            let _ = child.wait().await;
            (None, (Vec::new(), Vec::new()))
        }
    };
    report.seconds = started.elapsed().as_secs_f64();
    let mut text = String::from_utf8_lossy(&o).into_owned();
    if !e.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&String::from_utf8_lossy(&e));
    }
    report.output = tail(&text, OUTPUT_KEPT);
    report.exit_code = status.and_then(|s| s.code());
    report.ok = status.is_some_and(|s| s.success());
    if !report.ok {
        let how = match (report.timed_out, report.exit_code) {
            (true, _) => format!(
                "did not finish within {}s and was killed",
                spec.timeout.as_secs()
            ),
            (false, Some(c)) => format!("exited with status {c}"),
            (false, None) => "was ended by a signal".to_string(),
        };
        let last = report
            .output
            .lines()
            .last()
            .unwrap_or("")
            .trim()
            .to_string();
        report.error = Some(match last.is_empty() {
            true => format!("{phase}-job script {command:?} {how}"),
            false => format!("{phase}-job script {command:?} {how}: {last}"),
        });
    }
    report
}

/// The last `n` bytes of `s`, cut at a character boundary.
fn tail(s: &str, n: usize) -> String {
    let mut start = s.len().saturating_sub(n);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> ScriptSpec {
        ScriptSpec {
            command: vec!["sh".into(), "-c".into(), script.into()],
            timeout,
            on_failure: OnFailure::Fail,
        }
    }

    #[tokio::test]
    async fn a_script_that_leaves_a_process_holding_its_output_is_not_waited_for() {
        // An ephemeral pool's start command: starts an appliance in the background
        // (which inherits stdout), prints its URL, exits.
        let spec = sh(
            "sleep 30 & echo http://127.0.0.1:9443",
            Duration::from_secs(20),
        );
        let started = Instant::now();
        let r = run(&spec, "archivers-start", &[]).await;
        assert!(r.ok, "{r:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(r.output.trim(), "http://127.0.0.1:9443");
    }

    #[tokio::test]
    async fn a_script_sees_its_environment_and_its_output_is_kept() {
        let env = vec![("OFFSITE_JOB".to_string(), "nightly".to_string())];
        let r = run(
            &sh(
                "echo job=$OFFSITE_JOB; echo oops >&2",
                Duration::from_secs(10),
            ),
            "pre",
            &env,
        )
        .await;
        assert!(r.ok, "{r:?}");
        assert_eq!(r.exit_code, Some(0));
        assert_eq!(r.output, "job=nightly\noops\n");
        assert!(r.error.is_none());
    }

    #[tokio::test]
    async fn a_failing_script_says_how_and_its_last_line() {
        let r = run(
            &sh(
                "echo starting; echo 'database is not reachable' >&2; exit 4",
                Duration::from_secs(10),
            ),
            "pre",
            &[],
        )
        .await;
        assert!(!r.ok);
        assert_eq!(r.exit_code, Some(4));
        let e = r.error.unwrap();
        assert!(
            e.contains("exited with status 4: database is not reachable"),
            "{e}"
        );
    }

    /// A script that outlives its timeout is killed with everything it started (the
    /// `sleep` child would otherwise hold the output open for its full length).
    #[tokio::test]
    async fn a_script_past_its_timeout_is_killed_with_its_children() {
        let started = Instant::now();
        let r = run(
            &sh("sleep 30; echo late", Duration::from_millis(300)),
            "post",
            &[],
        )
        .await;
        assert!(r.timed_out && !r.ok, "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(r.error.unwrap().contains("did not finish within"));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_failure_not_a_panic() {
        let spec = ScriptSpec {
            command: vec!["/nonexistent/offsite-script".into()],
            timeout: Duration::from_secs(5),
            on_failure: OnFailure::Warn,
        };
        let r = run(&spec, "pre", &[]).await;
        assert!(!r.ok);
        assert!(r.error.unwrap().contains("could not start"));
    }

    #[test]
    fn the_tail_is_cut_at_a_character() {
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("ab", 10), "ab");
    }
}
