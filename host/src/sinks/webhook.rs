//! Webhook: POSTs batches of change events (and any other records the sink's `records` ask
//! for) to a URL.
//!
//! A batch is a JSON array of DESIGN §4 wire objects, sent when it holds `batch_size` records
//! (default 500), when its body would pass `batch_max_bytes` (default 1 MiB), when its oldest
//! record has waited `batch_timeout_ms` (default 1000), and when the sync's records end.
//! Headers:
//! - `X-Idhost-Signature: sha256=<hex>`: HMAC-SHA256 of the body with the sink's `secret`;
//! - `Idempotency-Key`: a hash of the batch's record ids (and the sync id), the same when the
//!   same batch is sent again, so the receiver can drop a repeat; each event also carries its
//!   own stable `id`;
//! - `X-Idhost-Source`, `X-Idhost-Sync-Id`.
//!
//! A 2xx answer accepts the batch. The host's one retry policy ([`crate::retry`]) decides the
//! rest: `Retry-After` and rate-limit reset headers first, then connection errors, timeouts
//! (`request_timeout_secs`, default 30), 408, 429, 500, 502, 503 and 504 with exponential
//! backoff and full jitter starting at `retry_backoff_ms` (default 500), up to `max_attempts`
//! (default 8) and the policy's maximum wait; other answers (403 included) fail at once. A batch
//! carries its `Idempotency-Key`, so repeating its POST is safe. A batch that is not accepted fails the sync's delivery: its
//! events stay in the host's outbox and the next `idhost sync` sends them again (same ids,
//! same batches), never dropping them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};

use super::sink::{Sink, SinkError, SinkSession};
use crate::config::SinkConfig;
use crate::record::{Batch, ChangeEvent, SyncRun, wire_object};
use crate::retry::{Attempt, Decision, Outcome, RetryPolicy};

/// Longest backoff step between two attempts.
const MAX_DELAY: Duration = Duration::from_secs(60);

struct Settings {
    sink: String,
    url: String,
    /// The URL without query or credentials, for messages.
    shown: String,
    secret: Option<secrecy::SecretString>,
    batch_size: usize,
    batch_max_bytes: usize,
    batch_timeout: Duration,
    retry: RetryPolicy,
    wants_runs: bool,
    client: reqwest::Client,
}

/// The webhook sink.
pub struct WebhookSink {
    config: SinkConfig,
    settings: Arc<Settings>,
}

impl WebhookSink {
    /// Checks the URL and builds the HTTP client (nothing is sent until a sync delivers).
    pub fn new(config: SinkConfig) -> Result<Self, SinkError> {
        let other = |message: String| SinkError::Other {
            sink: config.name.clone(),
            message,
        };
        let url = config.url.clone().unwrap_or_default();
        let parsed = url::Url::parse(&url).map_err(|e| {
            other(format!(
                "`url` must be an http(s) URL like `https://hooks.example.com/idhost`; got `{}` ({e})",
                shown_url(&url)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(other(format!(
                "`url` must use http or https; got `{}`",
                parsed.scheme()
            )));
        }
        if config.secret.is_none() {
            tracing::warn!(sink = %config.name, "webhook sink has no `secret`: batches are sent unsigned");
        }
        let timeout = config.request_timeout.unwrap_or(Duration::from_secs(30));
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("idhost/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| other(format!("cannot build the HTTP client: {e}")))?;
        let settings = Settings {
            sink: config.name.clone(),
            shown: shown_url(&url),
            url,
            secret: config.secret.clone(),
            batch_size: config.batch_size.unwrap_or(500).max(1),
            batch_max_bytes: config.batch_max_bytes.unwrap_or(1 << 20).max(1024),
            batch_timeout: config.batch_timeout.unwrap_or(Duration::from_millis(1000)),
            retry: RetryPolicy {
                max_attempts: config.max_attempts.unwrap_or(8).max(1),
                base_delay: config.retry_backoff.unwrap_or(Duration::from_millis(500)),
                max_delay: MAX_DELAY,
                ..RetryPolicy::default()
            },
            wants_runs: config.records.wants_kind("sync_run"),
            client,
        };
        Ok(Self {
            config,
            settings: Arc::new(settings),
        })
    }
}

/// `scheme://host[:port]/path`, without credentials or query (which may hold tokens).
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default(),
            u.path()
        ),
        Err(_) => "<invalid url>".into(),
    }
}

#[async_trait]
impl Sink for WebhookSink {
    fn config(&self) -> &SinkConfig {
        &self.config
    }

    async fn begin(&self, source: &str, sync_id: &str) -> Result<Box<dyn SinkSession>, SinkError> {
        Ok(Box::new(WebhookSession {
            settings: self.settings.clone(),
            source: source.to_owned(),
            sync_id: sync_id.to_owned(),
            body: Vec::new(),
            ids: Sha256::new(),
            count: 0,
            oldest: None,
        }))
    }
}

struct WebhookSession {
    settings: Arc<Settings>,
    source: String,
    sync_id: String,
    /// The batch being filled: `[` and comma-separated objects.
    body: Vec<u8>,
    /// Hash of the ids in `body`, the batch's idempotency key.
    ids: Sha256,
    count: usize,
    oldest: Option<Instant>,
}

impl WebhookSession {
    fn error(&self, message: String) -> SinkError {
        SinkError::Remote {
            sink: self.settings.sink.clone(),
            url: self.settings.shown.clone(),
            message: format!("source `{}`: {message}", self.source),
        }
    }

