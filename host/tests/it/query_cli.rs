//! `idhost query` over the SQLite sink after a fixture sync.

use crate::support::{Scratch, text};

fn synced() -> (Scratch, String) {
    let s = Scratch::new();
    let config = s.config(
        "\n[sources.dir]\nconnector = \"fixture\"\n[sources.dir.settings]\nusers = 50\ngroups = 5\nmemberships = 20\n\n[sinks.db]\ntype = \"sqlite\"\npath = \"out.db\"\n",
    );
    let config = config.to_string_lossy().into_owned();
    let out = s.output(&["sync", "-c", &config]);
    assert!(out.status.success(), "{}", text(&out));
    (s, config)
}

#[test]
fn who_has_lists_the_members_of_a_group_with_their_names() {
    let (s, config) = synced();
    let out = s.output(&[
        "query",
        "-c",
        &config,
        "--output",
        "json",
        "who-has",
        "group:g1:member",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    // memberships 20 over 5 groups: group 1 holds users 0..4.
    let principals: Vec<&str> = rows
        .iter()
        .filter_map(|r| r["principal"].as_str())
        .collect();
    assert_eq!(principals, ["user:u0", "user:u1", "user:u2", "user:u3"]);
    assert_eq!(rows[0]["principal_name"], "User 0");
}

#[test]
fn access_lists_what_a_principal_holds_and_csv_has_a_header() {
    let (s, config) = synced();
    let out = s.output(&[
        "query", "-c", &config, "--output", "csv", "access", "user:u2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let csv = String::from_utf8_lossy(&out.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("source,entitlement,entitlement_name,resource,via"),
        "DESIGN §7.2 names the columns of access"
    );
    assert_eq!(lines.count(), 5, "user 2 is in all five groups: {csv}");
}

#[test]
fn a_config_without_a_sqlite_sink_is_told_how_to_add_one() {
    let s = Scratch::new();
    let config = s.config("\n[sources.dir]\nconnector = \"fixture\"\n");
    let out = s.output(&[
        "query",
        "-c",
        config.to_str().unwrap(),
        "who-has",
        "group:g1:member",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("has no sqlite sink to query"),
        "{}",
        text(&out)
    );
}
