//! Where plugin calls run: every call into a plugin (`open`, `validate`, each listing and
//! detail page, each provisioning operation) is polled on a thread of its own, taken from a
//! plugin thread pool, never on one of the host runtime's async workers. The host awaits the
//! answer under the source's `call_timeout_secs`.
//!
//! Why threads: a plugin is native code. One stuck in blocking code (a synchronous lock, a
//! `std::thread::sleep`, a busy loop) holds the thread that polls it. On the host's workers,
//! as many stuck calls as there are cores would stop every timer, the signal handler, the
//! health server and the state writes: `call_timeout_secs` would never fire and SIGTERM would
//! never be seen. On a pool thread a stuck call holds that thread only.
//!
//! The pool thread enters the host runtime (`Handle::block_on`), so what a plugin asks of the
//! host (HTTP, timers) still runs on the host's reactor and timers.
//!
//! A call that does not answer in time is abandoned: the host stops waiting and tells the
//! thread to drop the call's future. A call that merely awaits forever is dropped at once and
//! its thread returns to the pool. A call blocked in the plugin keeps its thread; while any
//! abandoned call of a source still holds a thread, that source is **quarantined**: every new
//! call to it fails at once with an error naming the source and `call_timeout_secs`, so one
//! stuck plugin leaks at most the calls it had in flight when it stuck (a listing page, its
//! prefetch, and `concurrency` detail calls), not one thread per schedule. The quarantine ends
//! when the last of those threads comes back. The pool holds at most [`MAX_PLUGIN_THREADS`]
//! threads; calls beyond that wait for a thread (under their timeout like any other).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::FutureExt as _;
use idhost_connector_sdk::ConnectorError;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Most threads the plugin pool runs at once (busy, idle and stuck ones together).
pub const MAX_PLUGIN_THREADS: usize = 128;

/// How long an idle pool thread waits for the next call before it exits.
const IDLE_THREAD_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The pool: a runtime used only for its blocking threads. It lives for the whole process and
/// is never shut down, so exiting never waits for a thread a plugin holds.
fn pool() -> Option<&'static tokio::runtime::Runtime> {
    static POOL: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    POOL.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(MAX_PLUGIN_THREADS)
            .thread_keep_alive(IDLE_THREAD_KEEP_ALIVE)
            .thread_name("idhost-plugin")
            .build()
            .map_err(|err| tracing::error!(error = %err, "cannot start the plugin thread pool"))
            .ok()
    })
    .as_ref()
}

/// Per source: how many of its abandoned calls still hold a pool thread.
fn stuck_counter(source: &str) -> Arc<AtomicUsize> {
    static STUCK: OnceLock<Mutex<HashMap<String, Arc<AtomicUsize>>>> = OnceLock::new();
    let map = STUCK.get_or_init(Mutex::default);
    match map.lock() {
        Ok(mut map) => map.entry(source.to_owned()).or_default().clone(),
        // A poisoned map only means another thread panicked while inserting; a fresh counter
        // loses that source's quarantine, never a call.
        Err(_) => Arc::default(),
    }
}

/// How the calls of one source run: its name, its connector and its `call_timeout_secs`.
#[derive(Debug, Clone)]
pub struct PluginCalls {
    source: Arc<str>,
    connector: Arc<str>,
    timeout: Duration,
    stuck: Arc<AtomicUsize>,
}

impl PluginCalls {
    /// The calls of source `source` (connector `connector`), each bounded by `timeout`.
    pub fn new(source: &str, connector: &str, timeout: Duration) -> Self {
        Self {
            source: source.into(),
            connector: connector.into(),
            timeout,
            stuck: stuck_counter(source),
        }
    }

    /// The calls of a configured source.
    pub fn for_source(source: &crate::config::SourceConfig) -> Self {
        Self::new(&source.name, &source.connector, source.call_timeout)
    }

    /// `call_timeout_secs`.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether an abandoned call of this source still holds a pool thread.
    pub fn quarantined(&self) -> bool {
        self.stuck.load(Ordering::SeqCst) > 0
    }

