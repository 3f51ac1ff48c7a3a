//! Calls into a plugin, each on its own task and bounded by the source's `call_timeout`.
//!
//! Its own task for two reasons. A plugin that hangs, whether it awaits forever or blocks
//! the thread it is polled on, cannot stop a timer that runs on another task, so the source
//! fails after `call_timeout` instead of holding on until a signal. And the next page of a
//! listing is fetched (network wait, JSON parsing in the plugin) on another worker while the
//! host writes the current page to the sinks and the state database.

use std::time::Duration;

use idhost_connector_sdk::ConnectorError;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A plugin call in flight. Dropping it abandons the call (the task is aborted).
pub(crate) struct PluginCall<T> {
    handle: JoinHandle<Result<T, ConnectorError>>,
    deadline: Instant,
    timeout: Duration,
}

impl<T: Send + 'static> PluginCall<T> {
    /// Starts `call`; the timeout counts from now.
    pub(crate) fn spawn(
        timeout: Duration,
        call: impl Future<Output = Result<T, ConnectorError>> + Send + 'static,
    ) -> Self {
        Self {
            handle: tokio::spawn(call),
            deadline: Instant::now() + timeout,
            timeout,
        }
    }

    /// The call's answer, or an `unavailable` error once the deadline passes.
    pub(crate) async fn join(mut self) -> Result<T, ConnectorError> {
        match tokio::time::timeout_at(self.deadline, &mut self.handle).await {
            Ok(Ok(answer)) => answer,
            // The SDK catches a plugin's panics and turns them into errors, so a failed join
            // is a panic on the host's side of the boundary or the runtime shutting down.
            Ok(Err(err)) => Err(ConnectorError::internal(format!(
                "the plugin call ended abnormally: {err}"
            ))),
            Err(_) => Err(ConnectorError::unavailable(format!(
                "the plugin did not answer within call_timeout_secs = {}; the call was abandoned",
                self.timeout.as_secs()
            ))),
        }
    }
}

impl<T> Drop for PluginCall<T> {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Runs `call` bounded by `timeout` (see [`PluginCall`]).
pub(crate) async fn bounded<T: Send + 'static>(
    timeout: Duration,
    call: impl Future<Output = Result<T, ConnectorError>> + Send + 'static,
) -> Result<T, ConnectorError> {
    PluginCall::spawn(timeout, call).join().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_call_that_blocks_its_thread_still_times_out() {
        let started = std::time::Instant::now();
        let err = bounded(Duration::from_millis(200), async {
            // A plugin stuck in a blocking loop: never yields to the runtime.
            std::thread::sleep(Duration::from_secs(2));
            Ok(())
        })
        .await
        .expect_err("times out");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        assert!(err.message.contains("call_timeout_secs"), "{err}");
    }

    #[tokio::test]
    async fn an_answer_in_time_is_returned_and_a_dropped_call_is_aborted() {
        assert_eq!(
            bounded(Duration::from_secs(5), async { Ok(7) }).await.ok(),
            Some(7)
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let call = PluginCall::spawn(Duration::from_secs(5), async move {
            let _tx = tx;
            std::future::pending::<()>().await;
            Ok(())
        });
        drop(call);
        // The aborted task drops its future, and with it the sender.
        assert!(
            tokio::time::timeout(Duration::from_secs(2), rx)
                .await
                .is_ok()
        );
    }
}
