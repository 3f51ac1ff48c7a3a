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
    /// Drop an interrupted sync's checkpoint and start over instead of resuming it (a sync
    /// that is delivering its events is committed first, its events kept for the sinks that
    /// have not taken them).
    pub restart: bool,
    /// `--allow-removals`: accept a sync that removes more than `max_removals` (a held sync is
    /// dropped and the source listed again).
    pub allow_removals: bool,
    /// `idhost approve`: commit the source's held sync without listing again.
    pub approve: bool,
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
    /// What the sync removes, when it was held by (or approved past) the mass-removal brake.
    pub removals: Option<crate::state::Removals>,
    /// How far behind each sink that takes the source's events is, after the sync.
    pub sink_lag: Vec<crate::state::SinkLag>,
}
