//! `[sources.NAME]`: which connector, its settings (handed to the plugin, which validates
//! them), and how the host runs it.

use std::time::Duration;

use toml::Spanned;

use super::raw::RawSource;
use super::validator::{Validator, valid_name};

/// Default `call_timeout_secs`: one page may wait out several `Retry-After`s and a
/// throttled `$batch` round, but ten minutes with no answer is a plugin that hangs.
pub const DEFAULT_CALL_TIMEOUT_SECS: u64 = 600;

/// One `[sources.NAME]`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// Name (`[a-z0-9_-]+`).
    pub name: String,
    /// Manifest name of the plugin.
    pub connector: String,
    /// Byte offset of the `connector` value, for errors about it.
    pub connector_offset: usize,
    /// Schedule text, if any.
    pub schedule: Option<String>,
    /// How long a sync may run before it is reported overdue (`idhost run`).
    pub deadline: Duration,
    /// Read-only source.
    pub read_only: bool,
    /// Subset of resource types, if given.
    pub resource_types: Option<Vec<String>>,
    /// Per-resource detail calls at once.
    pub concurrency: usize,
    /// Most HTTP attempts per request.
    pub max_attempts: u32,
    /// Timeout of one HTTP attempt.
    pub request_timeout: Duration,
    /// Most time one upstream request may wait between its retries, all waits together
    /// (`max_retry_wait_secs`, default [`crate::retry::DEFAULT_MAX_WAIT`]).
    pub max_retry_wait: Duration,
    /// Longest one call into the plugin may take; past it the call is abandoned and the
    /// source fails (a plugin that hangs must not hold its source forever).
    pub call_timeout: Duration,
    /// Settings for the plugin, interpolated, as JSON.
    pub settings: serde_json::Value,
    /// Values to redact everywhere (interpolated values; secret keys are added once the
    /// plugin's manifest is known).
    pub secrets: Vec<String>,
    /// Whether the settings allow plain `http://` to non-loopback hosts.
    pub allow_insecure_http: bool,
    /// `plugin_sha256`: the SHA-256 the connector's plugin file must have, lowercase hex.
    pub plugin_sha256: Option<String>,
}

impl Validator<'_> {
    pub(super) fn source(
        &mut self,
        name: &Spanned<String>,
        raw: &RawSource,
    ) -> Option<SourceConfig> {
        let start = self.errors.len();
        if !valid_name(name.get_ref()) {
            self.errors.push(self.text.at(
                name.span().start,
                format!(
                    "source name `{}` must use only a-z, 0-9, `_` and `-`",
                    name.get_ref()
                ),
            ));
        }
        if let Some(schedule) = &raw.schedule
            && let Err(message) = crate::schedule::Schedule::parse(schedule.get_ref())
        {
            self.errors
                .push(self.text.at(schedule.span().start, message));
        }
        let deadline = self.deadline(raw.deadline.as_ref());
        let mut secrets = Vec::new();
        self.settings_of = Some(name.get_ref().clone());
        let (settings, settings_from) = match &raw.settings {
            Some(table) => {
                let from = table.span().start;
                (
                    self.settings_json(
                        &toml::Value::Table(table.get_ref().clone()),
                        from,
                        "",
                        &mut secrets,
                    ),
                    from,
                )
            }
            None => (serde_json::Value::Object(serde_json::Map::new()), 0),
        };
        let _ = settings_from;
        self.settings_of = None;
        let plugin_sha256 = raw.plugin_sha256.as_ref().and_then(|pin| {
            let hex = pin.get_ref().trim().to_ascii_lowercase();
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                Some(hex)
            } else {
                self.errors.push(self.text.at(
                    pin.span().start,
                    format!(
                        "plugin_sha256 of source `{}` must be 64 hexadecimal digits (the output of `sha256sum FILE`)",
                        name.get_ref()
                    ),
                ));
                None
            }
        });
        let allow_insecure_http = settings
            .get("allow_insecure_http")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        // Known to the process-wide redactor from the moment the config is read, so no error
        // of any later step (or of another part of the config) can print them.
        for secret in &secrets {
            crate::redact::global().add(secret.clone());
        }
        if let serde_json::Value::Object(map) = &settings {
            for (key, value) in map {
                if crate::redact::looks_secret(key) {
                    match value {
                        serde_json::Value::String(text) => {
                            crate::redact::global().add(text.clone())
                        }
                        serde_json::Value::Number(n) => crate::redact::global().add(n.to_string()),
                        _ => {}
                    }
                }
            }
        }
        if self.errors.len() > start {
            return None;
        }
        Some(SourceConfig {
            name: name.get_ref().clone(),
            connector: raw.connector.get_ref().clone(),
            connector_offset: raw.connector.span().start,
            schedule: raw.schedule.as_ref().map(|s| s.get_ref().clone()),
            deadline,
            read_only: raw.read_only,
            resource_types: raw.resource_types.as_ref().map(|r| r.get_ref().clone()),
            concurrency: raw.concurrency.unwrap_or(16).clamp(1, 256),
            max_attempts: raw.max_attempts.unwrap_or(5).clamp(1, 20),
            request_timeout: Duration::from_secs(raw.request_timeout_secs.unwrap_or(60).max(1)),
            max_retry_wait: raw
                .max_retry_wait_secs
                .map_or(crate::retry::DEFAULT_MAX_WAIT, Duration::from_secs),
            call_timeout: Duration::from_secs(
                raw.call_timeout_secs
                    .unwrap_or(DEFAULT_CALL_TIMEOUT_SECS)
                    .max(1),
            ),
            settings,
            secrets,
            allow_insecure_http,
            plugin_sha256,
        })
    }
}
