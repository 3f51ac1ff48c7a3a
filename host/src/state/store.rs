//! The state database itself: one file, its schema, and the error every state operation
//! returns. The operations live beside it, one file per stage of a sync.
//!
//! Every operation is `async` and runs its statements on tokio's blocking threads, never on
//! an async worker: a worker blocked on SQLite (or on the connection's mutex) cannot poll
//! timers, signals or other sources. Writes share one connection (SQLite has one writer at a
//! time anyway); reads have their own, so a read never waits for another source's write; and
//! the diff, the one long read, opens a connection of its own and writes its events in short
//! transactions, so no source's diff holds the writer while others wait.

use std::path::{Path, PathBuf};

use crate::db::{Db, DbError};

/// Errors of the state database, naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// SQLite failed.
    #[error("state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// A stored value could not be read back (e.g. a checkpoint written by another version).
    #[error("state database {path}: {what}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What could not be read, and why.
        what: String,
    },
    /// The blocking task running a query failed.
    #[error("state database {path}: the database task failed: {message}")]
    Task {
        /// The database file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl From<DbError> for StateError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Sqlite { path, source } => StateError::Sqlite { path, source },
            DbError::Task { path, message } => StateError::Task { path, message },
        }
    }
}

/// The tables of the state database (the daemon's `daemon_schedule` and the audit trail's
/// `audit` live in the same file, created by their owners).
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS connector_state (
    source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (source, key));
CREATE TABLE IF NOT EXISTS snapshots (
    source TEXT PRIMARY KEY, gen INTEGER NOT NULL, sync_id TEXT NOT NULL,
    finished_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snap_resources (
    source TEXT NOT NULL, gen INTEGER NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    status TEXT NOT NULL, record TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS snap_resources_key ON snap_resources (source, gen, id);
CREATE TABLE IF NOT EXISTS snap_entitlements (
    source TEXT NOT NULL, gen INTEGER NOT NULL, id TEXT NOT NULL, rtype TEXT NOT NULL,
    resource TEXT NOT NULL, record TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS snap_entitlements_key ON snap_entitlements (source, gen, id);
CREATE TABLE IF NOT EXISTS snap_grants (
    source TEXT NOT NULL, gen INTEGER NOT NULL, id TEXT NOT NULL, rtype TEXT NOT NULL,
    entitlement TEXT NOT NULL, principal TEXT NOT NULL,
    PRIMARY KEY (source, gen, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snap_removed (
    source TEXT NOT NULL, gen INTEGER NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (source, gen, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (
    source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, sync_id TEXT NOT NULL,
    PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_checkpoints (
    source TEXT PRIMARY KEY, sync_id TEXT NOT NULL, data TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
    sync_id TEXT NOT NULL, event TEXT NOT NULL, subject TEXT NOT NULL, at TEXT NOT NULL,
    changes TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_sync ON events (source, sync_id, seq);
CREATE TABLE IF NOT EXISTS sync_deliveries (
    source TEXT NOT NULL, sync_id TEXT NOT NULL, sink TEXT NOT NULL, delivered_at TEXT NOT NULL,
    PRIMARY KEY (source, sync_id, sink));
CREATE TABLE IF NOT EXISTS sink_positions (
    source TEXT NOT NULL, sink TEXT NOT NULL, seq INTEGER NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0, updated_at TEXT NOT NULL,
    PRIMARY KEY (source, sink)) WITHOUT ROWID;
"#;

/// The state database. Cheap to clone.
///
/// One writing connection (see [`crate::db`]): several sources writing at once take turns,
/// which SQLite would make them do anyway (one writer at a time), without `SQLITE_BUSY`. One
/// reading connection beside it (WAL: readers never wait for the writer).
#[derive(Clone, Debug)]
pub struct StateStore {
    db: Db,
    reader: Db,
}

impl StateStore {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let db = Db::open(path)?;
        db.with_conn(|conn| {
            conn.execute_batch(SCHEMA)?;
            super::functions::register(conn)
        })?;
        let reader = Db::open(path)?;
        reader.with_conn(|conn| super::functions::register(conn))?;
        Ok(Self { db, reader })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        self.db.path()
    }

    /// A connection of its own to the database (for the diff's long read).
    pub(super) fn own_connection(&self) -> Result<rusqlite::Connection, rusqlite::Error> {
        let conn = crate::db::open(self.path())?;
        super::functions::register(&conn)?;
        Ok(conn)
    }

    /// The writing connection, locked, for a short transaction from a blocking thread.
    pub(super) fn writer(&self) -> &Db {
        &self.db
    }

    pub(crate) fn corrupt(&self, what: String) -> StateError {
        StateError::Corrupt {
            path: self.path().to_owned(),
            what,
        }
    }

    /// Runs `f` on the writing connection on a blocking thread.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StateError> {
        Ok(self.db.blocking(f).await?)
    }

    /// Runs `f` on the reading connection on a blocking thread.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StateError> {
        Ok(self.reader.blocking(f).await?)
    }
}

/// A stored record that no longer parses (written by an incompatible version).
pub(super) fn bad_record(column: usize, err: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(err))
}
