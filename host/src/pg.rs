//! PostgreSQL, reached one way: the `postgres` sink, the `postgres` export store and the
//! daemon's lease store parse their URL, connect, and tell an error here.
//!
//! TLS follows the URL's `sslmode` (rustls, through tokio-postgres-rustls): `disable` (or no
//! `sslmode` at all: plain TCP, as before TLS was offered), `prefer` (TLS when the server offers
//! it), `require`, `verify-ca` and `verify-full`. Whenever TLS is used the server's certificate
//! is verified, chain and host name, against the system's roots (`SSL_CERT_FILE` /
//! `SSL_CERT_DIR` name others) and the Mozilla roots: `require` is `verify-full` here.

use std::str::FromStr as _;
use std::sync::Arc;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

/// How a connection string asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP (`sslmode=disable`, or no `sslmode`).
    Disable,
    /// TLS if the server offers it.
    Prefer,
    /// TLS or no connection, the certificate verified.
    Require,
}

/// The `sslmode` of `url` (URL or key=value form), and the string tokio-postgres parses (it
/// knows `disable`, `prefer` and `require`; `verify-ca` and `verify-full` become `require`,
/// which verifies anyway).
pub fn tls_mode(url: &str) -> Result<(TlsMode, String), String> {
    let value = if url.contains("://") {
        url::Url::parse(url).ok().and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "sslmode")
                .map(|(_, v)| v.into_owned())
        })
    } else {
        url.split_whitespace()
            .find_map(|kv| kv.strip_prefix("sslmode="))
            .map(|v| v.trim_matches('\'').to_owned())
    };
    let Some(value) = value else {
        return Ok((TlsMode::Disable, url.to_owned()));
    };
    let mode = match value.as_str() {
        "disable" => TlsMode::Disable,
        "allow" | "prefer" => TlsMode::Prefer,
        "require" | "verify-ca" | "verify-full" => TlsMode::Require,
        other => {
            return Err(format!(
                "has sslmode `{other}`; it must be disable, prefer, require, verify-ca or verify-full"
            ));
        }
    };
    let rewritten = if value == "verify-ca" || value == "verify-full" || value == "allow" {
        let to = if value == "allow" {
            "prefer"
        } else {
            "require"
        };
        url.replace(&format!("sslmode={value}"), &format!("sslmode={to}"))
    } else {
        url.to_owned()
    };
    Ok((mode, rewritten))
}

/// The connection string `url`, parsed; the error shows a correct value (never the URL, which
/// may hold a password). An absent `sslmode` is `disable`.
pub fn parse_url(url: &str) -> Result<Config, String> {
    let (mode, url) = tls_mode(url).map_err(|e| format!("`url` {e}"))?;
    let mut config = Config::from_str(&url).map_err(|e| {
        format!(
            "`url` is not a PostgreSQL connection string like `postgres://user@127.0.0.1:5432/db` ({e})"
        )
    })?;
    if mode == TlsMode::Disable {
        config.ssl_mode(SslMode::Disable);
    }
    Ok(config)
}

/// The TLS connector of every PostgreSQL connection: rustls with the system's and Mozilla's
/// roots, built once.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let native = rustls_native_certs::load_native_certs();
        for cert in native.certs {
            let _ = roots.add(cert);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
            .map_err(|e| format!("cannot set up TLS: {e}"))
    });
    match config {
        Ok(config) => Ok(tokio_postgres_rustls::MakeRustlsConnect::new(
            (**config).clone(),
        )),
        Err(e) => Err(e.clone()),
    }
}

/// `postgres://host:port/db`, without user or password, for messages and logs.
pub fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}:{port}/{}",
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

/// What went wrong, in the server's own words when it answered (severity, SQLSTATE, message,
/// detail; tokio-postgres' `Display` says only "db error"), else the error and its causes.
/// Never the connection string.
pub fn error_text(err: &dyn ErrorText) -> String {
    err.text()
}

/// An error [`error_text`] can tell.
pub trait ErrorText {
    /// The text.
    fn text(&self) -> String;
}

impl ErrorText for tokio_postgres::Error {
    fn text(&self) -> String {
        match self.as_db_error() {
            Some(db) => {
                let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
                if let Some(detail) = db.detail() {
                    text.push_str(&format!(" ({detail})"));
                }
                text
            }
            None => {
                let mut text = self.to_string();
                let mut source = std::error::Error::source(self);
                while let Some(cause) = source {
                    text.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                if text.contains("server does not support TLS") {
                    text.push_str(
                        " (the URL asks for TLS with sslmode=require or verify-full; \
                         use sslmode=prefer or disable for a server without TLS)",
                    );
                }
                text
            }
        }
    }
}

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The server or the connection failed.
    #[error("{}", .0.text())]
    Pg(#[from] tokio_postgres::Error),
    /// TLS could not be set up in this process.
    #[error("{0}")]
    Tls(String),
}

impl ErrorText for ConnectError {
    fn text(&self) -> String {
        match self {
            ConnectError::Pg(err) => err.text(),
            ConnectError::Tls(message) => message.clone(),
        }
    }
}

/// Connects to `config`. The connection runs on its own task (returned, for a caller that
/// waits for it to close) until the client is dropped; an error that ends it is logged with
/// `who` (a [`describe`]d server, or what the connection is for).
pub async fn connect(
    config: &Config,
    who: &str,
) -> Result<(Client, tokio::task::JoinHandle<()>), ConnectError> {
    let who = who.to_owned();
    let warn = |who: String| {
        move |err: tokio_postgres::Error| {
            tracing::warn!(db = %who, error = %error_text(&err), "PostgreSQL connection ended with an error");
        }
    };
    if config.get_ssl_mode() == SslMode::Disable {
        let (client, connection) = config.connect(NoTls).await?;
        let warn = warn(who);
        let driver = tokio::spawn(async move {
            if let Err(err) = connection.await {
                warn(err);
            }
        });
        return Ok((client, driver));
    }
    let tls = tls().map_err(ConnectError::Tls)?;
    let (client, connection) = config.connect(tls).await?;
    let warn = warn(who);
    let driver = tokio::spawn(async move {
        if let Err(err) = connection.await {
            warn(err);
        }
    });
    Ok((client, driver))
}
