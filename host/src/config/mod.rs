//! The one TOML file: parsed raw (serde), then validated into [`Config`], which is all the rest
//! of the host sees. Every error names the file and, where it can, line and column.

mod daemon;
mod identity;
mod interpolate;
mod raw;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use daemon::{
    Coordination, DEFAULT_DEADLINE, EmailTarget, NotifyEvent, NotifyKind, NotifyTarget, SmtpTls,
};
pub use identity::{IdentityConfig, MatchRule};
use raw::{RawConfig, RawSink, RawSource};
use toml::Spanned;

/// A config error, located where possible.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// One or more problems, each with its location.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Located>),
}

/// One problem at a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// 1-based column, if known.
    pub col: Option<usize>,
    /// What is wrong and what would be right.
    pub message: String,
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.col) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.path.display(), self.message),
            _ => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

/// The config file's text, kept to turn byte offsets and keys into line:col.
#[derive(Debug, Clone)]
pub struct SourceText {
    path: PathBuf,
    text: String,
}

impl SourceText {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        (line, col)
    }

    /// An error at byte `offset`.
    pub fn at(&self, offset: usize, message: impl Into<String>) -> Located {
        let (line, col) = self.line_col(offset);
        Located {
            path: self.path.clone(),
            line: Some(line),
            col: Some(col),
            message: message.into(),
        }
    }

    /// An error at the first occurrence of `needle` after `from` (or unlocated).
    pub fn at_text(&self, from: usize, needle: &str, message: impl Into<String>) -> Located {
        let from = from.min(self.text.len());
        match self.text[from..]
            .find(needle)
            .or_else(|| self.text.find(needle))
        {
            Some(i) if self.text[from..].contains(needle) => self.at(from + i, message),
            Some(i) => self.at(i, message),
            None => self.unlocated(message),
        }
    }

    /// An error at the key `key = ...` inside the table `[header]`.
    pub fn at_key(&self, header: &str, key: &str, message: impl Into<String>) -> Located {
        let header_line = format!("[{header}]");
        let start = self
            .text
            .find(&header_line)
            .map_or(0, |i| i + header_line.len());
        let mut offset = start;
        for line in self.text[start..].split_inclusive('\n') {
            let trimmed = line.trim_start();
            if trimmed.starts_with('[') {
                break;
            }
            if let Some(rest) = trimmed.strip_prefix(key)
                && rest.trim_start().starts_with('=')
            {
                return self.at(offset + (line.len() - trimmed.len()), message);
            }
            offset += line.len();
        }
        self.at_text(start, key, message)
    }

    /// An error about the file as a whole.
    pub fn unlocated(&self, message: impl Into<String>) -> Located {
        Located {
            path: self.path.clone(),
            line: None,
            col: None,
            message: message.into(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file's text, to locate later errors (e.g. settings a plugin rejects).
    pub text: SourceText,
    /// Plugin directory from the file.
    pub plugin_dir: Option<PathBuf>,
    /// State database.
    pub state_path: PathBuf,
    /// Sources, in name order.
    pub sources: Vec<SourceConfig>,
    /// Sinks, in name order.
    pub sinks: Vec<SinkConfig>,
    /// Failure notification targets of `idhost run`, in name order.
    pub notify: Vec<NotifyTarget>,
    /// Replica coordination of `idhost run`, if configured.
    pub coordination: Option<Coordination>,
    /// Correlation of accounts across sources (`[identity]`), if configured.
    pub identity: Option<IdentityConfig>,
    /// References left unresolved by a lenient load ([`Resolve`]), in file order.
    pub unresolved: Vec<Unresolved>,
}

/// Which `${VAR}` and `${file:}` references a load resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Every one; an unset variable or unreadable file is an error (sync, run, provision).
    All,
    /// Those that can be resolved; the others are recorded in [`Config::unresolved`] and their
    /// values left out (`check --offline`).
    Available,
    /// Only sink paths: commands that read what syncs wrote (`query`, `review`, `audit`) never
    /// read a credential, so they run with none set.
    SinkPaths,
}

/// A reference a lenient load left unresolved.
#[derive(Debug, Clone)]
pub struct Unresolved {
    /// The source whose settings hold it, if it is in a source's settings.
    pub source: Option<String>,
    /// Why, located in the file.
    pub problem: Located,
}

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
}

