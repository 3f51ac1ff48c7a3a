//! Errors of the export: each names the target (file or table) or the mapping entry and the
//! cause, never a credential.

use std::path::PathBuf;

use crate::sinks::SinkError;

/// An export failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A `mapping`, `sync_key` or `records` setting that can never work.
    #[error("{0}")]
    Config(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The CSV target could not be parsed or written.
    #[error("{path}: {source}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: csv::Error,
    },
    /// The existing target does not look like an export this sink wrote.
    #[error("{target}: {message}")]
    Target {
        /// File or table.
        target: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// SQLite failed.
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// PostgreSQL failed.
    #[error("{target}: {message}")]
    Postgres {
        /// Server and table, without credentials.
        target: String,
        /// The server's message (severity, SQLSTATE, text, detail) or the connection error.
        message: String,
    },
    /// A blocking writer task died.
    #[error("the export writer task failed: {0}")]
    Task(String),
}

impl ExportError {
    /// The sink error the pipeline reports, naming the sink.
    pub(crate) fn into_sink(self, sink: &str) -> SinkError {
        let sink = sink.to_owned();
        match self {
            ExportError::Io { path, source } => SinkError::Io { sink, path, source },
            ExportError::Sqlite { path, source } => SinkError::Sqlite { sink, path, source },
            other => SinkError::Other {
                sink,
                message: other.to_string(),
            },
        }
    }
}
