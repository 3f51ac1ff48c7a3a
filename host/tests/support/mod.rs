//! Shared helpers of the host's integration tests: the real `idhost` binary, the real fixture
//! plugin, a scratch directory per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `idhost` binary under test.
pub(crate) fn idhost() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idhost"));
    cmd.env_remove("IDHOST_PLUGIN_DIR")
        .env_remove("IDHOST_CONFIG")
        .env("NO_COLOR", "1");
    cmd
}

/// Where `cargo build` put the plugins: beside the binary.
pub(crate) fn plugin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_idhost"))
        .parent()
        .expect("binary has a directory")
        .to_owned();
    let fixture = dir.join(format!(
        "{}fixture_connector{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        fixture.exists(),
        "{} is missing: run `cargo build --workspace` before the tests (the README's test command does)",
        fixture.display()
    );
    dir
}

/// A scratch directory with a config file in it.
pub(crate) struct Scratch {
    pub(crate) dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `idhost.toml` with `plugin_dir` pointing at the built plugins, then `body`.
    pub(crate) fn config(&self, body: &str) -> PathBuf {
        let path = self.path("idhost.toml");
        let text = format!(
            "plugin_dir = {:?}\nstate_path = \"state.db\"\n{body}",
            plugin_dir().display().to_string()
        );
        std::fs::write(&path, text).expect("write config");
        path
    }

    /// Runs `idhost ARGS`.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        idhost()
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("idhost runs")
    }

    pub(crate) fn db(&self, name: &str) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path(name)).expect("open db")
    }
}

pub(crate) fn text(output: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub(crate) fn count(db: &rusqlite::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).expect(sql)
}
