//! What can go wrong when reading the sink, and the exit code each maps to.

use std::path::PathBuf;

/// An error of a day-two command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The config names no SQLite sink (or not the one asked for).
    #[error("{0}")]
    NoSink(String),
    /// The sink's database could not be opened.
    #[error("sink `{sink}`: cannot open {path} (has a sync run yet?): {source}")]
    Open {
        /// Sink name.
        sink: String,
        /// Database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// A query against the sink failed.
    #[error("sink `{sink}` ({path}): {source}")]
    Sqlite {
        /// Sink name.
        sink: String,
        /// Database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The command line names something the sink does not hold.
    #[error("{0}")]
    Unknown(String),
    /// A name matches several things; the message says how to choose.
    #[error("{0}")]
    Ambiguous(String),
    /// The config lacks what the command needs (`[identity]`, an events table, ...).
    #[error("{0}")]
    NotConfigured(String),
    /// A source has no complete snapshot to answer from.
    #[error("{0}")]
    Incomplete(String),
    /// Writing an output file failed.
    #[error("{path}: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl InspectError {
    /// Whether this is the user's input or config (exit code 2) rather than a failure (1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::NoSink(_) | Self::Unknown(_) | Self::Ambiguous(_) | Self::NotConfigured(_)
        )
    }
}

impl From<InspectError> for crate::exit::CommandError {
    fn from(err: InspectError) -> Self {
        if err.is_usage() {
            Self::usage(err)
        } else {
            Self::failed(err)
        }
    }
}
