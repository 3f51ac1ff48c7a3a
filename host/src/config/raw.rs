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
    /// The state database as a URL: `sqlite:///path` (the same as `state_path`) or a
    /// `postgres://` URL, shared by every replica.
    #[serde(default)]
    pub(crate) state_url: Option<Spanned<String>>,
    /// age X25519 recipients (`age1…`): vault entries are written encrypted to them (DESIGN §7.3).
    #[serde(default)]
    pub(crate) vault_age_recipients: Option<Spanned<Vec<Spanned<String>>>>,
    /// An age identity file that decrypts the vault's entries: what a sync needs to read an
    /// encrypted refresh token of `idhost login`.
    #[serde(default)]
    pub(crate) vault_age_identity: Option<Spanned<String>>,
    /// Sources by name.
    #[serde(default)]
    pub(crate) sources: BTreeMap<Spanned<String>, RawSource>,
    /// Sinks by name.
    #[serde(default)]
    pub(crate) sinks: BTreeMap<Spanned<String>, RawSink>,
    /// Failure notification targets by name (`idhost run`).
    #[serde(default)]
    pub(crate) notify: BTreeMap<Spanned<String>, RawNotifyTarget>,
    /// Sharing sources among several `idhost run` replicas through one Postgres.
    #[serde(default)]
    pub(crate) coordination: Option<Spanned<RawCoordination>>,
    /// Correlation of accounts across sources (`idhost query people`, `orphans`).
    #[serde(default)]
    pub(crate) identity: Option<Spanned<RawIdentity>>,
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
    /// For `idhost run`: how long a sync may run before its notify targets hear it is overdue.
    #[serde(default)]
    pub(crate) deadline: Option<Spanned<String>>,
    /// Refuse provisioning and request read scopes only.
    #[serde(default)]
    pub(crate) read_only: bool,
    /// Optional subset of the connector's resource types.
    #[serde(default)]
    pub(crate) resource_types: Option<Spanned<Vec<String>>>,
    /// How many per-resource detail calls run at once.
    #[serde(default)]
    pub(crate) concurrency: Option<usize>,
    /// How many resource types are listed at once (default: all of them).
    #[serde(default)]
    pub(crate) types_at_once: Option<usize>,
    /// Most HTTP attempts per upstream request, first included.
    #[serde(default)]
    pub(crate) max_attempts: Option<u32>,
    /// Timeout of one upstream HTTP attempt, in seconds.
    #[serde(default)]
    pub(crate) request_timeout_secs: Option<u64>,
    /// Most time one upstream request may spend waiting between retries (rate limits
    /// included), in seconds.
    #[serde(default)]
    pub(crate) max_retry_wait_secs: Option<u64>,
    /// Longest one call into the plugin (one page, one provisioning operation) may take, in
    /// seconds, retries and rate-limit waits included.
    #[serde(default)]
    pub(crate) call_timeout_secs: Option<u64>,
    /// The mass-removal brake (DESIGN §7.1): `"20%"` (default), a count, or `"off"`.
    #[serde(default)]
    pub(crate) max_removals: Option<Spanned<toml::Value>>,
    /// SHA-256 (hex) the connector's plugin file must have (DESIGN §7.3).
    #[serde(default)]
    pub(crate) plugin_sha256: Option<Spanned<String>>,
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
    /// Webhook: most bytes in one batch body (default 1048576).
    #[serde(default)]
    pub(crate) batch_max_bytes: Option<usize>,
    /// Webhook: milliseconds a batch's first record may wait before the batch is sent
    /// (default 1000).
    #[serde(default)]
    pub(crate) batch_timeout_ms: Option<u64>,
    /// Webhook: most delivery attempts per batch, first included (default 8).
    #[serde(default)]
    pub(crate) max_attempts: Option<u32>,
    /// Webhook: milliseconds before the first retry; doubles per attempt, with jitter
    /// (default 500).
    #[serde(default)]
    pub(crate) retry_backoff_ms: Option<u64>,
    /// Webhook/NATS: seconds one delivery or acknowledgement may take (default 30 / 10).
    #[serde(default)]
    pub(crate) request_timeout_secs: Option<u64>,
    /// PostgreSQL: most connections the sink's sessions hold at once (default 8).
    #[serde(default)]
    pub(crate) max_connections: Option<Spanned<i64>>,
}

/// `[notify.NAME]`: where failure notifications of `idhost run` go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotifyTarget {
    /// `webhook` or `email`.
    #[serde(rename = "type")]
    pub(crate) target_type: Spanned<String>,
    /// Source names, or `"*"` for all (the default).
    #[serde(default)]
    pub(crate) sources: Option<Spanned<Vec<String>>>,
    /// Which notifications: `failed`, `overdue`, `missed`, `recovered` (default all).
    #[serde(default)]
    pub(crate) events: Option<Spanned<Vec<String>>>,
    /// Webhook: the URL to POST to.
    #[serde(default)]
    pub(crate) url: Option<Spanned<String>>,
    /// Webhook: HMAC-SHA256 key for the `X-Idhost-Signature` header.
    #[serde(default)]
    pub(crate) secret: Option<Spanned<String>>,
    /// Webhook: allow plain `http://` to a non-loopback host.
    #[serde(default)]
    pub(crate) allow_insecure_http: bool,
    /// Webhook/email: timeout of one delivery attempt, in seconds.
    #[serde(default)]
    pub(crate) timeout_secs: Option<u64>,
    /// Email: SMTP server host name.
    #[serde(default)]
    pub(crate) host: Option<Spanned<String>>,
    /// Email: SMTP port (default 587 for `starttls`, 465 for `tls`, 25 for `none`).
    #[serde(default)]
    pub(crate) port: Option<u16>,
    /// Email: `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub(crate) tls: Option<Spanned<String>>,
    /// Email: SMTP user name.
    #[serde(default)]
    pub(crate) username: Option<Spanned<String>>,
    /// Email: SMTP password.
    #[serde(default)]
    pub(crate) password: Option<Spanned<String>>,
    /// Email: sender address.
    #[serde(default)]
    pub(crate) from: Option<Spanned<String>>,
    /// Email: recipient addresses.
    #[serde(default)]
    pub(crate) to: Option<Spanned<Vec<String>>>,
}

/// `[coordination]`: replicas of `idhost run` sharing sources through Postgres leases.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCoordination {
    /// `postgres://user:password@host:5432/db` (or key=value form).
    pub(crate) postgres_url: Spanned<String>,
    /// How long a replica's claim on a source lasts without renewal, in seconds.
    #[serde(default)]
    pub(crate) lease_secs: Option<Spanned<u64>>,
}

/// `[identity]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    /// The source whose users are the people.
    pub(crate) authoritative: Spanned<String>,
    /// Correlation rules, in order.
    #[serde(default, rename = "match")]
    pub(crate) rules: Option<Spanned<Vec<String>>>,
}
