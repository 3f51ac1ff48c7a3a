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

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Params};
use serde_json::Value;

/// Longest a single `idhost` run may take before it is killed and the test fails.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);

/// The directory holding the built `idhost` binary and the plugins: the profile directory of
/// the running test executable (`target/debug/deps/<test>` → `target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    let mut dir = exe
        .parent()
        .expect("the test executable is in a directory")
        .to_owned();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// `target/<profile>/idhost`, or a panic saying how to build it.
pub fn idhost_path() -> PathBuf {
    let path = bin_dir().join(format!("idhost{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace` first (these tests run the built binary and plugins)",
        path.display()
    );
    path
}

/// Path of the plugin library `name` (crate name with underscores, e.g. `idhost_entra`).
pub fn plugin_path(name: &str) -> PathBuf {
    bin_dir().join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// Checks that the binary and these plugins are built (e.g. `&["idhost_ironclad"]`).
pub fn require_plugins(names: &[&str]) {
    idhost_path();
    for name in names {
        let path = plugin_path(name);
        assert!(
            path.exists(),
            "{} is missing: run `cargo build --workspace` first (these tests load the real plugins)",
            path.display()
        );
    }
}

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

/// Sends one request to a loopback `http://127.0.0.1:PORT/...` URL and returns the status and
/// body. HTTP/1.0 with `Connection: close`, so the answer is neither chunked nor kept alive and
/// the body is everything after the headers; enough for a test to read a simulator's JSON.
pub async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url}: only plain http:// loopback URLs"));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .unwrap_or_else(|e| panic!("connect {authority}: {e}"));
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {url}: no HTTP answer: {answer}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {url}: bad status line: {head}"));
    (status, body.to_owned())
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
        let mut cmd = tokio::process::Command::new(idhost_path());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("IDHOST_PLUGIN_DIR")
            .env_remove("IDHOST_CONFIG")
            .env_remove("IDHOST_LOG_LEVEL")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
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

    /// Opens the SQLite file `name` in the directory, read-only.
    pub fn db(&self, name: &str) -> Db {
        Db::open(&self.path(name))
    }
}

/// One row of `resources`, JSON columns parsed (`Null` when absent).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRow {
    /// `user:<id>`, `group:<id>`, ...
    pub id: String,
    /// Resource type.
    pub rtype: String,
    /// Display name.
    pub display_name: String,
    /// `enabled`, `disabled` or `deleted`.
    pub status: String,
    /// The user trait.
    pub user: Value,
    /// The group trait.
    pub group: Value,
    /// The app trait.
    pub app: Value,
    /// The role trait.
    pub role: Value,
    /// Everything else the upstream sent.
    pub profile: Value,
    /// The sync that wrote the row.
    pub sync_id: String,
}

/// One row of `sync_runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRunRow {
    /// Sync id.
    pub sync_id: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Counts as JSON.
    pub counts: Value,
    /// The error, if any.
    pub error: Option<String>,
}

/// What a source's visible snapshot holds: resources by type, entitlements, grants, and the
/// sync ids its rows carry (exactly one for a snapshot swapped in by one sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Resource counts by type.
    pub resources: BTreeMap<String, i64>,
    /// Entitlement count.
    pub entitlements: i64,
    /// Grant count.
    pub grants: i64,
    /// Distinct `sync_id`s over the source's rows of the three tables.
    pub sync_ids: BTreeSet<String>,
}

/// The SQLite sink's file, opened read-only.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
}

fn json_column(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

impl Db {
    /// Opens `path` read-only; panics naming the file if it does not exist.
    pub fn open(path: &Path) -> Self {
        assert!(path.exists(), "{} was not written", path.display());
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Self { conn }
    }

    /// The connection, for queries the helpers do not cover.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The single integer `sql` answers.
    pub fn count(&self, sql: &str, params: impl Params) -> i64 {
        self.conn
            .query_row(sql, params, |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row `sql` answers, as text.
    pub fn strings(&self, sql: &str, params: impl Params) -> Vec<String> {
        let mut stmt = self
            .conn
            .prepare(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        stmt.query_map(params, |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Like [`Db::strings`], as a set.
    pub fn set(&self, sql: &str, params: impl Params) -> BTreeSet<String> {
        self.strings(sql, params).into_iter().collect()
    }

    /// Ids of `source`'s resources of type `rtype`.
    pub fn resource_ids(&self, source: &str, rtype: &str) -> BTreeSet<String> {
        self.set(
            "SELECT id FROM resources WHERE source = ?1 AND type = ?2",
            [source, rtype],
        )
    }

    /// Ids of `source`'s grants.
    pub fn grant_ids(&self, source: &str) -> BTreeSet<String> {
        self.set("SELECT id FROM grants WHERE source = ?1", [source])
    }

    /// Ids of `source`'s entitlements.
    pub fn entitlement_ids(&self, source: &str) -> BTreeSet<String> {
        self.set("SELECT id FROM entitlements WHERE source = ?1", [source])
    }

    /// `source`'s visible snapshot in numbers.
    pub fn snapshot(&self, source: &str) -> Snapshot {
        let mut resources = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT type, count(*) FROM resources WHERE source = ?1 GROUP BY type")
            .expect("prepare");
        let rows = stmt
            .query_map([source], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .expect("resource counts");
        resources.extend(rows);
        Snapshot {
            resources,
            entitlements: self.count(
                "SELECT count(*) FROM entitlements WHERE source = ?1",
                [source],
            ),
            grants: self.count("SELECT count(*) FROM grants WHERE source = ?1", [source]),
            sync_ids: self.set(
                "SELECT sync_id FROM resources WHERE source = ?1
                 UNION SELECT sync_id FROM entitlements WHERE source = ?1
                 UNION SELECT sync_id FROM grants WHERE source = ?1",
                [source],
            ),
        }
    }

    /// One resource of `source`, or `None`.
    pub fn resource(&self, source: &str, id: &str) -> Option<ResourceRow> {
        self.conn
            .query_row(
                r#"SELECT id, type, display_name, status, user, "group", app, role, profile, sync_id
                   FROM resources WHERE source = ?1 AND id = ?2"#,
                [source, id],
                |r| {
                    Ok(ResourceRow {
                        id: r.get(0)?,
                        rtype: r.get(1)?,
                        display_name: r.get(2)?,
                        status: r.get(3)?,
                        user: json_column(r.get(4)?),
                        group: json_column(r.get(5)?),
                        app: json_column(r.get(6)?),
                        role: json_column(r.get(7)?),
                        profile: json_column(r.get(8)?),
                        sync_id: r.get(9)?,
                    })
                },
            )
            .optional()
            .unwrap_or_else(|e| panic!("resource {id}: {e}"))
    }

    /// Every resource of `source` with type `rtype`, by id.
    pub fn resources(&self, source: &str, rtype: &str) -> BTreeMap<String, ResourceRow> {
        self.resource_ids(source, rtype)
            .into_iter()
            .filter_map(|id| self.resource(source, &id).map(|row| (id, row)))
            .collect()
    }

    /// `source`'s sync runs, oldest first.
    pub fn sync_runs(&self, source: &str) -> Vec<SyncRunRow> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sync_id, status, counts, error FROM sync_runs WHERE source = ?1
                 ORDER BY started_at, sync_id",
            )
            .expect("prepare");
        stmt.query_map([source], |r| {
            Ok(SyncRunRow {
                sync_id: r.get(0)?,
                status: r.get(1)?,
                counts: json_column(r.get(2)?),
                error: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .expect("sync runs")
    }
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
