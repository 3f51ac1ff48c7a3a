//! A sink's session as the pipeline drives it: the sink sees only the records its `records`
//! filter takes.

use std::sync::Arc;

use super::filter::RecordFilter;
use crate::record::{Batch, ChangeEvent, SyncRun};
use crate::sinks::{Sink, SinkError, SinkSession};

/// A session that hands its sink only the records the sink's `records` filter wants.
pub struct RoutedSession {
    filter: RecordFilter,
    inner: Box<dyn SinkSession>,
    sink: String,
}

impl RoutedSession {
    /// Begins a session of `source`'s sync `sync_id` in `sink`.
    pub async fn begin(
        sink: &Arc<dyn Sink>,
        source: &str,
        sync_id: &str,
    ) -> Result<Self, SinkError> {
        let config = sink.config();
        let inner = sink.begin(source, sync_id).await?;
        Ok(Self {
            filter: config.records.clone(),
            inner,
            sink: config.name.clone(),
        })
    }

    /// The sink's name.
    pub fn sink(&self) -> &str {
        &self.sink
    }

    /// Writes the wanted part of `batch`.
    pub async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        match self.filter.select(batch) {
            None => self.inner.write(batch).await,
            Some(part) if part.is_empty() => Ok(()),
            Some(part) => self.inner.write(&part).await,
        }
    }

    /// Whether the sink takes resources, entitlements or grants (else replays skip it).
    pub fn wants_records(&self) -> bool {
        self.filter.wants_records()
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
