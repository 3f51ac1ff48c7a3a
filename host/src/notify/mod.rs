//! Failure notifications of `idhost run`: `[notify.NAME]` targets (a webhook signed with
//! HMAC-SHA256, or mail through SMTP) hear when a sync fails, runs past its deadline, or misses
//! its schedule — once per incident, not once per failing run — and hear again when the source
//! recovers. Incident bookkeeping is in [`incidents`]; delivery in `webhook` and `email`.
//!
//! Each target has one worker and a bounded queue, so notices reach it in order (an incident's
//! opening before its recovery) and a slow SMTP server never holds up a sync.

mod email;
mod error;
pub mod incidents;
mod notice;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{NotifyKind, NotifyTarget};
use crate::metrics::DaemonMetrics;
use crate::retry::{Attempt, Decision, RetryPolicy};
pub use error::NotifyError;
pub use incidents::{Incident, Incidents};
pub use notice::Notification;

/// How notices are retried: the host's one policy ([`crate::retry`]), three attempts with
/// jittered backoff from one second, `Retry-After` honoured, at most half a minute of waiting.
fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(4),
        max_wait: Duration::from_secs(30),
    }
}
/// Notices waiting per target before new ones are dropped (and logged).
const QUEUE: usize = 256;

/// A built target: where and how it delivers.
enum Channel {
    Webhook(webhook::Webhook),
    Email(email::Mailer),
}

impl Channel {
    async fn deliver(&self, notice: &Notification) -> Result<(), NotifyError> {
        match self {
            Channel::Webhook(w) => w.deliver(notice).await,
            Channel::Email(m) => m.deliver(notice).await,
        }
    }
}

struct Route {
    config: NotifyTarget,
    queue: mpsc::Sender<Arc<Notification>>,
}

/// Sends notices to every interested target.
pub struct Notifier {
    routes: std::sync::Mutex<Vec<Route>>,
    workers: std::sync::Mutex<JoinSet<()>>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field(
                "workers",
                &self.workers.lock().map(|w| w.len()).unwrap_or(0),
            )
            .finish()
    }
}

impl Notifier {
    /// Builds the targets and starts one delivery worker per target.
    pub fn start(
        targets: &[NotifyTarget],
        client: reqwest::Client,
        metrics: Arc<DaemonMetrics>,
    ) -> Result<Self, NotifyError> {
        let mut routes = Vec::new();
        let mut workers = JoinSet::new();
        for target in targets {
            let channel = match &target.kind {
                NotifyKind::Webhook { url, secret } => Channel::Webhook(webhook::Webhook::new(
                    &target.name,
                    client.clone(),
                    url.clone(),
                    secret.clone(),
                    target.timeout,
                )),
                NotifyKind::Email(email) => {
                    Channel::Email(email::Mailer::new(&target.name, email, target.timeout)?)
                }
            };
            let (tx, rx) = mpsc::channel(QUEUE);
            workers.spawn(worker(target.name.clone(), channel, rx, metrics.clone()));
            routes.push(Route {
                config: target.clone(),
                queue: tx,
            });
        }
        Ok(Self {
            routes: std::sync::Mutex::new(routes),
            workers: std::sync::Mutex::new(workers),
        })
    }

    /// Queues `notice` for every target that wants its source and event.
    pub fn send(&self, notice: Notification) {
        let event = notice.wanted_as();
        tracing::warn!(source = %notice.source, event = notice.event, incident = %notice.incident_id, "{}", notice.summary);
        let notice = Arc::new(notice);
        let routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        for route in routes.iter() {
            if !route.config.sources.includes(&notice.source)
                || !route.config.events.contains(&event)
            {
                continue;
            }
            if route.queue.try_send(notice.clone()).is_err() {
                tracing::error!(target_name = %route.config.name, source = %notice.source, event = notice.event,
                    "notify target's queue is full or closed; dropping this notice");
            }
        }
    }

    /// Stops taking notices and waits up to `within` for the queued ones to go out.
    pub async fn drain(&self, within: Duration) {
        // Dropping the senders ends each worker once its queue is empty.
        self.routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let mut workers =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()));
        let all = async { while workers.join_next().await.is_some() {} };
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!("notices still queued at shutdown were dropped");
        }
    }
}

async fn worker(
    name: String,
    channel: Channel,
    mut queue: mpsc::Receiver<Arc<Notification>>,
    metrics: Arc<DaemonMetrics>,
) {
    let policy = retry_policy();
    while let Some(notice) = queue.recv().await {
        // A notice carries its id, so a receiver drops a redelivery: any failure may be retried.
        let mut attempt = Attempt {
            number: 0,
            waited: Duration::ZERO,
            idempotent: true,
            rate_window: None,
        };
        loop {
            attempt.number += 1;
            let err = match channel.deliver(&notice).await {
                Ok(()) => {
                    metrics.notification(&name, "sent");
                    tracing::info!(target_name = %name, source = %notice.source, event = notice.event, "notice delivered");
                    break;
                }
                Err(err) => err,
            };
            match policy.decide(&attempt, &err.outcome()) {
                Decision::Retry(wait) => {
                    tracing::warn!(error = %err, attempt = attempt.number, "notice delivery failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt.waited += wait;
                }
                Decision::Stop(_) => {
                    metrics.notification(&name, "failed");
                    tracing::error!(error = %err, source = %notice.source, event = notice.event, "notice not delivered");
                    break;
                }
            }
        }
    }
}