    fn quarantine_error(&self) -> ConnectorError {
        ConnectorError::unavailable(format!(
            "source `{}` is quarantined: a call into connector `{}` did not answer within call_timeout_secs = {} and is still blocking a plugin thread; no new call is made to it until that thread returns (restarting idhost clears it)",
            self.source,
            self.connector,
            self.timeout.as_secs()
        ))
    }

    /// Starts `call` on a plugin thread; the timeout counts from now.
    pub fn spawn<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, ConnectorError>> + Send + 'static,
    ) -> PluginCall<T> {
        let (answer_tx, answer_rx) = oneshot::channel();
        let (cancel_tx, cancel_rx) = oneshot::channel::<()>();
        let slot = Arc::new(Mutex::new(Slot::default()));
        let call_slot = CallSlot {
            slot: slot.clone(),
            stuck: self.stuck.clone(),
        };
        let started = if self.quarantined() {
            Err(self.quarantine_error())
        } else {
            match (pool(), tokio::runtime::Handle::try_current()) {
                (Some(pool), Ok(host)) => {
                    let source = self.source.clone();
                    pool.spawn_blocking(move || {
                        // Marks the call done when the thread leaves it, even by a panic.
                        let done = call_slot;
                        let answer = host.block_on(async move {
                            tokio::select! {
                                biased;
                                _ = cancel_rx => None,
                                answer = AssertUnwindSafe(call).catch_unwind() => Some(answer),
                            }
                        });
                        // Done before the answer is sent: the host, once it has the answer,
                        // must never see the call as still running.
                        drop(done);
                        match answer {
                            Some(Ok(answer)) => {
                                let _ = answer_tx.send(answer);
                            }
                            Some(Err(_)) => {
                                // The SDK turns a plugin's panics into errors; this is a panic
                                // on the host's side of the boundary. Dropping the sender
                                // reports it.
                                tracing::error!(source = %source, "a plugin call panicked on the host's side");
                            }
                            None => {}
                        }
                    });
                    Ok(())
                }
                (None, _) => Err(ConnectorError::internal(
                    "the plugin thread pool could not be started",
                )),
                (_, Err(err)) => Err(ConnectorError::internal(format!(
                    "a plugin call was made outside the host runtime: {err}"
                ))),
            }
        };
        let refused = match started {
            Ok(()) => None,
            Err(err) => {
                // Nothing runs: the slot is done and counts nothing.
                if let Ok(mut slot) = slot.lock() {
                    slot.done = true;
                }
                Some(err)
            }
        };
        PluginCall {
            answer: answer_rx,
            cancel: Some(cancel_tx),
            refused,
            slot,
            stuck: self.stuck.clone(),
            deadline: Instant::now() + self.timeout,
            timeout: self.timeout,
        }
    }

    /// Runs `call` on a plugin thread and waits for it, bounded by the timeout.
    pub async fn run<T: Send + 'static>(
        &self,
        call: impl Future<Output = Result<T, ConnectorError>> + Send + 'static,
    ) -> Result<T, ConnectorError> {
        self.spawn(call).join().await
    }
}

/// Where a call is: finished on its thread, and abandoned by the host.
#[derive(Debug, Default)]
struct Slot {
    done: bool,
    abandoned: bool,
}

