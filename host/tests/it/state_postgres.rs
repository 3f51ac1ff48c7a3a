//! Issue 19: the state database on Postgres (`state_url`), through the real binary. Two syncs
//! emit the second sync's change events; and two replicas — two config files, two working
//! directories, no `state_path`, one `state_url` — share one snapshot, so the second
//! replica's first sync is a diff against the first replica's, not a silent baseline.

use crate::support::events::{
    DropSchema, Scratch, by_subject, pg_schema, sqlite_events, status, sync_ok,
};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A config of the fixture source `dir` with its state in `state_url` and an SQLite sink.
/// (Written out rather than with `Scratch::config`, which names a `state_path`.)
fn config(s: &Scratch, state_url: &str, settings: &str) -> std::path::PathBuf {
    let path = s.path("idhost.toml");
    let text = format!(
        r#"
plugin_dir = {plugin_dir}
state_url = "{state_url}"

[sources.dir]
connector = "fixture"
[sources.dir.settings]
users = 12
groups = 2
roles = 0
page_size = 5
{settings}

[sinks.db]
type = "sqlite"
path = "out.db"
records = ["resource", "entitlement", "grant", "event", "sync_run"]
"#,
        plugin_dir = idhost_e2e::toml_str(&idhost_e2e::bin_dir().to_string_lossy()),
    );
    std::fs::write(&path, text).expect("write the config");
    path
}

#[test]
fn syncs_with_postgres_state_emit_changes_and_a_second_replica_goes_on_from_the_shared_snapshot() {
    let rt = rt();
    let (client, schema, url) = match rt.block_on(pg_schema("idhost_state_pg")) {
        Ok(x) => x,
        Err(reason) => {
            idhost_e2e::services::skip("postgres", &reason);
            return;
        }
    };
    let _cleanup = DropSchema(schema.clone());

    // Replica one: the baseline, then a sync that sees u2 disabled and u3 missing.
    let one = Scratch::new();
    sync_ok(&one, &config(&one, &url, "memberships = 10"), &[]);
    assert!(
        sqlite_events(&one).is_empty(),
        "the first sync is the baseline"
    );
    assert!(
        !one.path("idhost-state.db").exists(),
        "with state_url, no SQLite state file is written"
    );
    sync_ok(
        &one,
        &config(
            &one,
            &url,
            "memberships = 10\ndisabled_users = [2]\nmissing_users = [3]",
        ),
        &[],
    );
    let events = sqlite_events(&one);
    let second = events.last().expect("events of the second sync").4.clone();
    let got = by_subject(&events, &second);
    assert_eq!(
        got.get(&("deactivated".to_owned(), "user:u2".to_owned())),
        Some(&status("enabled", "disabled")),
        "{got:?}"
    );
    assert_eq!(
        got.get(&("deactivated".to_owned(), "user:u3".to_owned())),
        Some(&status("enabled", "deleted")),
        "{got:?}"
    );

    // Replica two: another directory, another config, the same state_url. Its first sync
    // diffs against replica one's snapshot: u3 comes back (reactivated, with its two
    // memberships) and u4 is renamed.
    let two = Scratch::new();
    let out = sync_ok(
        &two,
        &config(
            &two,
            &url,
            "memberships = 10\ndisabled_users = [2]\nrename_users = [4]",
        ),
        &[],
    );
    let events = sqlite_events(&two);
    assert!(
        !events.is_empty(),
        "the second replica's first sync is not a silent baseline:\n{out}"
    );
    let third = events[0].4.clone();
    let got = by_subject(&events, &third);
    assert_eq!(
        got.get(&("reactivated".to_owned(), "user:u3".to_owned())),
        Some(&status("deleted", "enabled")),
        "{got:?}"
    );
    assert!(
        got.contains_key(&("updated".to_owned(), "user:u4".to_owned())),
        "{got:?}"
    );
    for group in ["g0", "g1"] {
        let id = format!("group:{group}:member:user:u3");
        assert!(got.contains_key(&("grant_added".to_owned(), id)), "{got:?}");
    }
    assert_eq!(
        got.len(),
        4,
        "exactly the change since replica one's sync: {got:?}"
    );

    // `idhost check` reports the state database it reached (never the password or options).
    let c = two.path("idhost.toml");
    let out = two.output(&["check", "-c", c.to_str().expect("utf-8 path")]);
    let shown = crate::support::events::text(&out);
    assert!(
        shown.contains("✓ state database postgres://127.0.0.1:5432/test (state_url): reachable"),
        "{shown}"
    );

    // Both replicas' syncs are in the one shared journal.
    let snapshot: (i64, String) = rt.block_on(async {
        let row = client
            .query_one(
                &format!(
                    "SELECT gen, sync_id FROM {schema}.idhost_state_snapshots WHERE source = 'dir'"
                ),
                &[],
            )
            .await
            .expect("snapshot row");
        (row.get(0), row.get(1))
    });
    assert_eq!(snapshot, (3, third));
}
