//! The accept loop of the health and metrics server (DESIGN §7.3): a request head must arrive
//! within [`HEAD_TIMEOUT`], at most [`MAX_CONNECTIONS`] connections are served at once, and when
//! all are taken a new connection evicts the oldest one that has no request in flight (an idle
//! or half-sent connection), so idle clients can never starve `/healthz`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Longest a client may take to send a request head.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 256;

/// One open connection, as the eviction sees it.
struct Open {
    id: u64,
    in_flight: Arc<AtomicUsize>,
    evict: CancellationToken,
}

#[derive(Default)]
struct Table {
    open: Mutex<VecDeque<Open>>,
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Open>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes the oldest connection with no request in flight; whether there was one.
    fn evict_oldest_idle(&self) -> bool {
        let mut open = self.lock();
        let idle = open
            .iter()
            .position(|c| c.in_flight.load(Ordering::Acquire) == 0);
        match idle.and_then(|at| open.remove(at)) {
            Some(conn) => {
                conn.evict.cancel();
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.lock().retain(|c| c.id != id);
    }
}

/// Serves `app` on `listener` until `stop`; open connections are closed when it stops.
pub(crate) async fn serve(listener: TcpListener, app: Router, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let table = Arc::new(Table::default());
    let mut next_id = 0u64;
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .keep_alive(true);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors, most likely: wait a little rather than spin.
                tracing::warn!("health server: accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !table.evict_oldest_idle() {
                    tracing::debug!("health server: {MAX_CONNECTIONS} requests in flight; waiting");
                }
                let acquired = tokio::select! {
                    () = stop.cancelled() => break,
                    permit = slots.clone().acquire_owned() => permit,
                };
                match acquired {
                    Ok(permit) => permit,
                    Err(_) => break,
                }
            }
        };
        next_id += 1;
        let id = next_id;
        let in_flight = Arc::new(AtomicUsize::new(0));
        let evict = stop.child_token();
        table.lock().push_back(Open {
            id,
            in_flight: in_flight.clone(),
            evict: evict.clone(),
        });
        let service = {
            let app = app.clone();
            let in_flight = in_flight.clone();
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let app = app.clone();
                let guard = InFlight::new(in_flight.clone());
                async move {
                    use tower::ServiceExt as _;
                    let response = app.oneshot(request.map(axum::body::Body::new)).await;
                    drop(guard);
                    response
                }
            })
        };
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let table = table.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!("health server: connection ended: {err}");
                    }
                }
                () = evict.cancelled() => {}
            }
            table.remove(id);
            drop(permit);
        });
    }
}

/// Counts a request in flight on its connection while it lives.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Raises the soft limit of open files to the hard limit, so a burst of connections and the
/// syncs' databases and sockets do not run out of descriptors; logs what it did.
pub(crate) fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current == limit.maximum {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(
            from = ?limit.current,
            to = ?limit.maximum,
            "raised the open-file soft limit to the hard limit"
        ),
        Err(err) => tracing::warn!("cannot raise the open-file soft limit: {err}"),
    }
}
