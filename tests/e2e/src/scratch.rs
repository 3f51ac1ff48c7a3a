//! A scratch directory per test, with a config in it, where `idhost` runs.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::paths::bin_dir;
use crate::run::{DEFAULT_TIMEOUT, Run, idhost, output_within};
use crate::toml_str;

/// A scratch directory with a config in it, where `idhost` runs.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    /// A fresh temporary directory (removed when dropped).
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `idhost.toml`: `plugin_dir` = [`bin_dir`], `state_path = "state.db"`, then `body`
    /// (sources and sinks). Returns its path.
    pub fn config(&self, body: &str) -> PathBuf {
        self.config_named("idhost.toml", body)
    }

    /// Like [`Scratch::config`], under another file name.
    pub fn config_named(&self, name: &str, body: &str) -> PathBuf {
        let path = self.path(name);
        let text = format!(
            "plugin_dir = {}\nstate_path = \"state.db\"\n{body}",
            toml_str(&bin_dir().to_string_lossy())
        );
        std::fs::write(&path, text).expect("write the config");
        path
    }

    /// Runs `idhost ARGS` in the directory, killed after [`DEFAULT_TIMEOUT`].
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_for(args, DEFAULT_TIMEOUT).await
    }

    /// Runs `idhost ARGS` in the directory, killed (and the test failed) after `limit`.
    pub async fn run_for(&self, args: &[&str], limit: Duration) -> Run {
        let mut std_cmd = idhost();
        std_cmd.args(args).current_dir(self.dir.path());
        let mut cmd = tokio::process::Command::from(std_cmd);
        cmd.kill_on_drop(true);
        let started = Instant::now();
        let output = tokio::time::timeout(limit, cmd.output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "`idhost {}` did not finish within {} s (killed)",
                    args.join(" "),
                    limit.as_secs()
                )
            })
            .expect("start the idhost binary");
        Run {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed: started.elapsed(),
        }
    }

    /// `idhost sync -c CONFIG --json EXTRA…`.
    pub async fn sync(&self, config: &Path, extra: &[&str]) -> Run {
        let config = config.to_string_lossy().into_owned();
        let mut args = vec!["sync", "-c", config.as_str(), "--json"];
        args.extend_from_slice(extra);
        self.run(&args).await
    }

    /// Runs `idhost ARGS` in the directory and waits for it (blocking; for tests that serve
    /// nothing on their own runtime), killed after [`DEFAULT_TIMEOUT`].
    pub fn output(&self, args: &[&str]) -> Output {
        let mut cmd = idhost();
        cmd.args(args).current_dir(self.dir.path());
        output_within(cmd, DEFAULT_TIMEOUT)
    }

    /// `idhost ARGS` in the directory, to run some other way (extra environment, a child that
    /// keeps running).
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = idhost();
        cmd.args(args).current_dir(self.dir.path());
        cmd
    }

    /// Opens the SQLite file `name` in the directory, read-only.
    pub fn db(&self, name: &str) -> Db {
        Db::open(&self.path(name))
    }

    /// Opens the SQLite file `name` in the directory for writing (a test that damages state
    /// on purpose).
    pub fn db_writable(&self, name: &str) -> Db {
        Db::open_writable(&self.path(name))
    }
}
