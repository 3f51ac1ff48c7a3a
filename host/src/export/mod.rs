//! Oomnitza-style exports: a sink with a `mapping` keeps ONE table of people (or any records)
//! across runs, the way an Oomnitza user integration keeps People records.
//!
//! ```toml
//! [sinks.people]
//! type = "csv"                      # or sqlite (table `export_<sink>`) or postgres
//! path = "out/people.csv"
//! inputs = ["clickwrap"]
//! records = ["user"]
//! sync_key = ["Email", "User Id"]   # first key column that matches a row wins
//! mode = "create_and_update"        # create_only | update_only
//! deactivate_missing = true
//! [sinks.people.mapping]
//! "Email" = "user.emails.primary"   # a record field path (see `fields`)
//! "User Id" = "profile.user_id"
//! "Company" = { value = "ACME" }    # a constant
//! ```
//!
//! The pieces, each independent of the others: `fields` (field paths, parsed when the sink is
//! built), `plan` (the checked settings), `engine` (the merge rules: keys, modes, deactivation,
//! reactivation; no storage), `store` (the atomic load-merge-save contract) with its backends:
//! CSV (`csv`), SQLite and PostgreSQL (`sqlite`, `postgres`), and `sink` (the
//! `Sink`/`SinkSession` glue: records are staged per sync and merged only on commit).
//!
//! Decisions:
//! - The sync key is global to the target, not per source: like Oomnitza's people table, one
//!   person is one row whichever credential reported them, and the `source` column names the
//!   source that last wrote it. Deactivation only touches rows whose `source` is the source whose
//!   complete sync missed them, so two sources feeding one export never deactivate each other's
//!   people.
//! - A complete sync is one the host committed that listed at least one resource type the
//!   export takes; anything else (a failure, a cancel, a sync narrowed to other types)
//!   deactivates nobody, and a failure or cancel changes nothing at all. An incremental (delta)
//!   sync reaches the export completed by the host with the unchanged records of its snapshot,
//!   and a resumed sync with the pages it had before, so both are complete too.
//! - Records are staged in memory between `write` and `commit` as their mapped values only (a
//!   100,000-user sync into a 7-column CSV peaks at ~150 MB RSS for the whole debug process).
//! - Tracking columns (`active`, `source`, `synced_at`) follow every sync that sees a row, in
//!   every mode; `mode` governs the mapped columns only.
//! - Column order is the order the mapping table lists its columns in (the config parser keeps
//!   TOML tables in file order), then the tracking columns: stable across runs.

mod csv;
mod engine;
mod error;
mod fields;
mod plan;
mod postgres;
mod sink;
mod sqlite;
mod store;
mod table;

use std::sync::Arc;

use crate::config::{SinkConfig, SinkKind};
use crate::sinks::{Sink, SinkError};

pub use error::ExportError;
use store::ExportStore;

/// Builds the export sink of `config`: a `csv` sink, or a `sqlite` or `postgres` sink with a
/// `mapping`.
pub async fn open(config: SinkConfig) -> Result<Arc<dyn Sink>, SinkError> {
    let plan = compile(&config)?;
    let store: Arc<dyn ExportStore> = match config.kind {
        SinkKind::Csv => Arc::new(csv::CsvStore::new(&config)?),
        SinkKind::Sqlite => Arc::new(
            sqlite::SqliteStore::open(&config)
                .await
                .map_err(|e| e.into_sink(&config.name))?,
        ),
        SinkKind::Postgres => {
            Arc::new(postgres::PostgresStore::new(&config).map_err(|e| e.into_sink(&config.name))?)
        }
        other => {
            return Err(SinkError::Other {
                sink: config.name.clone(),
                message: format!(
                    "a `mapping` makes an export, which `csv`, `sqlite` and `postgres` sinks can hold; a `{}` sink cannot",
                    other.as_str()
                ),
            });
        }
    };
    Ok(Arc::new(sink::ExportSink::new(config, plan, store)))
}

/// Checks the export settings of `config` without opening anything: field paths, key columns,
/// column names. For `idhost check` and config validation, so a mapping that can never work is
/// reported before any sync (the sinks run the same check when they are built).
pub fn validate(config: &SinkConfig) -> Result<(), ExportError> {
    plan::Plan::new(config).map(drop)
}

fn compile(config: &SinkConfig) -> Result<plan::Plan, SinkError> {
    plan::Plan::new(config).map_err(|e| e.into_sink(&config.name))
}
