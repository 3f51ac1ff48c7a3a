//! The embedded default sink: one SQLite file, queryable with plain SQL.
//!
//! Schema (each table carries `source`; JSON columns hold the DESIGN §4 traits):
//! - `resources(source, id, type, display_name, status, parent, user, "group", app, role, profile, sync_id)`
//! - `entitlements(source, id, resource, slug, display_name, purpose, grantable_to, sync_id)`
//! - `grants(source, id, entitlement, principal, sync_id)`
//! - `sync_runs(source, sync_id, started_at, finished_at, status, counts, error)`
//! - `events(seq, id, source, event, subject, sync_id, at, changes)` when `records` include
//!   `event`: appended on commit, `seq` increasing, a redelivered event (same `id`) ignored
//! - `departed_users(source, id, display_name, user, sync_id, departed_at)`: the last record of
//!   every user a snapshot dropped (until it is listed again), so `idhost query orphans` can
//!   tell an account of a deleted person from one that never had a person
//!
//! A sync writes its pages into staging tables (`_staging_*`, keyed by `(source, id)` like the
//! visible tables) in short transactions, so several sources can sync into one file at once.
//! Its commit swaps the source's snapshot in ONE transaction, as a diff of the staged rows
//! against the visible ones: rows no longer listed are deleted, new and changed rows are
//! upserted, unchanged rows are left in place (only their `sync_id` moves to the new sync), and
//! the staging is dropped. A source's first snapshot is a plain copy in key order; when it is
//! most of the table, the indexes whose order has nothing to do with the key (`grants` by
//! principal, `resources` by type) are dropped and rebuilt inside that transaction: one sort
//! instead of a million inserts at random places. Every visible row carries the `sync_id` of
//! the sync whose snapshot it belongs to, as before. A failed, cancelled or killed sync never
//! touches the visible tables (a failed commit rolls back whole, dropped indexes included); its
//! staging is deleted on abort or when the source's next sync begins (a resumed sync is
//! replayed from the host's state database).

mod packed;
mod schema;
mod session;
mod swap;

use std::path::PathBuf;

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::sink::{Sink, SinkError, SinkSession};
use crate::config::SinkConfig;
use crate::db::Db;
use session::SqliteSession;
use swap::{TABLES, clear_staging};

/// The SQLite sink.
pub struct SqliteSink {
    config: SinkConfig,
    db: Db,
}

impl SqliteSink {
    /// Opens (creating) the database and applies the schema.
    pub async fn open(config: SinkConfig) -> Result<Self, SinkError> {
        let path = config
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("idhost.db"));
        let events = config.records.wants_kind("event");
        let name = config.name.clone();
        let db = tokio::task::spawn_blocking(move || {
            let db = Db::open(&path)?;
            db.with_conn(|conn| schema::prepare(conn, events))?;
            Ok(db)
        })
        .await
        .map_err(|e| SinkError::Other {
            sink: name.clone(),
            message: e.to_string(),
        })?
        .map_err(|e| SinkError::from_db(&name, e))?;
        Ok(Self { config, db })
    }

    /// Deletes staging rows no running sync owns (left by a killed process).
    pub async fn drop_stale_staging(&self) -> Result<(), SinkError> {
        self.blocking(|conn| {
            let tx = conn.transaction()?;
            for table in TABLES {
                tx.execute(&format!("DELETE FROM {}", table.staging), [])?;
            }
            tx.execute("DELETE FROM _staging_events", [])?;
            tx.commit()
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, SinkError> {
        self.db
            .blocking(f)
            .await
            .map_err(|e| SinkError::from_db(&self.config.name, e))
    }
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
            clear_staging(&tx, &owner)?;
            tx.execute(
                "DELETE FROM _staging_events WHERE source = ?1",
                params![owner],
            )?;
            tx.commit()
        })
        .await?;
        Ok(Box::new(SqliteSession {
            db: self.db.clone(),
            sink: self.config.name.clone(),
            source: source.to_owned(),
            sync_id: sync_id.to_owned(),
            events: self.config.records.wants_kind("event"),
            staged: [0; 3],
        }))
    }
}
