//! The SQLite sink's session through its own API: the commit swaps a source's snapshot as a
//! diff (unchanged rows stay, changed rows are replaced, missing rows go, every row carries the
//! new sync's id), a failed or aborted sync leaves the previous snapshot whole, a large first
//! snapshot rebuilds the indexes inside the commit's transaction (and a failing commit rolls
//! that back too), and several sources stage into one file at once.

use std::collections::BTreeSet;
use std::path::Path;

use idhost::config::SinkConfig;
use idhost::record::{Batch, Counts, RunStatus, SyncRun};
use idhost::sinks::{Sink as _, SqliteSink};
use idhost_connector_sdk::{Entitlement, Grant, Purpose, Resource};
use rusqlite::Connection;

fn sink_config(dir: &Path) -> SinkConfig {
    let text = format!(
        "[sources.src]\nconnector = \"fixture\"\n\n[sinks.db]\ntype = \"sqlite\"\npath = {:?}\nrecords = [\"resource\", \"entitlement\", \"grant\", \"sync_run\", \"event\"]\n",
        dir.join("out.db").display().to_string()
    );
    let config = idhost::config::parse(&dir.join("idhost.toml"), text, &|_| None).expect("config");
    config.sinks[0].clone()
}

fn run(source: &str, sync_id: &str, status: RunStatus) -> SyncRun {
    SyncRun {
        source: source.to_owned(),
        sync_id: sync_id.to_owned(),
        started_at: "2026-01-01T00:00:00Z".to_owned(),
        finished_at: "2026-01-01T00:00:01Z".to_owned(),
        status,
        counts: Counts::default(),
        error: (status != RunStatus::Succeeded).then(|| "upstream failed".to_owned()),
    }
}

fn user(n: u32, name: &str) -> Resource {
    Resource::new("user", &format!("u{n}"), name)
}

fn member_of(group: &str, user: &str) -> Grant {
    Grant::new(&format!("group:{group}:member"), &format!("user:{user}"))
}

fn batch(resources: Vec<Resource>, grants: Vec<Grant>) -> Batch {
    Batch {
        resources,
        entitlements: vec![Entitlement::new(
            "group:g1",
            "member",
            Purpose::Assignment,
            &["user"],
        )],
        grants,
    }
}

