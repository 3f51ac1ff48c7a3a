//! `idhost audit`: the audit trail of provisioning, newest first (the state database's `audit`
//! table, written by `idhost provision` before and after every attempt).

use std::path::Path;

use anyhow::{Context as _, anyhow};
use rusqlite::params;
use serde_json::Value;

use crate::cli::OutputFormat;
use crate::exit::{CommandError, Outcome};
use crate::inspect::output::{self, Rows};

/// The JSON keys of `idhost audit`.
const COLUMNS: [&str; 9] = [
    "id",
    "at",
    "actor",
    "source",
    "operation",
    "target",
    "dry_run",
    "result",
    "detail",
];

pub(crate) fn run(
    path: &Path,
    source: Option<&str>,
    since: Option<&str>,
    limit: usize,
    format: OutputFormat,
) -> Result<Outcome, CommandError> {
    let config = super::query::load_for_reading(path)?;
    let since = since.map(super::query::since_instant).transpose()?;
    let state = &config.state_path;
    let mut rows = Rows::new(&COLUMNS);
    let mut place = state.display().to_string();
    if let Some(url) = &config.state_postgres {
        let json = format == OutputFormat::Json;
        let (source, since) = (source.map(str::to_owned), since.clone());
        let found = crate::state::postgres::blocking(url, move |conn| {
            Box::pin(async move {
                let found = conn
                    .query(
                        "SELECT id, at, actor, source, operation, target, dry_run, result, detail
                         FROM idhost_state_audit
                         WHERE ($1::text IS NULL OR source = $1) AND ($2::text IS NULL OR at >= $2)
                         ORDER BY id DESC LIMIT $3",
                        &[&source, &since, &(limit as i64)],
                    )
                    .await?;
                Ok(found
                    .iter()
                    .map(|r| {
                        let detail: String = r.get(8);
                        vec![
                            Value::from(r.get::<_, i64>(0)),
                            Value::String(r.get(1)),
                            Value::String(r.get(2)),
                            Value::String(r.get(3)),
                            Value::String(r.get(4)),
                            Value::String(r.get(5)),
                            Value::Bool(r.get(6)),
                            Value::String(r.get(7)),
                            if json {
                                serde_json::from_str(&detail).unwrap_or(Value::String(detail))
                            } else {
                                Value::String(detail)
                            },
                        ]
                    })
                    .collect::<Vec<_>>())
            })
        })
        .map_err(CommandError::failed)?;
        rows.rows = found;
        place = url_place(url);
    } else if state.exists() {
        let conn = crate::db::open_read_only(state)
            .with_context(|| format!("cannot open the state database {}", state.display()))
            .map_err(CommandError::failed)?;
        let has_audit: bool = conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| CommandError::failed(anyhow!("{}: {e}", state.display())))?;
        if has_audit {
            let mut stmt = conn
                .prepare(
                    "SELECT id, at, actor, source, operation, target, dry_run, result, detail FROM audit
                     WHERE (?1 IS NULL OR source = ?1) AND (?2 IS NULL OR at >= ?2)
                     ORDER BY id DESC LIMIT ?3",
                )
                .map_err(|e| CommandError::failed(anyhow!("{}: {e}", state.display())))?;
            let found: Vec<Vec<Value>> = stmt
                .query_map(params![source, since, limit as i64], |r| {
                    let detail: String = r.get(8)?;
                    Ok(vec![
                        Value::from(r.get::<_, i64>(0)?),
                        Value::String(r.get(1)?),
                        Value::String(r.get(2)?),
                        Value::String(r.get(3)?),
                        Value::String(r.get(4)?),
                        Value::String(r.get(5)?),
                        Value::Bool(r.get::<_, i64>(6)? != 0),
                        Value::String(r.get(7)?),
                        if format == OutputFormat::Json {
                            serde_json::from_str(&detail).unwrap_or(Value::String(detail))
                        } else {
                            Value::String(detail)
                        },
                    ])
                })
                .and_then(|r| r.collect())
                .map_err(|e| CommandError::failed(anyhow!("{}: {e}", state.display())))?;
            rows.rows = found;
        }
    }
    if rows.rows.is_empty() && format == OutputFormat::Table {
        eprintln!(
            "no provisioning attempt recorded in {}{}",
            place,
            source.map(|s| format!(" for `{s}`")).unwrap_or_default()
        );
    }
    output::print(&rows, format)
        .map_err(|e| CommandError::failed(anyhow!("writing the answer: {e}")))?;
    Ok(Outcome::Success)
}

/// `postgres://host:port/db` of `state_url`, for the message (never the password).
fn url_place(url: &secrecy::SecretString) -> String {
    use secrecy::ExposeSecret as _;
    crate::pg::parse_url(url.expose_secret())
        .map(|target| crate::pg::describe(&target))
        .unwrap_or_else(|_| "state_url".to_owned())
}
