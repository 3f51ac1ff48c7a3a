//! `[sinks.NAME]`: where records go, which sources feed it (`inputs`) and which records it
//! takes (`records`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::export::ExportConfig;
use super::raw::RawSink;
use super::validator::{Validator, valid_name};
use crate::record::RECORD_KINDS;
use crate::route::{Inputs, RecordFilter};

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
    pub(super) const NAMES: &'static str =
        "`sqlite`, `jsonl`, `csv`, `postgres`, `webhook`, `nats`";

    pub(super) fn parse(s: &str) -> Option<Self> {
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

    /// The records a sink of this type takes when its `records` is not given: everything but
    /// change events, which a sink asks for explicitly, except webhook and NATS sinks, which
    /// exist to carry events.
    pub fn default_records(self) -> RecordFilter {
        let kinds = match self {
            SinkKind::Webhook | SinkKind::Nats => vec!["event", "sync_run"],
            _ => vec!["resource", "entitlement", "grant", "sync_run"],
        };
        RecordFilter::new(kinds.into_iter().map(str::to_owned), [])
    }
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
    /// PostgreSQL: most connections its sessions hold at once; further syncs wait for one.
    pub max_connections: Option<usize>,
}

/// Why `url` cannot be the address of a `kind` sink (`None` when it can be). The URL itself is
/// never repeated: it may hold a password.
pub(super) fn check_url(kind: SinkKind, url: &str) -> Result<(), String> {
    match kind {
        SinkKind::Postgres => check_postgres_url(url),
        SinkKind::Webhook => match url::Url::parse(url) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| !h.is_empty()) =>
            {
                Ok(())
            }
            Ok(u) => Err(format!(
                "is not an http:// or https:// URL with a host (its scheme is `{}`)",
                u.scheme()
            )),
            Err(e) => Err(format!(
                "is not a URL ({e}); a webhook sink posts to an https:// URL"
            )),
        },
        SinkKind::Nats => {
            for server in url.split(',').map(str::trim) {
                let full = if server.contains("://") {
                    server.to_owned()
                } else {
                    format!("nats://{server}")
                };
                match url::Url::parse(&full) {
                    Ok(u)
                        if matches!(u.scheme(), "nats" | "tls" | "ws" | "wss")
                            && u.host_str().is_some_and(|h| !h.is_empty()) => {}
                    Ok(u) => {
                        return Err(format!(
                            "is not a NATS server address (nats://, tls://, ws:// or wss:// with a host; a scheme `{}` was given)",
                            u.scheme()
                        ));
                    }
                    Err(e) => {
                        return Err(format!(
                            "is not a NATS server address ({e}); e.g. nats://127.0.0.1:4222"
                        ));
                    }
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Why `url` is not a PostgreSQL connection string or URL.
pub(super) fn check_postgres_url(url: &str) -> Result<(), String> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let is_key_value = !url.contains("://") && url.contains('=');
    if !is_url && !is_key_value {
        return Err(
            "is not a PostgreSQL connection URL (postgres://user@host:5432/db) or key=value string"
                .to_owned(),
        );
    }
    let (_mode, url) = crate::pg::tls_mode(url)?;
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) if config.get_hosts().is_empty() => {
            Err("is a PostgreSQL connection string without a host".to_owned())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(format!("is not a PostgreSQL connection string ({e})")),
    }
}

impl Validator<'_> {
    pub(super) fn sink(
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
            None => kind.default_records(),
            Some(list) => {
                let (mut kinds, mut resource_types) = (Vec::new(), Vec::new());
                for r in list.get_ref() {
                    if RECORD_KINDS.contains(&r.as_str()) {
                        kinds.push(r.clone());
                    } else if valid_name(r) {
                        resource_types.push(r.clone());
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
                RecordFilter::new(kinds, resource_types)
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
        // A password in the URL and the HMAC secret are secrets however they were written
        // (literally or through `${…}`): the process-wide redactor learns them here.
        if let Some(password) = url
            .as_deref()
            .and_then(|u| url::Url::parse(u).ok())
            .and_then(|u| u.password().map(str::to_owned))
        {
            if let Ok(decoded) = percent_encoding::percent_decode_str(&password).decode_utf8() {
                crate::redact::global().add(decoded.into_owned());
            }
            crate::redact::global().add(password);
        }
        if let Some(secret) = &secret {
            use secrecy::ExposeSecret as _;
            crate::redact::global().add(secret.expose_secret().to_owned());
        }
        if let (Some(url), Some(raw_url)) = (&url, &raw.url)
            && let Err(problem) = check_url(kind, url)
        {
            self.errors.push(self.text.at(
                raw_url.span().start,
                format!("sink `{}`: `url` {problem}", name.get_ref()),
            ));
        }
        let max_connections = raw.max_connections.as_ref().and_then(|n| {
            let value = *n.get_ref();
            if kind != SinkKind::Postgres {
                self.errors.push(self.text.at(
                    n.span().start,
                    format!(
                        "sink `{}`: `max_connections` applies to `postgres` sinks only, not `{}`",
                        name.get_ref(),
                        kind.as_str()
                    ),
                ));
                None
            } else if !(1..=1000).contains(&value) {
                self.errors.push(self.text.at(
                    n.span().start,
                    format!(
                        "sink `{}`: `max_connections` must be between 1 and 1000; got {value}",
                        name.get_ref()
                    ),
                ));
                None
            } else {
                usize::try_from(value).ok()
            }
        });
        let export = self.export(name, kind == SinkKind::Csv, raw);
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
            max_connections,
        })
    }
}
