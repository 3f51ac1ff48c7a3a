//! Where the daemon keeps each source's schedule position (the last slot claimed, and the last
//! one whose start was reported — see [`super::slots::next_due_after`]) and open
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
    /// Unix milliseconds of the last slot claimed, if any.
    pub(crate) last_slot: Option<i64>,
    /// Unix milliseconds of the last slot whose start was reported (logged, with the slots it
    /// skipped counted missed). Behind `last_slot` when a replica died between the two.
    pub(crate) last_started: Option<i64>,
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
    /// Records that the start of the claimed `slot` has been reported (under the grant of
    /// `epoch`; a grant gone since changes nothing).
    async fn started(&self, source: &str, slot: i64, epoch: i64) -> Result<(), StoreError>;
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
                     source TEXT PRIMARY KEY, last_slot_ms INTEGER, incidents TEXT NOT NULL DEFAULT '{}',
                     last_started_ms INTEGER);",
            )?;
            // A table from before the start was recorded apart: its claims were its starts.
            let has: i64 = conn.query_row(
                "SELECT count(*) FROM pragma_table_info('daemon_schedule') WHERE name = 'last_started_ms'",
                [],
                |r| r.get(0),
            )?;
            if has == 0 {
                conn.execute_batch(
                    "ALTER TABLE daemon_schedule ADD COLUMN last_started_ms INTEGER;
                     UPDATE daemon_schedule SET last_started_ms = last_slot_ms;",
                )?;
            }
            Ok(())
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
            let row: Option<(Option<i64>, Option<i64>, String)> = conn
                .query_row(
                    "SELECT last_slot_ms, last_started_ms, incidents FROM daemon_schedule WHERE source = ?1",
                    params![source],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            Ok(row.map_or_else(
                SourceState::default,
                |(last_slot, last_started, incidents)| SourceState {
                    last_slot,
                    last_started,
                    incidents: Incidents::from_json(Some(&incidents)),
                },
            ))
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

    async fn started(&self, source: &str, slot: i64, _epoch: i64) -> Result<(), StoreError> {
        let source = source.to_owned();
        self.blocking(move |conn| {
            conn.execute(
                "UPDATE daemon_schedule SET last_started_ms = ?2 WHERE source = ?1",
                params![source, slot],
            )
            .map(drop)
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

/// The single-replica store when the state database is Postgres (`state_url`): table
/// `idhost_state_schedule` beside the journal.
pub(crate) struct PgLocalStore {
    state: crate::state::postgres::PgState,
}

impl PgLocalStore {
    /// Connects (creating the tables).
    pub(crate) async fn connect(url: &secrecy::SecretString) -> Result<Self, StoreError> {
        let state = crate::state::postgres::PgState::connect(url)
            .await
            .map_err(|e| StoreError::Postgres {
                message: e.to_string(),
            })?;
        Ok(Self { state })
    }

    async fn conn(&self) -> Result<crate::state::postgres::Conn, StoreError> {
        self.state.conn().await.map_err(|e| StoreError::Postgres {
            message: e.to_string(),
        })
    }
}

fn pg_failed(err: &tokio_postgres::Error) -> StoreError {
    StoreError::Postgres {
        message: format!("state database: {}", crate::pg::error_text(err)),
    }
}

#[async_trait]
impl ScheduleStore for PgLocalStore {
    async fn load(&self, source: &str) -> Result<SourceState, StoreError> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT last_slot_ms, last_started_ms, incidents FROM idhost_state_schedule WHERE source = $1",
                &[&source],
            )
            .await
            .map_err(|e| pg_failed(&e))?;
        Ok(row.map_or_else(SourceState::default, |r| SourceState {
            last_slot: r.get(0),
            last_started: r.get(1),
            incidents: Incidents::from_json(Some(r.get::<_, &str>(2))),
        }))
    }

    async fn claim(&self, source: &str, slot: i64, _epoch: i64) -> Result<bool, StoreError> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO idhost_state_schedule (source, last_slot_ms) VALUES ($1, $2)
                 ON CONFLICT (source) DO UPDATE SET last_slot_ms = excluded.last_slot_ms",
                &[&source, &slot],
            )
            .await
            .map_err(|e| pg_failed(&e))?;
        Ok(true)
    }

    async fn started(&self, source: &str, slot: i64, _epoch: i64) -> Result<(), StoreError> {
        self.conn()
            .await?
            .execute(
                "UPDATE idhost_state_schedule SET last_started_ms = $2 WHERE source = $1",
                &[&source, &slot],
            )
            .await
            .map_err(|e| pg_failed(&e))?;
        Ok(())
    }

    async fn save_incidents(&self, source: &str, incidents: &Incidents) -> Result<(), StoreError> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO idhost_state_schedule (source, incidents) VALUES ($1, $2)
                 ON CONFLICT (source) DO UPDATE SET incidents = excluded.incidents",
                &[&source, &incidents.to_json()],
            )
            .await
            .map_err(|e| pg_failed(&e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    /// The schedule store over both state backends: the last slot and the open incidents
    /// survive a new store (a restart, or another process on the same state).
    async fn slots_and_incidents_survive_a_new_store(open: impl Fn() -> Box<dyn ScheduleStore>) {
        let store = open();
        assert!(store.load("a").await.unwrap().last_slot.is_none());
        assert!(store.claim("a", 1_000, 0).await.unwrap());
        store.started("a", 1_000, 0).await.unwrap();
        assert!(store.claim("a", 2_000, 0).await.unwrap());
        let mut incidents = Incidents::default();
        incidents.open(
            crate::config::NotifyEvent::SyncFailed,
            "the upstream said 503",
            "2026-01-01T00:00:00Z",
        );
        store.save_incidents("a", &incidents).await.unwrap();
        let again = open();
        let state = again.load("a").await.unwrap();
        assert_eq!(state.last_slot, Some(2_000));
        // 2,000 was claimed and its start never reported.
        assert_eq!(state.last_started, Some(1_000));
        assert_eq!(state.incidents, incidents);
        assert!(!state.incidents.is_empty());
        assert!(again.load("b").await.unwrap().last_slot.is_none());
    }

    #[tokio::test]
    async fn sqlite_keeps_slots_and_incidents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        slots_and_incidents_survive_a_new_store(|| Box::new(LocalStore::open(&path).unwrap()))
            .await;
    }

    #[tokio::test]
    async fn postgres_keeps_slots_and_incidents() {
        let Some((_, url)) = crate::state::tests::pg_store("schedule").await else {
            return;
        };
        let first = PgLocalStore::connect(&url).await.unwrap();
        let second = PgLocalStore::connect(&url).await.unwrap();
        let stores = std::sync::Mutex::new(vec![second, first]);
        slots_and_incidents_survive_a_new_store(|| Box::new(stores.lock().unwrap().pop().unwrap()))
            .await;
    }
}
