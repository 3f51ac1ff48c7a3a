//! The host services one source's connector instance gets: HTTP, logs, state, timers.

pub mod http;
pub mod window;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use idhost_connector_sdk::context::VAULT_REFRESH_TOKEN_KEY;
use idhost_connector_sdk::services::{HostServices, LogLevel, LogRecord};
use idhost_connector_sdk::{ConnectorError, HttpRequest, HttpResponse};
use secrecy::ExposeSecret as _;

use crate::redact::Redactor;
use http::HostHttp;

/// Host services for one source.
#[derive(Debug)]
pub struct SourceServices {
    source: String,
    http: Arc<HostHttp>,
    redactor: Redactor,
    committed: HashMap<String, String>,
    staged: Mutex<HashMap<String, Option<String>>>,
    /// Where `idhost login`'s refresh token of this source is (the reserved state key).
    vault: Option<crate::vault::VaultRef>,
}

impl SourceServices {
    /// Services for `source` with its committed connector state.
    pub fn new(
        source: &str,
        http: Arc<HostHttp>,
        redactor: Redactor,
        committed: HashMap<String, String>,
    ) -> Self {
        Self {
            source: source.to_owned(),
            http,
            redactor,
            committed,
            staged: Mutex::new(HashMap::new()),
            vault: None,
        }
    }

    /// Answers the reserved key [`VAULT_REFRESH_TOKEN_KEY`] from `vault`: a connector reads
    /// the refresh token `idhost login` stored, and a rotated one is written back at once.
    pub fn with_vault(mut self, vault: Option<crate::vault::VaultRef>) -> Self {
        self.vault = vault;
        self
    }

    fn vault_get(&self) -> Option<String> {
        let vault = match self.vault.as_ref()?.open() {
            Ok(vault) => vault,
            Err(err) => {
                tracing::error!(source = %self.source, "reading the refresh token: {err}");
                return None;
            }
        };
        match vault.refresh_token(&self.source) {
            Ok(token) => token.map(|t| {
                self.redactor.add(t.expose_secret().to_owned());
                t.expose_secret().to_owned()
            }),
            Err(err) => {
                tracing::error!(source = %self.source, "reading the refresh token: {err}");
                None
            }
        }
    }

    fn vault_set(&self, value: Option<String>) {
        let (Some(vault), Some(token)) = (self.vault.as_ref(), value) else {
            return;
        };
        let vault = match vault.open() {
            Ok(vault) => vault,
            Err(err) => {
                tracing::error!(
                    source = %self.source,
                    "the upstream rotated the refresh token but the vault cannot take it: {err}; the next sync may need `idhost login`"
                );
                return;
            }
        };
        self.redactor.add(token.clone());
        let token = secrecy::SecretString::from(token);
        match vault.store_refresh_token(&self.source, &token) {
            Ok(()) => tracing::info!(
                source = %self.source,
                vault = %vault.path().display(),
                "the upstream rotated the refresh token; the new one is stored in the vault"
            ),
            Err(err) => tracing::error!(
                source = %self.source,
                "the upstream rotated the refresh token but the new one could not be stored: {err}; the next sync may need `idhost login`"
            ),
        }
    }

    /// Connector state changes staged during this sync.
    pub fn staged_state(&self) -> HashMap<String, Option<String>> {
        self.staged.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The HTTP service.
    pub fn http(&self) -> &Arc<HostHttp> {
        &self.http
    }
}

impl HostServices for SourceServices {
    fn http(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, ConnectorError>> {
        let http = self.http.clone();
        Box::pin(async move { http.send(request).await })
    }

    fn log(&self, record: LogRecord) {
        let message = self.redactor.redact(&record.message);
        let fields = if record.fields.is_empty() {
            String::new()
        } else {
            self.redactor
                .redact(&serde_json::Value::Object(record.fields).to_string())
        };
        let source = self.source.as_str();
        let target = record.target.as_str();
        match record.level {
            LogLevel::Error => {
                tracing::error!(source, plugin = target, fields = %fields, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(source, plugin = target, fields = %fields, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(source, plugin = target, fields = %fields, "{message}")
            }
            LogLevel::Debug => {
                tracing::debug!(source, plugin = target, fields = %fields, "{message}")
            }
            LogLevel::Trace => {
                tracing::trace!(source, plugin = target, fields = %fields, "{message}")
            }
        }
    }

    fn state_get(&self, key: &str) -> Option<String> {
        if key == VAULT_REFRESH_TOKEN_KEY {
            return self.vault_get();
        }
        if let Ok(staged) = self.staged.lock()
            && let Some(value) = staged.get(key)
        {
            return value.clone();
        }
        self.committed.get(key).cloned()
    }

    fn state_set(&self, key: &str, value: Option<String>) {
        if key == VAULT_REFRESH_TOKEN_KEY {
            return self.vault_set(value);
        }
        if let Ok(mut staged) = self.staged.lock() {
            staged.insert(key.to_owned(), value);
        }
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The most verbose level the host's subscriber records, for the plugin-side filter.
pub fn max_log_level() -> u8 {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::OFF | LevelFilter::ERROR => 1,
        LevelFilter::WARN => 2,
        LevelFilter::INFO => 3,
        LevelFilter::DEBUG => 4,
        _ => 5,
    }
}
