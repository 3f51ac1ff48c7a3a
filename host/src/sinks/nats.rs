//! NATS JetStream: change events (and any other records the sink's `records` ask for) as
//! messages on `<subject_prefix>.<source>.<kind>`, e.g. `idhost.corp.grant_added`.
//!
//! Each message is one DESIGN §4 wire object, published with a `Nats-Msg-Id` header (the
//! event's id; for other records a hash of sync id, kind and record id), so JetStream drops a
//! redelivery within the stream's duplicate window. Publishes are pipelined (up to 256 awaiting
//! their ack) and a batch counts as accepted only when every message in it is acked; a
//! failed ack fails the sync's delivery and the events are sent again by the next sync.
//!
//! The stream (`stream`, default `IDHOST`) is created if missing, capturing
//! `<subject_prefix>.>` (default prefix `idhost`) with a one-hour duplicate window; an existing
//! stream is used as it is.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::Publish, context::PublishAckFuture};
use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

use super::sink::{Sink, SinkError, SinkSession};
use crate::config::SinkConfig;
use crate::record::{Batch, ChangeEvent, SyncRun, wire_object};

/// Most messages awaiting their ack at once.
const IN_FLIGHT: usize = 256;
/// The duplicate window of a stream the sink creates.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(3600);

struct Settings {
    sink: String,
    url: String,
    stream: String,
    prefix: String,
    wants_runs: bool,
    timeout: Duration,
}

/// The NATS JetStream sink.
pub struct NatsSink {
    config: SinkConfig,
    settings: Arc<Settings>,
    context: tokio::sync::Mutex<Option<jetstream::Context>>,
}

impl NatsSink {
    /// Checks the names, then connects and makes sure the stream exists. A server that is down
    /// now is reported and tried again when a sync begins, failing only the sources routed here.
    pub async fn open(config: SinkConfig) -> Result<Self, SinkError> {
        let other = |message: String| SinkError::Other {
            sink: config.name.clone(),
            message,
        };
        let stream = config.stream.clone().unwrap_or_else(|| "IDHOST".into());
        if stream.is_empty() || stream.contains(['.', ' ', '*', '>', '\t']) {
            return Err(other(format!(
                "`stream` must be a name without `.`, `*`, `>` or spaces, like `IDHOST`; got `{stream}`"
            )));
        }
        let prefix = config
            .subject_prefix
            .clone()
            .unwrap_or_else(|| "idhost".into());
        let valid_prefix = !prefix.is_empty()
            && prefix
                .split('.')
                .all(|t| !t.is_empty() && !t.contains(['*', '>', ' ', '\t']));
        if !valid_prefix {
            return Err(other(format!(
                "`subject_prefix` must be dot-separated subject tokens without wildcards, like `idhost` or `acme.identity`; got `{prefix}`"
            )));
        }
        let settings = Settings {
            sink: config.name.clone(),
            url: config
                .url
                .clone()
                .unwrap_or_else(|| "nats://127.0.0.1:4222".into()),
            stream,
            prefix,
            wants_runs: config.records.wants_kind("sync_run"),
            timeout: config.request_timeout.unwrap_or(Duration::from_secs(10)),
        };
        let sink = Self {
            config,
            settings: Arc::new(settings),
            context: tokio::sync::Mutex::new(None),
        };
        if let Err(err) = sink.context().await {
            tracing::warn!(sink = %sink.config.name, error = %err, "NATS is not reachable yet; syncs routed to it will try again");
        }
        Ok(sink)
    }

    fn error(&self, message: String) -> SinkError {
        SinkError::Remote {
            sink: self.settings.sink.clone(),
            url: shown_url(&self.settings.url),
            message,
        }
    }

    /// The JetStream context, connecting and creating the stream on first use.
    async fn context(&self) -> Result<jetstream::Context, SinkError> {
        let mut slot = self.context.lock().await;
        if let Some(context) = slot.as_ref() {
            return Ok(context.clone());
        }
        let s = &self.settings;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(5))
            .name(format!("idhost sink {}", s.sink))
            .connect(s.url.as_str())
            .await
            .map_err(|e| self.error(format!("cannot connect: {e}")))?;
        let mut context = jetstream::new(client);
        context.set_timeout(s.timeout);
        context
            .get_or_create_stream(jetstream::stream::Config {
                name: s.stream.clone(),
                subjects: vec![format!("{}.>", s.prefix)],
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| self.error(format!("cannot find or create stream `{}`: {e}", s.stream)))?;
        *slot = Some(context.clone());
        Ok(context)
    }
}

