//! PostgreSQL, reached one way: the `postgres` sink, the `postgres` export store and the
//! daemon's lease store parse their URL, connect, and tell an error here. TLS is not offered
//! by this build: use a loopback or otherwise protected connection.

use std::str::FromStr as _;

use tokio_postgres::{Client, Config, NoTls};

/// The connection string `url`, parsed; the error shows a correct value (never the URL, which
/// may hold a password).
pub fn parse_url(url: &str) -> Result<Config, String> {
    Config::from_str(url).map_err(|e| {
        format!(
            "`url` is not a PostgreSQL connection string like `postgres://user@127.0.0.1:5432/db` ({e})"
        )
    })
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
pub fn error_text(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => {
            let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            text
        }
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            text
        }
    }
}

/// Connects to `config`. The connection runs on its own task (returned, for a caller that
/// waits for it to close) until the client is dropped; an error that ends it is logged with
/// `who` (a [`describe`]d server, or what the connection is for).
pub async fn connect(
    config: &Config,
    who: &str,
) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    let who = who.to_owned();
    let driver = tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(db = %who, error = %error_text(&err), "PostgreSQL connection ended with an error");
        }
    });
    Ok((client, driver))
}
