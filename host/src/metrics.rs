//! Counters the host keeps per source and per sink; `idhost run` renders them for Prometheus,
//! `idhost sync` prints them in its summary.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one source.
#[derive(Debug, Default)]
pub struct SourceMetrics {
    requests_by_status: Mutex<BTreeMap<u16, u64>>,
    request_micros: AtomicU64,
    retries: AtomicU64,
    transport_errors: AtomicU64,
    /// Records received from the connector.
    pub records: AtomicU64,
    /// Pages received from the connector.
    pub pages: AtomicU64,
}

impl SourceMetrics {
    /// One upstream answer.
    pub fn record_request(&self, status: u16, took: Duration) {
        if let Ok(mut m) = self.requests_by_status.lock() {
            *m.entry(status).or_default() += 1;
        }
        self.request_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// One retry.
    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// One transport failure (no HTTP status).
    pub fn record_transport_error(&self) {
        self.transport_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Upstream answers by status.
    pub fn requests_by_status(&self) -> BTreeMap<u16, u64> {
        self.requests_by_status
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default()
    }

    /// All upstream answers.
    pub fn requests(&self) -> u64 {
        self.requests_by_status().values().sum()
    }

    /// Retries so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Transport failures so far.
    pub fn transport_errors(&self) -> u64 {
        self.transport_errors.load(Ordering::Relaxed)
    }
}
