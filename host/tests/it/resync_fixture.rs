//! Issue 18: re-syncs. An unchanged re-sync emits no event and leaves the SQLite sink holding
//! the same rows (all of them moved to the new sync); a re-sync after a small upstream change
//! emits exactly the events of that change and the sink holds exactly the changed snapshot.
//! (The swap of a small change goes through the sink's merge of staging and visible rows.)

use std::collections::BTreeSet;

use crate::support::events::{Scratch, count, sqlite_events, sync_ok};

/// 300 users, each a member of all 4 groups (one group per page of the group listing).
fn config(s: &Scratch, extra: &str) -> std::path::PathBuf {
    s.config(&format!(
        r#"
[sources.dir]
connector = "fixture"
max_removals = "off"
[sources.dir.settings]
users = 300
groups = 4
memberships = 1200
page_size = 50
group_page_size = 1
{extra}

[sinks.db]
type = "sqlite"
path = "out.db"
records = ["resource", "entitlement", "grant", "event", "sync_run"]
"#
    ))
}

/// Every visible row of the sink but its `sync_id`, one string each.
fn visible_rows(s: &Scratch) -> BTreeSet<String> {
    let db = s.db("out.db");
    let mut all = BTreeSet::new();
    for sql in [
        "SELECT 'r|' || id || '|' || type || '|' || display_name || '|' || status || '|' || coalesce(user, '') || '|' || coalesce(\"group\", '') || '|' || coalesce(profile, '') FROM resources",
        "SELECT 'e|' || id || '|' || resource || '|' || slug || '|' || display_name || '|' || purpose || '|' || grantable_to FROM entitlements",
        "SELECT 'g|' || id || '|' || entitlement || '|' || principal FROM grants",
    ] {
        let mut stmt = db.prepare(sql).expect("query");
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .expect("rows")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        all.extend(rows);
    }
    all
}

fn last_sync_id(s: &Scratch) -> String {
    s.db("out.db")
        .query_row(
            "SELECT sync_id FROM sync_runs WHERE status = 'succeeded' ORDER BY finished_at DESC, rowid DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a succeeded run")
}

fn sync_ids_of_rows(s: &Scratch) -> BTreeSet<String> {
    let db = s.db("out.db");
    let mut ids = BTreeSet::new();
    for table in ["resources", "entitlements", "grants"] {
        let mut stmt = db
            .prepare(&format!("SELECT DISTINCT sync_id FROM {table}"))
            .expect("query");
        ids.extend(
            stmt.query_map([], |r| r.get::<_, String>(0))
                .expect("rows")
                .collect::<Result<Vec<_>, _>>()
                .expect("rows"),
        );
    }
    ids
}

#[test]
fn an_unchanged_resync_emits_nothing_and_a_small_change_emits_exactly_its_events() {
    let s = Scratch::new();
    let c = config(&s, "");
    sync_ok(&s, &c, &[]);
    let baseline = visible_rows(&s);
    assert_eq!(baseline.len(), 300 + 4 + 4 + 1200);
    assert!(
        sqlite_events(&s).is_empty(),
        "the first sync is the baseline"
    );

    // Unchanged: no event, the same rows, every one of them in the new snapshot.
    sync_ok(&s, &c, &[]);
    assert!(sqlite_events(&s).is_empty(), "nothing changed upstream");
    assert_eq!(visible_rows(&s), baseline);
    assert_eq!(
        sync_ids_of_rows(&s),
        BTreeSet::from([last_sync_id(&s)]),
        "every row belongs to the new snapshot"
    );

    // u0..u2 gone (with their 12 memberships), u3..u5 renamed.
    let c = config(&s, "missing_users = [0, 1, 2]\nrename_users = [3, 4, 5]");
    sync_ok(&s, &c, &[]);
    let third = last_sync_id(&s);
    let events: BTreeSet<(String, String)> = sqlite_events(&s)
        .into_iter()
        .filter(|e| e.4 == third)
        .map(|(_, kind, subject, _, _)| (kind, subject))
        .collect();
    let mut want = BTreeSet::new();
    for u in 0..3 {
        want.insert(("deactivated".to_owned(), format!("user:u{u}")));
        for g in 0..4 {
            want.insert((
                "grant_removed".to_owned(),
                format!("group:g{g}:member:user:u{u}"),
            ));
        }
    }
    for u in 3..6 {
        want.insert(("updated".to_owned(), format!("user:u{u}")));
    }
    assert_eq!(events, want);
    assert_eq!(
        count(
            &s.db("out.db"),
            &format!("SELECT count(*) FROM events WHERE sync_id = '{third}'")
        ),
        18
    );
    let now = visible_rows(&s);
    let gone: BTreeSet<&String> = baseline.difference(&now).collect();
    let new: BTreeSet<&String> = now.difference(&baseline).collect();
    assert_eq!(
        gone.len(),
        3 + 12 + 3,
        "3 users, 12 grants and 3 old names left"
    );
    assert_eq!(new.len(), 3, "3 renamed users");
    assert!(new.iter().all(|r| r.contains("(renamed)")), "{new:?}");
    assert_eq!(sync_ids_of_rows(&s), BTreeSet::from([third]));
}