/// Sink types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// Embedded SQLite.
    Sqlite,
    /// JSON lines file or stdout.
    Jsonl,
    /// CSV export.
    Csv,
    /// PostgreSQL.
    Postgres,
    /// HTTP webhook.
    Webhook,
    /// NATS JetStream.
    Nats,
}

impl SinkKind {
    const NAMES: &'static str = "`sqlite`, `jsonl`, `csv`, `postgres`, `webhook`, `nats`";

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sqlite" => SinkKind::Sqlite,
            "jsonl" => SinkKind::Jsonl,
            "csv" => SinkKind::Csv,
            "postgres" => SinkKind::Postgres,
            "webhook" => SinkKind::Webhook,
            "nats" => SinkKind::Nats,
            _ => return None,
        })
    }

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Sqlite => "sqlite",
            SinkKind::Jsonl => "jsonl",
            SinkKind::Csv => "csv",
            SinkKind::Postgres => "postgres",
            SinkKind::Webhook => "webhook",
            SinkKind::Nats => "nats",
        }
    }
}

/// Which records a sink takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFilter {
    kinds: BTreeSet<String>,
    resource_types: BTreeSet<String>,
}

/// Default `call_timeout_secs`: one page may wait out several `Retry-After`s and a
/// throttled `$batch` round, but ten minutes with no answer is a plugin that hangs.
pub const DEFAULT_CALL_TIMEOUT_SECS: u64 = 600;

/// The record kinds on the wire.
pub const RECORD_KINDS: [&str; 5] = ["resource", "entitlement", "grant", "event", "sync_run"];

impl RecordFilter {
    /// Everything but change events (which a sink asks for explicitly).
    pub fn default_for(kind: SinkKind) -> Self {
        let kinds = match kind {
            SinkKind::Webhook | SinkKind::Nats => vec!["event", "sync_run"],
            _ => vec!["resource", "entitlement", "grant", "sync_run"],
        };
        Self {
            kinds: kinds.into_iter().map(str::to_owned).collect(),
            resource_types: BTreeSet::new(),
        }
    }

    /// Whether records of `kind` are wanted.
    pub fn wants_kind(&self, kind: &str) -> bool {
        self.kinds.contains(kind) || (kind == "resource" && !self.resource_types.is_empty())
    }

    /// Whether a resource of type `rtype` is wanted.
    pub fn wants_resource(&self, rtype: &str) -> bool {
        self.kinds.contains("resource") || self.resource_types.contains(rtype)
    }
}

/// Which sources feed a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    /// `"*"` (or `inputs` omitted).
    All,
    /// These sources.
    Named(BTreeSet<String>),
}

impl Inputs {
    /// Whether `source` feeds the sink.
    pub fn includes(&self, source: &str) -> bool {
        match self {
            Inputs::All => true,
            Inputs::Named(names) => names.contains(source),
        }
    }
}

/// Oomnitza-style export write mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    /// Add new rows and update existing ones.
    CreateAndUpdate,
    /// Only add rows whose key is new.
    CreateOnly,
    /// Only update rows that exist.
    UpdateOnly,
}

/// Where a mapped column takes its value.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnSource {
    /// A record field path (`user.emails.primary`, `display_name`, `profile.x`).
    Field(String),
    /// A constant.
    Constant(String),
}

/// Oomnitza-style export settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// Columns in order.
    pub mapping: Vec<(String, ColumnSource)>,
    /// Key columns, first match wins.
    pub sync_key: Vec<String>,
    /// Write mode.
    pub mode: ExportMode,
    /// Mark rows missing from a complete sync inactive.
    pub deactivate_missing: bool,
}

