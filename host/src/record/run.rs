//! A sync run as every sink records it (DESIGN §4 `sync_run`): how it ended and what it saw.

use serde::{Deserialize, Serialize};

/// How a sync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every page was received and every sink committed.
    Succeeded,
    /// The connector, the host or a sink failed.
    Failed,
    /// Stopped by a signal.
    Cancelled,
    /// Complete, but held by the mass-removal brake (`max_removals`): nothing was written;
    /// `idhost approve` commits it. Never in a sink's `sync_run` (a held sync writes nothing).
    Held,
}

impl RunStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Held => "held",
        }
    }
}

/// Record counts of a sync.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Resources by type.
    pub resources: std::collections::BTreeMap<String, u64>,
    /// Entitlements.
    pub entitlements: u64,
    /// Grants.
    pub grants: u64,
    /// Change events this sync made, by kind (`created`, `updated`, ...); absent when none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub changes: std::collections::BTreeMap<String, u64>,
    /// Values the plugin sent that this host does not know (it was built against a newer 1.x
    /// SDK), by `what:value` (`status:suspended`, `capability:teleport`): kept as sent and
    /// reported, never fatal. Absent when none.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub unknown: std::collections::BTreeMap<String, u64>,
}

impl Counts {
    /// All resources.
    pub fn resource_total(&self) -> u64 {
        self.resources.values().sum()
    }
}

/// One sync of one source: DESIGN §4 `sync_run`.
#[derive(Debug, Clone, Serialize)]
pub struct SyncRun {
    /// Source name.
    pub source: String,
    /// Unique, time-ordered id.
    pub sync_id: String,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339.
    pub finished_at: String,
    /// Outcome.
    pub status: RunStatus,
    /// What was received.
    pub counts: Counts,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
