//! PostgreSQL, reached one way: the `postgres` sink, the `postgres` export store and the
//! daemon's lease store parse their URL, connect, and tell an error here.
//!
//! TLS follows the URL's `sslmode` as libpq reads it (rustls, through tokio-postgres-rustls):
//! `disable` (or no `sslmode` at all: plain TCP, as before TLS was offered); `prefer` (TLS when
//! the server offers it) and `require` (TLS or no connection) encrypt without checking who the
//! server is, as libpq does; `verify-ca` and `verify-full` verify the server's certificate, chain
//! and host name, against the system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` name others) and
//! the Mozilla roots (`verify-ca` is held to `verify-full`).

use std::str::FromStr as _;
use std::sync::Arc;

use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, Config, NoTls};

/// How a connection string asks for TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP (`sslmode=disable`, or no `sslmode`).
    Disable,
    /// TLS if the server offers it, the certificate not checked (`prefer`, `allow`).
    Prefer,
    /// TLS or no connection, the certificate not checked (`require`).
    Require,
    /// TLS or no connection, the certificate verified (`verify-ca`, `verify-full`).
    Verify,
}

/// A parsed connection string and whether its TLS verifies the server. Derefs to the
/// tokio-postgres [`Config`].
#[derive(Debug, Clone)]
pub struct Target {
    config: Config,
    mode: TlsMode,
}

impl std::ops::Deref for Target {
    type Target = Config;
    fn deref(&self) -> &Config {
        &self.config
    }
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
        "require" => TlsMode::Require,
        "verify-ca" | "verify-full" => TlsMode::Verify,
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
pub fn parse_url(url: &str) -> Result<Target, String> {
    let (mode, url) = tls_mode(url).map_err(|e| format!("`url` {e}"))?;
    let mut config = Config::from_str(&url).map_err(|e| {
        format!(
            "`url` is not a PostgreSQL connection string like `postgres://user@127.0.0.1:5432/db` ({e})"
        )
    })?;
    if mode == TlsMode::Disable {
        config.ssl_mode(SslMode::Disable);
    }
    Ok(Target { config, mode })
}

/// The TLS connector of PostgreSQL connections: rustls (ring) with the system's and Mozilla's
/// roots when `verify`, else one that encrypts without checking the certificate (libpq's
/// `prefer` and `require`). Each is built once.
fn tls(verify: bool) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    type Built = std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>>;
    static VERIFYING: Built = std::sync::OnceLock::new();
    static ENCRYPTING: Built = std::sync::OnceLock::new();
    let build = || {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let config = if verify {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
                .with_no_client_auth()
        };
        Ok(Arc::new(config))
    };
    let cell = if verify { &VERIFYING } else { &ENCRYPTING };
    match cell.get_or_init(build) {
        Ok(config) => Ok(tokio_postgres_rustls::MakeRustlsConnect::new(
            (**config).clone(),
        )),
        Err(e) => Err(e.clone()),
    }
}

/// libpq's `sslmode=require`: the handshake's signatures are checked, the certificate's issuer
/// and name are not (that is `verify-full`).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
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
                        " (the URL asks for TLS with sslmode=require, verify-ca or verify-full; \
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
    target: &Target,
    who: &str,
) -> Result<(Client, tokio::task::JoinHandle<()>), ConnectError> {
    let who = who.to_owned();
    let warn = |who: String| {
        move |err: tokio_postgres::Error| {
            tracing::warn!(db = %who, error = %error_text(&err), "PostgreSQL connection ended with an error");
        }
    };
    let config = &target.config;
    if target.mode == TlsMode::Disable {
        let (client, connection) = config.connect(NoTls).await?;
        let warn = warn(who);
        let driver = tokio::spawn(async move {
            if let Err(err) = connection.await {
                warn(err);
            }
        });
        return Ok((client, driver));
    }
    let tls = tls(target.mode == TlsMode::Verify).map_err(ConnectError::Tls)?;
    let (client, connection) = config.connect(tls).await?;
    let warn = warn(who);
    let driver = tokio::spawn(async move {
        if let Err(err) = connection.await {
            warn(err);
        }
    });
    Ok((client, driver))
}
