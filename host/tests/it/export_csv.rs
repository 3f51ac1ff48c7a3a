//! The Oomnitza-style CSV export through the real binary and the fixture plugin: exact rows,
//! deactivation of missing users, reactivation, modes, failed syncs, several sources.

use std::path::{Path, PathBuf};

use crate::support::export::{Csv, require_plugin, sync, sync_ok, toml_path};

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    csv: PathBuf,
}

impl Setup {
    fn new() -> Self {
        require_plugin("fixture_connector", "fixture-connector");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_owned();
        Self {
            csv: path.join("out/people.csv"),
            dir: path,
            _dir: dir,
        }
    }

    /// Writes a config with one fixture source `directory` (its settings given as TOML lines)
    /// and the `people` CSV export (its keys given as TOML lines), returns its path.
    fn config(&self, settings: &str, export: &str) -> PathBuf {
        self.config_with(&format!(
            "[sources.directory]\nconnector = \"fixture\"\n[sources.directory.settings]\n{settings}\n"
        ), "[\"directory\"]", export)
    }

    fn config_with(&self, sources: &str, inputs: &str, export: &str) -> PathBuf {
        let text = format!(
            r#"plugin_dir = {plugins}
state_path = {state}
{sources}
[sinks.people]
type = "csv"
path = {csv}
inputs = {inputs}
records = ["user"]
{export}
[sinks.people.mapping]
EMAIL = "user.emails.primary"
NAME = "display_name"
USER_ID = "upstream_id"
DEPARTMENT = "user.department"
COMPANY = {{ value = "ACME, Inc." }}
"#,
            plugins = toml_path(&crate::support::export::plugin_dir()),
            state = toml_path(&self.dir.join("state.db")),
            csv = toml_path(&self.csv),
        );
        let path = self.dir.join("idhost.toml");
        std::fs::write(&path, text).expect("config written");
        path
    }

    fn read(&self) -> Csv {
        Csv::read(&self.csv)
    }
}

const DEFAULT: &str =
    "sync_key = \"EMAIL\"\nmode = \"create_and_update\"\ndeactivate_missing = true";

fn email(n: u64) -> String {
    format!("user{n}@example.com")
}

fn emails(ns: impl IntoIterator<Item = u64>) -> Vec<String> {
    let mut v: Vec<String> = ns.into_iter().map(email).collect();
    v.sort();
    v
}

#[test]
fn first_sync_writes_exact_rows_with_columns_in_mapping_order() {
    let s = Setup::new();
    let config = s.config("users = 3\ngroups = 1", DEFAULT);
    sync_ok(&config, &[], &[]);
    let csv = s.read();
    assert_eq!(
        csv.header,
        [
            "EMAIL",
            "NAME",
            "USER_ID",
            "DEPARTMENT",
            "COMPANY",
            "active",
            "source",
            "synced_at"
        ]
    );
    let synced_at = csv.values("synced_at");
    assert!(
        time::OffsetDateTime::parse(
            &synced_at[0],
            &time::format_description::well_known::Rfc3339
        )
        .is_ok(),
        "synced_at is RFC 3339: {}",
        synced_at[0]
    );
    let expected: Vec<Vec<String>> = (0..3)
        .map(|n| {
            vec![
                email(n),
                format!("User {n}"),
                format!("u{n}"),
                format!("Dept {}", n % 7),
                "ACME, Inc.".to_owned(),
                "true".to_owned(),
                "directory".to_owned(),
                synced_at[0].clone(),
            ]
        })
        .collect();
    assert_eq!(csv.rows, expected);
    // The constant with a comma is quoted in the file.
    let text = std::fs::read_to_string(&s.csv).expect("utf-8");
    assert!(
        text.starts_with(
            "EMAIL,NAME,USER_ID,DEPARTMENT,COMPANY,active,source,synced_at\nuser0@example.com,User 0,u0,Dept 0,\"ACME, Inc.\","
        ),
        "{text}"
    );
}

