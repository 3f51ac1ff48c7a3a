//! Sink metrics without touching the sinks: each built sink is wrapped in a decorator that
//! counts what its sessions accept and the calls that fail. (A metrics hook inside the sync
//! pipeline would do the same; this keeps the daemon independent of it.)
//!
//! Every method of [`Sink`] and [`SinkSession`] is forwarded explicitly; a method added to
//! those traits later must be forwarded here too, or it would fall back to its default.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;

use crate::config::SinkConfig;
use crate::metrics::{DaemonMetrics, SinkMetrics};
use crate::record::{Batch, ChangeEvent, SyncRun};
use crate::sinks::{Sink, SinkError, SinkSession};

/// Wraps every sink of `sinks` with counters in `metrics`.
pub(crate) fn wrap(sinks: Vec<Arc<dyn Sink>>, metrics: &DaemonMetrics) -> Vec<Arc<dyn Sink>> {
    sinks
        .into_iter()
        .map(|inner| {
            let counters = metrics.sink(&inner.config().name);
            Arc::new(MeteredSink { inner, counters }) as Arc<dyn Sink>
        })
        .collect()
}

struct MeteredSink {
    inner: Arc<dyn Sink>,
    counters: Arc<SinkMetrics>,
}

fn count<T>(counters: &SinkMetrics, result: Result<T, SinkError>) -> Result<T, SinkError> {
    if result.is_err() {
        counters.errors.fetch_add(1, Ordering::Relaxed);
    }
    result
}

#[async_trait]
impl Sink for MeteredSink {
    fn config(&self) -> &SinkConfig {
        self.inner.config()
    }

    async fn begin(&self, source: &str, sync_id: &str) -> Result<Box<dyn SinkSession>, SinkError> {
        let inner = count(&self.counters, self.inner.begin(source, sync_id).await)?;
        Ok(Box::new(MeteredSession {
            inner,
            counters: self.counters.clone(),
        }))
    }
}

struct MeteredSession {
    inner: Box<dyn SinkSession>,
    counters: Arc<SinkMetrics>,
}

#[async_trait]
impl SinkSession for MeteredSession {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let result = count(&self.counters, self.inner.write(batch).await);
        if result.is_ok() {
            self.counters
                .records_written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        result
    }

    async fn write_events(&mut self, events: &[ChangeEvent]) -> Result<(), SinkError> {
        let result = count(&self.counters, self.inner.write_events(events).await);
        if result.is_ok() {
            self.counters
                .records_written
                .fetch_add(events.len() as u64, Ordering::Relaxed);
        }
        result
    }

    async fn commit(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let counters = self.counters.clone();
        let result = count(&counters, self.inner.commit(run).await);
        if result.is_ok() {
            counters.commits.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn abort(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let counters = self.counters.clone();
        count(&counters, self.inner.abort(run).await)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::record::{Counts, RunStatus};

    /// Records which calls reached it.
    struct Probe {
        events_seen: Arc<AtomicBool>,
    }

    #[async_trait]
    impl SinkSession for Probe {
        async fn write(&mut self, _batch: &Batch) -> Result<(), SinkError> {
            Ok(())
        }
        async fn write_events(&mut self, _events: &[ChangeEvent]) -> Result<(), SinkError> {
            self.events_seen.store(true, Ordering::Relaxed);
            Ok(())
        }
        async fn commit(self: Box<Self>, _run: &SyncRun) -> Result<(), SinkError> {
            Err(SinkError::Other {
                sink: "probe".into(),
                message: "commit refused".into(),
            })
        }
        async fn abort(self: Box<Self>, _run: &SyncRun) -> Result<(), SinkError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_meter_forwards_every_session_call_and_counts_failures() {
        let events_seen = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(SinkMetrics::default());
        let mut session: Box<dyn SinkSession> = Box::new(MeteredSession {
            inner: Box::new(Probe {
                events_seen: events_seen.clone(),
            }),
            counters: counters.clone(),
        });
        session.write(&Batch::default()).await.expect("write");
        session.write_events(&[]).await.expect("events");
        assert!(
            events_seen.load(Ordering::Relaxed),
            "write_events reached the sink"
        );
        let run = SyncRun {
            source: "s".into(),
            sync_id: "1".into(),
            started_at: String::new(),
            finished_at: String::new(),
            status: RunStatus::Succeeded,
            counts: Counts::default(),
            error: None,
        };
        assert!(session.commit(&run).await.is_err());
        assert_eq!(counters.errors.load(Ordering::Relaxed), 1);
        assert_eq!(counters.commits.load(Ordering::Relaxed), 0);
    }
}
