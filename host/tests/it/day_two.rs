//! Issue 16, day two, through the real `idhost` binary and the fixture plugin: every `query`
//! command and its filters, lookup by id, login and email, correlation and orphans, the review
//! export, the readable diff, and the command-line conventions (`-c`/`--output` anywhere, colour,
//! completions, man pages, `init`, `check --offline`, relative paths, `audit`).

use std::collections::BTreeSet;

use crate::support::{Scratch, text};
use serde_json::Value;

/// `dir` is authoritative (users 0..9); `app` has users 0..11 with the same emails, so users 10
/// and 11 of `app` match nobody.
const TWO_SOURCES: &str = "
[sources.dir]
connector = \"fixture\"
[sources.dir.settings]
users = 10
groups = 3
memberships = 12
DIR_EXTRA

[sources.app]
connector = \"fixture\"
[sources.app.settings]
users = 12
groups = 2
memberships = 4

[identity]
authoritative = \"dir\"

[sinks.db]
type = \"sqlite\"
path = \"out.db\"
records = [\"resource\", \"entitlement\", \"grant\", \"event\", \"sync_run\"]
";

fn config(s: &Scratch, dir_extra: &str) -> String {
    s.config(&TWO_SOURCES.replace("DIR_EXTRA", dir_extra))
        .to_string_lossy()
        .into_owned()
}

fn synced(dir_extra: &str) -> (Scratch, String) {
    let s = Scratch::new();
    let c = config(&s, dir_extra);
    let out = s.output(&["sync", "-c", &c]);
    assert!(out.status.success(), "{}", text(&out));
    (s, c)
}

fn json_rows(out: &std::process::Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", text(out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("json: {e}\n{}", text(out)))
}

fn keys(row: &Value) -> Vec<&str> {
    row.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn column<'a>(rows: &'a [Value], key: &str) -> Vec<&'a str> {
    rows.iter().filter_map(|r| r[key].as_str()).collect()
}

#[test]
fn resources_filter_by_source_type_and_search_with_the_documented_keys() {
    let (s, c) = synced("");
    let rows = json_rows(&s.output(&[
        "query",
        "resources",
        "--source",
        "app",
        "--type",
        "user",
        "--search",
        "USER1",
        "-c",
        &c,
        "-o",
        "json",
    ]));
    assert_eq!(
        keys(&rows[0]),
        [
            "source",
            "id",
            "type",
            "display_name",
            "status",
            "login",
            "email"
        ]
    );
    assert_eq!(
        column(&rows, "id"),
        ["user:u1", "user:u10", "user:u11"],
        "search is case-insensitive over id, name, login and email"
    );
    assert_eq!(rows[0]["email"], "user1@example.com");
    assert_eq!(rows[0]["login"], "user1@example.com");
    let groups = json_rows(&s.output(&[
        "query",
        "-c",
        &c,
        "resources",
        "--type",
        "group",
        "-o",
        "json",
    ]));
    assert_eq!(groups.len(), 5, "3 + 2 groups");
    assert!(
        groups
            .iter()
            .all(|g| g["login"].is_null() && g["email"].is_null())
    );
}

