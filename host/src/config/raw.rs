//! The config file as written (serde), before validation. Keys are the user-facing contract
//! of DESIGN.md §5; unknown keys are rejected with their location.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    /// Where plugins are looked for (also `--plugin-dir` / `IDHOST_PLUGIN_DIR`).
    #[serde(default)]
    pub(crate) plugin_dir: Option<Spanned<String>>,
    /// The state database (snapshots, checkpoints, connector state); default beside the config.
    #[serde(default)]
    pub(crate) state_path: Option<Spanned<String>>,
    /// Sources by name.
    #[serde(default)]
    pub(crate) sources: BTreeMap<Spanned<String>, RawSource>,
    /// Sinks by name.
    #[serde(default)]
    pub(crate) sinks: BTreeMap<Spanned<String>, RawSink>,
}

/// `[sources.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSource {
    /// Manifest name of the plugin.
    pub(crate) connector: Spanned<String>,
    /// For `idhost run`: a humantime interval (`15m`) or a cron expression.
    #[serde(default)]
    pub(crate) schedule: Option<Spanned<String>>,
    /// Refuse provisioning and request read scopes only.
    #[serde(default)]
    pub(crate) read_only: bool,
    /// Optional subset of the connector's resource types.
    #[serde(default)]
    pub(crate) resource_types: Option<Spanned<Vec<String>>>,
    /// How many per-resource detail calls run at once.
    #[serde(default)]
    pub(crate) concurrency: Option<usize>,
    /// Most HTTP attempts per upstream request, first included.
    #[serde(default)]
    pub(crate) max_attempts: Option<u32>,
    /// Timeout of one upstream HTTP attempt, in seconds.
    #[serde(default)]
    pub(crate) request_timeout_secs: Option<u64>,
    /// Handed to the plugin, validated by it.
    #[serde(default)]
    pub(crate) settings: Option<Spanned<toml::Table>>,
}

/// `[sinks.NAME]`: the common keys plus each type's own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSink {
    /// `sqlite`, `jsonl`, `csv`, `postgres`, `webhook`, `nats`.
    #[serde(rename = "type")]
    pub(crate) sink_type: Spanned<String>,
    /// Source names, or `"*"` for all.
    #[serde(default)]
    pub(crate) inputs: Option<Spanned<Vec<String>>>,
    /// Record kinds (`resource`, `entitlement`, `grant`, `event`, `sync_run`) or resource types
    /// (`user`, `group`, ...).
    #[serde(default)]
    pub(crate) records: Option<Spanned<Vec<String>>>,
    /// File path (sqlite, jsonl, csv).
    #[serde(default)]
    pub(crate) path: Option<Spanned<String>>,
    /// Server URL (postgres, webhook, nats).
    #[serde(default)]
    pub(crate) url: Option<Spanned<String>>,
    /// Export: column = record field path.
    #[serde(default)]
    pub(crate) mapping: Option<Spanned<toml::Table>>,
    /// Export: the key column(s), first match wins.
    #[serde(default)]
    pub(crate) sync_key: Option<Spanned<toml::Value>>,
    /// Export: `create_and_update`, `create_only`, `update_only`.
    #[serde(default)]
    pub(crate) mode: Option<Spanned<String>>,
    /// Export: mark rows missing from a complete sync inactive.
    #[serde(default)]
    pub(crate) deactivate_missing: Option<bool>,
    /// Webhook: HMAC secret.
    #[serde(default)]
    pub(crate) secret: Option<Spanned<String>>,
    /// NATS: stream name.
    #[serde(default)]
    pub(crate) stream: Option<Spanned<String>>,
    /// NATS: subject prefix.
    #[serde(default)]
    pub(crate) subject_prefix: Option<Spanned<String>>,
    /// Webhook/NATS: most events per batch.
    #[serde(default)]
    pub(crate) batch_size: Option<usize>,
}
