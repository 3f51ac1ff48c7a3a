//! The SQLite sink a day-two command reads, opened read-only inside one read transaction: in
//! WAL mode the first read fixes the snapshot, so a sync committing meanwhile is not seen
//! half-way (an access review is one frozen picture, DESIGN §7.2).

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension as _, params};

use super::InspectError;
use crate::config::{Config, SinkConfig, SinkKind};

/// An open, read-only view of one SQLite sink.
pub struct SinkDb {
    /// The sink's name in the config.
    pub sink: String,
    /// Its database file.
    pub path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for SinkDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkDb")
            .field("sink", &self.sink)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The sink to read: `--sink NAME`, else the first SQLite sink holding snapshot tables (an
/// Oomnitza-style export with a `mapping` holds only its export table).
pub fn choose<'c>(config: &'c Config, sink: Option<&str>) -> Result<&'c SinkConfig, InspectError> {
    let mut candidates = config
        .sinks
        .iter()
        .filter(|s| s.kind == SinkKind::Sqlite && s.export.is_none())
        .filter(|s| sink.is_none_or(|name| s.name == name));
    match (candidates.next(), sink) {
        (Some(s), _) => Ok(s),
        (None, Some(name)) => Err(InspectError::NoSink(format!(
            "--sink `{name}` is not a sqlite sink (with its snapshot tables) in {}",
            config.text.path().display()
        ))),
        (None, None) => Err(InspectError::NoSink(format!(
            "{} has no sqlite sink to query: add one, e.g. [sinks.local] type = \"sqlite\" path = \"idhost.db\"",
            config.text.path().display()
        ))),
    }
}

impl SinkDb {
    /// Opens the sink `choose` picks and starts the read transaction.
    pub fn open(config: &Config, sink: Option<&str>) -> Result<Self, InspectError> {
        let chosen = choose(config, sink)?;
        let path = chosen
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("idhost.db"));
        let opened = crate::db::open_read_only(&path).and_then(|conn| {
            conn.execute_batch("BEGIN;")?;
            // The first read fixes the snapshot every later read of this command sees.
            conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })?;
            Ok(conn)
        });
        let conn = opened.map_err(|source| InspectError::Open {
            sink: chosen.name.clone(),
            path: path.clone(),
            source,
        })?;
        let db = Self {
            sink: chosen.name.clone(),
            path,
            conn,
        };
        if !db.has_table("resources")? {
            return Err(InspectError::Incomplete(format!(
                "sink `{}` ({}) holds no snapshot yet: run `idhost sync` first",
                db.sink,
                db.path.display()
            )));
        }
        Ok(db)
    }

    /// The connection (inside the read transaction).
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Wraps a SQLite error with the sink's name and file.
    pub fn fail(&self, source: rusqlite::Error) -> InspectError {
        InspectError::Sqlite {
            sink: self.sink.clone(),
            path: self.path.clone(),
            source,
        }
    }

    /// Whether the file has table `name`.
    pub fn has_table(&self, name: &str) -> Result<bool, InspectError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                params![name],
                |r| r.get(0),
            )
            .map_err(|e| self.fail(e))
    }

    /// The sources this sink holds runs of, by name.
    pub fn sources(&self) -> Result<Vec<String>, InspectError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT source FROM sync_runs GROUP BY source ORDER BY source")
            .map_err(|e| self.fail(e))?;
        stmt.query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fail(e))
    }

    /// The sources to answer for: `--source S` (which must be one this sink holds), else all.
    pub fn scope(&self, source: Option<&str>) -> Result<Vec<String>, InspectError> {
        let known = self.sources()?;
        match source {
            None => Ok(known),
            Some(s) if known.iter().any(|k| k == s) => Ok(vec![s.to_owned()]),
            Some(s) => Err(InspectError::Unknown(format!(
                "--source `{s}`: sink `{}` holds no sync of a source by that name; it holds: {}",
                self.sink,
                if known.is_empty() {
                    "none yet (run `idhost sync`)".to_owned()
                } else {
                    known.join(", ")
                }
            ))),
        }
    }

    /// The last sync of `source` that completed: `(sync_id, finished_at)`.
    pub fn last_complete(&self, source: &str) -> Result<Option<(String, String)>, InspectError> {
        self.conn
            .query_row(
                "SELECT sync_id, finished_at FROM sync_runs WHERE source = ?1 AND status = 'succeeded'
                 ORDER BY finished_at DESC, sync_id DESC LIMIT 1",
                params![source],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// The latest sync of `source`, whatever its outcome: `(sync_id, status, finished_at, error)`.
    pub fn latest_run(&self, source: &str) -> Result<Option<LatestRun>, InspectError> {
        self.conn
            .query_row(
                "SELECT sync_id, status, finished_at, error FROM sync_runs WHERE source = ?1
                 ORDER BY finished_at DESC, sync_id DESC LIMIT 1",
                params![source],
                |r| {
                    Ok(LatestRun {
                        sync_id: r.get(0)?,
                        status: r.get(1)?,
                        finished_at: r.get(2)?,
                        error: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.fail(e))
    }
}

/// One row of `sync_runs`.
#[derive(Debug, Clone)]
pub struct LatestRun {
    /// Its id.
    pub sync_id: String,
    /// `succeeded`, `failed`, `cancelled`, ...
    pub status: String,
    /// RFC 3339.
    pub finished_at: String,
    /// Why it did not complete.
    pub error: Option<String>,
}
