//! Issue 6: checkpoints. A sync killed (SIGKILL) or stopped (SIGTERM) part-way resumes from
//! its last committed page on the next `idhost sync`, and ends with the same snapshot and the
//! same events as a sync nobody interrupted, no event lost or delivered twice; `--restart`
//! starts over instead.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::events::{
    FILE_SINKS, changes_of, config, jsonl_events, sqlite_events, sync_ok, unique_ids, wait_for,
};
use crate::support::events::{Scratch, count, text};

const BASE: &str = "users = 3000\ngroups = 5\nroles = 1\npage_size = 250";
/// The baseline's memberships; the change adds 100.
const FIRST: &str = "memberships = 6000";
const CHANGE: &str =
    "rename_users = [1, 500, 2999]\nmissing_users = [42]\ndisabled_users = [7]\nmemberships = 6100";
/// The interrupted run stalls on its 7th user page (pages 0–5 are committed by then, and the
/// one group page and one role page, listed at the same time as the users).
const STALL: &str = "sleep_on = \"list:user:6\"\nsleep_ms = 3000";
/// Pages committed when the interrupted run stalls: six of users, one of groups, one of roles.
const COMMITTED_AT_STALL: u64 = 8;

/// The snapshot and events a sink holds, comparable across two runs.
#[derive(Debug, PartialEq)]
struct Outcome {
    resources: BTreeSet<(String, String, String)>,
    grants: BTreeSet<String>,
    events: BTreeSet<(String, String, String)>,
}

fn outcome(s: &Scratch) -> Outcome {
    let db = s.db("out.db");
    let mut stmt = db
        .prepare("SELECT id, display_name, status FROM resources")
        .expect("resources");
    let resources = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("q")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut stmt = db.prepare("SELECT id FROM grants").expect("grants");
    let grants = stmt
        .query_map([], |r| r.get(0))
        .expect("q")
        .collect::<Result<_, _>>()
        .expect("rows");
    let events = sqlite_events(s)
        .into_iter()
        .map(|e| (e.1, e.2, e.3.to_string()))
        .collect();
    Outcome {
        resources,
        grants,
        events,
    }
}

/// A baseline sync, then the changed upstream synced without interruption.
fn control() -> Outcome {
    let s = Scratch::new();
    sync_ok(
        &s,
        &config(&s, &format!("{BASE}\n{FIRST}"), FILE_SINKS),
        &[],
    );
    sync_ok(
        &s,
        &config(&s, &format!("{BASE}\n{CHANGE}"), FILE_SINKS),
        &[],
    );
    let o = outcome(&s);
    assert!(
        o.events.len() > 100,
        "the change makes events: {}",
        o.events.len()
    );
    o
}

fn committed_pages(s: &Scratch) -> u64 {
    let Ok(db) = rusqlite::Connection::open(s.path("state.db")) else {
        return 0;
    };
    db.query_row(
        "SELECT data FROM sync_checkpoints WHERE source = 'dir'",
        [],
        |r| r.get::<_, String>(0),
    )
    .ok()
    .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
    .and_then(|v| v["pages"].as_u64())
    .unwrap_or(0)
}

/// Starts the changed sync, which stalls after six committed user pages (and the group and
/// role pages: eight in all).
fn start_stalling(s: &Scratch) -> (Child, std::path::PathBuf) {
    let c = config(s, &format!("{BASE}\n{CHANGE}\n{STALL}"), FILE_SINKS);
    let child = crate::support::events::idhost()
        .args(["sync", "-c", c.to_str().unwrap()])
        .current_dir(s.dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_for(Duration::from_secs(30), "eight committed pages", || {
        committed_pages(s) >= COMMITTED_AT_STALL
    });
    (child, c)
}

fn nothing_of_the_interrupted_sync_is_visible(s: &Scratch) {
    let db = s.db("out.db");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM resources WHERE display_name LIKE '%renamed%'"
        ),
        0
    );
    assert!(sqlite_events(s).is_empty());
    assert!(jsonl_events(&s.path("events.jsonl")).is_empty());
}

#[test]
fn a_sync_killed_mid_way_resumes_from_its_last_page_and_ends_like_an_uninterrupted_one() {
    let want = control();
    let s = Scratch::new();
    sync_ok(
        &s,
        &config(&s, &format!("{BASE}\n{FIRST}"), FILE_SINKS),
        &[],
    );
    let (mut child, c) = start_stalling(&s);
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert_eq!(
        committed_pages(&s),
        COMMITTED_AT_STALL,
        "the kill came during the stall"
    );
    nothing_of_the_interrupted_sync_is_visible(&s);
    assert!(
        count(&s.db("out.db"), "SELECT count(*) FROM _staging_resources") > 0,
        "the killed run left staging behind"
    );

    let log = sync_ok(&s, &c, &[]);
    assert!(
        log.contains("resuming the interrupted sync at `user` after 8 committed pages"),
        "{log}"
    );
    assert!(
        log.contains("replayed the interrupted sync's committed pages"),
        "{log}"
    );
    assert_eq!(outcome(&s), want);
    unique_ids(&jsonl_events(&s.path("events.jsonl")));
    assert_eq!(
        changes_of(&jsonl_events(&s.path("events.jsonl"))),
        want.events
    );
    assert_eq!(
        count(&s.db("out.db"), "SELECT count(*) FROM _staging_resources"),
        0
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.dir())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the killed run's JSONL staging is cleaned: {leftovers:?}"
    );
    let runs = count(
        &s.db("out.db"),
        "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'",
    );
    assert_eq!(
        runs, 2,
        "one baseline and one resumed sync (same sync id as the killed attempt)"
    );
}

#[cfg(unix)]
#[test]
fn a_stopped_sync_resumes_and_restart_starts_over_with_the_same_result() {
    let want = control();
    let s = Scratch::new();
    sync_ok(
        &s,
        &config(&s, &format!("{BASE}\n{FIRST}"), FILE_SINKS),
        &[],
    );

    // SIGTERM: the sync stops between pages, keeps its checkpoint, exits 1.
    let (mut child, c) = start_stalling(&s);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("exit");
    assert_eq!(exit.code(), Some(1));
    nothing_of_the_interrupted_sync_is_visible(&s);
    assert_eq!(
        count(
            &s.db("out.db"),
            "SELECT count(*) FROM sync_runs WHERE status = 'cancelled'"
        ),
        1
    );
    assert!(committed_pages(&s) >= COMMITTED_AT_STALL);

    // --restart drops the checkpoint and lists from the first page.
    let out = s.output(&["sync", "-c", c.to_str().unwrap(), "--restart"]);
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("not resuming the interrupted sync (--restart)"),
        "{log}"
    );
    assert!(!log.contains("replayed"), "{log}");
    assert_eq!(outcome(&s), want);
    unique_ids(&jsonl_events(&s.path("events.jsonl")));
}