/// One `[sinks.NAME]`.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Name.
    pub name: String,
    /// Type.
    pub kind: SinkKind,
    /// Feeding sources.
    pub inputs: Inputs,
    /// Records wanted.
    pub records: RecordFilter,
    /// File path (resolved against the config's directory; `-` kept for stdout).
    pub path: Option<PathBuf>,
    /// Server URL.
    pub url: Option<String>,
    /// Export settings (csv, and sqlite/postgres when `mapping` is given).
    pub export: Option<ExportConfig>,
    /// Webhook HMAC secret.
    pub secret: Option<secrecy::SecretString>,
    /// NATS stream.
    pub stream: Option<String>,
    /// NATS subject prefix.
    pub subject_prefix: Option<String>,
    /// Batch size.
    pub batch_size: Option<usize>,
    /// Webhook: most bytes in one batch body.
    pub batch_max_bytes: Option<usize>,
    /// Webhook: longest a batch's first record waits before the batch is sent.
    pub batch_timeout: Option<Duration>,
    /// Webhook: most delivery attempts per batch.
    pub max_attempts: Option<u32>,
    /// Webhook: first retry delay (doubling, with jitter).
    pub retry_backoff: Option<Duration>,
    /// Webhook/NATS: timeout of one delivery or acknowledgement.
    pub request_timeout: Option<Duration>,
}

/// Reads and validates `path`, expanding `${VAR}` from the process environment.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    load_with(path, Resolve::All)
}

/// Reads and validates `path`, resolving the references `resolve` asks for.
pub fn load_with(path: &Path, resolve: Resolve) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_with(path, text, &|name| std::env::var(name).ok(), resolve)
}

/// Validates config `text` as if read from `path`; `env` looks up variables.
pub fn parse(
    path: &Path,
    text: String,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    parse_with(path, text, env, Resolve::All)
}

/// [`parse`], resolving the references `resolve` asks for.
pub fn parse_with(
    path: &Path,
    text: String,
    env: &dyn Fn(&str) -> Option<String>,
    resolve: Resolve,
) -> Result<Config, ConfigError> {
    let text = SourceText {
        path: path.to_owned(),
        text,
    };
    let raw: RawConfig = toml::from_str(&text.text).map_err(|err| {
        let message = err.message().to_owned();
        let located = match err.span() {
            Some(span) => text.at(span.start, message),
            None => text.unlocated(message),
        };
        ConfigError::Invalid(vec![located])
    })?;
    let base_dir = path.parent().map(Path::to_owned).unwrap_or_default();
    Validator {
        text: &text,
        // `${file:relative}` is read relative to the config file, like every other path.
        file_dir: base_dir.clone(),
        base_dir,
        env,
        errors: Vec::new(),
        resolve,
        unresolved: Vec::new(),
        settings_of: None,
    }
    .validate(raw, &text)
}

