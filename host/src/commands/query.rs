//! `idhost query`: answers from the SQLite sink's tables — who holds an entitlement, what a
//! principal can access, and what changed in a source.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use rusqlite::{Connection, types::Value as SqlValue};

use crate::cli::{QueryArgs, QueryFormat, QueryOp};
use crate::config::SinkKind;
use crate::exit::{CommandError, Outcome};

/// Rows with named columns.
struct Answer {
    columns: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

fn text_of(value: SqlValue) -> String {
    match value {
        SqlValue::Null => String::new(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(f) => f.to_string(),
        SqlValue::Text(t) => t,
        SqlValue::Blob(b) => String::from_utf8_lossy(&b).into_owned(),
    }
}

fn select(
    conn: &Connection,
    columns: Vec<&'static str>,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Answer, rusqlite::Error> {
    let mut stmt = conn.prepare(sql)?;
    let width = columns.len();
    let rows = stmt
        .query_map(params, |row| {
            (0..width)
                .map(|i| row.get::<_, SqlValue>(i).map(text_of))
                .collect::<Result<Vec<_>, _>>()
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Answer { columns, rows })
}

/// `--since` as an RFC 3339 instant: either given as one, or a duration back from now.
fn since_instant(since: &str) -> Result<String, String> {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    if time::OffsetDateTime::parse(since, rfc3339).is_ok() {
        return Ok(since.to_owned());
    }
    let ago = humantime::parse_duration(since)
        .map_err(|_| format!("--since must be an RFC 3339 time (2026-11-23T00:00:00Z) or a duration like `24h`; got `{since}`"))?;
    let then = time::OffsetDateTime::now_utc() - ago;
    then.format(rfc3339).map_err(|e| e.to_string())
}

fn print(table: &Answer, format: QueryFormat) -> anyhow::Result<()> {
    match format {
        QueryFormat::Json => {
            let rows: Vec<serde_json::Map<String, serde_json::Value>> = table
                .rows
                .iter()
                .map(|r| {
                    table
                        .columns
                        .iter()
                        .zip(r)
                        .map(|(c, v)| {
                            let value = serde_json::from_str(v)
                                .ok()
                                .filter(|j: &serde_json::Value| j.is_object())
                                .unwrap_or_else(|| serde_json::Value::String(v.clone()));
                            ((*c).to_owned(), value)
                        })
                        .collect()
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        QueryFormat::Csv => {
            let mut out = csv::Writer::from_writer(std::io::stdout());
            out.write_record(&table.columns)?;
            for row in &table.rows {
                out.write_record(row)?;
            }
            out.flush()?;
        }
        QueryFormat::Table => {
            let mut widths: Vec<usize> = table.columns.iter().map(|c| c.len()).collect();
            for row in &table.rows {
                for (w, v) in widths.iter_mut().zip(row) {
                    *w = (*w).max(v.chars().count().min(60));
                }
            }
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            println!(
                "{}",
                line(table.columns.iter().map(|c| c.to_uppercase()).collect())
            );
            for row in &table.rows {
                println!("{}", line(row.clone()));
            }
            eprintln!("({} rows)", table.rows.len());
        }
    }
    Ok(())
}

fn database(
    config: &crate::config::Config,
    sink: Option<&str>,
) -> Result<(String, PathBuf), CommandError> {
    let candidates: Vec<_> = config
        .sinks
        .iter()
        .filter(|s| s.kind == SinkKind::Sqlite && s.export.is_none())
        .filter(|s| sink.is_none_or(|name| s.name == name))
        .collect();
    match (candidates.first(), sink) {
        (Some(s), _) => Ok((
            s.name.clone(),
            s.path.clone().unwrap_or_else(|| PathBuf::from("idhost.db")),
        )),
        (None, Some(name)) => Err(CommandError::usage(anyhow!(
            "--sink `{name}` is not a sqlite sink (with its snapshot tables) in {}",
            config.text.path().display()
        ))),
        (None, None) => Err(CommandError::usage(anyhow!(
            "{} has no sqlite sink to query: add one, e.g. [sinks.local] type = \"sqlite\" path = \"idhost.db\"",
            config.text.path().display()
        ))),
    }
}

pub(crate) fn run(path: &Path, args: QueryArgs) -> Result<Outcome, CommandError> {
    let config = crate::config::load(path)?;
    let (sink, db_path) = database(&config, args.sink.as_deref())?;
    let conn = crate::db::open_read_only(&db_path)
        .with_context(|| {
            format!(
                "sink `{sink}`: cannot open {} (has a sync run yet?)",
                db_path.display()
            )
        })
        .map_err(CommandError::failed)?;
    let fail = |e: rusqlite::Error| {
        CommandError::failed(anyhow!("sink `{sink}` ({}): {e}", db_path.display()))
    };
    let table = match &args.op {
        QueryOp::WhoHas { entitlement } => select(
            &conn,
            vec!["source", "principal", "principal_name", "status", "grant"],
            "SELECT g.source, g.principal, coalesce(r.display_name, ''), coalesce(r.status, ''), g.id
             FROM grants g LEFT JOIN resources r ON r.source = g.source AND r.id = g.principal
             WHERE g.entitlement = ?1 ORDER BY g.source, g.principal",
            &[entitlement],
        )
        .map_err(fail)?,
        QueryOp::Access { principal } => select(
            &conn,
            vec!["source", "entitlement", "entitlement_name", "resource", "resource_name"],
            "SELECT g.source, g.entitlement, coalesce(e.display_name, ''), coalesce(e.resource, ''),
                    coalesce(r.display_name, '')
             FROM grants g
             LEFT JOIN entitlements e ON e.source = g.source AND e.id = g.entitlement
             LEFT JOIN resources r ON r.source = g.source AND r.id = e.resource
             WHERE g.principal = ?1 ORDER BY g.source, g.entitlement",
            &[principal],
        )
        .map_err(fail)?,
        QueryOp::Diff { source, since } => {
            let has_events: bool = conn
                .query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'", [], |r| r.get::<_, i64>(0))
                .map(|n| n > 0)
                .map_err(fail)?;
            if !has_events {
                return Err(CommandError::usage(anyhow!(
                    "sink `{sink}` keeps no change events: add \"event\" to its `records`"
                )));
            }
            let since = match since {
                Some(s) => since_instant(s).map_err(|e| CommandError::usage(anyhow!(e)))?,
                None => String::new(),
            };
            select(
                &conn,
                vec!["seq", "at", "event", "subject", "changes", "sync_id"],
                "SELECT seq, at, event, subject, changes, sync_id FROM events
                 WHERE source = ?1 AND at >= ?2 ORDER BY seq",
                &[source, &since],
            )
            .map_err(fail)?
        }
    };
    print(&table, args.output).map_err(CommandError::failed)?;
    Ok(Outcome::Success)
}
