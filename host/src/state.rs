//! The state database (`state_path`): connector state (delta links and other opaque values)
//! per source. A sync stages its changes and commits them only when it completes, so a failed
//! sync never advances a connector's state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};

/// Errors of the state database, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("state database {path}: {source}")]
pub struct StateError {
    path: PathBuf,
    source: rusqlite::Error,
}

/// The state database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StateStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl StateStore {
    /// Opens (creating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let wrap = |source| StateError {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                let _ = std::fs::create_dir_all(dir);
            }
        }
        let conn = Connection::open(path).map_err(wrap)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA busy_timeout=10000;
             CREATE TABLE IF NOT EXISTS connector_state (
                 source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                 PRIMARY KEY (source, key));",
        )
        .map_err(wrap)?;
        Ok(Self {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn wrap(&self, source: rusqlite::Error) -> StateError {
        StateError {
            path: self.path.clone(),
            source,
        }
    }

    /// The committed connector state of `source`.
    pub fn connector_state(&self, source: &str) -> Result<HashMap<String, String>, StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let mut stmt = conn
            .prepare("SELECT key, value FROM connector_state WHERE source = ?1")
            .map_err(|e| self.wrap(e))?;
        let rows = stmt
            .query_map(params![source], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.wrap(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.wrap(e))
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
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction().map_err(|e| self.wrap(e))?;
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
            }
            .map_err(|e| self.wrap(e))?;
        }
        tx.commit().map_err(|e| self.wrap(e))
    }

    /// Forgets the connector state of `source` (`--full`).
    pub fn clear_connector_state(&self, source: &str) -> Result<(), StateError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.execute(
            "DELETE FROM connector_state WHERE source = ?1",
            params![source],
        )
        .map(drop)
        .map_err(|e| self.wrap(e))
    }
}