/// `nats://host:port`, without credentials.
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => url.split('@').next_back().unwrap_or_default().to_owned(),
    }
}

#[async_trait]
impl Sink for NatsSink {
    fn config(&self) -> &SinkConfig {
        &self.config
    }

    async fn begin(&self, source: &str, sync_id: &str) -> Result<Box<dyn SinkSession>, SinkError> {
        let context = self.context().await?;
        Ok(Box::new(NatsSession {
            settings: self.settings.clone(),
            context,
            source: source.to_owned(),
            sync_id: sync_id.to_owned(),
        }))
    }
}

struct NatsSession {
    settings: Arc<Settings>,
    context: jetstream::Context,
    source: String,
    sync_id: String,
}

/// A message id for a record that is not an event: stable for the same sync and record.
fn record_msg_id(sync_id: &str, kind: &str, id: &str) -> String {
    let mut hash = Sha256::new();
    for part in [sync_id, kind, id] {
        hash.update(part.as_bytes());
        hash.update([0x1f]);
    }
    hex::encode(&hash.finalize()[..16])
}

impl NatsSession {
    fn error(&self, message: String) -> SinkError {
        SinkError::Remote {
            sink: self.settings.sink.clone(),
            url: shown_url(&self.settings.url),
            message: format!("source `{}`: {message}", self.source),
        }
    }

    /// Publishes `(kind, msg id, payload)` messages and waits for every ack.
    async fn publish(
        &self,
        messages: impl Iterator<Item = (&str, String, Vec<u8>)>,
    ) -> Result<(), SinkError> {
        let mut pending: VecDeque<(String, PublishAckFuture)> = VecDeque::new();
        for (kind, id, payload) in messages {
            if pending.len() >= IN_FLIGHT
                && let Some((id, ack)) = pending.pop_front()
            {
                self.acked(&id, ack).await?;
            }
            let subject = format!("{}.{}.{kind}", self.settings.prefix, self.source);
            let publish = Publish::build().payload(payload.into()).message_id(&id);
            let ack = self
                .context
                .send_publish(subject.clone(), publish)
                .await
                .map_err(|e| self.error(format!("publishing to `{subject}`: {e}")))?;
            pending.push_back((id, ack));
        }
        while let Some((id, ack)) = pending.pop_front() {
            self.acked(&id, ack).await?;
        }
        Ok(())
    }

    async fn acked(&self, id: &str, ack: PublishAckFuture) -> Result<(), SinkError> {
        match ack.await {
            Ok(ack) => {
                if ack.duplicate {
                    tracing::debug!(sink = %self.settings.sink, id, "JetStream already had this message");
                }
                Ok(())
            }
            Err(e) => Err(self.error(format!(
                "stream `{}` did not acknowledge message {id}: {e}",
                self.settings.stream
            ))),
        }
    }

    async fn send_run(&self, run: &SyncRun) -> Result<(), SinkError> {
        if !self.settings.wants_runs {
            return Ok(());
        }
        let payload =
            serde_json::to_vec(&wire_object("sync_run", &run.source, run)).unwrap_or_default();
        let id = record_msg_id(&run.sync_id, run.status.as_str(), &run.finished_at);
        self.publish(std::iter::once(("sync_run", id, payload)))
            .await
    }
}

#[async_trait]
impl SinkSession for NatsSession {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        let (source, sync_id) = (self.source.as_str(), self.sync_id.as_str());
        let message = |kind: &'static str, id: &str, value| {
            let payload = serde_json::to_vec(&value).unwrap_or_default();
            (kind, record_msg_id(sync_id, kind, id), payload)
        };
        let resources = batch
            .resources
            .iter()
            .map(|r| message("resource", &r.id, wire_object("resource", source, r)));
        let entitlements = batch
            .entitlements
            .iter()
            .map(|e| message("entitlement", &e.id, wire_object("entitlement", source, e)));
        let grants = batch
            .grants
            .iter()
            .map(|g| message("grant", &g.id, wire_object("grant", source, g)));
        self.publish(resources.chain(entitlements).chain(grants))
            .await
    }

    async fn write_events(&mut self, events: &[ChangeEvent]) -> Result<(), SinkError> {
        self.publish(
            events
                .iter()
                .map(|e| (e.event.as_str(), e.id.clone(), e.to_json())),
        )
        .await
    }

    async fn commit(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        self.send_run(run).await
    }

    async fn abort(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        self.send_run(run).await
    }
}
