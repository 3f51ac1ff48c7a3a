//! The state database (`state_path`): per source, the connector state (delta links and other
//! opaque values), the last complete snapshot, the checkpoint of a sync under way and the
//! change events waiting for delivery ([`crate::snapshot`] owns those tables). A sync stages
//! its changes and commits them only when it completes, so a failed sync never advances a
//! connector's state or the snapshot the next diff is made against.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};

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

/// The state database. Cheap to clone.
///
/// One connection behind a mutex: several sources syncing at once take turns, which SQLite
/// would make them do anyway (one writer at a time), without `SQLITE_BUSY` on a long diff.
#[derive(Clone, Debug)]
pub struct StateStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl StateStore {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let wrap = |source| StateError::Sqlite {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(wrap)?;
        // page_size: only for a new file (an existing one keeps its own); 16 KiB pages hold
        // four times the rows of 4 KiB ones, so a large page balances, writes and checkpoints
        // far fewer pages.
        // synchronous=NORMAL in WAL mode: a commit is in the WAL (it survives a killed process)
        // but not fsynced until a checkpoint, so a power cut may take back the newest
        // transactions, never half of one. Each page commits with its checkpoint, and a
        // snapshot with its connector state, so what survives is always a consistent point
        // to resume from (sinks that already committed see the same events again, by id).
        conn.execute_batch(
            "PRAGMA page_size=16384;
             PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=60000;
             PRAGMA cache_size=-24576;
             CREATE TABLE IF NOT EXISTS connector_state (
                 source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                 PRIMARY KEY (source, key));",
        )
        .map_err(wrap)?;
        crate::snapshot::migrate(&conn).map_err(wrap)?;
        Ok(Self {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn wrap(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    pub(crate) fn corrupt(&self, what: String) -> StateError {
        StateError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }

    /// Runs `f` on the connection, here (for short statements).
    pub(crate) fn with_conn<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StateError> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| self.wrap(e))
    }

    /// Runs `f` on the connection on a blocking thread (for page writes, diffs, replays).
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StateError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.with_conn(f))
            .await
            .map_err(|e| StateError::Task {
                path: self.path.clone(),
                message: e.to_string(),
            })?
    }

    /// The committed connector state of `source`.
    pub fn connector_state(&self, source: &str) -> Result<HashMap<String, String>, StateError> {
        self.with_conn(|conn| {
            let mut stmt =
                conn.prepare("SELECT key, value FROM connector_state WHERE source = ?1")?;
            let rows = stmt.query_map(params![source], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// Commits staged connector state changes of `source` in one transaction.
    pub fn commit_connector_state(
        &self,
        source: &str,
        staged: &HashMap<String, Option<String>>,
    ) -> Result<(), StateError> {
        if staged.is_empty() {
            return Ok(());
        }
        self.with_conn(|conn| {
            let tx = conn.transaction()?;
            apply_connector_state(&tx, source, staged.iter())?;
            tx.commit()
        })
    }

    /// Forgets the connector state of `source` (`--full`).
    pub fn clear_connector_state(&self, source: &str) -> Result<(), StateError> {
        self.with_conn(|conn| {
            conn.execute(
                "DELETE FROM connector_state WHERE source = ?1",
                params![source],
            )
            .map(drop)
        })
    }
}

/// Writes of at least this many records hand their connection's cached pages back with
/// [`release_cache`].
pub(crate) const LARGE_WRITE: usize = 10_000;

/// Hands the connection's unused cached pages back (`PRAGMA shrink_memory`), after a large
/// write or at the end of a phase, when the next work is on another connection.
///
/// The bundled SQLite is built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`, so every connection of
/// the process draws its page cache from ONE shared pool, sized by the sum of their
/// `cache_size`s, and while the pool holds more pages than that, a page a connection stops
/// using is freed instead of kept. A connection that has just written a million records keeps
/// its whole share resident, so the next connection to work (the sink after the state
/// database, or the reverse) soon cannot keep any page cached: measured on the second sync of
/// 1M grants, the SQLite sink's swap re-read its B-tree roots from the file on every lookup
/// (4.6M reads) and took 3–6 s instead of 1.6 s.
pub(crate) fn release_cache(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.execute_batch("PRAGMA shrink_memory")
}

/// Runs `f` with `PRAGMA synchronous = FULL`, so the transaction it commits is on disk when it
/// returns (in WAL mode the WAL is synced at that commit, with every commit before it), then
/// goes back to `NORMAL`.
pub(crate) fn durably<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
) -> Result<T, rusqlite::Error> {
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    let result = f(conn);
    let reset = conn.execute_batch("PRAGMA synchronous = NORMAL");
    let value = result?;
    reset?;
    Ok(value)
}

/// Writes staged connector state inside `tx` (shared with the snapshot commit, so a sync's
/// delta links and its snapshot advance together).
pub(crate) fn apply_connector_state<'a>(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    staged: impl Iterator<Item = (&'a String, &'a Option<String>)>,
) -> Result<(), rusqlite::Error> {
    for (key, value) in staged {
        match value {
            Some(v) => tx.execute(
                "INSERT INTO connector_state (source, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source, key) DO UPDATE SET value = excluded.value",
                params![source, key, v],
            ),
            None => tx.execute(
                "DELETE FROM connector_state WHERE source = ?1 AND key = ?2",
                params![source, key],
            ),
        }?;
    }
    Ok(())
}
