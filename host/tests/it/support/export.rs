//! Shared helpers of the export tests: run the real `idhost` binary on a config, read the
//! CSV target back.

use std::path::Path;
use std::process::Output;

pub(crate) use idhost_e2e::{plugin_dir, toml_path, toml_str};

/// Fails the test with the build command when a plugin is missing (never a silent pass).
pub(crate) fn require_plugin(lib: &str, _package: &str) {
    idhost_e2e::require_plugins(&[lib]);
}

/// Runs `idhost <args>` with `env`, killing it after 180 s.
pub(crate) fn idhost(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = idhost_e2e::idhost();
    cmd.args(args).env("IDHOST_LOG_FORMAT", "pretty");
    for (k, v) in env {
        cmd.env(k, v);
    }
    idhost_e2e::output_within(cmd, idhost_e2e::DEFAULT_TIMEOUT)
}

/// `idhost sync -c config` (extra args appended); returns (exit code, stderr).
pub(crate) fn sync(config: &Path, extra: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let config = config.to_string_lossy().into_owned();
    let mut args = vec!["sync", "-c", config.as_str()];
    args.extend_from_slice(extra);
    let out = idhost(&args, env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap_or(-1), stderr)
}

/// Like [`sync`], but the sync must succeed.
pub(crate) fn sync_ok(config: &Path, extra: &[&str], env: &[(&str, &str)]) -> String {
    let (code, stderr) = sync(config, extra, env);
    assert_eq!(code, 0, "idhost sync failed:\n{stderr}");
    stderr
}

/// A CSV export read back: header and rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Csv {
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl Csv {
    pub(crate) fn read(path: &Path) -> Self {
        let mut reader = csv::Reader::from_path(path)
            .unwrap_or_else(|e| panic!("{} is not readable CSV: {e}", path.display()));
        let header = reader
            .headers()
            .expect("header")
            .iter()
            .map(str::to_owned)
            .collect();
        let rows = reader
            .records()
            .map(|r| r.expect("record").iter().map(str::to_owned).collect())
            .collect();
        Self { header, rows }
    }

    pub(crate) fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column `{name}` in {:?}", self.header))
    }

    /// The row whose `column` is `value`.
    pub(crate) fn row(&self, column: &str, value: &str) -> &[String] {
        let c = self.col(column);
        let found: Vec<&Vec<String>> = self.rows.iter().filter(|r| r[c] == value).collect();
        assert_eq!(found.len(), 1, "rows with {column} = {value}: {found:?}");
        found[0]
    }

    /// `column` of every row, in file order.
    pub(crate) fn values(&self, column: &str) -> Vec<String> {
        let c = self.col(column);
        self.rows.iter().map(|r| r[c].clone()).collect()
    }

    /// `key` of the rows whose `active` is `active`, sorted.
    pub(crate) fn keys_where_active(&self, key: &str, active: bool) -> Vec<String> {
        let (k, a) = (self.col(key), self.col("active"));
        let want = if active { "true" } else { "false" };
        let mut keys: Vec<String> = self
            .rows
            .iter()
            .filter(|r| r[a] == want)
            .map(|r| r[k].clone())
            .collect();
        keys.sort();
        keys
    }
}
