//! The export in PostgreSQL (table `export_<sink>`), through the real binary and the fixture
//! plugin. Needs Postgres on 127.0.0.1:5432 (user postgres, trust auth, database `test`);
//! otherwise prints SKIPPED (and fails where `IDHOST_REQUIRE_SERVICES` names `postgres`).

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use crate::support::export::{require_plugin, sync, sync_ok, toml_path};

const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn postgres_answers() -> bool {
    let addr: SocketAddr = "127.0.0.1:5432".parse().expect("address");
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

fn config(dir: &std::path::Path, sink: &str, settings: &str) -> PathBuf {
    let text = format!(
        r#"plugin_dir = {plugins}
state_path = {state}
[sources.directory]
connector = "fixture"
[sources.directory.settings]
groups = 1
page_size = 3
{settings}
[sinks.{sink}]
type = "postgres"
url = "{URL}"
records = ["user"]
sync_key = ["EMAIL", "ID"]
deactivate_missing = true
[sinks.{sink}.mapping]
EMAIL = "user.emails.primary"
ID = "upstream_id"
"Full Name" = "display_name"
"#,
        plugins = toml_path(&crate::support::export::plugin_dir()),
        state = toml_path(&dir.join("state.db")),
    );
    let path = dir.join("idhost.toml");
    std::fs::write(&path, text).expect("config");
    path
}

type PgRow = (String, String, String, bool, String, String);

async fn rows(client: &tokio_postgres::Client, table: &str) -> Vec<PgRow> {
    client
        .query(
            &format!(
                r#"SELECT "EMAIL", "ID", "Full Name", active, source, synced_at FROM "{table}" ORDER BY "ID""#
            ),
            &[],
        )
        .await
        .expect("select")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_export_deactivates_missing_users_and_ignores_failed_syncs() {
    if !postgres_answers() {
        idhost_e2e::services::skip("postgres", "no PostgreSQL answers on 127.0.0.1:5432");
        return;
    }
    require_plugin("fixture_connector", "fixture-connector");
    let (client, connection) = tokio_postgres::connect(URL, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(connection);
    let sink = format!("people_{}", std::process::id());
    let table = format!("export_{sink}");
    client
        .batch_execute(&format!(r#"DROP TABLE IF EXISTS "{table}""#))
        .await
        .expect("clean");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |settings: &'static str, ok: bool| {
        let path = config(dir.path(), &sink, settings);
        async move {
            tokio::task::spawn_blocking(move || {
                if ok {
                    sync_ok(&path, &[], &[]);
                } else {
                    let (code, stderr) = sync(&path, &[], &[]);
                    assert_eq!(code, 1, "{stderr}");
                }
            })
            .await
            .expect("sync task");
        }
    };

    run("users = 6", true).await;
    let first = rows(&client, &table).await;
    assert_eq!(first.len(), 6);
    assert_eq!(
        first[0],
        (
            "user0@example.com".to_owned(),
            "u0".to_owned(),
            "User 0".to_owned(),
            true,
            "directory".to_owned(),
            first[0].5.clone(),
        )
    );

    run(
        "users = 7\nmissing_users = [0, 5]\nrename_users = [1]",
        true,
    )
    .await;
    let second = rows(&client, &table).await;
    assert_eq!(second.len(), 7);
    let inactive: Vec<&str> = second
        .iter()
        .filter(|r| !r.3)
        .map(|r| r.1.as_str())
        .collect();
    assert_eq!(inactive, ["u0", "u5"]);
    assert_eq!(second[1].2, "User 1 (renamed)");
    assert_eq!(
        second[0].5, first[0].5,
        "a missing row keeps its last synced_at"
    );

    // A sync failing on its second page changes nothing.
    run(
        "users = 7\nmissing_users = [1, 2]\nfail_on = \"list:user:1\"",
        false,
    )
    .await;
    assert_eq!(rows(&client, &table).await, second);

    // Users 0 and 5 come back.
    run("users = 7", true).await;
    let fourth = rows(&client, &table).await;
    assert!(
        fourth.iter().all(|r| r.3),
        "returning users are reactivated"
    );

    let types: Vec<(String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Mapped columns in the order the config lists them, then the tracking columns.
    let expected = [
        ("EMAIL", "text"),
        ("ID", "text"),
        ("Full Name", "text"),
        ("active", "boolean"),
        ("source", "text"),
        ("synced_at", "text"),
    ];
    assert_eq!(types, expected.map(|(a, b)| (a.to_owned(), b.to_owned())));
    client
        .batch_execute(&format!(r#"DROP TABLE IF EXISTS "{table}""#))
        .await
        .expect("clean up");
}
