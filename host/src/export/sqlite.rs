//! The export in SQLite: table `export_<sink>` in the sink's database file.
//!
//! Mapped columns are TEXT (NULL when absent), `active` is INTEGER 1/0 (SQLite's booleans, so
//! `WHERE active` works), `source` and `synced_at` TEXT. A merge runs in one `BEGIN IMMEDIATE`
//! transaction (load, merge, replace the rows), so readers see the table before or after a sync
//! and another writer waits instead of interleaving. Rows keep their order (rowid). A mapped
//! column added to the config is added to the table; a column no longer mapped stays in the
//! table, empty.

use std::path::PathBuf;

use async_trait::async_trait;
use rusqlite::{params_from_iter, types::ValueRef};

use super::engine::Report;
use super::error::ExportError;
use super::store::{ExportStore, Merge, blocking, check_layout};
use super::table::{ACTIVE, Layout, SOURCE, SYNCED_AT, TargetTable, header};
use crate::config::SinkConfig;
use crate::db::Db;

/// An export table in a SQLite file.
pub(crate) struct SqliteStore {
    table: String,
    db: Db,
}

/// `"name"`, with quotes doubled.
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl SqliteStore {
    /// Opens (creating) the sink's database file.
    pub(crate) async fn open(config: &SinkConfig) -> Result<Self, ExportError> {
        let path = config
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("idhost.db"));
        let db = blocking(move || {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| ExportError::Io {
                    path: dir.to_owned(),
                    source,
                })?;
            }
            let conn = crate::db::open(&path).map_err(|source| ExportError::Sqlite {
                path: path.clone(),
                source,
            })?;
            Ok(Db::from_connection(&path, conn))
        })
        .await?;
        Ok(Self {
            table: format!("export_{}", config.name),
            db,
        })
    }
}

#[async_trait]
impl ExportStore for SqliteStore {
    fn target(&self) -> String {
        format!("{} table {}", self.db.path().display(), self.table)
    }

    async fn transact(&self, columns: &[String], merge: Merge) -> Result<Report, ExportError> {
        let (db, table, columns) = (self.db.clone(), self.table.clone(), columns.to_vec());
        let target = self.target();
        blocking(move || {
            let path = db.path().to_owned();
            let mut conn = db.lock();
            let err = |source| ExportError::Sqlite {
                path: path.clone(),
                source,
            };
            // The merged table is the sink's commit: on disk when the host records the
            // delivery (`crate::db::durably`). A layout the mapping cannot use rolls back.
            crate::db::durably(&mut conn, |conn| {
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let stored = ensure_table(&tx, &table, &columns)?;
                let mut rows = load(&tx, &table, &stored)?;
                let layout = Layout::new(&stored, &columns);
                if let Err(refused) = check_layout(&target, &stored, &layout, &columns) {
                    return Ok(Err(refused));
                }
                let mut loaded = TargetTable::empty(&columns);
                loaded.rows = rows.drain(..).map(|fields| layout.row(&fields)).collect();
                let report = merge(&mut loaded);
                replace(&tx, &table, &loaded)?;
                tx.commit()?;
                Ok(Ok(report))
            })
            .map_err(err)?
        })
        .await
    }
}

/// Creates the table or adds the columns it lacks; returns its columns in order.
fn ensure_table(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    columns: &[String],
) -> Result<Vec<String>, rusqlite::Error> {
    let mapped: Vec<String> = columns
        .iter()
        .map(|c| format!("{} TEXT", quote(c)))
        .collect();
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} ({}{}{} INTEGER NOT NULL DEFAULT 1, {} TEXT NOT NULL DEFAULT '', {} TEXT NOT NULL DEFAULT '')",
        quote(table),
        mapped.join(", "),
        if mapped.is_empty() { "" } else { ", " },
        quote(ACTIVE),
        quote(SOURCE),
        quote(SYNCED_AT),
    ))?;
    let mut stored = table_columns(tx, table)?;
    for (name, decl) in header(columns)
        .iter()
        .zip(columns.iter().map(|_| "TEXT").chain([
            "INTEGER NOT NULL DEFAULT 1",
            "TEXT NOT NULL DEFAULT ''",
            "TEXT NOT NULL DEFAULT ''",
        ]))
    {
        if !stored.iter().any(|s| s.eq_ignore_ascii_case(name)) {
            tx.execute_batch(&format!(
                "ALTER TABLE {} ADD COLUMN {} {decl}",
                quote(table),
                quote(name)
            ))?;
            stored.push(name.clone());
        }
    }
    Ok(stored)
}

fn table_columns(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
) -> Result<Vec<String>, rusqlite::Error> {
    let mut stmt = tx.prepare(&format!("PRAGMA table_info({})", quote(table)))?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(1))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

/// Every row as text fields in `stored` order.
fn load(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    stored: &[String],
) -> Result<Vec<Vec<Option<String>>>, rusqlite::Error> {
    let select: Vec<String> = stored.iter().map(|c| quote(c)).collect();
    let mut stmt = tx.prepare(&format!(
        "SELECT {} FROM {} ORDER BY rowid",
        select.join(", "),
        quote(table)
    ))?;
    let rows = stmt
        .query_map([], |row| {
            (0..stored.len())
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        ValueRef::Null => None,
                        ValueRef::Integer(n) => Some(n.to_string()),
                        ValueRef::Real(f) => Some(f.to_string()),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Some(String::from_utf8_lossy(t).into_owned())
                        }
                    })
                })
                .collect::<Result<Vec<_>, rusqlite::Error>>()
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Replaces every row with `table`'s.
fn replace(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    table: &TargetTable,
) -> Result<(), rusqlite::Error> {
    tx.execute(&format!("DELETE FROM {}", quote(name)), [])?;
    let cols: Vec<String> = table.header().iter().map(|c| quote(c)).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let mut stmt = tx.prepare(&format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(name),
        cols.join(", "),
        marks.join(", ")
    ))?;
    for row in &table.rows {
        let values = row
            .values
            .iter()
            .map(|v| rusqlite::types::Value::from(v.clone()))
            .chain([
                rusqlite::types::Value::Integer(i64::from(row.active)),
                rusqlite::types::Value::Text(row.source.clone()),
                rusqlite::types::Value::Text(row.synced_at.clone()),
            ]);
        stmt.execute(params_from_iter(values))?;
    }
    Ok(())
}
