//! Running the `idhost` binary: ONE way to build the command ([`idhost`]), run either on the
//! test's tokio runtime ([`crate::Scratch::run`], for tests that serve a simulator) or blocking
//! ([`output_within`], [`crate::Scratch::output`]); every run is killed after a time limit, so a
//! hang fails its test instead of stalling the suite.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::paths::idhost_path;

/// Longest a single `idhost` run may take before it is killed and the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// `idhost` with nothing inherited that would change what it does: no `IDHOST_PLUGIN_DIR`,
/// `IDHOST_CONFIG` or `IDHOST_LOG_LEVEL` from the test's environment, no colours, no stdin.
pub fn idhost() -> Command {
    let mut cmd = Command::new(idhost_path());
    cmd.env_remove("IDHOST_PLUGIN_DIR")
        .env_remove("IDHOST_CONFIG")
        .env_remove("IDHOST_LOG_LEVEL")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to its end and returns what it printed; kills it (and fails the test) after
/// `limit`.
pub fn output_within(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {shown}: {e}"));
    // Read both pipes while waiting, so a chatty child never blocks on a full pipe.
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let read = |pipe: Option<std::process::ChildStdout>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = std::io::Read::read_to_end(&mut pipe, &mut buf);
            }
            buf
        })
    };
    let out_thread = read(stdout);
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = stderr {
            let _ = std::io::Read::read_to_end(&mut pipe, &mut buf);
        }
        buf
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for idhost") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{shown} did not finish within {} s (killed)",
                limit.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// Exit code, stdout and stderr of a blocking run, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// One finished `idhost` run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The arguments it ran with.
    pub args: Vec<String>,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error (logs, the summary table).
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// Everything about the run, for assertion messages.
    pub fn text(&self) -> String {
        format!(
            "idhost {}\nexit code: {:?} after {:.1} s\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.elapsed.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }

    /// Panics with the whole run unless it exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "{}", self.text());
        self
    }

    /// The rows `idhost sync --json` printed on stdout.
    pub fn summary(&self) -> Vec<Value> {
        match serde_json::from_str::<Value>(&self.stdout) {
            Ok(Value::Array(rows)) => rows,
            _ => panic!(
                "`idhost sync --json` printed no JSON array\n{}",
                self.text()
            ),
        }
    }

    /// The `idhost sync --json` row of `source`: `status`, `counts`, `requests`, `retries`,
    /// `error`, `sync_id`, `seconds`.
    pub fn source(&self, source: &str) -> Value {
        self.summary()
            .into_iter()
            .find(|row| row["source"] == source)
            .unwrap_or_else(|| panic!("no summary row for `{source}`\n{}", self.text()))
    }
}
