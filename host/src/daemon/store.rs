//! Where the daemon keeps each source's schedule position (the last slot it started) and open
//! incidents: a table in the state database for one replica, the lease table in Postgres for
//! several (see `lease`). Keeping them lets a restart — or another replica taking a source
//! over — go on with the same schedule and the same incidents.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::db::{Db, DbError};
use crate::notify::Incidents;

/// A store failure, naming the database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The state database failed.
    #[error("schedule table in state database {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The coordination database failed.
    #[error("coordination database: {message}")]
    Postgres {
        /// What failed (never the connection string).
        message: String,
    },
}

/// What the store remembers of a source.
#[derive(Debug, Clone, Default)]
pub(crate) struct SourceState {
    /// Unix milliseconds of the last slot started, if any.
    pub(crate) last_slot: Option<i64>,
    /// Open incidents.
    pub(crate) incidents: Incidents,
}

/// A schedule store.
#[async_trait]
pub(crate) trait ScheduleStore: Send + Sync {
    /// The state of `source` (called whenever this replica starts acting for it).
    async fn load(&self, source: &str) -> Result<SourceState, StoreError>;
    /// Records that `slot` of `source` starts now; false when it must not run here (another
    /// replica already ran it, or this replica's lease — the grant of `epoch` — is gone).
    async fn claim(&self, source: &str, slot: i64, epoch: i64) -> Result<bool, StoreError>;
    /// Saves the open incidents of `source`.
    async fn save_incidents(&self, source: &str, incidents: &Incidents) -> Result<(), StoreError>;
}

/// The single-replica store: table `daemon_schedule` in the state database.
pub(crate) struct LocalStore {
    db: Db,
}

impl LocalStore {
    /// Opens (creating) the table in the database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Db::open(path)?;
        db.with_conn(|conn| {
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS daemon_schedule (
                     source TEXT PRIMARY KEY, last_slot_ms INTEGER, incidents TEXT NOT NULL DEFAULT '{}');",
            )
        })?;
        Ok(Self { db })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        Ok(self.db.blocking(f).await?)
    }
}

impl From<DbError> for StoreError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Sqlite { path, source } => StoreError::Sqlite { path, source },
            DbError::Task { path, message } => StoreError::Sqlite {
                path,
                source: rusqlite::Error::ToSqlConversionFailure(message.into()),
            },
        }
    }
}

#[async_trait]
impl ScheduleStore for LocalStore {
    async fn load(&self, source: &str) -> Result<SourceState, StoreError> {
        let source = source.to_owned();
        self.blocking(move |conn| {
            let row: Option<(Option<i64>, String)> = conn
                .query_row(
                    "SELECT last_slot_ms, incidents FROM daemon_schedule WHERE source = ?1",
                    params![source],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(
                row.map_or_else(SourceState::default, |(last_slot, incidents)| SourceState {
                    last_slot,
                    incidents: Incidents::from_json(Some(&incidents)),
                }),
            )
        })
        .await
    }

    async fn claim(&self, source: &str, slot: i64, _epoch: i64) -> Result<bool, StoreError> {
        let source = source.to_owned();
        // Durable: a slot claimed and then lost to a power cut would run twice.
        self.blocking(move |conn| {
            crate::db::durably(conn, |conn| {
                conn.execute(
                    "INSERT INTO daemon_schedule (source, last_slot_ms) VALUES (?1, ?2)
                 ON CONFLICT (source) DO UPDATE SET last_slot_ms = excluded.last_slot_ms",
                    params![source, slot],
                )
            })
            .map(|_| true)
        })
        .await
    }

    async fn save_incidents(&self, source: &str, incidents: &Incidents) -> Result<(), StoreError> {
        let (source, json) = (source.to_owned(), incidents.to_json());
        self.blocking(move |conn| {
            conn.execute(
                "INSERT INTO daemon_schedule (source, incidents) VALUES (?1, ?2)
                 ON CONFLICT (source) DO UPDATE SET incidents = excluded.incidents",
                params![source, json],
            )
            .map(drop)
        })
        .await
    }
}
