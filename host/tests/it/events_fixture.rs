//! Issue 6: change events. The fixture plugin's upstream changes between syncs (users go
//! missing, get disabled or renamed, memberships grow) and each sync emits exactly the events
//! of that change, into SQLite and JSONL, with ids unique per change.

use std::collections::{BTreeMap, BTreeSet};

use crate::support::events::{
    FILE_SINKS, by_subject, changes_of, config, grant, jsonl_events, sqlite_events, status,
    sync_ok, unique_ids,
};
use crate::support::events::{Scratch, count, text};
use serde_json::json;

const BASE: &str = "users = 20\ngroups = 3\nroles = 1\npage_size = 7";

fn settings(extra: &str) -> String {
    format!("{BASE}\n{extra}")
}

/// The sync id of the last successful run of `dir` in the SQLite sink.
fn last_sync_id(s: &Scratch) -> String {
    s.db("out.db")
        .query_row(
            "SELECT sync_id FROM sync_runs WHERE source = 'dir' AND status = 'succeeded' ORDER BY finished_at DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a succeeded run")
}

fn expected(
    items: &[(&str, &str, serde_json::Value)],
) -> BTreeMap<(String, String), serde_json::Value> {
    items
        .iter()
        .map(|(k, s, c)| ((k.to_string(), s.to_string()), c.clone()))
        .collect()
}

#[test]
fn upstream_changes_between_syncs_become_exactly_the_expected_events_in_sqlite_and_jsonl() {
    let s = Scratch::new();
    // 1: the baseline. u7 is missing upstream; users 0..9 are in all three groups.
    let c = config(
        &s,
        &settings("memberships = 30\nmissing_users = [7]"),
        FILE_SINKS,
    );
    sync_ok(&s, &c, &[]);
    assert!(
        sqlite_events(&s).is_empty(),
        "a source's first sync is its baseline"
    );
    assert_eq!(
        count(
            &s.db("out.db"),
            "SELECT count(*) FROM resources WHERE type = 'user'"
        ),
        19
    );

    // 2: u7 appears, u5 goes missing, u2 is disabled, u3 renamed, u10 joins every group.
    let c = config(
        &s,
        &settings(
            "memberships = 33\nmissing_users = [5]\ndisabled_users = [2]\nrename_users = [3]",
        ),
        FILE_SINKS,
    );
    sync_ok(&s, &c, &[]);
    let second = last_sync_id(&s);
    let events = sqlite_events(&s);
    let mut want = expected(&[
        ("created", "user:u7", json!({})),
        (
            "updated",
            "user:u3",
            json!({"display_name": {"old": "User 3", "new": "User 3 (renamed)"}}),
        ),
        ("deactivated", "user:u2", status("enabled", "disabled")),
        ("deactivated", "user:u5", status("enabled", "deleted")),
    ]);
    for g in 0..3 {
        for u in [7, 10] {
            let id = format!("group:g{g}:member:user:u{u}");
            want.insert(("grant_added".into(), id.clone()), grant(true, &id));
        }
        let id = format!("group:g{g}:member:user:u5");
        want.insert(("grant_removed".into(), id.clone()), grant(false, &id));
    }
    assert_eq!(by_subject(&events, &second), want);
    assert_eq!(events.len(), 13);
    // Emitted in a fixed order: created, updated, grants added, grants removed, deactivated.
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    let mut sorted = kinds.clone();
    let rank = |k: &str| {
        [
            "created",
            "reactivated",
            "updated",
            "grant_added",
            "grant_removed",
            "deactivated",
        ]
        .iter()
        .position(|x| *x == k)
    };
    sorted.sort_by_key(|k| rank(k));
    assert_eq!(kinds, sorted);

    // 3: u2 enabled again, u5 back (it had gone missing: reactivated, not created).
    let c = config(
        &s,
        &settings("memberships = 33\nrename_users = [3]"),
        FILE_SINKS,
    );
    sync_ok(&s, &c, &[]);
    let third = last_sync_id(&s);
    let events = sqlite_events(&s);
    let mut want = expected(&[
        ("reactivated", "user:u2", status("disabled", "enabled")),
        ("reactivated", "user:u5", status("deleted", "enabled")),
    ]);
    for g in 0..3 {
        let id = format!("group:g{g}:member:user:u5");
        want.insert(("grant_added".into(), id.clone()), grant(true, &id));
    }
    assert_eq!(by_subject(&events, &third), want);

    // 4: nothing changed upstream, nothing is emitted.
    sync_ok(&s, &c, &[]);
    assert_eq!(sqlite_events(&s).len(), 13 + 5);

    // The JSONL sink got the same events, each once, with the same ids and wire form.
    let lines = jsonl_events(&s.path("events.jsonl"));
    let ids = unique_ids(&lines);
    let sqlite_ids: BTreeSet<String> = sqlite_events(&s).into_iter().map(|e| e.0).collect();
    assert_eq!(ids, sqlite_ids);
    assert_eq!(changes_of(&lines).len(), 18);
    let first = &lines[0];
    assert_eq!(first["source"], "dir");
    assert_eq!(first["sync_id"], second.as_str());
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "kind", "id", "source", "event", "subject", "sync_id", "at", "changes"
        ]
    );
    assert!(
        time::OffsetDateTime::parse(
            first["at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339
        )
        .is_ok(),
        "{first}"
    );
    // The state database keeps no delivered events, and no checkpoint after a complete sync.
    let state = s.db("state.db");
    assert_eq!(count(&state, "SELECT count(*) FROM events"), 0);
    assert_eq!(count(&state, "SELECT count(*) FROM sync_checkpoints"), 0);
}

