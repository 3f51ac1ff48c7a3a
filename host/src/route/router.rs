//! The configured sinks, and which of them a source's records reach.

use std::sync::Arc;

use crate::config::{SinkConfig, SinkKind};
use crate::sinks::{JsonlSink, NatsSink, PostgresSink, Sink, SinkError, SqliteSink, WebhookSink};

/// The sinks of a config, each with its `inputs` and `records` (in its [`SinkConfig`]).
#[derive(Clone, Default)]
pub struct Router {
    sinks: Vec<Arc<dyn Sink>>,
}

impl Router {
    /// Opens every sink of `configs` (in order); the first that fails to open fails all.
    pub async fn open(configs: &[SinkConfig]) -> Result<Self, SinkError> {
        let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
        for config in configs {
            let sink: Arc<dyn Sink> = match config.kind {
                // A mapping makes a sink an export (a CSV sink always is one).
                SinkKind::Csv => crate::export::open(config.clone()).await?,
                _ if config.export.is_some() => crate::export::open(config.clone()).await?,
                SinkKind::Sqlite => Arc::new(SqliteSink::open(config.clone()).await?),
                SinkKind::Jsonl => Arc::new(JsonlSink::new(config.clone())),
                SinkKind::Postgres => Arc::new(PostgresSink::open(config.clone()).await?),
                SinkKind::Webhook => Arc::new(WebhookSink::new(config.clone())?),
                SinkKind::Nats => Arc::new(NatsSink::open(config.clone()).await?),
            };
            sinks.push(sink);
        }
        Ok(Self { sinks })
    }

    /// A router over sinks built elsewhere (tests, benches).
    pub fn from_sinks(sinks: Vec<Arc<dyn Sink>>) -> Self {
        Self { sinks }
    }

    /// The same routes, each sink replaced by what `layer` makes of the list (the daemon wraps
    /// every sink with its metrics).
    pub fn layered(self, layer: impl FnOnce(Vec<Arc<dyn Sink>>) -> Vec<Arc<dyn Sink>>) -> Self {
        Self {
            sinks: layer(self.sinks),
        }
    }

    /// Every sink, in config order.
    pub fn sinks(&self) -> &[Arc<dyn Sink>] {
        &self.sinks
    }

    /// The sinks `source` feeds (its name is in their `inputs`), in config order.
    pub fn routed_from<'a>(&'a self, source: &'a str) -> impl Iterator<Item = &'a Arc<dyn Sink>> {
        self.sinks
            .iter()
            .filter(move |sink| sink.config().inputs.includes(source))
    }
}