    /// Adds one serialized record with id `id`, sending the batch first if it would overflow.
    async fn push(&mut self, id: &str, json: &[u8]) -> Result<(), SinkError> {
        if self.count > 0 && self.body.len() + json.len() + 2 > self.settings.batch_max_bytes {
            self.flush().await?;
        }
        if self.count == 0 {
            self.body.clear();
            self.body.push(b'[');
            self.ids = Sha256::new();
            self.ids.update(self.sync_id.as_bytes());
            self.oldest = Some(Instant::now());
        } else {
            self.body.push(b',');
        }
        self.body.extend_from_slice(json);
        self.ids.update([0x1f]);
        self.ids.update(id.as_bytes());
        self.count += 1;
        if self.count >= self.settings.batch_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends the batch if its oldest record has waited long enough.
    async fn flush_if_due(&mut self) -> Result<(), SinkError> {
        match self.oldest {
            Some(t) if self.count > 0 && t.elapsed() >= self.settings.batch_timeout => {
                self.flush().await
            }
            _ => Ok(()),
        }
    }

    /// Sends the batch being filled, if any.
    async fn flush(&mut self) -> Result<(), SinkError> {
        if self.count == 0 {
            return Ok(());
        }
        self.body.push(b']');
        let key = hex::encode(&std::mem::take(&mut self.ids).finalize()[..16]);
        let body = std::mem::take(&mut self.body);
        let count = self.count;
        self.count = 0;
        self.oldest = None;
        self.deliver(body, &key, count).await
    }

    /// POSTs `body` until it is accepted or the attempts run out.
    async fn deliver(&self, body: Vec<u8>, key: &str, count: usize) -> Result<(), SinkError> {
        let s = &self.settings;
        let signature = s
            .secret
            .as_ref()
            .map(|secret| crate::sign::signature(secret.expose_secret().as_bytes(), &body));
        let body = bytes::Bytes::from(body);
        let mut attempt = Attempt {
            number: 0,
            waited: Duration::ZERO,
            // The Idempotency-Key lets the receiver drop a repeat, so every failure may be retried.
            idempotent: true,
            rate_window: None,
        };
        loop {
            attempt.number += 1;
            let mut request = s
                .client
                .post(&s.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("Idempotency-Key", key)
                .header("X-Idhost-Source", &self.source)
                .header("X-Idhost-Sync-Id", &self.sync_id)
                .body(body.clone());
            if let Some(signature) = &signature {
                request = request.header("X-Idhost-Signature", signature);
            }
            let (last, outcome) = match request.send().await {
                Ok(response) if response.status().is_success() => {
                    tracing::debug!(sink = %s.sink, source = %self.source, key, records = count, attempt = attempt.number, "webhook batch accepted");
                    return Ok(());
                }
                Ok(response) => {
                    let status = response.status();
                    let outcome = Outcome::from_headers(status.as_u16(), |name| {
                        response.headers().get(name).and_then(|v| v.to_str().ok())
                    });
                    let excerpt: String = response
                        .text()
                        .await
                        .unwrap_or_default()
                        .chars()
                        .take(200)
                        .collect();
                    (format!("answered {status}: {excerpt}"), outcome)
                }
                Err(err) => {
                    let last = if err.is_timeout() {
                        "timed out".to_owned()
                    } else {
                        format!("failed: {}", without_url(&err))
                    };
                    let connected = !err.is_connect();
                    (last, Outcome::Transport { connected })
                }
            };
            match s.retry.decide(&attempt, &outcome) {
                Decision::Retry(delay) => {
                    tracing::warn!(sink = %s.sink, source = %self.source, attempt = attempt.number, error = %last, delay_ms = delay.as_millis() as u64, "webhook delivery failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt.waited += delay;
                }
                Decision::Stop(crate::retry::Stop::NotRetryable) => {
                    return Err(self.error(format!(
                        "POST of a batch of {count} (Idempotency-Key {key}) {last}; not retried"
                    )));
                }
                Decision::Stop(_) => {
                    return Err(self.error(format!(
                        "gave up on a batch of {count} (Idempotency-Key {key}) after {} attempts; last one {last}. Its events stay queued and are sent again by the next sync",
                        attempt.number
                    )));
                }
            }
        }
    }

    /// Sends the `sync_run` record on its own, if the sink takes them.
    async fn send_run(&mut self, run: &SyncRun) -> Result<(), SinkError> {
        if !self.settings.wants_runs {
            return Ok(());
        }
        let json =
            serde_json::to_vec(&wire_object("sync_run", &run.source, run)).unwrap_or_default();
        let id = format!("sync_run:{}:{}", run.status.as_str(), run.finished_at);
        self.push(&id, &json).await?;
        self.flush().await
    }
}

/// The request error without its URL (which may carry a token in its query).
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), "<url>");
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[async_trait]
impl SinkSession for WebhookSession {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let source = self.source.clone();
        for r in &batch.resources {
            let json = serde_json::to_vec(&wire_object("resource", &source, r)).unwrap_or_default();
            self.push(&r.id, &json).await?;
        }
        for e in &batch.entitlements {
            let json =
                serde_json::to_vec(&wire_object("entitlement", &source, e)).unwrap_or_default();
            self.push(&e.id, &json).await?;
        }
        for g in &batch.grants {
            let json = serde_json::to_vec(&wire_object("grant", &source, g)).unwrap_or_default();
            self.push(&g.id, &json).await?;
        }
        self.flush_if_due().await
    }

    async fn write_events(&mut self, events: &[ChangeEvent]) -> Result<(), SinkError> {
        for event in events {
            let json = event.to_json();
            self.push(&event.id, &json).await?;
        }
        self.flush_if_due().await
    }

    async fn commit(mut self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        self.flush().await?;
        self.send_run(run).await
    }

    async fn abort(mut self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        // Nothing of a failed sync is sent but its run record (events only exist for complete
        // syncs; records already sent were announced as a sync that now reports failure).
        self.body.clear();
        self.count = 0;
        self.send_run(run).await
    }
}
