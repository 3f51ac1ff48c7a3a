//! Issue 6: the postgres sink against the local PostgreSQL (127.0.0.1:5432, database `test`;
//! each test works in a schema of its own): snapshots swapped in one transaction, events
//! appended with an increasing `seq`, and a database that goes down mid-sync failing that
//! source alone with its previous snapshot intact. Without a server the tests print
//! `SKIPPED: …` and pass, unless `IDHOST_REQUIRE_SERVICES` names `postgres` (CI), where they fail.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::events::{
    PG_URL, by_subject, config, pg_client, pg_schema, sqlite_events, sync_ok, wait_for,
};
use crate::support::events::{Scratch, text};

const BASE: &str =
    "users = 20\ngroups = 3\nroles = 1\npage_size = 7\nmemberships = 30\nmissing_users = [7]";
const CHANGED: &str = "users = 20\ngroups = 3\nroles = 1\npage_size = 7\nmemberships = 33\nmissing_users = [5]\ndisabled_users = [2]\nrename_users = [3]";

fn sinks(url: &str) -> String {
    format!(
        r#"
[sinks.db]
type = "sqlite"
path = "out.db"
records = ["resource", "entitlement", "grant", "event", "sync_run"]

[sinks.pg]
type = "postgres"
url = "{url}"
records = ["resource", "entitlement", "grant", "event", "sync_run"]
"#
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("runtime")
}

async fn strings(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .expect(sql)
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

async fn number(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[test]
fn snapshots_and_events_land_in_postgres_with_an_increasing_seq() {
    let rt = rt();
    let (client, schema, url) = match rt.block_on(pg_schema("idhost_pg_events")) {
        Ok(x) => x,
        Err(reason) => {
            idhost_e2e::services::skip("postgres", &reason);
            return;
        }
    };
    let _cleanup = crate::support::events::DropSchema(schema.clone());
    let s = Scratch::new();
    sync_ok(&s, &config(&s, BASE, &sinks(&url)), &[]);
    let c = config(&s, CHANGED, &sinks(&url));
    sync_ok(&s, &c, &[]);
    let sqlite = sqlite_events(&s);
    let second = sqlite[0].4.clone();
    rt.block_on(async {
        client
            .batch_execute(&format!("SET search_path = {schema}"))
            .await
            .unwrap();
        // The events, in the order the host emitted them, with the SQLite sink's ids.
        let rows = client
            .query(
                "SELECT seq, id, event, subject, changes::text, sync_id FROM events ORDER BY seq",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), 13);
        let ids: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
        assert_eq!(ids, sqlite.iter().map(|e| e.0.clone()).collect::<Vec<_>>());
        let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        // jsonb keeps keys in its own order; JSON values compare regardless of key order.
        let pg: BTreeMap<(String, String), serde_json::Value> = rows
            .iter()
            .map(|r| {
                (
                    (r.get(2), r.get(3)),
                    serde_json::from_str(r.get::<_, &str>(4)).unwrap(),
                )
            })
            .collect();
        assert_eq!(pg, by_subject(&sqlite, &second));

        // The snapshot: the changed upstream, the swap recorded, unchanged rows left alone.
        assert_eq!(
            number(
                &client,
                "SELECT count(*) FROM resources WHERE source = 'dir' AND type = 'user'"
            )
            .await,
            19
        );
        assert_eq!(
            strings(
                &client,
                "SELECT display_name FROM resources WHERE id = 'user:u3'"
            )
            .await,
            ["User 3 (renamed)"]
        );
        assert_eq!(
            strings(&client, "SELECT status FROM resources WHERE id = 'user:u2'").await,
            ["disabled"]
        );
        assert_eq!(
            number(&client, "SELECT count(*) FROM grants WHERE source = 'dir'").await,
            33 - 3 + 10
        );
        assert_eq!(
            strings(
                &client,
                "SELECT sync_id FROM snapshots WHERE source = 'dir'"
            )
            .await,
            std::slice::from_ref(&second)
        );
        assert_eq!(
            number(
                &client,
                &format!("SELECT count(*) FROM resources WHERE sync_id = '{second}'")
            )
            .await,
            3,
            "only u7 (new), u3 (renamed) and u2 (disabled) were rewritten"
        );
        assert_eq!(
            number(
                &client,
                "SELECT count(*) FROM sync_runs WHERE status = 'succeeded'"
            )
            .await,
            2
        );
        let user: String = client
            .query_one(
                "SELECT \"user\"->>'login' FROM resources WHERE id = 'user:u4'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(user, "user4@example.com");
    });

    // Unchanged upstream: nothing appended, nothing rewritten.
    sync_ok(&s, &c, &[]);
    rt.block_on(async {
        assert_eq!(number(&client, "SELECT count(*) FROM events").await, 13);
        assert_eq!(
            number(
                &client,
                &format!("SELECT count(*) FROM resources WHERE sync_id <> '{second}'")
            )
            .await,
            19 + 3 + 1 - 3,
            "rows keep the sync that last changed them"
        );
    });
}

/// A TCP proxy to PostgreSQL that the test can cut: every open connection is dropped and new
/// ones are refused until it is restored.
struct Proxy {
    addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
}

impl Proxy {
    async fn start(target: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut watch = watch.clone();
                if !*watch.borrow() {
                    continue; // refused: dropped at once
                }
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = watch.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { addr, up }
    }

    fn set(&self, up: bool) {
        let _ = self.up.send(up);
    }
}

fn checkpoint_type_index(s: &Scratch) -> u64 {
    rusqlite::Connection::open(s.path("state.db"))
        .ok()
        .and_then(|db| {
            db.query_row(
                "SELECT data FROM sync_checkpoints WHERE source = 'dir'",
                [],
                |r| r.get::<_, String>(0),
            )
            .ok()
        })
        .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
        .and_then(|v| v["type_index"].as_u64())
        .unwrap_or(0)
}

#[test]
fn postgres_down_at_write_time_fails_that_source_and_keeps_its_previous_snapshot() {
    let rt = rt();
    let (client, schema, _) = match rt.block_on(pg_schema("idhost_pg_down")) {
        Ok(x) => x,
        Err(reason) => {
            idhost_e2e::services::skip("postgres", &reason);
            return;
        }
    };
    let _cleanup = crate::support::events::DropSchema(schema.clone());
    let proxy = rt.block_on(Proxy::start("127.0.0.1:5432"));
    let url = format!(
        "postgres://postgres@{}/test?options=-csearch_path%3D{schema}",
        proxy.addr
    );
    let s = Scratch::new();
    let body = |dir: &str| {
        format!(
            r#"
[sources.dir]
connector = "fixture"
[sources.dir.settings]
{dir}

[sources.other]
connector = "fixture"
[sources.other.settings]
users = 5

[sinks.db]
type = "sqlite"
path = "out.db"
inputs = ["other"]

[sinks.pg]
type = "postgres"
url = "{url}"
inputs = ["dir"]
records = ["resource", "entitlement", "grant", "event", "sync_run"]
"#
        )
    };
    let c = s.config(&body(BASE));
    sync_ok(&s, &c, &[]);
    let before = rt.block_on(async {
        client
            .batch_execute(&format!("SET search_path = {schema}"))
            .await
            .unwrap();
        strings(
            &client,
            "SELECT id || '|' || display_name || '|' || status FROM resources ORDER BY id",
        )
        .await
    });
    assert_eq!(before.len(), 19 + 3 + 1);

    // The users are written, then the database goes away while the groups are listed.
    let c = s.config(&body(&format!(
        "{CHANGED}\nsleep_on = \"list:group:0\"\nsleep_ms = 1500"
    )));
    let child = crate::support::events::idhost()
        .args(["sync", "-c", c.to_str().unwrap()])
        .current_dir(s.dir())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(
        Duration::from_secs(30),
        "the user listing to be committed",
        || checkpoint_type_index(&s) >= 1,
    );
    proxy.set(false);
    let out = child.wait_with_output().expect("exit");
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(log.contains("sink `pg`"), "{log}");
    assert!(
        log.contains(&format!("postgres://127.0.0.1:{}/test", proxy.addr.port())),
        "{log}"
    );
    assert!(
        log.contains("other") && log.contains("succeeded"),
        "the other source goes on: {log}"
    );

    rt.block_on(async {
        let after = strings(
            &client,
            "SELECT id || '|' || display_name || '|' || status FROM resources ORDER BY id",
        )
        .await;
        assert_eq!(after, before, "the previous snapshot is intact");
        assert_eq!(number(&client, "SELECT count(*) FROM events").await, 0);
        assert_eq!(
            number(&client, "SELECT count(*) FROM grants").await,
            30 - 3 + 10
        );
    });

    // The database is back: the next sync resumes and delivers everything once.
    proxy.set(true);
    let log = sync_ok(&s, &c, &[]);
    assert!(log.contains("resuming the interrupted sync"), "{log}");
    rt.block_on(async {
        assert_eq!(number(&client, "SELECT count(*) FROM events").await, 13);
        assert_eq!(
            strings(
                &client,
                "SELECT display_name FROM resources WHERE id = 'user:u3'"
            )
            .await,
            ["User 3 (renamed)"]
        );
    });
    let _ = (PG_URL, pg_client);
}
