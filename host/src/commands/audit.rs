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
    if state.exists() {
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
            state.display(),
            source.map(|s| format!(" for `{s}`")).unwrap_or_default()
        );
    }
    output::print(&rows, format)
        .map_err(|e| CommandError::failed(anyhow!("writing the answer: {e}")))?;
    Ok(Outcome::Success)
}
