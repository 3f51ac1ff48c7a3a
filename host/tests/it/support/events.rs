//! Helpers of the change-event, checkpoint and delivery tests: a fixture source whose upstream
//! changes between syncs, readers of the events each sink got, and checks for the local
//! PostgreSQL and NATS servers (a test that needs one and finds none prints `SKIPPED: …`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

pub(crate) use idhost_e2e::{Scratch, count, idhost, text};

/// One change event as the tests compare them: kind, subject and changes (ids differ between
/// two syncs of the same change; they are checked separately).
pub(crate) type Change = (String, String, String);

/// A fixture source `dir` with the given extra settings lines, and `sinks` after it.
pub(crate) fn config(s: &Scratch, settings: &str, sinks: &str) -> std::path::PathBuf {
    s.config(&format!(
        r#"
[sources.dir]
connector = "fixture"
[sources.dir.settings]
{settings}

{sinks}
"#
    ))
}

/// An SQLite sink `db` (out.db) and a JSONL sink `lines` (events.jsonl), both taking events.
pub(crate) const FILE_SINKS: &str = r#"
[sinks.db]
type = "sqlite"
path = "out.db"
records = ["resource", "entitlement", "grant", "event", "sync_run"]

[sinks.lines]
type = "jsonl"
path = "events.jsonl"
records = ["event"]
"#;

/// Runs `idhost sync -c CONFIG ARGS…` and asserts it succeeded.
pub(crate) fn sync_ok(s: &Scratch, config: &Path, args: &[&str]) -> String {
    let mut all = vec!["sync", "-c", config.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let out = s.output(&all);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    shown
}

/// The events in the SQLite sink, in `seq` order: (id, kind, subject, changes, sync_id).
pub(crate) fn sqlite_events(s: &Scratch) -> Vec<(String, String, String, Value, String)> {
    let db = s.db("out.db");
    let mut stmt = db
        .prepare("SELECT id, event, subject, changes, sync_id FROM events ORDER BY seq")
        .expect("events table");
    stmt.query_map([], |r| {
        let changes: String = r.get(3)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            serde_json::from_str(&changes).expect("changes are JSON"),
            r.get(4)?,
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// The `event` lines of a JSONL file, parsed.
pub(crate) fn jsonl_events(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("each line is JSON"))
        .filter(|v| v["kind"] == "event")
        .collect()
}

/// The (kind, subject, changes) of wire-form events.
pub(crate) fn changes_of(events: &[Value]) -> BTreeSet<Change> {
    events
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap_or_default().to_owned(),
                e["subject"].as_str().unwrap_or_default().to_owned(),
                e["changes"].to_string(),
            )
        })
        .collect()
}

/// Asserts no two events share an id and returns the ids.
pub(crate) fn unique_ids(events: &[Value]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for e in events {
        let id = e["id"].as_str().expect("id").to_owned();
        assert_eq!(id.len(), 32, "ids are 128-bit hex: {e}");
        assert!(ids.insert(id), "event delivered twice: {e}");
    }
    ids
}

/// `(kind, subject) -> changes` of the SQLite sink's events of one sync.
pub(crate) fn by_subject(
    events: &[(String, String, String, Value, String)],
    sync_id: &str,
) -> BTreeMap<(String, String), Value> {
    events
        .iter()
        .filter(|e| e.4 == sync_id)
        .map(|e| ((e.1.clone(), e.2.clone()), e.3.clone()))
        .collect()
}

/// `{"status": {"old": .., "new": ..}}`.
pub(crate) fn status(old: &str, new: &str) -> Value {
    serde_json::json!({"status": {"old": old, "new": new}})
}

/// The changes of a grant event.
pub(crate) fn grant(added: bool, id: &str) -> Value {
    let (ent, principal) = split_grant(id);
    if added {
        serde_json::json!({"entitlement": {"old": null, "new": ent}, "principal": {"old": null, "new": principal}})
    } else {
        serde_json::json!({"entitlement": {"old": ent, "new": null}, "principal": {"old": principal, "new": null}})
    }
}

/// `group:g1:member:user:u7` → (`group:g1:member`, `user:u7`).
pub(crate) fn split_grant(id: &str) -> (String, String) {
    let parts: Vec<&str> = id.splitn(5, ':').collect();
    (parts[..3].join(":"), parts[3..].join(":"))
}

/// Whether something listens on `addr` (a local server a test needs).
pub(crate) fn listening(addr: &str) -> bool {
    addr.parse()
        .ok()
        .and_then(|a| std::net::TcpStream::connect_timeout(&a, Duration::from_millis(500)).ok())
        .is_some()
}

/// The local PostgreSQL (`postgres` user, trust auth, database `test`), if it answers.
pub(crate) const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A unique name for this test process and `tag`.
pub(crate) fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{tag}_{}_{nanos}", std::process::id())
}

/// A client to the local PostgreSQL, or the reason there is none.
pub(crate) async fn pg_client(url: &str) -> Result<tokio_postgres::Client, String> {
    if !listening("127.0.0.1:5432") {
        return Err("no PostgreSQL on 127.0.0.1:5432".into());
    }
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("PostgreSQL on 127.0.0.1:5432 refused {url}: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

/// A fresh schema in the test database and a sink URL that works in it only.
pub(crate) async fn pg_schema(
    tag: &str,
) -> Result<(tokio_postgres::Client, String, String), String> {
    let client = pg_client(PG_URL).await?;
    let schema = unique(tag);
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .map_err(|e| format!("cannot create a schema in database `test`: {e}"))?;
    let url = format!("{PG_URL}?options=-csearch_path%3D{schema}");
    Ok((client, schema, url))
}

/// Waits until `check` holds, polling, for at most `limit`.
pub(crate) fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    while !check() {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Drops a test's PostgreSQL schema when the test ends, passed or failed.
pub(crate) struct DropSchema(pub(crate) String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let schema = self.0.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().ok()?;
            rt.block_on(async {
                let client = pg_client(PG_URL).await.ok()?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .ok()
            })
        });
        let _ = done.join();
    }
}
