//! # idhost end-to-end test support
//!
//! Brief overview: the workspace-level tests in `tests/e2e/tests/*.rs` run the REAL `idhost`
//! binary with the REAL connector plugins (`libidhost_ironclad.so`, `libidhost_entra.so`,
//! `libidhost_clickwrap.so`) against an upstream simulator served on `127.0.0.1:0` inside the
//! test process, sync into SQLite in a scratch directory, and assert exact results. This
//! library is what those tests share:
//!
//! - **where the build is**: [`bin_dir`] is the directory of the test executable's profile
//!   (`target/debug/deps/<test>` → `target/debug`), where `cargo build --workspace` puts the
//!   binary and the plugins; [`idhost_path`] and [`require_plugins`] fail with "run `cargo build
//!   --workspace` first" when they are missing. Cargo does not build other packages' binaries
//!   or cdylibs for this crate's tests, so the build step is the test command's first half:
//!   `cargo build --workspace && cargo test -p idhost-e2e`.
//! - **a scratch directory per test**: [`Scratch`] writes `idhost.toml` (with `plugin_dir`
//!   pointing at [`bin_dir`] and `state_path = "state.db"`) and runs `idhost` in it, as a child
//!   process with a time limit ([`Scratch::run`], [`Scratch::sync`]); the child is killed if the
//!   limit passes, so a hang fails the test instead of stalling the suite. Simulators live on
//!   the test's tokio runtime, so tests use `#[tokio::test(flavor = "multi_thread")]` and the
//!   runs are awaited (`tokio::process`), never blocking the runtime that serves the simulator.
//! - **what a run said**: [`Run`] keeps exit code, stdout, stderr and wall time; [`Run::source`]
//!   reads one source's row of `idhost sync --json` (status, counts, requests, retries, error).
//! - **what landed in SQLite**: [`Db`] opens the sink read-only and answers counts, id sets,
//!   rows of `resources` (JSON columns parsed) and `sync_runs`.
//!
//! - **asking a simulator directly**: [`http`] sends one plain HTTP/1.0 request to a loopback
//!   simulator, for the few facts its inspection API does not expose (e.g. an app's roles as
//!   Graph renders them), so expectations do not have to be read back from what idhost wrote.
//!
//! The library knows no simulator; the tests build the `[sources.X]` sections from their
//! simulator's config with [`toml_str`] for quoting.
//!
//! ```no_run
//! # async fn demo() {
//! use idhost_e2e::{Scratch, require_plugins, sqlite_sink};
//!
//! require_plugins(&["fixture_connector"]);
//! let s = Scratch::new();
//! let config = s.config(&format!(
//!     "[sources.f]\nconnector = \"fixture\"\n{}",
//!     sqlite_sink("out.db")
//! ));
//! let run = s.sync(&config, &[]).await;
//! assert_eq!(run.code, Some(0), "{}", run.text());
//! let db = s.db("out.db");
//! assert_eq!(db.count("SELECT count(*) FROM sync_runs WHERE source = 'f'", []), 1);
//! # }
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod db;
mod http;
pub mod oneshot;
mod paths;
mod run;
mod scratch;
pub mod services;

pub use db::{Db, ResourceRow, Snapshot, SyncRunRow, count};
pub use http::http;
pub use paths::{bin_dir, idhost_path, plugin_dir, plugin_path, require_plugins};
pub use run::{DEFAULT_TIMEOUT, Run, idhost, output_within, text};
pub use scratch::Scratch;

/// `s` as a TOML basic string, quotes included.
pub fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `[sinks.db]` section: SQLite at `path` (relative to the scratch directory), every source.
pub fn sqlite_sink(path: &str) -> String {
    format!(
        "\n[sinks.db]\ntype = \"sqlite\"\npath = {}\ninputs = [\"*\"]\n",
        toml_str(path)
    )
}

/// A path as a TOML basic string.
pub fn toml_path(path: &std::path::Path) -> String {
    toml_str(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_quoted_and_escaped() {
        assert_eq!(toml_str("plain"), "\"plain\"");
        assert_eq!(toml_str(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_str("x\ny\u{1}"), "\"x\\ny\\u0001\"");
    }

    #[test]
    fn bin_dir_is_the_profile_directory_not_deps() {
        let dir = bin_dir();
        assert!(!dir.ends_with("deps"), "{}", dir.display());
    }
}
