//! Writing a sync's pages into its generation, and reading a generation back (to replay it
//! to the sinks when a sync resumes).

use std::sync::Arc;

use idhost_connector_sdk::{Entitlement, Grant, Resource};
use rusqlite::params;

use super::checkpoint::{self, Checkpoint};
use super::store::{SqliteState, StateError, bad_record};
use crate::db::{LARGE_WRITE, release_cache};
use crate::record::Batch;

/// The three snapshot tables, in the order they are written and replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordTable {
    /// `snap_resources`.
    Resources,
    /// `snap_entitlements`.
    Entitlements,
    /// `snap_grants`.
    Grants,
}

impl RecordTable {
    /// All three, in order (a grant's entitlement and principal come before it).
    pub const ALL: [RecordTable; 3] = [
        RecordTable::Resources,
        RecordTable::Entitlements,
        RecordTable::Grants,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            RecordTable::Resources => "snap_resources",
            RecordTable::Entitlements => "snap_entitlements",
            RecordTable::Grants => "snap_grants",
        }
    }
}

/// What [`StateStore::discard_listing`] dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discarded {
    /// Resources.
    pub resources: u64,
    /// Entitlements.
    pub entitlements: u64,
    /// Grants.
    pub grants: u64,
}

impl SqliteState {
    /// Commits one page of `rtype` and the checkpoint that follows it, in one transaction.
    /// `removed` are the ids an incremental page names as removed.
    pub async fn stage_page(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
        rtype: &str,
        batch: Arc<Batch>,
        removed: Vec<String>,
    ) -> Result<(), StateError> {
        let (source, rtype, generation, data) = (
            source.to_owned(),
            rtype.to_owned(),
            checkpoint.generation,
            checkpoint.to_json(),
        );
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            write_batch(&tx, &source, generation, &rtype, &batch)?;
            if !removed.is_empty() {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR IGNORE INTO snap_removed (source, gen, id) VALUES (?1, ?2, ?3)",
                )?;
                for id in &removed {
                    stmt.execute(params![source, generation, id])?;
                }
            }
            checkpoint::save(&tx, &source, &data)?;
            tx.commit()?;
            if batch.len() >= LARGE_WRITE {
                release_cache(conn)?;
            }
            Ok(())
        })
        .await
    }

    /// Drops what generation `generation` of `source` staged from the listing of `rtype` (its
    /// resources, and the entitlements and grants its pages carried) and stores the checkpoint
    /// `checkpoint` makes from the numbers dropped, in one transaction. For a listing that
    /// shifted under the connector: it is listed again from its first page.
    pub async fn discard_listing(
        &self,
        source: &str,
        generation: i64,
        rtype: &str,
        checkpoint: impl FnOnce(Discarded) -> String + Send + 'static,
    ) -> Result<Discarded, StateError> {
        let (source, rtype) = (source.to_owned(), rtype.to_owned());
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            let mut dropped = [0u64; 3];
            for (n, (table, column)) in [
                ("snap_resources", "type"),
                ("snap_entitlements", "rtype"),
                ("snap_grants", "rtype"),
            ]
            .into_iter()
            .enumerate()
            {
                dropped[n] = tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE source = ?1 AND gen = ?2 AND {column} = ?3"
                    ),
                    params![source, generation, rtype],
                )? as u64;
            }
            let discarded = Discarded {
                resources: dropped[0],
                entitlements: dropped[1],
                grants: dropped[2],
            };
            checkpoint::save(&tx, &source, &checkpoint(discarded))?;
            tx.commit()?;
            Ok(discarded)
        })
        .await
    }

    /// Up to `limit` records of `table` in generation `gen` of `source` whose id sorts after
    /// `after`, in id order, and the last id returned.
    pub async fn replay_chunk(
        &self,
        source: &str,
        generation: i64,
        table: RecordTable,
        after: String,
        limit: usize,
    ) -> Result<(Batch, Option<String>), StateError> {
        let source = source.to_owned();
        self.read(move |conn| {
            let sql = match table {
                RecordTable::Resources | RecordTable::Entitlements => format!(
                    "SELECT id, record FROM {} WHERE source = ?1 AND gen = ?2 AND id > ?3 ORDER BY id LIMIT ?4",
                    table.name()
                ),
                RecordTable::Grants => "SELECT id, entitlement, principal FROM snap_grants
                     WHERE source = ?1 AND gen = ?2 AND id > ?3 ORDER BY id LIMIT ?4"
                    .to_owned(),
            };
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![source, generation, after, limit as i64])?;
            read_rows(&mut rows, table)
        })
        .await
    }
}