#[test]
fn a_failed_sync_emits_no_events_and_the_next_complete_one_emits_them_once() {
    let s = Scratch::new();
    let c = config(&s, &settings("memberships = 30"), FILE_SINKS);
    sync_ok(&s, &c, &[]);
    let before = count(
        &s.db("out.db"),
        "SELECT count(*) FROM resources WHERE display_name LIKE '%renamed%'",
    );
    assert_eq!(before, 0);

    // The upstream changes, but the sync fails on its last resource type.
    let c = config(
        &s,
        &settings("memberships = 30\nrename_users = [4]\nfail_on = \"list:role\""),
        FILE_SINKS,
    );
    let out = s.output(&["sync", "-c", c.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(sqlite_events(&s).is_empty(), "a failed sync emits nothing");
    assert!(jsonl_events(&s.path("events.jsonl")).is_empty());
    assert_eq!(
        count(
            &s.db("out.db"),
            "SELECT count(*) FROM resources WHERE display_name LIKE '%renamed%'"
        ),
        0
    );

    // The upstream is fine again: one update, once, wherever it is delivered.
    let c = config(
        &s,
        &settings("memberships = 30\nrename_users = [4]"),
        FILE_SINKS,
    );
    sync_ok(&s, &c, &[]);
    let events = sqlite_events(&s);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0].1.as_str(), events[0].2.as_str()),
        ("updated", "user:u4")
    );
    let lines = jsonl_events(&s.path("events.jsonl"));
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["id"], events[0].0.as_str());
}

#[test]
fn a_resources_only_sync_keeps_every_grant_and_emits_no_grant_events() {
    let s = Scratch::new();
    let c = config(&s, &settings("memberships = 30"), FILE_SINKS);
    sync_ok(&s, &c, &[]);
    let grants = count(&s.db("out.db"), "SELECT count(*) FROM grants");
    assert_eq!(
        grants,
        30 + 10,
        "group memberships and role r0 (even users)"
    );

    let c = config(
        &s,
        &settings("memberships = 12\nrename_users = [1]"),
        FILE_SINKS,
    );
    sync_ok(&s, &c, &["--resources-only"]);
    let events = sqlite_events(&s);
    assert_eq!(
        events
            .iter()
            .map(|e| (e.1.as_str(), e.2.as_str()))
            .collect::<Vec<_>>(),
        [("updated", "user:u1")]
    );
    assert_eq!(
        count(&s.db("out.db"), "SELECT count(*) FROM grants"),
        grants,
        "grants carry over"
    );

    // The next complete sync sees the memberships that went away: 18 of 40 grants, which the
    // mass-removal brake would hold (DESIGN §7.1), so it is accepted here.
    sync_ok(&s, &c, &["--allow-removals"]);
    let removed = sqlite_events(&s)
        .iter()
        .filter(|e| e.1 == "grant_removed")
        .count();
    assert_eq!(removed, 30 - 12);
}

#[test]
fn the_events_example_config_shows_the_three_delivery_sinks_side_by_side() {
    use idhost::config::SinkKind;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/events.toml");
    let text = std::fs::read_to_string(&path).expect("config/events.toml");
    let env = |name: &str| (name == "WEBHOOK_SECRET").then(|| "example".to_owned());
    let config = idhost::config::parse(&path, text, &env).expect("valid");
    let kinds: Vec<SinkKind> = config.sinks.iter().map(|s| s.kind).collect();
    for kind in [SinkKind::Postgres, SinkKind::Webhook, SinkKind::Nats] {
        assert!(kinds.contains(&kind), "{kind:?}");
    }
    assert!(config.sinks.iter().all(|s| s.records.wants_kind("event")));
    let hook = config
        .sinks
        .iter()
        .find(|s| s.kind == SinkKind::Webhook)
        .unwrap();
    assert!(hook.secret.is_some());
    assert_eq!(
        hook.batch_timeout,
        Some(std::time::Duration::from_millis(1000))
    );
}