#[test]
fn entitlements_and_grants_filter_and_an_unknown_filter_is_exit_2() {
    let (s, c) = synced("");
    let rows = json_rows(&s.output(&[
        "query",
        "-c",
        &c,
        "entitlements",
        "--source",
        "dir",
        "--resource",
        "group:g1",
        "-o",
        "json",
    ]));
    assert_eq!(
        keys(&rows[0]),
        ["source", "id", "resource", "slug", "display_name"]
    );
    assert_eq!(column(&rows, "id"), ["group:g1:member"]);
    let grants = json_rows(&s.output(&[
        "query",
        "-c",
        &c,
        "grants",
        "--principal",
        "USER2@example.com",
        "--source",
        "dir",
        "-o",
        "json",
    ]));
    assert_eq!(
        keys(&grants[0]),
        ["source", "id", "entitlement", "principal"]
    );
    assert!(
        grants
            .iter()
            .all(|g| g["principal"] == "user:u2" && g["source"] == "dir")
    );
    assert!(!grants.is_empty());
    let by_ent = json_rows(&s.output(&[
        "query",
        "-c",
        &c,
        "grants",
        "--entitlement",
        "group:g0:member",
        "--source",
        "dir",
        "-o",
        "json",
    ]));
    assert!(by_ent.iter().all(|g| g["entitlement"] == "group:g0:member"));
    for args in [
        vec!["entitlements", "--resource", "group:nope"],
        vec!["grants", "--entitlement", "group:nope:member"],
        vec!["grants", "--principal", "nobody@example.com"],
        vec!["resources", "--source", "nosuch"],
    ] {
        let mut full = vec!["query", "-c", &c];
        full.extend(args.iter().copied());
        let out = s.output(&full);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            out.stdout.is_empty(),
            "never an empty answer: {}",
            text(&out)
        );
    }
}

