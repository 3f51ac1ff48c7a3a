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
    /// Resource types listed at once (`types_at_once`; default: every type). Each type is
    /// its own endpoint and paging chain upstream; the request rate across them is what the
    /// connector's budgets pace, so the default lists them all together.
    pub types_at_once: usize,
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
    /// The settings as written, before `${...}` interpolation (secret values never in it):
    /// what the checkpoint's config hash covers, so rotating a secret changes nothing.
    pub settings_template: String,
    /// The mass-removal brake (`max_removals`, DESIGN §7.1).
    pub max_removals: RemovalLimit,
    /// `plugin_sha256`: the SHA-256 the connector's plugin file must have, lowercase hex.
    pub plugin_sha256: Option<String>,
}

/// `max_removals`: how much of the previous snapshot a complete sync may remove before it
/// is held for `idhost approve` (resources and grants counted separately, and only when more
/// than [`RemovalLimit::FLOOR`] of them go).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RemovalLimit {
    /// `"off"`: never held.
    Off,
    /// An integer: at most this many.
    Count(u64),
    /// `"N%"`: at most this share of the previous snapshot's resources (or grants).
    Percent(f64),
}

impl Default for RemovalLimit {
    fn default() -> Self {
        RemovalLimit::Percent(20.0)
    }
}

impl RemovalLimit {
    /// A removal of at most this many is never held, whatever the limit.
    pub const FLOOR: u64 = 10;

    /// The most removals allowed out of `before` records (`None`: no limit).
    pub fn allowed(self, before: u64) -> Option<u64> {
        match self {
            RemovalLimit::Off => None,
            RemovalLimit::Count(n) => Some(n),
            // Rounded down: 20% of 12 allows 2.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss,
                reason = "a share of a record count, rounded down"
            )]
            RemovalLimit::Percent(p) => Some(((before as f64) * p / 100.0).floor() as u64),
        }
    }

    /// Whether removing `removed` of `before` records holds the sync.
    pub fn holds(self, removed: u64, before: u64) -> bool {
        removed > Self::FLOOR && self.allowed(before).is_some_and(|max| removed > max)
    }

    /// As written in the config (`20%`, `50`, `off`).
    pub fn describe(self) -> String {
        match self {
            RemovalLimit::Off => "off".to_owned(),
            RemovalLimit::Count(n) => n.to_string(),
            RemovalLimit::Percent(p) => format!("{p}%"),
        }
    }

    /// Parses a `max_removals` value.
    pub fn parse(value: &toml::Value) -> Result<Self, String> {
        let bad = |shown: String| {
            format!(
                "`max_removals` must be a share like \"20%\", a count like 50, or \"off\"; got {shown}"
            )
        };
        match value {
            toml::Value::Integer(n) => u64::try_from(*n)
                .map(RemovalLimit::Count)
                .map_err(|_| bad(n.to_string())),
            toml::Value::String(s) if s.trim().eq_ignore_ascii_case("off") => Ok(RemovalLimit::Off),
            toml::Value::String(s) => s
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .filter(|p| (0.0..=100.0).contains(p))
                .map(RemovalLimit::Percent)
                .ok_or_else(|| bad(format!("\"{s}\""))),
            other => Err(bad(other.to_string())),
        }
    }
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
        let settings_template = raw
            .settings
            .as_ref()
            .map(|t| toml::Value::Table(t.get_ref().clone()).to_string())
            .unwrap_or_default();
        let max_removals = match &raw.max_removals {
            None => RemovalLimit::default(),
            Some(value) => match RemovalLimit::parse(value.get_ref()) {
                Ok(limit) => limit,
                Err(message) => {
                    self.errors.push(self.text.at(value.span().start, message));
                    RemovalLimit::default()
                }
            },
        };
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
            types_at_once: raw.types_at_once.unwrap_or(usize::MAX).max(1),
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
            settings_template,
            max_removals,
            plugin_sha256,
        })
    }
}
