//! Issue 2: syncing the real fixture plugin into SQLite and JSONL, failures that stay local,
//! and cancellation that leaves no half-written snapshot.

use std::time::{Duration, Instant};

use crate::support::{Scratch, count, text};

#[test]
fn syncs_10k_users_500_groups_50k_memberships_into_sqlite_and_jsonl_with_exact_counts() {
    let s = Scratch::new();
    let config = s.config(
        r#"
[sources.big]
connector = "fixture"
[sources.big.settings]
users = 10000
groups = 500
memberships = 50000
page_size = 1000

[sinks.db]
type = "sqlite"
path = "out.db"

[sinks.lines]
type = "jsonl"
path = "out.jsonl"
"#,
    );
    let out = s.output(&["sync", "-c", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let db = s.db("out.db");
    assert_eq!(
        count(&db, "SELECT count(*) FROM resources WHERE type = 'user'"),
        10_000
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM resources WHERE type = 'group'"),
        500
    );
    assert_eq!(count(&db, "SELECT count(*) FROM entitlements"), 500);
    assert_eq!(count(&db, "SELECT count(*) FROM grants"), 50_000);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT principal) FROM grants"),
        100
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM _staging_grants"),
        0,
        "staging is cleared"
    );
    let login: String = db
        .query_row(
            "SELECT json_extract(user, '$.login') FROM resources WHERE id = 'user:u42'",
            [],
            |r| r.get(0),
        )
        .expect("user u42");
    assert_eq!(login, "user42@example.com");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sync_runs WHERE status = 'succeeded' AND source = 'big'"
        ),
        1
    );

    let lines = std::fs::read_to_string(s.path("out.jsonl")).expect("jsonl written");
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is JSON");
        assert_eq!(v["source"], "big");
        *kinds
            .entry(v["kind"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert_eq!(kinds.get("resource"), Some(&10_500));
    assert_eq!(kinds.get("entitlement"), Some(&500));
    assert_eq!(kinds.get("grant"), Some(&50_000));
    assert_eq!(kinds.get("sync_run"), Some(&1));
    let grant = lines
        .lines()
        .find(|l| l.contains("\"kind\":\"grant\""))
        .expect("a grant line");
    let grant: serde_json::Value = serde_json::from_str(grant).expect("json");
    assert_eq!(
        grant["id"],
        format!(
            "{}:{}",
            grant["entitlement"].as_str().unwrap(),
            grant["principal"].as_str().unwrap()
        )
    );
}

fn three_sources(panic_on: &str, fail_on: &str) -> String {
    format!(
        r#"
[sources.alpha]
connector = "fixture"
[sources.alpha.settings]
users = 3000
groups = 10
memberships = 300
page_size = 500
{panic_on}

[sources.beta]
connector = "fixture"
[sources.beta.settings]
users = 2000
groups = 5
memberships = 100
{fail_on}

[sources.gamma]
connector = "fixture"
[sources.gamma.settings]
users = 1234
groups = 7
memberships = 70

[sinks.db]
type = "sqlite"
path = "out.db"
"#
    )
}

#[test]
fn a_panicking_and_a_failing_source_fail_alone_and_keep_their_previous_snapshots() {
    let s = Scratch::new();
    let config = s.config(&three_sources("", ""));
    let first = s.output(&["sync", "-c", config.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first));
    let db = s.db("out.db");
    let snapshot = |source: &str| -> (i64, String) {
        db.query_row(
            "SELECT count(*), max(sync_id) FROM resources WHERE source = ?1",
            [source],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("snapshot")
    };
    let (alpha_before, beta_before) = (snapshot("alpha"), snapshot("beta"));
    assert_eq!(alpha_before.0, 3010);
    assert_eq!(beta_before.0, 2005);

    // Second run: alpha panics on its second user page, beta's upstream answers an error,
    // gamma grows.
    let config = s.config(
        &three_sources(
            "panic_on = \"list:user:1\"",
            "fail_on = \"list:group\"\nfail_kind = \"unavailable\"",
        )
        .replace("users = 1234", "users = 1500"),
    );
    let second = s.output(&["sync", "-c", config.to_str().unwrap()]);
    let all = text(&second);
    assert_eq!(second.status.code(), Some(1), "{all}");
    assert!(all.contains("alpha") && all.contains("panicked"), "{all}");
    assert!(
        all.contains("fixture told to panic on list:user:1"),
        "{all}"
    );
    assert!(
        all.contains("beta") && all.contains("answered 503"),
        "{all}"
    );
    assert_eq!(
        snapshot("alpha"),
        alpha_before,
        "alpha keeps its previous snapshot"
    );
    assert_eq!(
        snapshot("beta"),
        beta_before,
        "beta keeps its previous snapshot"
    );
    assert_eq!(snapshot("gamma").0, 1507, "gamma is fully written");
    assert_eq!(
        count(&db, "SELECT count(*) FROM grants WHERE source = 'gamma'"),
        70
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sync_runs WHERE status = 'failed'"
        ),
        2,
        "both failures are recorded as runs"
    );
    let error: String = db
        .query_row(
            "SELECT error FROM sync_runs WHERE source = 'alpha' AND status = 'failed'",
            [],
            |r| r.get(0),
        )
        .expect("alpha run");
    assert!(error.contains("panicked"), "{error}");
}

#[test]
fn a_repeated_page_token_fails_the_listing_instead_of_looping() {
    let s = Scratch::new();
    let config = s.config(
        r#"
[sources.loop]
connector = "fixture"
[sources.loop.settings]
repeat_token_on = "list:user"
[sinks.db]
type = "sqlite"
path = "out.db"
"#,
    );
    let out = s.output(&["sync", "-c", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("handed back page token `same` a second time"),
        "{}",
        text(&out)
    );
}

#[test]
fn resources_only_and_source_selection_limit_the_sync() {
    let s = Scratch::new();
    let config = s.config(&three_sources("", ""));
    let out = s.output(&[
        "sync",
        "-c",
        config.to_str().unwrap(),
        "--source",
        "gamma",
        "--resources-only",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let db = s.db("out.db");
    assert_eq!(
        count(&db, "SELECT count(DISTINCT source) FROM resources"),
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM grants"), 0);
    let out = s.output(&["sync", "-c", config.to_str().unwrap(), "--source", "gamm"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--source `gamm` is not a source"),
        "{}",
        text(&out)
    );
}

#[cfg(unix)]
#[test]
fn sigterm_mid_sync_leaves_the_previous_snapshot_whole() {
    let s = Scratch::new();
    let body = |sleep: &str| {
        format!(
            r#"
[sources.slow]
connector = "fixture"
[sources.slow.settings]
users = 5000
groups = 5
memberships = 50
page_size = 500
{sleep}
[sinks.db]
type = "sqlite"
path = "out.db"
[sinks.lines]
type = "jsonl"
path = "out.jsonl"
"#
        )
    };
    let config = s.config(&body(""));
    let first = s.output(&["sync", "-c", config.to_str().unwrap()]);
    assert!(first.status.success(), "{}", text(&first));
    let jsonl_before = std::fs::read(s.path("out.jsonl")).expect("jsonl");

    // The second sync stalls on page 4 of users; SIGTERM arrives while it waits.
    let config = s.config(&body(
        "rename_users = [1, 2, 3]\nsleep_on = \"list:user:3\"\nsleep_ms = 20000",
    ));
    let mut child = crate::support::idhost()
        .args(["sync", "-c", config.to_str().unwrap()])
        .current_dir(s.dir())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1500));
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "idhost did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(1));
    let db = s.db("out.db");
    assert_eq!(
        count(&db, "SELECT count(*) FROM resources WHERE source = 'slow'"),
        5005
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM resources WHERE display_name LIKE '%renamed%'"
        ),
        0,
        "nothing of the cancelled sync is visible"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM _staging_resources"), 0);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM sync_runs WHERE status = 'cancelled'"
        ),
        1
    );
    let jsonl_after = std::fs::read(s.path("out.jsonl")).expect("jsonl");
    assert!(jsonl_after.starts_with(&jsonl_before));
    let added = String::from_utf8_lossy(&jsonl_after[jsonl_before.len()..]).into_owned();
    assert_eq!(
        added.lines().count(),
        1,
        "only the cancelled run's record is appended: {added}"
    );
    assert!(added.contains("\"status\":\"cancelled\""), "{added}");
}
