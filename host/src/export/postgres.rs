//! The export in PostgreSQL: table `export_<sink>` in the `url`'s database (current schema).
//!
//! Mapped columns are `text` (NULL when absent), `active` is `boolean`, `source` and
//! `synced_at` are `text` (`synced_at` as RFC 3339, castable with `synced_at::timestamptz`). A
//! merge is one transaction: lock the table against other writers (readers go on and see the
//! previous rows until the commit), load, merge, replace the rows with a single `unnest` insert.
//! The sink connects per merge (once per sync), so a database that is down when idhost starts
//! fails only the syncs that reach it. TLS is not offered by this build: use a loopback or
//! otherwise protected connection.

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::engine::Report;
use super::error::ExportError;
use super::sqlite::quote;
use super::store::{ExportStore, Merge, check_layout};
use super::table::{ACTIVE, Layout, SOURCE, SYNCED_AT, TargetTable, header};
use crate::config::SinkConfig;

/// Longest identifier PostgreSQL keeps (longer ones are silently truncated).
const MAX_IDENTIFIER: usize = 63;

/// An export table in a PostgreSQL database.
pub(crate) struct PostgresStore {
    config: crate::pg::Target,
    table: String,
    target: String,
}

impl PostgresStore {
    /// Checks the sink's `url` and names; connects later, per merge.
    pub(crate) fn new(sink: &SinkConfig) -> Result<Self, ExportError> {
        let table = format!("export_{}", sink.name);
        let url = sink.url.as_deref().unwrap_or_default();
        let config = crate::pg::parse_url(url)
            .map_err(|message| ExportError::Config(format!("sink `{}`: {message}", sink.name)))?;
        let target = format!("{} table {table}", crate::pg::describe(&config));
        let names = sink
            .export
            .iter()
            .flat_map(|e| e.mapping.iter().map(|(c, _)| c.as_str()))
            .chain([table.as_str()]);
        for name in names {
            if name.len() > MAX_IDENTIFIER {
                return Err(ExportError::Config(format!(
                    "sink `{}`: PostgreSQL keeps names of at most {MAX_IDENTIFIER} bytes; `{name}` is {}",
                    sink.name,
                    name.len()
                )));
            }
        }
        Ok(Self {
            config,
            table,
            target,
        })
    }

    fn err(&self, e: &dyn crate::pg::ErrorText) -> ExportError {
        let message = crate::pg::error_text(e);
        ExportError::Postgres {
            target: self.target.clone(),
            message,
        }
    }
}

#[async_trait]
impl ExportStore for PostgresStore {
    fn target(&self) -> String {
        self.target.clone()
    }

    async fn transact(&self, columns: &[String], merge: Merge) -> Result<Report, ExportError> {
        let (mut client, driver) = crate::pg::connect(&self.config, &self.target)
            .await
            .map_err(|e| self.err(&e))?;
        let result = async {
            let t = quote(&self.table);
            let tx = client.transaction().await.map_err(|e| self.err(&e))?;
            let mapped: Vec<String> = columns.iter().map(|c| format!("{} text", quote(c))).collect();
            tx.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {t} ({}{}{} boolean NOT NULL DEFAULT true, {} text NOT NULL DEFAULT '', {} text NOT NULL DEFAULT '');
                 LOCK TABLE {t} IN SHARE ROW EXCLUSIVE MODE;",
                mapped.join(", "),
                if mapped.is_empty() { "" } else { ", " },
                quote(ACTIVE),
                quote(SOURCE),
                quote(SYNCED_AT),
            ))
            .await
            .map_err(|e| self.err(&e))?;
            let mut stored: Vec<String> = tx
                .query(
                    "SELECT column_name::text FROM information_schema.columns
                     WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                    &[&self.table],
                )
                .await
                .map_err(|e| self.err(&e))?
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect();
            let decls = columns.iter().map(|_| "text").chain([
                "boolean NOT NULL DEFAULT true",
                "text NOT NULL DEFAULT ''",
                "text NOT NULL DEFAULT ''",
            ]);
            for (name, decl) in header(columns).iter().zip(decls) {
                if !stored.contains(name) {
                    tx.batch_execute(&format!("ALTER TABLE {t} ADD COLUMN {} {decl}", quote(name)))
                        .await
                        .map_err(|e| self.err(&e))?;
                    stored.push(name.clone());
                }
            }
            let select: Vec<String> = stored.iter().map(|c| format!("{}::text", quote(c))).collect();
            // ctid order is the physical order: the insertion order of the last rewrite in
            // practice, which is all the engine needs (it only breaks ties between rows that
            // share a key value, which the engine itself never writes).
            let rows = tx
                .query(&format!("SELECT {} FROM {t} ORDER BY ctid", select.join(", ")), &[])
                .await
                .map_err(|e| self.err(&e))?;
            let layout = Layout::new(&stored, columns);
            check_layout(&self.target, &stored, &layout, columns)?;
            let mut table = TargetTable::empty(columns);
            table.rows = rows
                .iter()
                .map(|r| {
                    let fields: Vec<Option<String>> =
                        (0..stored.len()).map(|i| r.get::<_, Option<String>>(i)).collect();
                    layout.row(&fields)
                })
                .collect();
            let report = merge(&mut table);
            tx.execute(&format!("DELETE FROM {t}"), &[])
                .await
                .map_err(|e| self.err(&e))?;
            insert(&tx, &t, &table).await.map_err(|e| self.err(&e))?;
            tx.commit().await.map_err(|e| self.err(&e))?;
            Ok(report)
        }
        .await;
        drop(client);
        let _ = driver.await;
        result
    }
}

/// Inserts every row in one statement: one array parameter per column, zipped by `unnest`.
async fn insert(
    tx: &tokio_postgres::Transaction<'_>,
    quoted_table: &str,
    table: &TargetTable,
) -> Result<(), tokio_postgres::Error> {
    if table.rows.is_empty() {
        return Ok(());
    }
    let mapped: Vec<Vec<Option<String>>> = (0..table.columns.len())
        .map(|i| table.rows.iter().map(|r| r.values[i].clone()).collect())
        .collect();
    let active: Vec<bool> = table.rows.iter().map(|r| r.active).collect();
    let source: Vec<String> = table.rows.iter().map(|r| r.source.clone()).collect();
    let synced_at: Vec<String> = table.rows.iter().map(|r| r.synced_at.clone()).collect();
    let mut params: Vec<&(dyn ToSql + Sync)> =
        mapped.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
    params.push(&active);
    params.push(&source);
    params.push(&synced_at);
    let casts: Vec<String> = (1..=params.len())
        .map(|i| {
            let ty = if i == table.columns.len() + 1 {
                "boolean"
            } else {
                "text"
            };
            format!("${i}::{ty}[]")
        })
        .collect();
    let cols: Vec<String> = table.header().iter().map(|c| quote(c)).collect();
    tx.execute(
        &format!(
            "INSERT INTO {quoted_table} ({}) SELECT * FROM unnest({})",
            cols.join(", "),
            casts.join(", ")
        ),
        &params,
    )
    .await
    .map(drop)
}
