//! Failure notifications of `idhost run`: `[notify.NAME]` targets (a webhook signed with
//! HMAC-SHA256, or mail through SMTP) hear when a sync fails, runs past its deadline, or misses
//! its schedule — once per incident, not once per failing run — and hear again when the source
//! recovers. Incident bookkeeping is in [`incidents`]; delivery in `webhook` and `email`.
//!
//! Each target has one worker and a bounded queue, so notices reach it in order (an incident's
//! opening before its recovery) and a slow SMTP server never holds up a sync.

mod email;
pub mod incidents;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{NotifyEvent, NotifyKind, NotifyTarget};
use crate::metrics::DaemonMetrics;
use crate::retry::{Attempt, Decision, Outcome, RetryPolicy};
pub use incidents::{Incident, Incidents};

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

/// Why a notice could not be delivered. Messages name the target and its host, never a
/// webhook's path (Slack-style URLs carry their token there) or a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The webhook answered with a non-2xx status.
    #[error("notify target `{target}`: POST to {host} answered {status}: {body_excerpt}")]
    WebhookStatus {
        /// Target name.
        target: String,
        /// Host of the URL.
        host: String,
        /// HTTP status.
        status: u16,
        /// Start of the answer body.
        body_excerpt: String,
        /// What the answer's `Retry-After` and rate-limit headers asked for.
        #[doc(hidden)]
        outcome: Outcome,
    },
    /// The webhook could not be reached.
    #[error("notify target `{target}`: POST to {host} failed: {message}")]
    WebhookTransport {
        /// Target name.
        target: String,
        /// Host of the URL.
        host: String,
        /// Cause.
        message: String,
    },
    /// The mail could not be built or sent.
    #[error("notify target `{target}`: mail through {host}:{port} failed: {message}")]
    Email {
        /// Target name.
        target: String,
        /// SMTP host.
        host: String,
        /// SMTP port.
        port: u16,
        /// Cause.
        message: String,
    },
}

impl NotifyError {
    /// The attempt's outcome as the retry policy sees it. A mail failure counts as a transport
    /// failure: the relay may be back on the next try.
    fn outcome(&self) -> Outcome {
        match self {
            NotifyError::WebhookStatus { outcome, .. } => outcome.clone(),
            NotifyError::WebhookTransport { .. } | NotifyError::Email { .. } => {
                Outcome::Transport { connected: false }
            }
        }
    }
}

/// One notice, as POSTed to a webhook (and summarized in a mail).
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// Always `notification`, like the `kind` of every other idhost wire object.
    pub kind: &'static str,
    /// Unique per notice (a receiver can drop redeliveries).
    pub id: String,
    /// `sync_failed`, `sync_overdue`, `schedule_missed` or `recovered`.
    pub event: &'static str,
    /// The incident this notice opens or (for `recovered`) closes.
    pub incident_id: String,
    /// For `recovered`: which kind of incident it closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolves: Option<String>,
    /// Source name.
    pub source: String,
    /// Connector name.
    pub connector: String,
    /// RFC 3339: when the incident opened.
    pub opened_at: String,
    /// RFC 3339: now.
    pub at: String,
    /// The sync concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<String>,
    /// One line for people.
    pub summary: String,
    /// The error, for `sync_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The replica that noticed.
    pub replica: String,
}

impl Notification {
    /// The notice that opens `incident`.
    pub fn opened(
        incident: &Incident,
        event: NotifyEvent,
        source: &str,
        connector: &str,
        sync_id: Option<&str>,
        error: Option<&str>,
        replica: &str,
    ) -> Self {
        Self {
            kind: "notification",
            id: uuid::Uuid::now_v7().to_string(),
            event: event.as_str(),
            incident_id: incident.id.clone(),
            resolves: None,
            source: source.to_owned(),
            connector: connector.to_owned(),
            opened_at: incident.opened_at.clone(),
            at: now_rfc3339(),
            sync_id: sync_id.map(str::to_owned),
            summary: format!("source `{source}` ({connector}): {}", incident.detail),
            error: error.map(str::to_owned),
            replica: replica.to_owned(),
        }
    }

    /// The notice that closes `incident` after a successful sync.
    pub fn recovered(
        incident: &Incident,
        source: &str,
        connector: &str,
        sync_id: &str,
        replica: &str,
    ) -> Self {
        Self {
            kind: "notification",
            id: uuid::Uuid::now_v7().to_string(),
            event: NotifyEvent::Recovered.as_str(),
            incident_id: incident.id.clone(),
            resolves: Some(incident.event.clone()),
            source: source.to_owned(),
            connector: connector.to_owned(),
            opened_at: incident.opened_at.clone(),
            at: now_rfc3339(),
            sync_id: Some(sync_id.to_owned()),
            summary: format!(
                "source `{source}` ({connector}) recovered: a sync succeeded again (resolves {} since {})",
                incident.event, incident.opened_at
            ),
            error: None,
            replica: replica.to_owned(),
        }
    }

    fn wanted_as(&self) -> NotifyEvent {
        NotifyEvent::ALL
            .into_iter()
            .find(|e| e.as_str() == self.event)
            .unwrap_or(NotifyEvent::SyncFailed)
    }

    /// Mail subject.
    fn subject(&self) -> String {
        let what = match self.event {
            "sync_failed" => "sync failed",
            "sync_overdue" => "sync overdue",
            "schedule_missed" => "scheduled sync missed",
            _ => "recovered",
        };
        format!("[idhost] {}: {what}", self.source)
    }

    /// Mail body.
    fn text(&self) -> String {
        let mut text = format!("{}\n\n", self.summary);
        let mut line = |k: &str, v: &str| text.push_str(&format!("{k:<12} {v}\n"));
        line("event", self.event);
        line("source", &self.source);
        line("connector", &self.connector);
        line("incident", &self.incident_id);
        line("opened at", &self.opened_at);
        line("at", &self.at);
        if let Some(sync_id) = &self.sync_id {
            line("sync id", sync_id);
        }
        if let Some(error) = &self.error {
            line("error", error);
        }
        line("replica", &self.replica);
        text
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

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