#[test]
fn access_takes_an_id_login_or_email_and_asks_for_source_when_several_match() {
    let (s, c) = synced("");
    // user2@example.com is an account in both sources.
    let out = s.output(&["query", "-c", &c, "access", "User2@Example.com"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--source"), "{stderr}");
    assert!(
        stderr.contains("dir user:u2") && stderr.contains("app user:u2"),
        "{stderr}"
    );
    let by_email = json_rows(&s.output(&[
        "query",
        "-c",
        &c,
        "access",
        "User2@Example.com",
        "--source",
        "dir",
        "-o",
        "json",
    ]));
    let by_id = json_rows(&s.output(&[
        "query", "access", "user:u2", "--source", "dir", "-o", "json", "-c", &c,
    ]));
    assert_eq!(by_email, by_id);
    assert_eq!(
        keys(&by_id[0]),
        [
            "source",
            "entitlement",
            "entitlement_name",
            "resource",
            "via"
        ]
    );
    assert!(
        by_id.iter().all(|r| r["via"].is_null()),
        "no nesting in the fixture"
    );
    let unknown = s.output(&["query", "-c", &c, "access", "nobody@example.com"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(unknown.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("nobody@example.com"),
        "{}",
        text(&unknown)
    );
}

#[test]
fn who_has_lists_holders_with_names_and_via() {
    let (s, c) = synced("");
    let rows = json_rows(&s.output(&[
        "-c",
        &c,
        "query",
        "who-has",
        "group:g1:member",
        "--source",
        "dir",
        "-o",
        "json",
    ]));
    assert_eq!(
        keys(&rows[0]),
        ["source", "principal", "principal_name", "via"]
    );
    assert_eq!(
        column(&rows, "principal"),
        ["user:u0", "user:u1", "user:u2", "user:u3"]
    );
    assert_eq!(rows[0]["principal_name"], "User 0");
    let ambiguous = s.output(&["query", "-c", &c, "who-has", "group:g1:member"]);
    assert_eq!(ambiguous.status.code(), Some(2), "{}", text(&ambiguous));
}

#[test]
fn people_and_orphans_link_accounts_and_name_disabled_and_deleted_people() {
    let s = Scratch::new();
    let c = config(&s, "");
    assert!(s.output(&["sync", "-c", &c]).status.success());
    // Person 3 is disabled, person 4 is gone from the next complete listing of `dir`.
    let c = config(&s, "disabled_users = [3]\nmissing_users = [4]");
    let out = s.output(&["sync", "-c", &c]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("orphans")
            && stderr.contains(
                "app  4 (1 deleted_in_authoritative, 1 disabled_in_authoritative, 2 no_match)"
            ),
        "the summary counts orphans: {stderr}"
    );

    let orphans = json_rows(&s.output(&["query", "-c", &c, "orphans", "-o", "json"]));
    assert_eq!(
        keys(&orphans[0]),
        ["source", "account", "login", "email", "reason"]
    );
    let got: Vec<(&str, &str)> = orphans
        .iter()
        .map(|r| {
            (
                r["account"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("user:u4", "deleted_in_authoritative"),
            ("user:u3", "disabled_in_authoritative"),
            ("user:u10", "no_match"),
            ("user:u11", "no_match"),
        ]
    );
    assert!(orphans.iter().all(|r| r["source"] == "app"));

    let people =
        json_rows(&s.output(&["query", "-c", &c, "people", "--source", "app", "-o", "json"]));
    assert_eq!(
        keys(&people[0]),
        ["person", "source", "account", "login", "email", "status"]
    );
    assert_eq!(people.len(), 12);
    let person_of = |account: &str| {
        people
            .iter()
            .find(|p| p["account"] == account)
            .map(|p| p["person"].clone())
            .unwrap()
    };
    assert_eq!(person_of("user:u1"), "user:u1");
    assert_eq!(
        person_of("user:u4"),
        "user:u4",
        "a departed person is still the person"
    );
    assert_eq!(person_of("user:u10"), Value::Null);
    let all = json_rows(&s.output(&["query", "-c", &c, "people", "-o", "json"]));
    assert_eq!(
        all.len(),
        9 + 12,
        "dir's own 9 users are people of themselves, and app's 12"
    );
}

#[test]
fn people_without_an_identity_section_is_exit_2_with_the_fix() {
    let s = Scratch::new();
    let c = s.config("\n[sources.dir]\nconnector = \"fixture\"\n[sinks.db]\ntype = \"sqlite\"\npath = \"out.db\"\n");
    let c = c.to_string_lossy().into_owned();
    assert!(s.output(&["sync", "-c", &c]).status.success());
    for what in ["people", "orphans"] {
        let out = s.output(&["query", "-c", &c, what]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("authoritative = "));
    }
}

#[test]
fn queries_need_no_credential_the_sync_needs() {
    let s = Scratch::new();
    let body = "
[sources.dir]
connector = \"fixture\"
[sources.dir.settings]
token = \"${DAY_TWO_UNSET_TOKEN}\"
[sinks.db]
type = \"sqlite\"
path = \"out.db\"
";
    let c = s.config(body).to_string_lossy().into_owned();
    let sync = crate::support::idhost()
        .args(["sync", "-c", &c])
        .env("DAY_TWO_UNSET_TOKEN", "tok-123456")
        .current_dir(s.dir())
        .output()
        .unwrap();
    assert!(sync.status.success(), "{}", text(&sync));
    let again = s.output(&["sync", "-c", &c]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "a sync needs it: {}",
        text(&again)
    );
    let rows = json_rows(&s.output(&[
        "query",
        "-c",
        &c,
        "resources",
        "--type",
        "user",
        "-o",
        "json",
    ]));
    assert_eq!(rows.len(), 10);
    let review = s.output(&["review", "-c", &c, "-o", "r.csv"]);
    assert!(review.status.success(), "{}", text(&review));
    let audit = s.output(&["audit", "-c", &c]);
    assert!(audit.status.success(), "{}", text(&audit));
}

#[test]
fn review_writes_one_row_per_effective_grant_and_neutralises_formulas() {
    let (s, c) = synced("");
    // A display name an upstream could hold: a formula.
    s.db_writable("out.db")
        .execute(
            "UPDATE resources SET display_name = '=HYPERLINK(\"http://x\",\"y\")' WHERE source = 'dir' AND id = 'user:u1'",
            [],
        )
        .unwrap();
    let out = s.output(&["review", "-c", &c, "-o", "review.csv"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut reader = csv::Reader::from_path(s.path("review.csv")).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "source",
            "principal",
            "principal_name",
            "email",
            "entitlement",
            "entitlement_name",
            "resource",
            "via",
            "synced_at"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let grants = crate::support::count(&s.db("out.db"), "SELECT count(*) FROM grants");
    assert_eq!(
        rows.len() as i64,
        grants,
        "no nesting: one row per direct grant"
    );
    let u1 = rows
        .iter()
        .find(|r| &r[0] == "dir" && &r[1] == "user:u1")
        .expect("user 1's row");
    assert_eq!(&u1[2], "'=HYPERLINK(\"http://x\",\"y\")");
    assert_eq!(&u1[3], "user1@example.com");
    let synced_at: String = s
        .db("out.db")
        .query_row(
            "SELECT finished_at FROM sync_runs WHERE source = 'dir'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(&u1[8], synced_at);

    let out = s.output(&["review", "-c", &c, "--source", "dir", "-o", "review.xlsx"]);
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(s.path("review.xlsx")).unwrap();
    assert!(bytes.starts_with(b"PK"), "an xlsx is a zip");
    let bad = s.output(&["review", "-c", &c, "-o", "review.txt"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

#[test]
fn review_fails_loudly_for_a_source_without_a_complete_snapshot() {
    let s = Scratch::new();
    let c = config(&s, "");
    assert!(s.output(&["sync", "-c", &c]).status.success());
    let c = config(&s, "fail_on = \"list:user\"");
    let failed = s.output(&["sync", "-c", &c, "--source", "dir"]);
    assert_eq!(failed.status.code(), Some(1));
    let named = s.output(&["review", "-c", &c, "--source", "dir", "-o", "r.csv"]);
    assert_eq!(named.status.code(), Some(1), "{}", text(&named));
    assert!(!s.path("r.csv").exists(), "nothing half-written");
    assert!(String::from_utf8_lossy(&named.stderr).contains("latest sync of `dir`"));
    // Unnamed, the last complete snapshot is reviewed (with a warning).
    let all = s.output(&["review", "-c", &c, "-o", "r.csv"]);
    assert!(all.status.success(), "{}", text(&all));

    let fresh = Scratch::new();
    let c = config(&fresh, "fail_on = \"list:user\"");
    assert_eq!(fresh.output(&["sync", "-c", &c]).status.code(), Some(1));
    let none = fresh.output(&["review", "-c", &c, "-o", "r.xlsx"]);
    assert_eq!(none.status.code(), Some(1), "{}", text(&none));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no complete snapshot"));
    assert!(!fresh.path("r.xlsx").exists());
}

#[test]
fn diff_shows_names_and_changed_fields_and_the_summary_counts_changes() {
    let s = Scratch::new();
    let c = config(&s, "");
    assert!(s.output(&["sync", "-c", &c]).status.success());
    let c = config(&s, "rename_users = [2]\nmissing_users = [3]");
    let out = s.output(&["sync", "-c", &c, "--source", "dir"]);
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.starts_with("changes"))
        .unwrap_or_else(|| panic!("a changes line: {stderr}"));
    assert!(
        line.contains("dir") && line.contains("1 deactivated") && line.contains("1 updated"),
        "{line}"
    );
    let json = json_rows(&s.output(&["sync", "-c", &c, "--source", "dir", "-o", "json"]));
    assert_eq!(
        json[0]["changes"],
        serde_json::json!({}),
        "nothing changed since"
    );
    assert_eq!(
        json[0]["orphans"],
        Value::Null,
        "dir is the authoritative source"
    );

    let events = json_rows(&s.output(&["query", "-c", &c, "diff", "dir", "-o", "json"]));
    let updated = events
        .iter()
        .find(|e| e["event"] == "updated")
        .expect("updated");
    assert_eq!(updated["subject"], "user:u2");
    assert_eq!(updated["name"], "User 2 (renamed)");
    assert_eq!(
        updated["changes"],
        serde_json::json!({"display_name": {"old": "User 2", "new": "User 2 (renamed)"}})
    );
    let gone = events.iter().find(|e| e["event"] == "deactivated").unwrap();
    assert_eq!(gone["name"], "User 3", "named from the departed record");
    let removed: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "grant_removed")
        .collect();
    assert!(!removed.is_empty());
    assert!(removed.iter().all(|e| {
        e["name"]
            .as_str()
            .unwrap()
            .starts_with("User 3 → Member of")
    }));

    let sync_id = updated["sync_id"].as_str().unwrap().to_owned();
    let by_sync = json_rows(&s.output(&[
        "query", "-c", &c, "diff", "dir", "--sync", &sync_id, "-o", "json",
    ]));
    assert_eq!(by_sync.len(), events.len());
    let recent = json_rows(&s.output(&[
        "query", "-c", &c, "diff", "dir", "--since", "1h", "-o", "json",
    ]));
    assert_eq!(recent.len(), events.len());
    let table = s.output(&["query", "-c", &c, "diff", "dir"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).contains("display_name: User 2 → User 2 (renamed)"),
        "{}",
        text(&table)
    );
    let unknown = s.output(&["query", "-c", &c, "diff", "dir", "--sync", "nope"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
}

#[test]
fn diff_without_an_events_table_says_how_to_keep_events() {
    let s = Scratch::new();
    let c = s.config("\n[sources.dir]\nconnector = \"fixture\"\n[sinks.db]\ntype = \"sqlite\"\npath = \"out.db\"\n");
    let c = c.to_string_lossy().into_owned();
    assert!(s.output(&["sync", "-c", &c]).status.success());
    let out = s.output(&["query", "-c", &c, "diff", "dir"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"event\""));
}

#[test]
fn output_and_config_flags_go_anywhere_and_json_is_an_alias() {
    let (s, c) = synced("");
    let a = s.output(&[
        "-o",
        "json",
        "query",
        "resources",
        "--type",
        "user",
        "-c",
        &c,
    ]);
    let b = s.output(&[
        "query",
        "-c",
        &c,
        "resources",
        "-o",
        "json",
        "--type",
        "user",
    ]);
    assert!(a.status.success() && b.status.success(), "{}", text(&a));
    assert_eq!(a.stdout, b.stdout);
    let plugins_json = s.output(&["plugins", "--json"]);
    let plugins_output = s.output(&["plugins", "--output", "json"]);
    assert_eq!(plugins_json.stdout, plugins_output.stdout);
    let doc: Value = serde_json::from_slice(&plugins_json.stdout).unwrap();
    assert!(
        doc["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fixture")
    );
    let sync = s.output(&["sync", "--output", "json", "-c", &c]);
    let rows = json_rows(&sync);
    assert_eq!(rows.len(), 2);
    let bad = s.output(&["query", "-c", &c, "resources", "-o", "yaml"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    let none = s.output(&["query", "resources"]);
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));
    assert!(String::from_utf8_lossy(&none.stderr).contains("-c FILE"));
}

#[test]
fn data_goes_to_stdout_and_logs_to_stderr() {
    let (s, c) = synced("");
    let out = s.output(&[
        "--log-level",
        "debug",
        "query",
        "-c",
        &c,
        "access",
        "user:u1",
        "--source",
        "dir",
        "-o",
        "json",
    ]);
    let rows = json_rows(&out);
    assert!(!rows.is_empty());
    let sync = s.output(&["sync", "-c", &c, "-o", "json", "--log-level", "info"]);
    json_rows(&sync);
    assert!(
        String::from_utf8_lossy(&sync.stderr).contains("INFO"),
        "{}",
        text(&sync)
    );
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let (s, c) = synced("");
    let plain = s.output(&["query", "-c", &c, "resources"]);
    assert!(!plain.stdout.contains(&0x1b), "a pipe gets no escape codes");
    let always = crate::support::idhost()
        .args(["query", "-c", &c, "resources", "--color", "always"])
        .current_dir(s.dir())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&always.stdout).starts_with("\u{1b}[1mSOURCE"),
        "{}",
        text(&always)
    );
    let never = crate::support::idhost()
        .args(["query", "-c", &c, "resources"])
        .env("IDHOST_COLOR", "never")
        .current_dir(s.dir())
        .output()
        .unwrap();
    assert!(!never.stdout.contains(&0x1b));
    let sync = s.output(&["sync", "-c", &c, "--color", "always"]);
    assert!(String::from_utf8_lossy(&sync.stderr).contains("\u{1b}[32msucceeded"));
}

#[test]
fn completions_man_pages_and_an_example_in_every_long_help() {
    let s = Scratch::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = s.output(&["completions", shell]);
        assert!(out.status.success(), "{}", text(&out));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("idhost") && script.contains("who-has"),
            "{shell}"
        );
    }
    let man = s.output(&["man"]);
    assert!(man.status.success());
    assert!(String::from_utf8_lossy(&man.stdout).contains(".TH idhost 1"));
    let dir = s.output(&["man", "--dir", "man1"]);
    assert!(dir.status.success(), "{}", text(&dir));
    for page in [
        "idhost.1",
        "idhost-sync.1",
        "idhost-query.1",
        "idhost-review.1",
    ] {
        assert!(s.path("man1").join(page).exists(), "{page}");
    }
    let commands = [
        vec!["demo"],
        vec!["init"],
        vec!["provision"],
        vec!["run"],
        vec!["bench"],
        vec!["query"],
        vec!["query", "resources"],
        vec!["query", "entitlements"],
        vec!["query", "grants"],
        vec!["query", "access"],
        vec!["query", "who-has"],
        vec!["query", "people"],
        vec!["query", "orphans"],
        vec!["query", "diff"],
        vec!["review"],
        vec!["audit"],
        vec!["plugins"],
        vec!["check"],
        vec!["sync"],
        vec!["completions"],
        vec!["man"],
        vec![],
    ];
    for command in commands {
        let mut args = command.clone();
        args.push("--help");
        let out = s.output(&args);
        assert!(out.status.success(), "{command:?}: {}", text(&out));
        let help = String::from_utf8_lossy(&out.stdout);
        let example = help
            .split("Examples:")
            .nth(1)
            .unwrap_or_else(|| panic!("{command:?} has no examples:\n{help}"));
        assert!(example.contains("idhost "), "{command:?}");
    }
}

#[test]
fn init_writes_a_commented_config_that_checks_offline() {
    let s = Scratch::new();
    for connector in ["ironclad", "entra", "clickwrap", "fixture"] {
        let file = format!("{connector}.toml");
        let out = crate::support::idhost()
            .args(["init", connector, "-c", &file, "--plugin-dir"])
            .arg(crate::support::plugin_dir())
            .current_dir(s.dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "{connector}: {}", text(&out));
        let written = std::fs::read_to_string(s.path(&file)).unwrap();
        assert!(written.starts_with('#'), "commented");
        assert!(written.contains(&format!("connector = \"{connector}\"")));
        let check = crate::support::idhost()
            .args(["check", "--offline", "-c", &file, "--plugin-dir"])
            .arg(crate::support::plugin_dir())
            .current_dir(s.dir())
            .output()
            .unwrap();
        assert!(check.status.success(), "{connector}: {}", text(&check));
    }
    let again = s.output(&["init", "ironclad", "-c", "ironclad.toml"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "never over a file: {}",
        text(&again)
    );
    let forced = s.output(&["init", "ironclad", "-c", "ironclad.toml", "--force"]);
    assert!(forced.status.success());
    let unknown = s.output(&["init", "nosuch"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("ironclad"));
}

#[test]
fn check_offline_needs_no_secret_and_sends_no_request() {
    let s = Scratch::new();
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    upstream.set_nonblocking(true).unwrap();
    let port = upstream.local_addr().unwrap().port();
    let body = format!(
        "
[sources.legal]
connector = \"ironclad\"
[sources.legal.settings]
base_url = \"http://127.0.0.1:{port}\"
client_id = \"id\"
client_secret = \"literal-secret\"
as_user_email = \"it@example.com\"

[sources.secret]
connector = \"fixture\"
[sources.secret.settings]
token = \"${{DAY_TWO_NOT_SET}}\"
"
    );
    let c = s.config(&body).to_string_lossy().into_owned();
    let out = s.output(&["check", "--offline", "-c", &c]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("DAY_TWO_NOT_SET"), "{stdout}");
    assert!(
        stdout.contains("✓ legal (ironclad): settings valid"),
        "{stdout}"
    );
    assert!(
        matches!(upstream.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no connection reached the upstream"
    );
    assert!(
        !s.path("state.db").exists(),
        "an offline check leaves no file"
    );
    let online = s.output(&["check", "-c", &c]);
    assert_eq!(
        online.status.code(),
        Some(2),
        "the full check needs the secret"
    );

    let bad = s.config(&format!("{body}colour = \"red\"\n"));
    let out = s.output(&["check", "--offline", "-c", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no setting `colour`"),
        "{}",
        text(&out)
    );
    let missing = s.config("\n[sources.x]\nconnector = \"nosuch\"\n");
    let out = s.output(&["check", "--offline", "-c", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let s = Scratch::new();
    let dir = s.path("conf");
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("idhost.toml");
    std::fs::write(
        &config,
        format!(
            "plugin_dir = {:?}\nstate_path = \"state/s.db\"\n[sources.dir]\nconnector = \"fixture\"\n[sinks.db]\ntype = \"sqlite\"\npath = \"data/out.db\"\n",
            crate::support::plugin_dir().display().to_string()
        ),
    )
    .unwrap();
    let out = s.output(&["sync", "-c", "conf/idhost.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(dir.join("data/out.db").exists());
    assert!(dir.join("state/s.db").exists());
    assert!(!s.path("data").exists());
    let rows =
        json_rows(&s.output(&["query", "-c", "conf/idhost.toml", "resources", "-o", "json"]));
    assert!(!rows.is_empty());
}

#[test]
fn plugins_from_a_missing_directory_is_an_error_not_an_empty_table() {
    let s = Scratch::new();
    let out = s.output(&["plugins", "--plugin-dir", "/nonexistent/idhost-plugins"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/idhost-plugins"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file").count(),
        1,
        "said once: {stderr}"
    );
}

#[test]
fn audit_reads_the_trail_newest_first() {
    let (s, c) = synced("");
    for group in ["group:g1:member", "group:g2:member"] {
        let out = s.output(&[
            "provision",
            "-c",
            &c,
            "--source",
            "dir",
            "--dry-run",
            "grant",
            "--entitlement",
            group,
            "--principal",
            "user:u7",
        ]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let rows = json_rows(&s.output(&["audit", "-c", &c, "-o", "json"]));
    assert_eq!(rows.len(), 2, "one row per attempt");
    assert_eq!(
        keys(&rows[0]),
        [
            "id",
            "at",
            "actor",
            "source",
            "operation",
            "target",
            "dry_run",
            "result",
            "detail"
        ]
    );
    assert_eq!(rows[0]["target"], "group:g2:member → user:u7");
    assert_eq!(rows[0]["result"], "dry_run");
    assert_eq!(rows[0]["dry_run"], true);
    let other = json_rows(&s.output(&["audit", "-c", &c, "--source", "app", "-o", "json"]));
    assert!(other.is_empty());
    let limited = json_rows(&s.output(&["audit", "-c", &c, "--limit", "1", "-o", "json"]));
    assert_eq!(limited.len(), 1);
    let provision_json = s.output(&[
        "provision",
        "--source",
        "dir",
        "--dry-run",
        "-o",
        "json",
        "-c",
        &c,
        "delete",
        "--resource",
        "user:u1",
    ]);
    let doc: Value = serde_json::from_slice(&provision_json.stdout).expect("json");
    assert_eq!(doc["operation"], "delete");
    let set: BTreeSet<String> = rows
        .iter()
        .map(|r| r["operation"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(set, BTreeSet::from(["grant".to_owned()]));
}
