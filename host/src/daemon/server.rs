//! The daemon's HTTP endpoints, for Kubernetes probes and Prometheus:
//! - `GET /healthz` — 200 while the schedulers are alive (liveness); 503 if one died.
//! - `GET /readyz` — 200 once plugins, sinks and (with `[coordination]`) the database are up,
//!   503 while starting or stopping (readiness).
//! - `GET /metrics` — Prometheus text format 0.0.4.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::DaemonMetrics;

/// What the endpoints read.
#[derive(Clone, Default)]
pub(crate) struct Status {
    /// Counters.
    pub(crate) metrics: Arc<DaemonMetrics>,
    /// Set when the daemon can sync; cleared when it stops.
    pub(crate) ready: Arc<AtomicBool>,
    /// Cleared if a scheduler task ended unexpectedly.
    pub(crate) alive: Arc<AtomicBool>,
}

/// The router.
pub(crate) fn app(status: Status) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(status)
}

async fn healthz(State(status): State<Status>) -> impl IntoResponse {
    if status.alive.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "a source scheduler stopped unexpectedly; see the logs\n",
        )
    }
}

async fn readyz(State(status): State<Status>) -> impl IntoResponse {
    if status.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting or stopping\n",
        )
    }
}

async fn metrics(State(status): State<Status>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        status.metrics.render(),
    )
}
