//! Issue 6: incremental (delta) pages. The host applies upserts and removals to the source's
//! last snapshot, so every sink still receives a complete snapshot, and the diff emits the
//! events of the delta and nothing else.

use std::collections::BTreeSet;

use crate::support::events::{
    FILE_SINKS, by_subject, config, grant, sqlite_events, status, sync_ok,
};
use crate::support::events::{Scratch, count, text};
use serde_json::json;

const BASE: &str =
    "users = 10\ngroups = 2\nroles = 1\nmemberships = 10\npage_size = 4\nincremental = true";

fn ids(s: &Scratch, sql: &str) -> BTreeSet<String> {
    let db = s.db("out.db");
    let mut stmt = db.prepare(sql).expect(sql);
    stmt.query_map([], |r| r.get(0))
        .expect(sql)
        .collect::<Result<_, _>>()
        .expect(sql)
}

fn last_sync_id(s: &Scratch) -> String {
    s.db("out.db")
        .query_row("SELECT sync_id FROM sync_runs WHERE status = 'succeeded' ORDER BY finished_at DESC LIMIT 1", [], |r| r.get(0))
        .expect("a run")
}

#[test]
fn a_delta_is_applied_to_the_last_snapshot_and_every_sink_gets_the_complete_one() {
    let s = Scratch::new();
    let c = config(&s, BASE, FILE_SINKS);
    sync_ok(&s, &c, &[]);
    let users_before = ids(&s, "SELECT id FROM resources WHERE type = 'user'");
    assert_eq!(users_before.len(), 10);
    let grants_before = ids(&s, "SELECT id FROM grants");
    assert_eq!(
        grants_before.len(),
        10 + 5,
        "memberships, and role r0 held by even users"
    );

    // The delta: u3 renamed and u11 new (upserts), u4 removed, one membership removed, one added.
    let delta = r#"delta_users = [3, 11]
rename_users = [3]
delta_removed = ["user:u4", "group:g0:member:user:u0"]
delta_grants = ["group:g1:member:user:u11"]"#;
    let c = config(&s, &format!("{BASE}\n{delta}"), FILE_SINKS);
    sync_ok(&s, &c, &[]);

    // The sink holds the complete snapshot: untouched users and groups carried over.
    let mut users = users_before.clone();
    users.remove("user:u4");
    users.insert("user:u11".into());
    assert_eq!(
        ids(&s, "SELECT id FROM resources WHERE type = 'user'"),
        users
    );
    assert_eq!(
        ids(&s, "SELECT id FROM resources WHERE type = 'group'").len(),
        2
    );
    assert_eq!(ids(&s, "SELECT id FROM entitlements").len(), 3);
    assert_eq!(
        count(
            &s.db("out.db"),
            "SELECT count(*) FROM resources WHERE id = 'user:u3' AND display_name = 'User 3 (renamed)'"
        ),
        1
    );
    let mut grants = grants_before.clone();
    for gone in [
        "group:g0:member:user:u0",
        "group:g0:member:user:u4",
        "group:g1:member:user:u4",
    ] {
        assert!(grants.remove(gone), "{gone}");
    }
    grants.insert("group:g1:member:user:u11".into());
    // Roles are listed completely by the fixture: role r0's grants come from that listing.
    assert_eq!(ids(&s, "SELECT id FROM grants"), grants);

    let events = sqlite_events(&s);
    let got = by_subject(&events, &last_sync_id(&s));
    let mut want = std::collections::BTreeMap::new();
    let mut put = |k: &str, subject: &str, changes| {
        want.insert((k.to_owned(), subject.to_owned()), changes);
    };
    put("created", "user:u11", json!({}));
    put(
        "updated",
        "user:u3",
        json!({"display_name": {"old": "User 3", "new": "User 3 (renamed)"}}),
    );
    put("deactivated", "user:u4", status("enabled", "deleted"));
    put(
        "grant_added",
        "group:g1:member:user:u11",
        grant(true, "group:g1:member:user:u11"),
    );
    for gone in [
        "group:g0:member:user:u0",
        "group:g0:member:user:u4",
        "group:g1:member:user:u4",
    ] {
        put("grant_removed", gone, grant(false, gone));
    }
    assert_eq!(got, want);

    // An empty delta changes nothing and carries everything over.
    let c = config(&s, &format!("{BASE}\nrename_users = [3]"), FILE_SINKS);
    sync_ok(&s, &c, &[]);
    assert_eq!(
        sqlite_events(&s).len(),
        events.len(),
        "no events for an empty delta"
    );
    assert_eq!(
        ids(&s, "SELECT id FROM resources WHERE type = 'user'"),
        users
    );
    assert_eq!(ids(&s, "SELECT id FROM grants"), grants);
    let run_counts: String = s
        .db("out.db")
        .query_row(
            "SELECT counts FROM sync_runs ORDER BY finished_at DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("run");
    let run_counts: serde_json::Value = serde_json::from_str(&run_counts).expect("json");
    assert_eq!(
        run_counts["resources"]["user"], 10,
        "carried records count: {run_counts}"
    );
}

#[test]
fn a_delta_without_a_snapshot_to_apply_it_to_asks_for_a_full_sync() {
    let s = Scratch::new();
    let c = config(&s, BASE, FILE_SINKS);
    sync_ok(&s, &c, &[]);
    // Lose the snapshot but keep the connector's cursor (as an old state file would).
    s.db_writable("state.db")
        .execute_batch("DELETE FROM snapshots")
        .expect("delete");
    let out = s.output(&["sync", "-c", c.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("run `idhost sync --full --source dir`"),
        "{}",
        text(&out)
    );
    // `--full` hides the cursor: a complete listing, and a usable snapshot again.
    sync_ok(&s, &c, &["--full"]);
    sync_ok(&s, &c, &[]);
}
