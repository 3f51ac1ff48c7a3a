//! The embedded default sink: one SQLite file, queryable with plain SQL.
//!
//! Schema (each table carries `source`; JSON columns hold the DESIGN §4 traits):
//! - `resources(source, id, type, display_name, status, parent, user, "group", app, role, profile, sync_id)`
//! - `entitlements(source, id, resource, slug, display_name, purpose, grantable_to, sync_id)`
//! - `grants(source, id, entitlement, principal, sync_id)`
//! - `sync_runs(source, sync_id, started_at, finished_at, status, counts, error)`
//! - `events(seq, id, source, event, subject, sync_id, at, changes)` when `records` include
//!   `event`: appended on commit, `seq` increasing, a redelivered event (same `id`) ignored
//!
//! A sync writes its pages into append-only staging tables in short transactions (so several
//! sources can sync into one file at once), and its commit swaps the source's snapshot in ONE
//! transaction: delete the source's rows, copy the staged rows, drop the staging. A failed,
//! cancelled or killed sync never touches the visible tables; its staging is deleted on abort
//! or on the next start.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::{Batch, ChangeEvent, Sink, SinkError, SinkSession, SyncRun};
use crate::config::SinkConfig;

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 30000;
PRAGMA cache_size = -65536;
CREATE TABLE IF NOT EXISTS resources (
    source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, display_name TEXT NOT NULL,
    status TEXT NOT NULL, parent TEXT, user TEXT, "group" TEXT, app TEXT, role TEXT,
    profile TEXT, sync_id TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resources_type ON resources (source, type);
CREATE TABLE IF NOT EXISTS entitlements (
    source TEXT NOT NULL, id TEXT NOT NULL, resource TEXT NOT NULL, slug TEXT NOT NULL,
    display_name TEXT NOT NULL, purpose TEXT NOT NULL, grantable_to TEXT NOT NULL,
    sync_id TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grants (
    source TEXT NOT NULL, id TEXT NOT NULL, entitlement TEXT NOT NULL, principal TEXT NOT NULL,
    sync_id TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS grants_principal ON grants (principal);
CREATE INDEX IF NOT EXISTS grants_entitlement ON grants (entitlement);
CREATE TABLE IF NOT EXISTS sync_runs (
    source TEXT NOT NULL, sync_id TEXT NOT NULL PRIMARY KEY, started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL, status TEXT NOT NULL, counts TEXT NOT NULL, error TEXT);
CREATE TABLE IF NOT EXISTS _staging_resources (
    sync_id TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    display_name TEXT NOT NULL, status TEXT NOT NULL, parent TEXT, user TEXT, "group" TEXT,
    app TEXT, role TEXT, profile TEXT);
CREATE TABLE IF NOT EXISTS _staging_entitlements (
    sync_id TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, resource TEXT NOT NULL,
    slug TEXT NOT NULL, display_name TEXT NOT NULL, purpose TEXT NOT NULL, grantable_to TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS _staging_grants (
    sync_id TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, entitlement TEXT NOT NULL,
    principal TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS _staging_resources_sync ON _staging_resources (sync_id);
CREATE INDEX IF NOT EXISTS _staging_entitlements_sync ON _staging_entitlements (sync_id);
CREATE INDEX IF NOT EXISTS _staging_grants_sync ON _staging_grants (sync_id);
CREATE TABLE IF NOT EXISTS _staging_events (
    sync_id TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, event TEXT NOT NULL,
    subject TEXT NOT NULL, at TEXT NOT NULL, changes TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS _staging_events_sync ON _staging_events (sync_id);
"#;

/// The change events table, created when the sink's `records` include `event` (so a file
/// without it tells `idhost query` that the sink keeps no events).
const EVENTS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
    event TEXT NOT NULL, subject TEXT NOT NULL, sync_id TEXT NOT NULL, at TEXT NOT NULL,
    changes TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_subject ON events (source, subject);
"#;

/// The SQLite sink.
pub struct SqliteSink {
    config: SinkConfig,
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl SqliteSink {
    /// Opens (creating) the database, applies the schema and drops staging left by a killed run.
    pub async fn open(config: SinkConfig) -> Result<Self, SinkError> {
        let path = config
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("idhost.db"));
        let name = config.name.clone();
        let p = path.clone();
        let events = config.records.wants_kind("event");
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, rusqlite::Error> {
            if let Some(dir) = p.parent()
                && !dir.as_os_str().is_empty()
            {
                let _ = std::fs::create_dir_all(dir);
            }
            let conn = Connection::open(&p)?;
            conn.execute_batch(SCHEMA)?;
            if events {
                conn.execute_batch(EVENTS_SCHEMA)?;
            }
            Ok(conn)
        })
        .await
        .map_err(|e| SinkError::Other {
            sink: name.clone(),
            message: e.to_string(),
        })?
        .map_err(|source| SinkError::Sqlite {
            sink: name,
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            config,
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Deletes staging rows no running sync owns (left by a killed process).
    pub async fn drop_stale_staging(&self) -> Result<(), SinkError> {
        self.blocking(|conn| {
            conn.execute_batch(
                "DELETE FROM _staging_resources; DELETE FROM _staging_entitlements; DELETE FROM _staging_grants;
             DELETE FROM _staging_events;",
            )
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, SinkError> {
        run_blocking(
            self.conn.clone(),
            self.config.name.clone(),
            self.path.clone(),
            f,
        )
        .await
    }
}

async fn run_blocking<T: Send + 'static>(
    conn: Arc<Mutex<Connection>>,
    sink: String,
    path: PathBuf,
    f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
) -> Result<T, SinkError> {
    let name = sink.clone();
    let p = path.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut conn)
    })
    .await
    .map_err(|e| SinkError::Other {
        sink: name,
        message: format!("the writer task failed: {e}"),
    })?
    .map_err(|source| SinkError::Sqlite {
        sink,
        path: p,
        source,
    })
}

#[async_trait]
impl Sink for SqliteSink {
    fn config(&self) -> &SinkConfig {
        &self.config
    }

    async fn begin(&self, source: &str, sync_id: &str) -> Result<Box<dyn SinkSession>, SinkError> {
        // A resumed sync starts its staging over: what a killed attempt staged is dropped
        // (one sync per source runs at a time, so every staged row of the source is stale).
        let owner = source.to_owned();
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            for table in STAGING {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE source = ?1"),
                    params![owner],
                )?;
            }
            tx.commit()
        })
        .await?;
        Ok(Box::new(SqliteSession {
            conn: self.conn.clone(),
            sink: self.config.name.clone(),
            path: self.path.clone(),
            source: source.to_owned(),
            sync_id: sync_id.to_owned(),
            events: self.config.records.wants_kind("event"),
        }))
    }
}

struct SqliteSession {
    conn: Arc<Mutex<Connection>>,
    sink: String,
    path: PathBuf,
    source: String,
    sync_id: String,
    /// Whether the sink keeps change events (has an `events` table).
    events: bool,
}

fn json_or_null<T: serde::Serialize>(value: &Option<T>) -> Option<String> {
    value.as_ref().and_then(|v| serde_json::to_string(v).ok())
}

fn stage(
    conn: &mut Connection,
    source: &str,
    sync_id: &str,
    batch: &Batch,
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            r#"INSERT INTO _staging_resources (sync_id, source, id, type, display_name, status,
               parent, user, "group", app, role, profile) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)"#,
        )?;
        for r in &batch.resources {
            stmt.execute(params![
                sync_id,
                source,
                r.id,
                r.rtype,
                r.display_name,
                r.status.as_str(),
                r.parent,
                json_or_null(&r.user),
                json_or_null(&r.group),
                json_or_null(&r.app),
                json_or_null(&r.role),
                serde_json::to_string(&r.profile).unwrap_or_else(|_| "{}".into()),
            ])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO _staging_entitlements (sync_id, source, id, resource, slug, display_name,
             purpose, grantable_to) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
        )?;
        for e in &batch.entitlements {
            let purpose = serde_json::to_value(e.purpose)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            stmt.execute(params![
                sync_id,
                source,
                e.id,
                e.resource,
                e.slug,
                e.display_name,
                purpose,
                serde_json::to_string(&e.grantable_to).unwrap_or_else(|_| "[]".into()),
            ])?;
        }
        let mut stmt = tx.prepare_cached(
            "INSERT INTO _staging_grants (sync_id, source, id, entitlement, principal) VALUES (?1,?2,?3,?4,?5)",
        )?;
        for g in &batch.grants {
            stmt.execute(params![sync_id, source, g.id, g.entitlement, g.principal])?;
        }
    }
    tx.commit()
}