/// Reads `(id, record)` rows (or `(id, entitlement, principal)` for grants) into a batch.
pub(super) fn read_rows(
    rows: &mut rusqlite::Rows<'_>,
    table: RecordTable,
) -> Result<(Batch, Option<String>), rusqlite::Error> {
    let mut batch = Batch::default();
    let mut last = None;
    while let Some(row) = rows.next()? {
        let id: String = row.get(0)?;
        match table {
            RecordTable::Resources => {
                let text: String = row.get(1)?;
                let r: Resource = serde_json::from_str(&text).map_err(|e| bad_record(1, e))?;
                batch.resources.push(r);
            }
            RecordTable::Entitlements => {
                let text: String = row.get(1)?;
                let e: Entitlement = serde_json::from_str(&text).map_err(|e| bad_record(1, e))?;
                batch.entitlements.push(e);
            }
            RecordTable::Grants => {
                batch
                    .grants
                    .push(Grant::from_parts(id.clone(), row.get(1)?, row.get(2)?))
            }
        }
        last = Some(id);
    }
    Ok((batch, last))
}

/// Upserts a batch into generation `gen` (a record listed twice keeps its last version, as
/// the sinks do). What every row of a table shares (source, generation, type) is bound once
/// per page, not per row.
pub(super) fn write_batch(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    generation: i64,
    rtype: &str,
    batch: &Batch,
) -> Result<(), rusqlite::Error> {
    if !batch.resources.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO snap_resources (source, gen, id, type, status, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        stmt.raw_bind_parameter(1, source)?;
        stmt.raw_bind_parameter(2, generation)?;
        let mut record = Vec::new();
        for r in &batch.resources {
            record.clear();
            serde_json::to_writer(&mut record, r).map_err(|e| bad_record(5, e))?;
            stmt.raw_bind_parameter(3, &r.id)?;
            stmt.raw_bind_parameter(4, &r.rtype)?;
            stmt.raw_bind_parameter(5, r.status.as_str())?;
            stmt.raw_bind_parameter(6, json_text(&record))?;
            stmt.raw_execute()?;
        }
    }
    if !batch.entitlements.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO snap_entitlements (source, gen, id, rtype, resource, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        stmt.raw_bind_parameter(1, source)?;
        stmt.raw_bind_parameter(2, generation)?;
        stmt.raw_bind_parameter(4, rtype)?;
        let mut record = Vec::new();
        for e in &batch.entitlements {
            record.clear();
            serde_json::to_writer(&mut record, e).map_err(|err| bad_record(5, err))?;
            stmt.raw_bind_parameter(3, &e.id)?;
            stmt.raw_bind_parameter(5, &e.resource)?;
            stmt.raw_bind_parameter(6, json_text(&record))?;
            stmt.raw_execute()?;
        }
    }
    if !batch.grants.is_empty() {
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO snap_grants (source, gen, id, rtype, entitlement, principal)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        stmt.raw_bind_parameter(1, source)?;
        stmt.raw_bind_parameter(2, generation)?;
        stmt.raw_bind_parameter(4, rtype)?;
        for g in &batch.grants {
            stmt.raw_bind_parameter(3, &g.id)?;
            stmt.raw_bind_parameter(5, &g.entitlement)?;
            stmt.raw_bind_parameter(6, &g.principal)?;
            stmt.raw_execute()?;
        }
    }
    Ok(())
}

/// Serialized JSON (always UTF-8) as a TEXT value, without copying it into a `String`.
fn json_text(json: &[u8]) -> rusqlite::types::ToSqlOutput<'_> {
    rusqlite::types::ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(json))
}