fn rows(db: &Connection, sql: &str) -> BTreeSet<String> {
    let mut stmt = db.prepare(sql).expect("prepare");
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

fn count(db: &Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).expect("count")
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Triggers recording what the swap does to each visible row. An update counts only when it
/// changes a record's content (`sync_id` moves on every row of a new snapshot).
const AUDIT: &str = r#"
CREATE TABLE audit (op TEXT NOT NULL, id TEXT NOT NULL);
CREATE TRIGGER audit_ri AFTER INSERT ON resources BEGIN INSERT INTO audit VALUES ('insert', new.id); END;
CREATE TRIGGER audit_rd AFTER DELETE ON resources BEGIN INSERT INTO audit VALUES ('delete', old.id); END;
CREATE TRIGGER audit_ru AFTER UPDATE OF type, display_name, status, parent, user, "group", app, role, profile
    ON resources BEGIN INSERT INTO audit VALUES ('update', new.id); END;
CREATE TRIGGER audit_gi AFTER INSERT ON grants BEGIN INSERT INTO audit VALUES ('insert', new.id); END;
CREATE TRIGGER audit_gd AFTER DELETE ON grants BEGIN INSERT INTO audit VALUES ('delete', old.id); END;
CREATE TRIGGER audit_gu AFTER UPDATE OF entitlement, principal ON grants
    BEGIN INSERT INTO audit VALUES ('update', new.id); END;
"#;

#[tokio::test]
async fn the_swap_keeps_unchanged_rows_replaces_changed_ones_and_deletes_missing_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = SqliteSink::open(sink_config(dir.path()))
        .await
        .expect("open");
    let mut session = sink.begin("src", "s1").await.expect("begin");
    session
        .write(&batch(
            vec![user(1, "Ann"), user(2, "Bob"), user(3, "Cy")],
            vec![
                member_of("g1", "u1"),
                member_of("g1", "u2"),
                member_of("g1", "u3"),
            ],
        ))
        .await
        .expect("write");
    session
        .commit(&run("src", "s1", RunStatus::Succeeded))
        .await
        .expect("commit");

    let db = Connection::open(dir.path().join("out.db")).expect("db");
    db.execute_batch(AUDIT).expect("triggers");

    // u1 and its grant unchanged, u2 renamed (staged twice: the last version wins), u3 and its
    // grant gone, u4 and its grant new; grant u2's principal changed under the same id.
    let mut session = sink.begin("src", "s2").await.expect("begin");
    session
        .write(&batch(
            vec![user(1, "Ann"), user(2, "Bob")],
            vec![member_of("g1", "u1")],
        ))
        .await
        .expect("write");
    let mut changed = member_of("g1", "u2");
    changed.principal = "user:u2-renamed".to_owned();
    session
        .write(&batch(
            vec![user(2, "Robert"), user(4, "Dee")],
            vec![changed, member_of("g1", "u4")],
        ))
        .await
        .expect("write");
    session
        .commit(&run("src", "s2", RunStatus::Succeeded))
        .await
        .expect("commit");

    let audit = rows(&db, "SELECT op || ' ' || id FROM audit");
    assert_eq!(
        audit,
        set(&[
            "update user:u2",
            "delete user:u3",
            "insert user:u4",
            "update group:g1:member:user:u2",
            "delete group:g1:member:user:u3",
            "insert group:g1:member:user:u4",
        ]),
        "unchanged rows are left alone"
    );
    assert_eq!(
        rows(&db, "SELECT id || '=' || display_name FROM resources"),
        set(&["user:u1=Ann", "user:u2=Robert", "user:u4=Dee"])
    );
    assert_eq!(
        rows(&db, "SELECT principal FROM grants"),
        set(&["user:u1", "user:u2-renamed", "user:u4"])
    );
    for table in ["resources", "entitlements", "grants"] {
        assert_eq!(
            rows(&db, &format!("SELECT DISTINCT sync_id FROM {table}")),
            set(&["s2"]),
            "{table}: every row belongs to the new snapshot"
        );
    }

    // A failed sync: staged, then aborted. Nothing visible changes and its staging is gone.
    db.execute("DELETE FROM audit", []).expect("reset");
    let mut session = sink.begin("src", "s3").await.expect("begin");
    session
        .write(&batch(vec![user(9, "Zed")], vec![member_of("g1", "u9")]))
        .await
        .expect("write");
    assert_eq!(count(&db, "SELECT count(*) FROM _staging_grants"), 1);
    session
        .abort(&run("src", "s3", RunStatus::Failed))
        .await
        .expect("abort");
    assert_eq!(count(&db, "SELECT count(*) FROM audit"), 0);
    assert_eq!(
        rows(&db, "SELECT id || '=' || display_name FROM resources"),
        set(&["user:u1=Ann", "user:u2=Robert", "user:u4=Dee"])
    );
    assert_eq!(
        rows(&db, "SELECT DISTINCT sync_id FROM grants"),
        set(&["s2"])
    );
    for table in [
        "_staging_resources",
        "_staging_entitlements",
        "_staging_grants",
    ] {
        assert_eq!(count(&db, &format!("SELECT count(*) FROM {table}")), 0);
    }
    assert_eq!(
        rows(&db, "SELECT sync_id || ' ' || status FROM sync_runs"),
        set(&["s1 succeeded", "s2 succeeded", "s3 failed"])
    );

    // A sync killed mid-way leaves its staging; the source's next sync starts it over.
    let mut session = sink.begin("src", "s4").await.expect("begin");
    session
        .write(&batch(vec![user(7, "Kim")], vec![member_of("g1", "u7")]))
        .await
        .expect("write");
    drop(session);
    let mut session = sink.begin("src", "s5").await.expect("begin");
    assert_eq!(count(&db, "SELECT count(*) FROM _staging_resources"), 0);
    session
        .write(&batch(vec![user(1, "Ann")], vec![member_of("g1", "u1")]))
        .await
        .expect("write");
    session
        .commit(&run("src", "s5", RunStatus::Succeeded))
        .await
        .expect("commit");
    assert_eq!(rows(&db, "SELECT id FROM resources"), set(&["user:u1"]));
    assert_eq!(
        count(&db, "SELECT count(*) FROM grants WHERE sync_id = 's5'"),
        1
    );
}

fn many_grants(group: &str, n: u32) -> Vec<Grant> {
    (0..n).map(|u| member_of(group, &format!("u{u}"))).collect()
}