#[test]
fn missing_users_are_deactivated_new_ones_added_and_returning_ones_reactivated() {
    let s = Setup::new();
    let base = "groups = 1\npage_size = 30";
    sync_ok(
        &s.config(&format!("users = 100\n{base}"), DEFAULT),
        &[],
        &[],
    );
    let first = s.read();
    assert_eq!(first.rows.len(), 100);

    // Ten users leave, five join.
    let gone = [3u64, 17, 29, 30, 31, 50, 61, 77, 88, 99];
    let list = |ns: &[u64]| ns.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    sync_ok(
        &s.config(
            &format!("users = 105\nmissing_users = [{}]\n{base}", list(&gone)),
            DEFAULT,
        ),
        &[],
        &[],
    );
    let second = s.read();
    assert_eq!(
        second.rows.len(),
        105,
        "the five new users are added, nobody is removed"
    );
    assert_eq!(second.keys_where_active("EMAIL", false), emails(gone));
    assert_eq!(
        second.values("EMAIL")[100..],
        emails(100..105)[..],
        "new rows are appended"
    );
    // The stored order of the first 100 rows is kept.
    assert_eq!(second.values("EMAIL")[..100], first.values("EMAIL")[..]);
    // A deactivated row keeps the time of the last sync that saw it.
    let old = first.row("EMAIL", &email(3))[first.col("synced_at")].clone();
    assert_eq!(second.row("EMAIL", &email(3))[second.col("synced_at")], old);

    // Three come back.
    let still_gone = [3u64, 17, 29, 30, 31, 50, 61];
    sync_ok(
        &s.config(
            &format!(
                "users = 105\nmissing_users = [{}]\n{base}",
                list(&still_gone)
            ),
            DEFAULT,
        ),
        &[],
        &[],
    );
    let third = s.read();
    assert_eq!(third.rows.len(), 105);
    assert_eq!(third.keys_where_active("EMAIL", false), emails(still_gone));
    for n in [77, 88, 99] {
        assert_eq!(third.row("EMAIL", &email(n))[third.col("active")], "true");
    }
}

#[test]
fn create_only_leaves_changed_rows_unchanged_and_adds_new_ones() {
    let s = Setup::new();
    sync_ok(&s.config("users = 10\ngroups = 1", DEFAULT), &[], &[]);
    let before = s.read();
    let mode = "sync_key = \"EMAIL\"\nmode = \"create_only\"\ndeactivate_missing = true";
    sync_ok(
        &s.config("users = 12\ngroups = 1\nrename_users = [1, 2]", mode),
        &[],
        &[],
    );
    let after = s.read();
    assert_eq!(after.rows.len(), 12);
    let mapped = |row: &[String]| row[..5].to_vec();
    for (old, new) in before.rows.iter().zip(&after.rows) {
        assert_eq!(
            mapped(old),
            mapped(new),
            "create_only never rewrites mapped values"
        );
    }
    assert_eq!(after.row("EMAIL", &email(1))[after.col("NAME")], "User 1");
    assert_eq!(after.row("EMAIL", &email(11))[after.col("NAME")], "User 11");
}

#[test]
fn update_only_updates_rows_and_adds_none() {
    let s = Setup::new();
    sync_ok(&s.config("users = 10\ngroups = 1", DEFAULT), &[], &[]);
    let mode = "sync_key = \"EMAIL\"\nmode = \"update_only\"\ndeactivate_missing = true";
    let stderr = sync_ok(
        &s.config("users = 15\ngroups = 1\nrename_users = [4]", mode),
        &[],
        &[],
    );
    let after = s.read();
    assert_eq!(after.rows.len(), 10, "no new rows");
    assert_eq!(
        after.row("EMAIL", &email(4))[after.col("NAME")],
        "User 4 (renamed)"
    );
    assert!(
        stderr.contains("skipped_new=5"),
        "the summary counts the records not added:\n{stderr}"
    );
}

#[test]
fn a_sync_failing_on_page_3_changes_nothing_in_the_target() {
    let s = Setup::new();
    let base = "users = 100\ngroups = 1\npage_size = 20";
    sync_ok(&s.config(base, DEFAULT), &[], &[]);
    let before = std::fs::read(&s.csv).expect("csv");
    let config = s.config(
        &format!(
            "{base}\nmissing_users = [1, 2, 3]\nrename_users = [5]\nfail_on = \"list:user:2\""
        ),
        DEFAULT,
    );
    let (code, stderr) = sync(&config, &[], &[]);
    assert_eq!(code, 1, "the sync fails:\n{stderr}");
    assert!(stderr.contains("list:user:2"), "{stderr}");
    assert_eq!(
        std::fs::read(&s.csv).expect("csv"),
        before,
        "the target is byte for byte the same"
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.csv.parent().expect("dir"))
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "people.csv")
        .collect();
    assert!(leftovers.is_empty(), "no temp files: {leftovers:?}");
}

#[test]
fn a_disabled_user_is_inactive() {
    let s = Setup::new();
    sync_ok(
        &s.config("users = 5\ngroups = 1\ndisabled_users = [2]", DEFAULT),
        &[],
        &[],
    );
    assert_eq!(s.read().keys_where_active("EMAIL", false), emails([2]));
}

#[test]
fn records_without_a_key_are_reported_and_skipped() {
    let s = Setup::new();
    let config = s.config("users = 4\ngroups = 3", DEFAULT);
    // Take groups too: they have no primary email, so no key.
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("records = [\"user\"]", "records = [\"user\", \"group\"]");
    std::fs::write(&config, text).expect("config");
    let stderr = sync_ok(&config, &[], &[]);
    assert_eq!(s.read().rows.len(), 4);
    assert!(
        stderr.contains("records without a value in any sync_key column were skipped"),
        "{stderr}"
    );
    assert!(stderr.contains("count=3"), "{stderr}");
    assert!(
        stderr.contains("group:g0"),
        "the skipped records are named:\n{stderr}"
    );
}

