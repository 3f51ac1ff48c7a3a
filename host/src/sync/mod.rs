//! Running syncs: every chosen source concurrently, each in its own task, each failing alone.
//!
//! One source's sync ([`sync_source`]) lists every page into the source's sinks and, page by
//! page, into the state database with a checkpoint ([`crate::snapshot`]); a sync stopped or
//! killed part-way resumes there next time. A complete listing is diffed against the last
//! snapshot, the change events go to the sinks that take them, every sink commits, and only
//! then does the host's snapshot (and the connector state) advance.

pub(crate) mod call;
mod deliver;
mod listing;
mod source;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics::SourceMetrics;
use crate::plugins::Registry;
use crate::progress::Progress;
use crate::sinks::{Counts, RunStatus, Sink};
use crate::state::StateStore;

pub use source::{open_connector, sync_source};

/// How to sync.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Only these sources (all when empty).
    pub sources: Vec<String>,
    /// Skip entitlements and grants.
    pub resources_only: bool,
    /// Ignore connector state (delta links): a full sync.
    pub full: bool,
    /// Drop an interrupted sync's checkpoint and start over instead of resuming it.
    pub restart: bool,
}

/// How one source's sync ended.
#[derive(Debug, Clone)]
pub struct SourceOutcome {
    /// Source name.
    pub source: String,
    /// Connector name.
    pub connector: String,
    /// Sync id.
    pub sync_id: String,
    /// Outcome.
    pub status: RunStatus,
    /// Records received.
    pub counts: Counts,
    /// Why it failed.
    pub error: Option<String>,
    /// Wall time.
    pub elapsed: std::time::Duration,
    /// Upstream counters.
    pub metrics: Arc<SourceMetrics>,
}

/// The shared pieces a sync needs. Cheap to clone.
#[derive(Clone)]
pub struct SyncEnv {
    /// Validated config.
    pub config: Arc<Config>,
    /// Loaded plugins.
    pub registry: Arc<Registry>,
    /// Built sinks.
    pub sinks: Arc<Vec<Arc<dyn Sink>>>,
    /// State database.
    pub state: StateStore,
    /// Shared HTTP client.
    pub client: reqwest::Client,
    /// Progress display.
    pub progress: Progress,
    /// Stops every sync between pages.
    pub cancel: CancellationToken,
}

/// Why a [`SyncEnv`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// A sink failed to open.
    #[error(transparent)]
    Sink(#[from] crate::sinks::SinkError),
    /// The state database failed to open.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl SyncEnv {
    /// Opens what a sync needs for `config`: its sinks (`with_sinks`; `check` and `provision`
    /// write none), the state database and the shared HTTP client.
    pub async fn build(
        config: Arc<Config>,
        registry: Arc<Registry>,
        with_sinks: bool,
        progress: Progress,
        cancel: CancellationToken,
    ) -> Result<Self, EnvError> {
        let sinks = if with_sinks {
            crate::sinks::build(&config.sinks).await?
        } else {
            Vec::new()
        };
        Ok(Self {
            state: StateStore::open(&config.state_path)?,
            client: crate::services::http::build_client()?,
            sinks: Arc::new(sinks),
            config,
            registry,
            progress,
            cancel,
        })
    }
}

/// Syncs the chosen sources at once, each on its own task (so a heavy page decode in one
/// source does not stall the others); unknown names in `options.sources` are reported by the
/// caller before this runs.
pub async fn run(env: &SyncEnv, options: &SyncOptions) -> Vec<SourceOutcome> {
    let tasks = env
        .config
        .sources
        .iter()
        .filter(|s| options.sources.is_empty() || options.sources.contains(&s.name))
        .map(|source| {
            let (env, source, options) = (env.clone(), source.clone(), options.clone());
            let name = source.name.clone();
            let connector = source.connector.clone();
            let handle = tokio::spawn(async move { sync_source(&env, &source, &options).await });
            (name, connector, handle)
        })
        .collect::<Vec<_>>();
    let mut outcomes = Vec::new();
    for (name, connector, handle) in tasks {
        outcomes.push(handle.await.unwrap_or_else(|err| SourceOutcome {
            source: name,
            connector,
            sync_id: String::new(),
            status: RunStatus::Failed,
            counts: Counts::default(),
            error: Some(format!("the host's sync task failed: {err}")),
            elapsed: std::time::Duration::ZERO,
            metrics: Arc::default(),
        }));
    }
    outcomes
}
