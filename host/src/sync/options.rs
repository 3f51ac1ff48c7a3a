//! What a sync is asked to do, and what it answers.

use std::sync::Arc;

use crate::metrics::SourceMetrics;
use crate::record::{Counts, RunStatus};

/// How to sync.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Only these sources (all when empty).
    pub sources: Vec<String>,
    /// Skip entitlements and grants.
    pub resources_only: bool,
    /// Ignore connector state (delta links): a full sync.
    pub full: bool,
    /// Drop an interrupted sync's checkpoint and start over instead of resuming it.
    pub restart: bool,
}

/// How one source's sync ended.
#[derive(Debug, Clone)]
pub struct SourceOutcome {
    /// Source name.
    pub source: String,
    /// Connector name.
    pub connector: String,
    /// Sync id.
    pub sync_id: String,
    /// Outcome.
    pub status: RunStatus,
    /// Records received.
    pub counts: Counts,
    /// Why it failed.
    pub error: Option<String>,
    /// Wall time.
    pub elapsed: std::time::Duration,
    /// Upstream counters.
    pub metrics: Arc<SourceMetrics>,
}
