//! What every sink implements: a sink opens one session per sync of a source, which stages what
//! it is given and makes it visible on `commit`, or drops it on `abort`.

use std::path::PathBuf;

use async_trait::async_trait;

use crate::config::SinkConfig;
use crate::record::{Batch, ChangeEvent, SyncRun};

/// A sink failure, naming the sink and what it was writing to.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// SQLite failed.
    #[error("sink `{sink}` ({path}): {source}")]
    Sqlite {
        /// Sink name.
        sink: String,
        /// Database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// File I/O failed.
    #[error("sink `{sink}` ({path}): {source}")]
    Io {
        /// Sink name.
        sink: String,
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A server sink (postgres, webhook, nats) failed.
    #[error("sink `{sink}` ({url}): {message}")]
    Remote {
        /// Sink name.
        sink: String,
        /// The server, without credentials.
        url: String,
        /// What failed.
        message: String,
    },
    /// Anything else.
    #[error("sink `{sink}`: {message}")]
    Other {
        /// Sink name.
        sink: String,
        /// What happened.
        message: String,
    },
}

/// A configured sink.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Its config.
    fn config(&self) -> &SinkConfig;
    /// Starts receiving a sync of `source`.
    async fn begin(&self, source: &str, sync_id: &str) -> Result<Box<dyn SinkSession>, SinkError>;
}

/// One source's sync inside one sink.
#[async_trait]
pub trait SinkSession: Send {
    /// Accepts a batch (durably staged when this returns).
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError>;
    /// Accepts change events, after the last batch and before `commit` (staged, or delivered,
    /// when this returns). Only called on sinks whose `records` include `event`.
    async fn write_events(&mut self, events: &[ChangeEvent]) -> Result<(), SinkError> {
        let _ = events;
        Ok(())
    }
    /// The sync is complete: make the new snapshot visible, atomically.
    async fn commit(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError>;
    /// The sync failed or was cancelled: drop what was staged, keep the previous snapshot.
    async fn abort(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError>;
}

impl SinkError {
    /// The error of sink `sink` whose database failed.
    pub fn from_db(sink: &str, err: crate::db::DbError) -> Self {
        match err {
            crate::db::DbError::Sqlite { path, source } => SinkError::Sqlite {
                sink: sink.to_owned(),
                path,
                source,
            },
            crate::db::DbError::Task { message, .. } => SinkError::Other {
                sink: sink.to_owned(),
                message: format!("the writer task failed: {message}"),
            },
        }
    }
}
