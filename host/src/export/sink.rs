//! The export as a sink: a session keeps the mapped values of one source's records, and its
//! commit merges them into the target in one atomic step of the store. An abort drops them, so a
//! failed or cancelled sync leaves the target exactly as it was.

use std::sync::Arc;

use async_trait::async_trait;

use super::engine::{self, Report, SyncInfo};
use super::plan::{Plan, Staged};
use super::store::ExportStore;
use crate::config::SinkConfig;
use crate::record::{Batch, RunStatus, SyncRun};
use crate::sinks::{Sink, SinkError, SinkSession};

/// An export sink over any store.
pub(crate) struct ExportSink {
    config: SinkConfig,
    plan: Arc<Plan>,
    store: Arc<dyn ExportStore>,
    /// One merge at a time: sources feeding one export commit one after the other, each on
    /// the rows the previous one left.
    merge_lock: Arc<tokio::sync::Mutex<()>>,
}

impl ExportSink {
    pub(crate) fn new(config: SinkConfig, plan: Plan, store: Arc<dyn ExportStore>) -> Self {
        Self {
            config,
            plan: Arc::new(plan),
            store,
            merge_lock: Arc::default(),
        }
    }
}

#[async_trait]
impl Sink for ExportSink {
    fn config(&self) -> &SinkConfig {
        &self.config
    }

    async fn begin(&self, source: &str, _sync_id: &str) -> Result<Box<dyn SinkSession>, SinkError> {
        Ok(Box::new(ExportSession {
            plan: self.plan.clone(),
            store: self.store.clone(),
            merge_lock: self.merge_lock.clone(),
            source: source.to_owned(),
            staged: Vec::new(),
        }))
    }
}

struct ExportSession {
    plan: Arc<Plan>,
    store: Arc<dyn ExportStore>,
    merge_lock: Arc<tokio::sync::Mutex<()>>,
    source: String,
    /// Mapped values only (a few strings per record), so even a large directory stays small.
    staged: Vec<Staged>,
}

impl ExportSession {
    /// Whether `run` listed a resource type this export holds. A sync narrowed by the source's
    /// `resource_types` to other types is complete for them, not for this export, and must not
    /// deactivate its rows. (The host lists each type it syncs at least once, so a type whose
    /// listing came back empty is still in the counts.)
    fn covers(&self, run: &SyncRun) -> bool {
        run.counts
            .resources
            .keys()
            .any(|rtype| self.plan.records.wants_resource(rtype))
    }
}

#[async_trait]
impl SinkSession for ExportSession {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.staged.extend(
            batch
                .resources
                .iter()
                .map(|r| self.plan.stage(r, &self.source)),
        );
        Ok(())
    }

    async fn commit(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let complete = run.status == RunStatus::Succeeded && self.covers(run);
        if !complete && self.plan.deactivate_missing {
            tracing::warn!(
                sink = %self.plan.sink, source = %self.source,
                "the sync listed none of the resource types this export holds; nobody is deactivated"
            );
        }
        let (plan, source, synced_at) = (
            self.plan.clone(),
            self.source.clone(),
            run.finished_at.clone(),
        );
        let staged = self.staged;
        let _guard = self.merge_lock.lock().await;
        let started = std::time::Instant::now();
        let report = self
            .store
            .transact(
                &plan.names(),
                Box::new(move |table| {
                    let sync = SyncInfo {
                        source: &source,
                        synced_at: &synced_at,
                        complete,
                    };
                    engine::apply(&plan, table, staged, sync)
                }),
            )
            .await
            .map_err(|e| e.into_sink(&self.plan.sink))?;
        log_report(
            &self.plan,
            &self.source,
            &self.store.target(),
            &report,
            started.elapsed(),
        );
        Ok(())
    }

    async fn abort(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        tracing::info!(
            sink = %self.plan.sink, source = %self.source, status = run.status.as_str(),
            discarded = self.staged.len(),
            "the sync did not complete; the export target is unchanged"
        );
        Ok(())
    }
}

/// One summary line, plus the records that were skipped, by id.
fn log_report(plan: &Plan, source: &str, target: &str, r: &Report, took: std::time::Duration) {
    if r.no_key > 0 {
        tracing::warn!(
            sink = %plan.sink, source, count = r.no_key, sync_key = %plan.key_names().join(", "),
            examples = %r.no_key_ids.join(", "),
            "records without a value in any sync_key column were skipped"
        );
    }
    if r.duplicates > 0 {
        tracing::warn!(
            sink = %plan.sink, source, count = r.duplicates,
            examples = %r.duplicate_ids.join(", "),
            "records whose key an earlier record of the same sync already had were skipped"
        );
    }
    tracing::info!(
        sink = %plan.sink, source, target,
        received = r.received, created = r.created, updated = r.updated,
        unchanged = r.unchanged, kept = r.kept, skipped_new = r.skipped_new,
        skipped_no_key = r.no_key, duplicates = r.duplicates, reactivated = r.reactivated,
        disabled = r.disabled, deactivated = r.deactivated, missing_kept = r.missing_kept,
        elapsed_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        "export merged"
    );
}