fn record_run(tx: &rusqlite::Transaction<'_>, run: &SyncRun) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT OR REPLACE INTO sync_runs (source, sync_id, started_at, finished_at, status, counts, error)
         VALUES (?1,?2,?3,?4,?5,?6,?7)",
        params![
            run.source,
            run.sync_id,
            run.started_at,
            run.finished_at,
            run.status.as_str(),
            serde_json::to_string(&run.counts).unwrap_or_else(|_| "{}".into()),
            run.error,
        ],
    )
    .map(drop)
}

const STAGING: [&str; 4] = [
    "_staging_resources",
    "_staging_entitlements",
    "_staging_grants",
    "_staging_events",
];

fn stage_events(
    conn: &mut Connection,
    source: &str,
    sync_id: &str,
    events: &[ChangeEvent],
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO _staging_events (sync_id, source, id, event, subject, at, changes)
             VALUES (?1,?2,?3,?4,?5,?6,?7)",
        )?;
        for e in events {
            stmt.execute(params![
                sync_id,
                source,
                e.id,
                e.event.as_str(),
                e.subject,
                e.at,
                e.changes.to_string(),
            ])?;
        }
    }
    tx.commit()
}

fn drop_staging(tx: &rusqlite::Transaction<'_>, sync_id: &str) -> Result<(), rusqlite::Error> {
    for table in STAGING {
        tx.execute(
            &format!("DELETE FROM {table} WHERE sync_id = ?1"),
            params![sync_id],
        )?;
    }
    Ok(())
}