/// Held by the thread running a call: when it drops (the call returned, was cancelled, or
/// panicked), an abandoned call stops counting against its source's quarantine.
struct CallSlot {
    slot: Arc<Mutex<Slot>>,
    stuck: Arc<AtomicUsize>,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.slot.lock() {
            slot.done = true;
            if slot.abandoned {
                self.stuck.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// A plugin call in flight. Dropping it abandons the call: the thread is told to drop the
/// call's future, and until it has, the source is quarantined.
#[derive(Debug)]
pub struct PluginCall<T> {
    answer: oneshot::Receiver<Result<T, ConnectorError>>,
    cancel: Option<oneshot::Sender<()>>,
    refused: Option<ConnectorError>,
    slot: Arc<Mutex<Slot>>,
    stuck: Arc<AtomicUsize>,
    deadline: Instant,
    timeout: Duration,
}

impl<T> PluginCall<T> {
    /// The call's answer, or an `unavailable` error once the deadline passes.
    pub async fn join(mut self) -> Result<T, ConnectorError> {
        if let Some(err) = self.refused.take() {
            return Err(err);
        }
        match tokio::time::timeout_at(self.deadline, &mut self.answer).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(ConnectorError::internal(
                "the plugin call ended abnormally (a panic on the host's side of the boundary)",
            )),
            Err(_) => Err(ConnectorError::unavailable(format!(
                "the plugin did not answer within call_timeout_secs = {}; the call was abandoned",
                self.timeout.as_secs()
            ))),
        }
    }
}

impl<T> Drop for PluginCall<T> {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.slot.lock()
            && !slot.done
            && !slot.abandoned
        {
            slot.abandoned = true;
            self.stuck.fetch_add(1, Ordering::SeqCst);
        }
        // Dropping the sender wakes the thread's `select!`: a call that awaits is dropped now.
        self.cancel.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(source: &str, timeout: Duration) -> PluginCalls {
        PluginCalls::new(source, "fixture", timeout)
    }

    /// More calls blocking their threads than the runtime has workers: every one times out in
    /// time, and the runtime's timers keep running.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_blocking_more_threads_than_workers_all_time_out() {
        let started = std::time::Instant::now();
        let waits = (0..4).map(|n| {
            let calls = calls(&format!("blocking-{n}"), Duration::from_millis(300));
            async move {
                calls
                    .run(async {
                        std::thread::sleep(Duration::from_secs(3));
                        Ok(())
                    })
                    .await
            }
        });
        let results = futures::future::join_all(waits).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        for result in results {
            let err = result.expect_err("times out");
            assert!(err.message.contains("call_timeout_secs = 0"), "{err}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blocked_source_is_quarantined_until_its_thread_returns() {
        let calls = calls("quarantine", Duration::from_millis(100));
        let err = calls
            .run(async {
                std::thread::sleep(Duration::from_millis(800));
                Ok(())
            })
            .await
            .expect_err("times out");
        assert!(err.message.contains("call_timeout_secs"), "{err}");
        assert!(calls.quarantined());
        let refused = calls.run(async { Ok(1) }).await.expect_err("quarantined");
        assert!(
            refused
                .message
                .contains("source `quarantine` is quarantined")
                && refused.message.contains("call_timeout_secs = 0"),
            "{refused}"
        );
        // Another source is not affected.
        assert_eq!(
            PluginCalls::new("other", "fixture", Duration::from_secs(5))
                .run(async { Ok(2) })
                .await
                .ok(),
            Some(2)
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(!calls.quarantined(), "the thread came back");
        assert_eq!(calls.run(async { Ok(3) }).await.ok(), Some(3));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_awaits_forever_is_dropped_and_quarantines_nothing() {
        let calls = calls("awaiting", Duration::from_millis(100));
        let (tx, rx) = oneshot::channel::<()>();
        let err = calls
            .run(async move {
                let _tx = tx;
                std::future::pending::<()>().await;
                Ok(())
            })
            .await
            .expect_err("times out");
        assert!(err.message.contains("call_timeout_secs"), "{err}");
        // The thread dropped the future, and with it the sender.
        assert!(
            tokio::time::timeout(Duration::from_secs(2), rx)
                .await
                .is_ok()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!calls.quarantined());
    }

    #[tokio::test]
    async fn an_answer_in_time_is_returned_and_host_timers_work_inside_a_call() {
        let calls = calls("answering", Duration::from_secs(5));
        let answer = calls
            .run(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(7)
            })
            .await;
        assert_eq!(answer.ok(), Some(7));
    }
}
