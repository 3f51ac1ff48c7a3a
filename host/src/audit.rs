//! The audit trail of provisioning: every attempted change (who, what, when, result) is a row
//! in the state database's `audit` table, written before the command reports, dry runs included.

use std::path::{Path, PathBuf};

use rusqlite::params;
use serde::Serialize;

/// One attempted change.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// RFC 3339.
    pub at: String,
    /// Who asked (`--actor`, else `$USER`).
    pub actor: String,
    /// Source name.
    pub source: String,
    /// `grant`, `revoke`, `create-account`, ...
    pub operation: String,
    /// What it was about (entitlement + principal, grant id, resource id, login).
    pub target: String,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// `changed`, `already`, `refused`, `failed`, `dry_run`; `pending` from the intent written
    /// before the upstream call until its outcome replaces it (a row left `pending` is a call
    /// whose outcome idhost never learnt).
    pub result: String,
    /// Error text or outcome detail (redacted).
    pub detail: String,
}

/// Why the audit row could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The SQLite state database failed.
    #[error("audit log in {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The Postgres state database failed.
    #[error("audit log: {0}")]
    Postgres(#[from] crate::state::StateError),
}

/// Appends `record` to the audit trail of the state database `config` names (`state_url`'s
/// Postgres, else the SQLite file); the new row's id.
pub fn append_in(config: &crate::config::Config, record: &AuditRecord) -> Result<i64, AuditError> {
    let Some(url) = &config.state_postgres else {
        return append(&config.state_path, record);
    };
    let record = record.clone();
    Ok(crate::state::postgres::blocking(url, move |conn| {
        Box::pin(async move {
            let row = conn
                .query_one(
                    "INSERT INTO idhost_state_audit (at, actor, source, operation, target, dry_run, result, detail)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    &[
                        &record.at,
                        &record.actor,
                        &record.source,
                        &record.operation,
                        &record.target,
                        &record.dry_run,
                        &record.result,
                        &record.detail,
                    ],
                )
                .await?;
            Ok(row.get(0))
        })
    })?)
}

/// [`finish`] in the state database `config` names.
pub fn finish_in(
    config: &crate::config::Config,
    id: i64,
    record: &AuditRecord,
) -> Result<(), AuditError> {
    let Some(url) = &config.state_postgres else {
        return finish(&config.state_path, id, record);
    };
    let record = record.clone();
    Ok(crate::state::postgres::blocking(url, move |conn| {
        Box::pin(async move {
            conn.execute(
                "UPDATE idhost_state_audit SET result = $2, detail = $3 WHERE id = $1",
                &[&id, &record.result, &record.detail],
            )
            .await
            .map(drop)
        })
    })?)
}

/// Appends `record` to the `audit` table of the state database at `path`; the new row's id.
pub fn append(path: &Path, record: &AuditRecord) -> Result<i64, AuditError> {
    let wrap = |source| AuditError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let mut conn = crate::db::open(path).map_err(wrap)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS audit (
             id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
             source TEXT NOT NULL, operation TEXT NOT NULL, target TEXT NOT NULL,
             dry_run INTEGER NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL);",
    )
    .map_err(wrap)?;
    // On disk before the command goes on: the intent row precedes the upstream write it
    // records, and must survive a power cut that the write itself survives.
    crate::db::durably(&mut conn, |conn| {
        conn.execute(
            "INSERT INTO audit (at, actor, source, operation, target, dry_run, result, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                record.at,
                record.actor,
                record.source,
                record.operation,
                record.target,
                record.dry_run,
                record.result,
                record.detail
            ],
        )?;
        Ok(conn.last_insert_rowid())
    })
    .map_err(wrap)
}

/// Sets the result and detail of row `id` (written by [`append`] as the intent, before the
/// upstream write it records) to the outcome.
pub fn finish(path: &Path, id: i64, record: &AuditRecord) -> Result<(), AuditError> {
    let wrap = |source| AuditError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let mut conn = crate::db::open(path).map_err(wrap)?;
    crate::db::durably(&mut conn, |conn| {
        conn.execute(
            "UPDATE audit SET result = ?2, detail = ?3 WHERE id = ?1",
            params![id, record.result, record.detail],
        )
    })
    .map(drop)
    .map_err(wrap)
}
