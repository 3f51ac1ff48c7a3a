//! Carry-over: after an incremental listing (a delta) or a `--resources-only` sync, the
//! records the sync did not see come from the last snapshot, so the new generation, and
//! every sink, holds a complete snapshot again.
//!
//! A record carries over when its type (for entitlements and grants: the type of the listing
//! that produced it) is one the sync did not list completely, the sync did not list it again,
//! no page named it removed, and nothing it hangs on went away: an entitlement's resource, a
//! grant's entitlement or principal that was in the last snapshot but is not in the new one,
//! or was named removed, takes the entitlement or grant with it.
//!
//! Chunks are picked in id order by [`StateStore::carry_chunk`], handed to the sinks, then
//! copied with [`StateStore::keep_carried`]; a resume repeats neither (the copied ones are in
//! the new generation and no longer qualify).

use rusqlite::params;

use super::checkpoint::{self, Checkpoint};
use super::stage::{RecordTable, read_rows};
use super::store::{SqliteState, StateError};
use crate::record::Batch;

/// `?1` source, `?2` base generation, `?3` new generation, `?4` ids after, `?5` JSON array of
/// the carried types; the row is `o`.
fn condition(table: RecordTable) -> &'static str {
    match table {
        RecordTable::Resources => {
            "o.source = ?1 AND o.gen = ?2 AND o.id > ?4
             AND o.type IN (SELECT value FROM json_each(?5))
             AND NOT EXISTS (SELECT 1 FROM snap_resources n WHERE n.source = ?1 AND n.gen = ?3 AND n.id = o.id)
             AND NOT EXISTS (SELECT 1 FROM snap_removed x WHERE x.source = ?1 AND x.gen = ?3 AND x.id = o.id)"
        }
        RecordTable::Entitlements => {
            "o.source = ?1 AND o.gen = ?2 AND o.id > ?4
             AND o.rtype IN (SELECT value FROM json_each(?5))
             AND NOT EXISTS (SELECT 1 FROM snap_entitlements n WHERE n.source = ?1 AND n.gen = ?3 AND n.id = o.id)
             AND NOT EXISTS (SELECT 1 FROM snap_removed x WHERE x.source = ?1 AND x.gen = ?3 AND x.id IN (o.id, o.resource))
             AND (NOT EXISTS (SELECT 1 FROM snap_resources r WHERE r.source = ?1 AND r.gen = ?2 AND r.id = o.resource)
                  OR EXISTS (SELECT 1 FROM snap_resources r WHERE r.source = ?1 AND r.gen = ?3 AND r.id = o.resource))"
        }
        RecordTable::Grants => {
            "o.source = ?1 AND o.gen = ?2 AND o.id > ?4
             AND o.rtype IN (SELECT value FROM json_each(?5))
             AND NOT EXISTS (SELECT 1 FROM snap_grants n WHERE n.source = ?1 AND n.gen = ?3 AND n.id = o.id)
             AND NOT EXISTS (SELECT 1 FROM snap_removed x WHERE x.source = ?1 AND x.gen = ?3
                             AND x.id IN (o.id, o.entitlement, o.principal))
             AND (NOT EXISTS (SELECT 1 FROM snap_entitlements e WHERE e.source = ?1 AND e.gen = ?2 AND e.id = o.entitlement)
                  OR EXISTS (SELECT 1 FROM snap_entitlements e WHERE e.source = ?1 AND e.gen = ?3 AND e.id = o.entitlement))
             AND (NOT EXISTS (SELECT 1 FROM snap_resources r WHERE r.source = ?1 AND r.gen = ?2 AND r.id = o.principal)
                  OR EXISTS (SELECT 1 FROM snap_resources r WHERE r.source = ?1 AND r.gen = ?3 AND r.id = o.principal))"
        }
    }
}

/// The types whose records of `table` carry over in this sync.
fn carried_types(checkpoint: &Checkpoint, table: RecordTable) -> Vec<String> {
    match table {
        RecordTable::Resources => checkpoint.incremental_types.iter().cloned().collect(),
        RecordTable::Entitlements | RecordTable::Grants => checkpoint.detail_carry_types(),
    }
}

impl SqliteState {
    /// Up to `limit` records of `table` that carry over into `checkpoint`'s generation, with
    /// ids after `after`, in id order, and the last id returned. Empty when nothing carries
    /// over (no previous snapshot, or every type listed completely).
    pub async fn carry_chunk(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
        table: RecordTable,
        after: String,
        limit: usize,
    ) -> Result<(Batch, Option<String>), StateError> {
        let types = carried_types(checkpoint, table);
        let Some(base) = checkpoint.base_gen else {
            return Ok((Batch::default(), None));
        };
        if types.is_empty() {
            return Ok((Batch::default(), None));
        }
        let (source, generation) = (source.to_owned(), checkpoint.generation);
        let types = serde_json::to_string(&types).unwrap_or_default();
        self.read(move |conn| {
            let columns = match table {
                RecordTable::Resources | RecordTable::Entitlements => "o.id, o.record",
                RecordTable::Grants => "o.id, o.entitlement, o.principal",
            };
            let sql = format!(
                "SELECT {columns} FROM {} o WHERE {} ORDER BY o.id LIMIT ?6",
                table.name(),
                condition(table)
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params![
                source,
                base,
                generation,
                after,
                types,
                limit as i64
            ])?;
            read_rows(&mut rows, table)
        })
        .await
    }

    /// Copies the records of `table` that carry over, with ids in `(after, upto]`, into
    /// `checkpoint`'s generation, and stores `checkpoint`, in one transaction.
    pub async fn keep_carried(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
        table: RecordTable,
        after: String,
        upto: String,
    ) -> Result<usize, StateError> {
        let types = carried_types(checkpoint, table);
        let Some(base) = checkpoint.base_gen else {
            return Ok(0);
        };
        let (source, generation, data) = (
            source.to_owned(),
            checkpoint.generation,
            checkpoint.to_json(),
        );
        let types = serde_json::to_string(&types).unwrap_or_default();
        self.blocking(move |conn| {
            let columns = match table {
                RecordTable::Resources => "id, type, status, record",
                RecordTable::Entitlements => "id, rtype, resource, record",
                RecordTable::Grants => "id, rtype, entitlement, principal",
            };
            let selected = columns
                .split(", ")
                .map(|c| format!("o.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "INSERT OR IGNORE INTO {table} (source, gen, {columns})
                 SELECT o.source, ?3, {selected} FROM {table} o WHERE {cond} AND o.id <= ?6",
                table = table.name(),
                cond = condition(table),
            );
            let tx = conn.transaction()?;
            let copied = tx.execute(&sql, params![source, base, generation, after, types, upto])?;
            checkpoint::save(&tx, &source, &data)?;
            tx.commit()?;
            Ok(copied)
        })
        .await
    }
}