#[tokio::test]
async fn a_large_first_snapshot_rebuilds_the_indexes_and_a_failed_commit_rolls_it_all_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = SqliteSink::open(sink_config(dir.path()))
        .await
        .expect("open");
    let db = Connection::open(dir.path().join("out.db")).expect("db");
    let indexes = |db: &Connection| {
        rows(
            db,
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'grants' AND sql IS NOT NULL",
        )
    };
    let all_indexes = set(&["grants_entitlement", "grants_principal"]);
    assert_eq!(indexes(&db), all_indexes);

    let mut session = sink.begin("big", "b1").await.expect("begin");
    for group in ["g1", "g2", "g3"] {
        session
            .write(&Batch {
                grants: many_grants(group, 20_000),
                ..Batch::default()
            })
            .await
            .expect("write");
    }
    session
        .commit(&run("big", "b1", RunStatus::Succeeded))
        .await
        .expect("commit");
    assert_eq!(
        count(&db, "SELECT count(*) FROM grants WHERE source = 'big'"),
        60_000
    );
    assert_eq!(indexes(&db), all_indexes);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM grants INDEXED BY grants_principal WHERE principal = 'user:u7'"
        ),
        3
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM grants INDEXED BY grants_entitlement WHERE entitlement = 'group:g2:member'"
        ),
        20_000
    );

    // A second source's large first snapshot whose commit fails half-way through: the
    // transaction that dropped and rebuilt the indexes rolls back whole.
    db.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON grants WHEN new.id = 'group:h2:member:user:u19999'
         BEGIN SELECT RAISE(ABORT, 'boom'); END;",
    )
    .expect("trigger");
    let mut session = sink.begin("other", "o1").await.expect("begin");
    for group in ["h1", "h2", "h3"] {
        session
            .write(&Batch {
                grants: many_grants(group, 20_000),
                ..Batch::default()
            })
            .await
            .expect("write");
    }
    let err = session
        .commit(&run("other", "o1", RunStatus::Succeeded))
        .await
        .expect_err("the trigger fails the commit");
    assert!(err.to_string().contains("boom"), "{err}");
    assert_eq!(
        count(&db, "SELECT count(*) FROM grants WHERE source = 'other'"),
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM grants"), 60_000);
    assert_eq!(indexes(&db), all_indexes);

    // The retry (a new session, as the next sync) commits.
    db.execute_batch("DROP TRIGGER boom").expect("drop trigger");
    let mut session = sink.begin("other", "o2").await.expect("begin");
    session
        .write(&Batch {
            grants: many_grants("h1", 60_000),
            ..Batch::default()
        })
        .await
        .expect("write");
    session
        .commit(&run("other", "o2", RunStatus::Succeeded))
        .await
        .expect("commit");
    assert_eq!(
        count(&db, "SELECT count(*) FROM grants WHERE source = 'other'"),
        60_000
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM grants INDEXED BY grants_principal WHERE principal = 'user:u7'"
        ),
        4
    );
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    assert_eq!(count(&db, "SELECT count(*) FROM _staging_grants"), 0);
}

#[tokio::test]
async fn sources_staging_at_once_keep_each_others_staging() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = SqliteSink::open(sink_config(dir.path()))
        .await
        .expect("open");
    let db = Connection::open(dir.path().join("out.db")).expect("db");
    let mut a = sink.begin("a", "a1").await.expect("begin");
    let mut b = sink.begin("b", "b1").await.expect("begin");
    a.write(&batch(vec![user(1, "A1")], vec![member_of("g1", "u1")]))
        .await
        .expect("write");
    b.write(&batch(
        vec![user(2, "B2"), user(3, "B3")],
        vec![member_of("g1", "u2")],
    ))
    .await
    .expect("write");
    a.commit(&run("a", "a1", RunStatus::Succeeded))
        .await
        .expect("commit");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM _staging_resources WHERE source = 'b'"
        ),
        2,
        "b's staging survives a's commit"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM resources"), 1);
    b.commit(&run("b", "b1", RunStatus::Succeeded))
        .await
        .expect("commit");
    assert_eq!(
        rows(&db, "SELECT source || ' ' || id FROM resources"),
        set(&["a user:u1", "b user:u2", "b user:u3"])
    );
    assert_eq!(
        rows(&db, "SELECT source || ' ' || id FROM entitlements"),
        set(&["a group:g1:member", "b group:g1:member"])
    );
    assert_eq!(count(&db, "SELECT count(*) FROM _staging_resources"), 0);
}

#[tokio::test]
async fn staging_of_the_old_layout_is_replaced_when_the_sink_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let db = Connection::open(dir.path().join("out.db")).expect("db");
        db.execute_batch(
            "CREATE TABLE _staging_grants (sync_id TEXT NOT NULL, source TEXT NOT NULL,
                 id TEXT NOT NULL, entitlement TEXT NOT NULL, principal TEXT NOT NULL);
             CREATE INDEX _staging_grants_sync ON _staging_grants (sync_id);
             INSERT INTO _staging_grants VALUES ('old', 'src', 'x', 'y', 'z');",
        )
        .expect("old layout");
    }
    let sink = SqliteSink::open(sink_config(dir.path()))
        .await
        .expect("open");
    let mut session = sink.begin("src", "s1").await.expect("begin");
    session
        .write(&batch(vec![user(1, "Ann")], vec![member_of("g1", "u1")]))
        .await
        .expect("write");
    session
        .commit(&run("src", "s1", RunStatus::Succeeded))
        .await
        .expect("commit");
    let db = Connection::open(dir.path().join("out.db")).expect("db");
    assert_eq!(
        rows(&db, "SELECT id FROM grants"),
        set(&["group:g1:member:user:u1"])
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM pragma_table_info('_staging_grants') WHERE name = 'sync_id'"
        ),
        0
    );
}