struct Validator<'a> {
    text: &'a SourceText,
    base_dir: PathBuf,
    file_dir: PathBuf,
    env: &'a dyn Fn(&str) -> Option<String>,
    errors: Vec<Located>,
    resolve: Resolve,
    unresolved: Vec<Unresolved>,
    /// The source whose settings are being converted, for [`Unresolved::source`].
    settings_of: Option<String>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Validator<'_> {
    /// A relative path in the file is relative to the file's directory, so a config works
    /// the same from wherever idhost runs (`-c /etc/idhost/idhost.toml` with `path =
    /// "idhost.db"` means /etc/idhost/idhost.db).
    fn resolve(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        if path.is_absolute() {
            path
        } else {
            self.base_dir.join(path)
        }
    }

    /// Whether a string's references are resolved in this load (a string without one is
    /// always taken as written).
    fn resolves(&self, text: &str) -> bool {
        self.resolve != Resolve::SinkPaths || !text.contains("${")
    }

    /// Records (lenient load) or reports (strict load) a reference that did not resolve.
    fn unresolved_reference(&mut self, located: Located, err: &interpolate::InterpolationError) {
        let lenient = self.resolve == Resolve::Available
            && !matches!(err, interpolate::InterpolationError::Malformed(_));
        if lenient {
            self.unresolved.push(Unresolved {
                source: self.settings_of.clone(),
                problem: located,
            });
        } else {
            self.errors.push(located);
        }
    }

    fn expand_string(&mut self, s: &Spanned<String>, secrets: &mut Vec<String>) -> Option<String> {
        if !self.resolves(s.get_ref()) {
            return None;
        }
        match interpolate::expand(s.get_ref(), &self.file_dir, self.env) {
            Ok((value, subs)) => {
                secrets.extend(subs);
                Some(value)
            }
            Err(err) => {
                let located = self
                    .text
                    .at_text(s.span().start, &err.needle(), err.to_string());
                self.unresolved_reference(located, &err);
                None
            }
        }
    }

    /// A sink's file path: resolved in every load (the commands that read a sink need it).
    fn expand_path(&mut self, s: &Spanned<String>, secrets: &mut Vec<String>) -> Option<String> {
        let resolve = std::mem::replace(&mut self.resolve, Resolve::All);
        let path = self.expand_string(s, secrets);
        self.resolve = resolve;
        path
    }

    /// Converts a settings table to JSON, expanding references in every string.
    /// Interpolated values count as secrets when they land in a secret-looking key or come
    /// from a file; an `account_id = "${ACCOUNT}"` is configuration, not a credential (the
    /// plugin's manifest names its other secret keys, redacted once the plugin is known).
    fn settings_json(
        &mut self,
        value: &toml::Value,
        from: usize,
        key: &str,
        secrets: &mut Vec<String>,
    ) -> serde_json::Value {
        use serde_json::Value as J;
        match value {
            toml::Value::String(s) if !self.resolves(s) => J::String(s.clone()),
            toml::Value::String(s) => match interpolate::expand(s, &self.file_dir, self.env) {
                Ok((v, subs)) => {
                    if crate::redact::looks_secret(key) || s.contains("${file:") {
                        secrets.extend(subs);
                    }
                    J::String(v)
                }
                Err(err) => {
                    let located = self.text.at_text(from, &err.needle(), err.to_string());
                    self.unresolved_reference(located, &err);
                    J::Null
                }
            },
            toml::Value::Integer(i) => J::from(*i),
            toml::Value::Float(f) => J::from(*f),
            toml::Value::Boolean(b) => J::Bool(*b),
            toml::Value::Datetime(d) => J::String(d.to_string()),
            toml::Value::Array(items) => J::Array(
                items
                    .iter()
                    .map(|v| self.settings_json(v, from, key, secrets))
                    .collect(),
            ),
            toml::Value::Table(t) => J::Object(
                t.iter()
                    .map(|(k, v)| (k.clone(), self.settings_json(v, from, k, secrets)))
                    .collect(),
            ),
        }
    }

    fn validate(mut self, raw: RawConfig, text: &SourceText) -> Result<Config, ConfigError> {
        let plugin_dir = raw.plugin_dir.as_ref().map(|p| self.resolve(p.get_ref()));
        let state_path = match &raw.state_path {
            Some(p) => self.resolve(p.get_ref()),
            None => self.base_dir.join("idhost-state.db"),
        };
        let mut sources = Vec::new();
        for (name, source) in &raw.sources {
            if let Some(s) = self.source(name, source) {
                sources.push(s);
            }
        }
        // Every declared source counts, valid or not, so one bad source does not also fail its sinks.
        let source_names: BTreeSet<String> =
            raw.sources.keys().map(|k| k.get_ref().clone()).collect();
        let mut sinks = Vec::new();
        let mut notify = Vec::new();
        for (name, target) in &raw.notify {
            if let Some(t) = self.notify_target(name, target, &source_names) {
                notify.push(t);
            }
        }
        let coordination = self.coordination(raw.coordination.as_ref());
        let identity = self.identity(raw.identity.as_ref(), &source_names);
        for (name, sink) in &raw.sinks {
            if let Some(s) = self.sink(name, sink, &source_names) {
                sinks.push(s);
            }
        }
        if raw.sources.is_empty() {
            self.errors.push(
                text.unlocated(
                    "no sources: add a `[sources.NAME]` table with `connector = \"...\"`",
                ),
            );
        }
        if !self.errors.is_empty() {
            return Err(ConfigError::Invalid(self.errors));
        }
        Ok(Config {
            text: text.clone(),
            plugin_dir,
            state_path,
            sources,
            sinks,
            notify,
            coordination,
            identity,
            unresolved: self.unresolved,
        })
    }

    fn source(&mut self, name: &Spanned<String>, raw: &RawSource) -> Option<SourceConfig> {
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
        let allow_insecure_http = settings
            .get("allow_insecure_http")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
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
        })
    }

    fn sink(
        &mut self,
        name: &Spanned<String>,
        raw: &RawSink,
        sources: &BTreeSet<String>,
    ) -> Option<SinkConfig> {
        let start = self.errors.len();
        if !valid_name(name.get_ref()) {
            self.errors.push(self.text.at(
                name.span().start,
                format!(
                    "sink name `{}` must use only a-z, 0-9, `_` and `-`",
                    name.get_ref()
                ),
            ));
        }
        let Some(kind) = SinkKind::parse(raw.sink_type.get_ref()) else {
            self.errors.push(self.text.at(
                raw.sink_type.span().start,
                format!(
                    "sink type must be one of {}; got `{}`",
                    SinkKind::NAMES,
                    raw.sink_type.get_ref()
                ),
            ));
            return None;
        };
        let inputs = match &raw.inputs {
            None => Inputs::All,
            Some(list) if list.get_ref().iter().any(|i| i == "*") => Inputs::All,
            Some(list) => {
                for input in list.get_ref() {
                    if !sources.contains(input) {
                        let known: Vec<&str> = sources.iter().map(String::as_str).collect();
                        self.errors.push(self.text.at_text(
                            list.span().start,
                            &format!("\"{input}\""),
                            format!(
                                "sink `{}` takes input `{input}`, which is not a source; sources are: {}",
                                name.get_ref(),
                                known.join(", ")
                            ),
                        ));
                    }
                }
                Inputs::Named(list.get_ref().iter().cloned().collect())
            }
        };
        let records = match &raw.records {
            None => RecordFilter::default_for(kind),
            Some(list) => {
                let mut filter = RecordFilter {
                    kinds: BTreeSet::new(),
                    resource_types: BTreeSet::new(),
                };
                for r in list.get_ref() {
                    if RECORD_KINDS.contains(&r.as_str()) {
                        filter.kinds.insert(r.clone());
                    } else if valid_name(r) {
                        filter.resource_types.insert(r.clone());
                    } else {
                        self.errors.push(self.text.at(
                            list.span().start,
                            format!(
                                "records entries are record kinds ({}) or resource types; got `{r}`",
                                RECORD_KINDS.join(", ")
                            ),
                        ));
                    }
                }
                filter
            }
        };
        let mut secrets = Vec::new();
        let path = raw.path.as_ref().and_then(|p| {
            let expanded = self.expand_path(p, &mut secrets)?;
            Some(if expanded == "-" {
                PathBuf::from("-")
            } else {
                self.resolve(&expanded)
            })
        });
        let url = raw
            .url
            .as_ref()
            .and_then(|u| self.expand_string(u, &mut secrets));
        let secret = raw
            .secret
            .as_ref()
            .and_then(|s| self.expand_string(s, &mut secrets))
            .map(secrecy::SecretString::from);
        let needs = |what: &str| {
            format!(
                "sink `{}` of type `{}` needs `{what}`",
                name.get_ref(),
                kind.as_str()
            )
        };
        match kind {
            SinkKind::Sqlite | SinkKind::Jsonl | SinkKind::Csv
                if path.is_none() && raw.path.is_none() =>
            {
                self.errors
                    .push(self.text.at(raw.sink_type.span().start, needs("path")));
            }
            SinkKind::Postgres | SinkKind::Webhook | SinkKind::Nats if raw.url.is_none() => {
                self.errors
                    .push(self.text.at(raw.sink_type.span().start, needs("url")));
            }
            _ => {}
        }
        let export = self.export(name, kind, raw);
        if self.errors.len() > start {
            return None;
        }
        Some(SinkConfig {
            name: name.get_ref().clone(),
            kind,
            inputs,
            records,
            path,
            url,
            export,
            secret,
            stream: raw.stream.as_ref().map(|s| s.get_ref().clone()),
            subject_prefix: raw.subject_prefix.as_ref().map(|s| s.get_ref().clone()),
            batch_size: raw.batch_size,
            batch_max_bytes: raw.batch_max_bytes,
            batch_timeout: raw.batch_timeout_ms.map(Duration::from_millis),
            max_attempts: raw.max_attempts,
            retry_backoff: raw.retry_backoff_ms.map(Duration::from_millis),
            request_timeout: raw.request_timeout_secs.map(Duration::from_secs),
        })
    }

    fn export(
        &mut self,
        name: &Spanned<String>,
        kind: SinkKind,
        raw: &RawSink,
    ) -> Option<ExportConfig> {
        let header_span = raw.sink_type.span().start;
        let Some(mapping) = &raw.mapping else {
            if kind == SinkKind::Csv {
                self.errors.push(self.text.at(
                    header_span,
                    format!(
                        "csv sink `{}` needs a `[sinks.{}.mapping]` table (COLUMN = \"record.field.path\")",
                        name.get_ref(),
                        name.get_ref()
                    ),
                ));
            }
            for (key, present) in [
                ("sync_key", raw.sync_key.is_some()),
                ("mode", raw.mode.is_some()),
                ("deactivate_missing", raw.deactivate_missing.is_some()),
            ] {
                if present {
                    self.errors.push(self.text.at_key(
                        &format!("sinks.{}", name.get_ref()),
                        key,
                        format!("`{key}` only applies to an export with a `mapping` table"),
                    ));
                }
            }
            return None;
        };
        let mut columns = Vec::new();
        for (column, value) in mapping.get_ref() {
            let source = match value {
                toml::Value::String(path) => ColumnSource::Field(path.clone()),
                toml::Value::Table(t) => match t.get("value") {
                    Some(v) => ColumnSource::Constant(match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }),
                    None => {
                        self.errors.push(self.text.at_text(
                            mapping.span().start,
                            column,
                            format!("mapping `{column}` must be a field path string or `{{ value = \"constant\" }}`"),
                        ));
                        continue;
                    }
                },
                _ => {
                    self.errors.push(self.text.at_text(
                        mapping.span().start,
                        column,
                        format!("mapping `{column}` must be a field path string or `{{ value = \"constant\" }}`"),
                    ));
                    continue;
                }
            };
            columns.push((column.clone(), source));
        }
        let sync_key: Vec<String> = match raw.sync_key.as_ref().map(Spanned::get_ref) {
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let key_offset = raw
            .sync_key
            .as_ref()
            .map_or(header_span, |k| k.span().start);
        if sync_key.is_empty() {
            self.errors.push(self.text.at(
                key_offset,
                format!(
                    "export sink `{}` needs `sync_key`: a mapped column (or a list, first match wins), e.g. sync_key = \"EMAIL\"",
                    name.get_ref()
                ),
            ));
        }
        for key in &sync_key {
            if !columns.iter().any(|(c, _)| c == key) {
                let mapped: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
                self.errors.push(self.text.at(
                    key_offset,
                    format!(
                        "sync_key `{key}` is not a mapped column; mapped columns are: {}",
                        mapped.join(", ")
                    ),
                ));
            }
        }
        let mode = match raw.mode.as_ref().map(|m| m.get_ref().as_str()) {
            None | Some("create_and_update") => ExportMode::CreateAndUpdate,
            Some("create_only") => ExportMode::CreateOnly,
            Some("update_only") => ExportMode::UpdateOnly,
            Some(other) => {
                let offset = raw.mode.as_ref().map_or(header_span, |m| m.span().start);
                self.errors.push(self.text.at(
                    offset,
                    format!(
                        "mode must be one of `create_and_update`, `create_only`, `update_only`; got `{other}`"
                    ),
                ));
                ExportMode::CreateAndUpdate
            }
        };
        Some(ExportConfig {
            mapping: columns,
            sync_key,
            mode,
            deactivate_missing: raw.deactivate_missing.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests;
