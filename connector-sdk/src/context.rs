//! What a connector receives when it opens: the host's services and facts about its source.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::http::Http;
use crate::services::HostServices;

/// The reserved connector-state key a refresh token of the vault crosses the boundary under
/// ([`Context::vault_refresh_token`], [`Context::store_refresh_token`]). The host intercepts it:
/// it never reaches the state database.
pub const VAULT_REFRESH_TOKEN_KEY: &str = "idhost.vault.refresh_token";

/// Facts about the source a connector instance serves.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SourceInfo {
    /// The source name from the config (`[sources.NAME]`).
    pub source: String,
    /// Whether the source is configured `read_only`: the connector should request read scopes
    /// only, and the host refuses provisioning before calling the connector.
    #[serde(default)]
    pub read_only: bool,
    /// Whether this run is a `--dry-run` (writes are intercepted by the host).
    #[serde(default)]
    pub dry_run: bool,
    /// Whether the host asked for a full (non-incremental) sync.
    #[serde(default)]
    pub full_sync: bool,
}

impl SourceInfo {
    /// Source `source`: writable, not a dry run, not a full sync (set those with the `with_`
    /// methods).
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            ..Self::default()
        }
    }

    /// Whether the source is read-only.
    pub fn with_read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Whether writes are only shown, not sent.
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Whether connector state is ignored (a full listing).
    pub fn with_full_sync(mut self, full_sync: bool) -> Self {
        self.full_sync = full_sync;
        self
    }
}

/// What the host that opened the connector can do beyond the first interface version. Sent in
/// what `open` receives (JSON, every field defaulting to `false`), so an older host advertises
/// nothing and a newer plugin knows not to rely on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HostFeatures {
    /// The host handles a [`crate::Page`] whose `relist` is set by listing the type again from
    /// its first page. When it does not, the plugin glue turns such a page into an error.
    #[serde(default)]
    pub relist: bool,
}

impl HostFeatures {
    /// No features: what a host that sends none means.
    pub fn none() -> Self {
        Self::default()
    }

    /// Advertises relist support.
    pub fn with_relist(mut self) -> Self {
        self.relist = true;
        self
    }
}

/// The host's services, handed to [`crate::Connector::open`]. Cheap to clone.
#[derive(Clone)]
pub struct Context {
    services: Arc<dyn HostServices>,
    info: Arc<SourceInfo>,
    http: Http,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context over `services`. The ABI glue builds one per opened plugin instance; tests can
    /// build one over an in-process implementation.
    pub fn new(services: Arc<dyn HostServices>, info: SourceInfo) -> Self {
        Self {
            http: Http::new(services.clone()),
            services,
            info: Arc::new(info),
        }
    }

    /// Upstream HTTP through the host.
    pub fn http(&self) -> &Http {
        &self.http
    }

    /// Facts about the source.
    pub fn source(&self) -> &SourceInfo {
        &self.info
    }

    /// Connector state for this source.
    pub fn state(&self) -> State<'_> {
        State {
            services: self.services.as_ref(),
        }
    }

    /// The refresh token `idhost login` stored in the host's vault for this source, if any.
    ///
    /// It crosses the boundary under the reserved connector-state key
    /// [`VAULT_REFRESH_TOKEN_KEY`], which a host that knows the vault answers from the vault
    /// (never from its state database).
    pub fn vault_refresh_token(&self) -> Option<secrecy::SecretString> {
        self.services
            .state_get(VAULT_REFRESH_TOKEN_KEY)
            .map(secrecy::SecretString::from)
    }

    /// Hands a rotated refresh token to the host, which stores it in the vault at once
    /// (atomically, replacing the old one): the upstream may have invalidated the old one, so
    /// it must not wait for the sync to complete.
    pub fn store_refresh_token(&self, token: &secrecy::SecretString) {
        use secrecy::ExposeSecret as _;
        self.services.state_set(
            VAULT_REFRESH_TOKEN_KEY,
            Some(token.expose_secret().to_owned()),
        );
    }

    /// Waits on the host's timer (plugins have no runtime of their own).
    pub async fn sleep(&self, duration: Duration) {
        self.services.sleep(duration).await;
    }
}

/// Opaque per-source key/value state kept by the host (delta links, cursors).
#[derive(Debug)]
pub struct State<'a> {
    services: &'a dyn HostServices,
}

impl std::fmt::Debug for dyn HostServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostServices")
    }
}

impl State<'_> {
    /// The value last committed for `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.services.state_get(key)
    }

    /// Stages `value` for `key`; committed only if this sync completes.
    pub fn set(&self, key: &str, value: impl Into<String>) {
        self.services.state_set(key, Some(value.into()));
    }

    /// Stages the removal of `key`.
    pub fn remove(&self, key: &str) {
        self.services.state_set(key, None);
    }
}