#[test]
fn a_sync_narrowed_to_other_types_deactivates_nobody() {
    let s = Setup::new();
    sync_ok(&s.config("users = 5\ngroups = 1", DEFAULT), &[], &[]);
    let before = s.read();
    let config = s.config("users = 5\ngroups = 1", DEFAULT);
    let text = std::fs::read_to_string(&config).expect("config").replace(
        "connector = \"fixture\"\n",
        "connector = \"fixture\"\nresource_types = [\"group\"]\n",
    );
    std::fs::write(&config, text).expect("config");
    sync_ok(&config, &[], &[]);
    assert_eq!(s.read(), before);
}

#[test]
fn two_sources_share_one_people_table_and_deactivate_only_their_own_rows() {
    let s = Setup::new();
    let sources = |alpha: &str, beta: &str| {
        format!(
            "[sources.alpha]\nconnector = \"fixture\"\n[sources.alpha.settings]\ngroups = 1\n{alpha}\n\
             [sources.beta]\nconnector = \"fixture\"\n[sources.beta.settings]\ngroups = 1\n{beta}\n"
        )
    };
    let inputs = "[\"alpha\", \"beta\"]";
    // alpha knows users 0-4, beta 0-7: the key (email) is global, so 0-4 are one row each.
    let config = s.config_with(&sources("users = 5", "users = 8"), inputs, DEFAULT);
    sync_ok(&config, &["--source", "alpha"], &[]);
    sync_ok(&config, &["--source", "beta"], &[]);
    let csv = s.read();
    assert_eq!(csv.rows.len(), 8);
    assert!(
        csv.values("source").iter().all(|v| v == "beta"),
        "beta wrote every row last"
    );
    // alpha's users 0-3 sync again: alpha takes those rows back; user 4 stays beta's.
    let config = s.config_with(
        &sources("users = 4", "users = 8\nmissing_users = [6]"),
        inputs,
        DEFAULT,
    );
    sync_ok(&config, &["--source", "alpha"], &[]);
    let csv = s.read();
    assert_eq!(
        csv.keys_where_active("EMAIL", false),
        Vec::<String>::new(),
        "alpha missed user 4, but beta wrote it last"
    );
    assert_eq!(
        csv.values("source")[..5],
        ["alpha", "alpha", "alpha", "alpha", "beta"]
    );
    // beta misses user 6: only that row goes inactive; beta also missed 0-3, which alpha owns now.
    sync_ok(&config, &["--source", "beta"], &[]);
    let csv = s.read();
    assert_eq!(csv.keys_where_active("EMAIL", false), emails([6]));
}

#[test]
fn a_field_path_that_can_never_resolve_fails_before_any_source_runs() {
    let s = Setup::new();
    let config = s.config("users = 3", DEFAULT);
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("\"user.emails.primary\"", "\"user.email\"");
    std::fs::write(&config, text).expect("config");
    let (code, stderr) = sync(&config, &[], &[]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("mapping `EMAIL` = \"user.email\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("did you mean `user.emails.primary`"),
        "{stderr}"
    );
    assert!(!s.csv.exists());
}

#[test]
fn the_sqlite_export_keeps_a_table_named_after_the_sink() {
    let s = Setup::new();
    let db = s.dir.join("export.db");
    let write = |settings: &str| -> PathBuf {
        let config = s.config(settings, DEFAULT);
        let text = std::fs::read_to_string(&config)
            .expect("config")
            .replace("type = \"csv\"", "type = \"sqlite\"")
            .replace(&toml_path(&s.csv), &toml_path(&db));
        std::fs::write(&config, text).expect("config");
        config
    };
    sync_ok(&write("users = 6\ngroups = 1"), &[], &[]);
    sync_ok(
        &write("users = 7\ngroups = 1\nmissing_users = [0, 5]"),
        &[],
        &[],
    );
    let conn = rusqlite::Connection::open(&db).expect("db");
    let rows: Vec<(String, String, i64, String)> = conn
        .prepare("SELECT EMAIL, COMPANY, active, source FROM export_people ORDER BY rowid")
        .expect("query")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), 7);
    let inactive: Vec<&str> = rows
        .iter()
        .filter(|r| r.2 == 0)
        .map(|r| r.0.as_str())
        .collect();
    assert_eq!(inactive, [email(0), email(5)]);
    assert!(
        rows.iter()
            .all(|r| r.1 == "ACME, Inc." && r.3 == "directory")
    );
    assert!(!Path::new(&s.csv).exists());
}
