//! Opening a source's connector with fresh host services (HTTP with the source's policy,
//! logs, connector state), shared by `sync`, `check` and `provision`, and the errors a plugin's
//! refusal of its settings turns into.

use std::sync::Arc;

use idhost_connector_sdk::host::ConnectorInstance;
use idhost_connector_sdk::{ConnectorError, HostFeatures, Manifest, ResourceTypeSpec, SourceInfo};

use super::env::SyncEnv;
use crate::config::SourceConfig;
use crate::metrics::SourceMetrics;
use crate::plugin_runtime::PluginCalls;
use crate::redact::Redactor;
use crate::retry::RetryPolicy;
use crate::services::http::{HostHttp, HttpPolicy};
use crate::services::{SourceServices, max_log_level};

/// The redactor of a source: interpolated values, manifest secret keys, secret-looking keys.
pub(crate) fn source_redactor(source: &SourceConfig, manifest: Option<&Manifest>) -> Redactor {
    let redactor = Redactor::new(source.secrets.iter().cloned());
    if let serde_json::Value::Object(settings) = &source.settings {
        for (key, value) in settings {
            let secret_key = manifest.is_some_and(|m| m.secret_keys().any(|k| k == key));
            if (secret_key || crate::redact::looks_secret(key))
                && let Some(text) = value.as_str()
            {
                redactor.add(text.to_owned());
            }
        }
    }
    redactor
}

/// The error for a source whose connector no plugin provides, located in the config.
fn missing_plugin(env: &SyncEnv, source: &SourceConfig) -> String {
    env.config
        .text
        .at(
            source.connector_offset,
            format!(
                "source `{}`: {}",
                source.name,
                env.registry.explain_missing(&source.connector)
            ),
        )
        .to_string()
}

/// What this host supports beyond the 1.0 interface: relisting an unstable listing within a
/// sync (`sync::listing`).
pub(crate) fn host_features() -> HostFeatures {
    HostFeatures::none().with_relist()
}

/// Opens `source`'s connector with fresh services. Shared by sync, check and provision.
pub async fn open_connector(
    env: &SyncEnv,
    source: &SourceConfig,
    info: SourceInfo,
    metrics: Arc<SourceMetrics>,
) -> Result<(ConnectorInstance, Arc<SourceServices>, Redactor), String> {
    let Some(plugin) = env.registry.get(&source.connector) else {
        return Err(missing_plugin(env, source));
    };
    let redactor = source_redactor(source, Some(plugin.manifest()));
    let committed = if info.full_sync {
        Default::default()
    } else {
        env.state
            .connector_state(&source.name)
            .await
            .map_err(|e| e.to_string())?
    };
    let policy = HttpPolicy {
        retry: RetryPolicy {
            max_attempts: source.max_attempts,
            max_wait: source.max_retry_wait,
            ..RetryPolicy::default()
        },
        timeout: source.request_timeout,
    };
    let http = Arc::new(HostHttp::new(
        env.client.clone(),
        policy,
        info.dry_run,
        source.allow_insecure_http,
        redactor.clone(),
        metrics,
    ));
    let services = Arc::new(
        SourceServices::new(&source.name, http, redactor.clone(), committed)
            .with_vault(Some(crate::vault::VaultRef::for_sources(&env.config))),
    );
    // `open` runs on a plugin thread under `call_timeout_secs`, like every other plugin call.
    let (plugin, settings, open_services) =
        (plugin.clone(), source.settings.clone(), services.clone());
    let level = max_log_level();
    let instance = PluginCalls::for_source(source)
        .run(async move {
            plugin
                .open_with(&settings, info, level, host_features(), open_services)
                .await
        })
        .await
        .map_err(|err| describe_open_error(env, source, &redactor, &err))?;
    Ok((instance, services, redactor))
}

/// A settings error from a plugin, located in the config file when it names a key.
fn describe_open_error(
    env: &SyncEnv,
    source: &SourceConfig,
    redactor: &Redactor,
    err: &ConnectorError,
) -> String {
    let message = redactor.redact(&err.message);
    for marker in ["unknown field `", "missing field `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                let key = &rest[..end];
                let header = format!("sources.{}.settings", source.name);
                let located = if marker.starts_with("unknown") {
                    env.config.text.at_key(&header, key, message.clone())
                } else {
                    env.config
                        .text
                        .at_text(0, &format!("[{header}]"), message.clone())
                };
                return located.to_string();
            }
        }
    }
    format!(
        "source `{}`: opening connector `{}` failed: {message}",
        source.name, source.connector
    )
}

/// The resource types `source` syncs, in the connector's order (or the configured subset's).
pub(crate) fn resource_types(
    env: &SyncEnv,
    source: &SourceConfig,
) -> Result<Vec<ResourceTypeSpec>, String> {
    let Some(plugin) = env.registry.get(&source.connector) else {
        return Err(missing_plugin(env, source));
    };
    let manifest = plugin.manifest();
    let Some(wanted) = &source.resource_types else {
        return Ok(manifest.resource_types.clone());
    };
    let mut chosen = Vec::new();
    for name in wanted {
        match manifest.resource_type(name) {
            Some(spec) => chosen.push(spec.clone()),
            None => {
                let known: Vec<&str> = manifest
                    .resource_types
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect();
                return Err(format!(
                    "source `{}`: connector `{}` has no resource type `{name}`; it has: {}",
                    source.name,
                    manifest.name,
                    known.join(", ")
                ));
            }
        }
    }
    Ok(chosen)
}
