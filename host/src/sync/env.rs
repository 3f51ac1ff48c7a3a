//! What a sync works with, opened one way for every command that syncs or talks to a
//! connector (`sync`, `run`, `demo`, `check`, `provision`): the config, the plugins it names,
//! the router with its sinks, the state database and the shared HTTP client.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::exit::CommandError;
use crate::plugins::{DiscoveryError, Registry};
use crate::progress::Progress;
use crate::route::Router;
use crate::sinks::SinkError;
use crate::state::{Fence, StateError, StateStore};

/// Asks the coordination database whether a sync's lease is still the current grant; the
/// daemon's coordinator answers, right before each sink commit of a fenced sync (see
/// `deliver`). `Ok(false)`: the lease moved on or expired, so the sink must not commit.
#[async_trait::async_trait]
pub trait LeaseCheck: Send + Sync {
    /// Whether `fence` is still current and unexpired.
    async fn check(&self, fence: &Fence) -> Result<bool, String>;
}

/// The lease a sync of `idhost run` under `[coordination]` runs under, and who answers
/// whether it still holds.
#[derive(Clone)]
pub struct SyncLease {
    /// Source, holder and epoch of the grant.
    pub fence: Fence,
    /// The coordinator.
    pub check: Arc<dyn LeaseCheck>,
}

/// The shared pieces a sync needs. Cheap to clone.
#[derive(Clone)]
pub struct SyncEnv {
    /// Validated config.
    pub config: Arc<Config>,
    /// Loaded plugins.
    pub registry: Arc<Registry>,
    /// The sinks and which sources reach them.
    pub router: Arc<Router>,
    /// State database.
    pub state: StateStore,
    /// Shared HTTP client.
    pub client: reqwest::Client,
    /// Progress display.
    pub progress: Progress,
    /// Stops every sync between pages.
    pub cancel: CancellationToken,
    /// The lease the sync runs under, checked before each sink commit (`idhost run` under
    /// `[coordination]`; `None` elsewhere). The state store is fenced with the same lease.
    pub lease: Option<SyncLease>,
}

/// How to open a [`SyncEnv`].
#[derive(Debug, Clone)]
pub struct EnvSetup {
    /// Open the config's sinks (`check` and `provision` write none).
    pub sinks: bool,
    /// Progress display.
    pub progress: Progress,
    /// Stops every sync between pages.
    pub cancel: CancellationToken,
}

impl EnvSetup {
    /// With the sinks, a progress display and a fresh cancellation token.
    pub fn syncing(progress: Progress) -> Self {
        Self {
            sinks: true,
            progress,
            cancel: CancellationToken::new(),
        }
    }

    /// Without sinks, progress or cancellation: for commands that only talk to connectors.
    pub fn connectors_only() -> Self {
        Self {
            sinks: false,
            progress: Progress::hidden(),
            cancel: CancellationToken::new(),
        }
    }
}

/// Why a [`SyncEnv`] could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// The plugin directory could not be listed.
    #[error("cannot list plugins: {0}")]
    Plugins(#[from] DiscoveryError),
    /// A sink failed to open.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The state database failed to open.
    #[error(transparent)]
    State(#[from] StateError),
    /// The HTTP client could not be built.
    #[error("building the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl From<EnvError> for CommandError {
    fn from(err: EnvError) -> Self {
        match err {
            EnvError::Plugins(_) => CommandError::plugin(err),
            _ => CommandError::failed(err),
        }
    }
}

impl SyncEnv {
    /// Opens what syncing `config` needs: discovers the plugins (in `plugin_dir`, the
    /// `--plugin-dir` flag, else the config's), opens the sinks if `setup` asks for them, the
    /// state database and the shared HTTP client.
    pub async fn open(
        config: Arc<Config>,
        plugin_dir: Option<&Path>,
        setup: EnvSetup,
    ) -> Result<Self, EnvError> {
        let registry = Arc::new(Registry::for_config(plugin_dir, Some(&config))?);
        let router = if setup.sinks {
            Router::open(&config.sinks).await?
        } else {
            Router::default()
        };
        Ok(Self {
            state: StateStore::for_config(&config).await?,
            client: crate::services::http::build_client()?,
            router: Arc::new(router),
            config,
            registry,
            progress: setup.progress,
            cancel: setup.cancel,
            lease: None,
        })
    }

    /// The same environment with each sink replaced by what `layer` makes of the list (the
    /// daemon meters every sink).
    pub fn layer_sinks(
        mut self,
        layer: impl FnOnce(Vec<Arc<dyn crate::sinks::Sink>>) -> Vec<Arc<dyn crate::sinks::Sink>>,
    ) -> Self {
        let router = Arc::unwrap_or_clone(self.router);
        self.router = Arc::new(router.layered(layer));
        self
    }
}
