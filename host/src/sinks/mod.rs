//! Sinks: where normalized records go. Each sink receives a source's sync as a session
//! (`begin` → `write`… → `commit` or `abort`), so it can make the new snapshot visible
//! atomically and keep the last good one when a sync fails.

mod csv;
mod event;
mod jsonl;
mod nats;
mod postgres;
mod sqlite;
mod webhook;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use idhost_connector_sdk::{Entitlement, Grant, Resource};
use serde::{Deserialize, Serialize};

use crate::config::{RecordFilter, SinkConfig, SinkKind};

pub use event::{ChangeEvent, EventKind, event_id};
pub use jsonl::JsonlSink;
pub use nats::NatsSink;
pub use postgres::PostgresSink;
pub use sqlite::SqliteSink;
pub use webhook::WebhookSink;

/// Records of one page, routed together.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Resources.
    pub resources: Vec<Resource>,
    /// Entitlements.
    pub entitlements: Vec<Entitlement>,
    /// Grants.
    pub grants: Vec<Grant>,
}

impl Batch {
    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.resources.len() + self.entitlements.len() + self.grants.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The part of the batch `filter` wants (`None` when that is all of it, to avoid a copy).
    fn filtered(&self, filter: &RecordFilter) -> Option<Batch> {
        let all_resources = self
            .resources
            .iter()
            .all(|r| filter.wants_resource(&r.rtype));
        let ents = filter.wants_kind("entitlement");
        let grants = filter.wants_kind("grant");
        if all_resources
            && (ents || self.entitlements.is_empty())
            && (grants || self.grants.is_empty())
        {
            return None;
        }
        Some(Batch {
            resources: self
                .resources
                .iter()
                .filter(|r| filter.wants_resource(&r.rtype))
                .cloned()
                .collect(),
            entitlements: if ents {
                self.entitlements.clone()
            } else {
                Vec::new()
            },
            grants: if grants {
                self.grants.clone()
            } else {
                Vec::new()
            },
        })
    }
}

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
}

impl RunStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
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

/// A session that hands its sink only the records the sink's `records` filter wants.
pub struct RoutedSession {
    filter: RecordFilter,
    inner: Box<dyn SinkSession>,
    sink: String,
}

impl RoutedSession {
    /// Wraps `inner` with the filter of `config`.
    pub fn new(config: &SinkConfig, inner: Box<dyn SinkSession>) -> Self {
        Self {
            filter: config.records.clone(),
            inner,
            sink: config.name.clone(),
        }
    }

    /// The sink's name.
    pub fn sink(&self) -> &str {
        &self.sink
    }

    /// Writes the wanted part of `batch`.
    pub async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        match batch.filtered(&self.filter) {
            None => self.inner.write(batch).await,
            Some(part) if part.is_empty() => Ok(()),
            Some(part) => self.inner.write(&part).await,
        }
    }

    /// Whether the sink takes resources, entitlements or grants (else replays skip it).
    pub fn wants_records(&self) -> bool {
        ["resource", "entitlement", "grant"]
            .iter()
            .any(|k| self.filter.wants_kind(k))
    }

    /// Whether the sink takes change events.
    pub fn wants_events(&self) -> bool {
        self.filter.wants_kind("event")
    }

    /// Hands `events` to the sink if it takes events.
    pub async fn write_events(&mut self, events: &[ChangeEvent]) -> Result<(), SinkError> {
        if self.wants_events() && !events.is_empty() {
            self.inner.write_events(events).await
        } else {
            Ok(())
        }
    }

    /// Commits.
    pub async fn commit(self, run: &SyncRun) -> Result<(), SinkError> {
        self.inner.commit(run).await
    }

    /// Aborts.
    pub async fn abort(self, run: &SyncRun) -> Result<(), SinkError> {
        self.inner.abort(run).await
    }
}

/// Builds the sinks of a config.
pub async fn build(configs: &[SinkConfig]) -> Result<Vec<Arc<dyn Sink>>, SinkError> {
    let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
    for config in configs {
        let sink: Arc<dyn Sink> = match config.kind {
            SinkKind::Csv => csv::open(config.clone())?,
            _ if config.export.is_some() => crate::export::open(config.clone()).await?,
            SinkKind::Sqlite => Arc::new(SqliteSink::open(config.clone()).await?),
            SinkKind::Jsonl => Arc::new(JsonlSink::new(config.clone())),
            SinkKind::Postgres => Arc::new(PostgresSink::open(config.clone()).await?),
            SinkKind::Webhook => Arc::new(WebhookSink::new(config.clone())?),
            SinkKind::Nats => Arc::new(NatsSink::open(config.clone()).await?),
        };
        sinks.push(sink);
    }
    Ok(sinks)
}

/// One record as a JSON object with `kind` and `source` first (DESIGN §4 wire format).
pub fn wire_object<T: Serialize>(
    kind: &str,
    source: &str,
    record: &T,
) -> serde_json::Map<String, serde_json::Value> {
    let mut object = serde_json::Map::new();
    object.insert("kind".into(), kind.into());
    object.insert("source".into(), source.into());
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(record) {
        for (k, v) in fields {
            if k != "source" {
                object.insert(k, v);
            }
        }
    }
    object
}
