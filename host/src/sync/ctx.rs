//! What every phase of one source's sync works with, and how a phase says it stopped.

use std::sync::Arc;

use super::env::SyncEnv;
use crate::config::SourceConfig;
use crate::metrics::SourceMetrics;
use crate::progress::SourceProgress;

/// Why a sync stopped early.
pub(super) enum Stop {
    Failed(String),
    Cancelled,
}

impl Stop {
    pub(super) fn failed(err: impl std::fmt::Display) -> Self {
        Stop::Failed(err.to_string())
    }
}

/// What one source's sync works with.
pub(super) struct Ctx<'a> {
    pub(super) env: &'a SyncEnv,
    pub(super) source: &'a SourceConfig,
    pub(super) metrics: &'a Arc<SourceMetrics>,
    pub(super) progress: &'a SourceProgress,
}

impl Ctx<'_> {
    pub(super) fn name(&self) -> &str {
        &self.source.name
    }

    /// Runs `f` unless the sync is cancelled first.
    pub(super) async fn or_cancel<T>(&self, f: impl Future<Output = T>) -> Result<T, Stop> {
        tokio::select! {
            value = f => Ok(value),
            () = self.env.cancel.cancelled() => Err(Stop::Cancelled),
        }
    }
}
