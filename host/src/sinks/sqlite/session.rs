//! One source's sync in the SQLite sink: pages are staged as they come, events staged after
//! them, and the commit swaps the snapshot in (with the events and the run) in one durable
//! transaction; an abort drops the staging and records the run.

use async_trait::async_trait;
use rusqlite::{Connection, params};

use super::packed::{Packed, Page, stage};
use super::swap::{TABLES, clear_staging, swap};
use crate::db::Db;
use crate::record::{Batch, ChangeEvent, SyncRun};
use crate::sinks::sink::{SinkError, SinkSession};

pub(super) struct SqliteSession {
    pub(super) db: Db,
    pub(super) sink: String,
    pub(super) source: String,
    pub(super) sync_id: String,
    /// Whether the sink keeps change events (has an `events` table).
    pub(super) events: bool,
    /// Rows staged so far per table of [`TABLES`].
    pub(super) staged: [u64; 3],
}

impl SqliteSession {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, SinkError> {
        self.db
            .blocking(f)
            .await
            .map_err(|e| SinkError::from_db(&self.sink, e))
    }
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

/// Drops what the session staged (inside the caller's transaction).
fn drop_staging(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    sync_id: &str,
) -> Result<(), rusqlite::Error> {
    clear_staging(tx, source)?;
    tx.execute(
        "DELETE FROM _staging_events WHERE sync_id = ?1",
        params![sync_id],
    )?;
    Ok(())
}

#[async_trait]
impl SinkSession for SqliteSession {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        // Packed here (one buffer per table), so the writer owns the page without a clone of
        // the batch.
        let page = Page::pack(batch);
        if page.tables.iter().any(Packed::too_large) {
            return Err(SinkError::Other {
                sink: self.sink.clone(),
                message: "a page holds more than 2 GiB of text; use a smaller page size".into(),
            });
        }
        for (count, rows) in self.staged.iter_mut().zip(&page.tables) {
            *count += rows.rows() as u64;
        }
        let source = self.source.clone();
        self.blocking(move |conn| stage(conn, &source, &page)).await
    }

    async fn write_events(&mut self, events: &[ChangeEvent]) -> Result<(), SinkError> {
        let (source, sync_id) = (self.source.clone(), self.sync_id.clone());
        let events = events.to_vec();
        self.blocking(move |conn| stage_events(conn, &source, &sync_id, &events))
            .await
    }

    async fn commit(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let (source, sync_id, run) = (self.source.clone(), self.sync_id.clone(), run.clone());
        let (events, staged) = (self.events, self.staged);
        self.blocking(move |conn| {
            crate::db::durably(conn, |conn| {
                let tx = conn.transaction()?;
                for (table, staged) in TABLES.iter().zip(staged) {
                    swap(&tx, table, &source, &sync_id, staged)?;
                }
                if events {
                    tx.execute(
                        "INSERT OR IGNORE INTO events (id, source, event, subject, sync_id, at, changes)
                         SELECT id, source, event, subject, sync_id, at, changes FROM _staging_events
                         WHERE sync_id = ?1 ORDER BY rowid",
                        params![sync_id],
                    )?;
                }
                drop_staging(&tx, &source, &sync_id)?;
                record_run(&tx, &run)?;
                tx.commit()?;
                // The sink is idle until the source's next sync.
                crate::db::release_cache(conn)
            })
        })
        .await
    }

    async fn abort(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let (source, sync_id, run) = (self.source.clone(), self.sync_id.clone(), run.clone());
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            drop_staging(&tx, &source, &sync_id)?;
            record_run(&tx, &run)?;
            tx.commit()?;
            crate::db::release_cache(conn)
        })
        .await
    }
}