#[async_trait]
impl SinkSession for SqliteSession {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let (source, sync_id) = (self.source.clone(), self.sync_id.clone());
        // The batch is cloned into the blocking task; pages are bounded, so this is one page.
        let batch = batch.clone();
        run_blocking(
            self.conn.clone(),
            self.sink.clone(),
            self.path.clone(),
            move |conn| stage(conn, &source, &sync_id, &batch),
        )
        .await
    }

    async fn write_events(&mut self, events: &[ChangeEvent]) -> Result<(), SinkError> {
        let (source, sync_id) = (self.source.clone(), self.sync_id.clone());
        let events = events.to_vec();
        run_blocking(
            self.conn.clone(),
            self.sink.clone(),
            self.path.clone(),
            move |conn| stage_events(conn, &source, &sync_id, &events),
        )
        .await
    }

    async fn commit(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let (source, sync_id, run) = (self.source.clone(), self.sync_id.clone(), run.clone());
        let events = self.events;
        run_blocking(self.conn.clone(), self.sink.clone(), self.path.clone(), move |conn| {
            let tx = conn.transaction()?;
            tx.execute("DELETE FROM resources WHERE source = ?1", params![source])?;
            tx.execute("DELETE FROM entitlements WHERE source = ?1", params![source])?;
            tx.execute("DELETE FROM grants WHERE source = ?1", params![source])?;
            tx.execute(
                r#"INSERT OR REPLACE INTO resources (source, id, type, display_name, status, parent,
                   user, "group", app, role, profile, sync_id)
                   SELECT source, id, type, display_name, status, parent, user, "group", app, role,
                   profile, sync_id FROM _staging_resources WHERE sync_id = ?1 ORDER BY id, rowid"#,
                params![sync_id],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO entitlements (source, id, resource, slug, display_name, purpose,
                 grantable_to, sync_id) SELECT source, id, resource, slug, display_name, purpose,
                 grantable_to, sync_id FROM _staging_entitlements WHERE sync_id = ?1 ORDER BY id, rowid",
                params![sync_id],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO grants (source, id, entitlement, principal, sync_id)
                 SELECT source, id, entitlement, principal, sync_id FROM _staging_grants
                 WHERE sync_id = ?1 ORDER BY id, rowid",
                params![sync_id],
            )?;
            if events {
                tx.execute(
                    "INSERT OR IGNORE INTO events (id, source, event, subject, sync_id, at, changes)
                     SELECT id, source, event, subject, sync_id, at, changes FROM _staging_events
                     WHERE sync_id = ?1 ORDER BY rowid",
                    params![sync_id],
                )?;
            }
            drop_staging(&tx, &sync_id)?;
            record_run(&tx, &run)?;
            tx.commit()
        })
        .await
    }

    async fn abort(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let (sync_id, run) = (self.sync_id.clone(), run.clone());
        run_blocking(
            self.conn.clone(),
            self.sink.clone(),
            self.path.clone(),
            move |conn| {
                let tx = conn.transaction()?;
                drop_staging(&tx, &sync_id)?;
                record_run(&tx, &run)?;
                tx.commit()
            },
        )
        .await
    }
}
