//! The diff of a complete sync against the last snapshot, and the commit that makes the new
//! snapshot the last one.
//!
//! The diff is a handful of `INSERT INTO events SELECT …` statements joining generation `g`
//! and `g + 1` on their `(source, gen, id)` keys, so SQLite streams both sides in id order
//! and no side is ever loaded into memory, whatever the size. Two Rust functions registered
//! on the connection do the rest ([`super::functions`]).

use rusqlite::params;

use super::checkpoint::{Checkpoint, Phase};
use super::store::{StateError, StateStore};
use crate::db::{durably, release_cache};

/// Which statuses count as active.
const ACTIVE: &str = "'enabled'";

/// The diff statements, in the order events are emitted: created (and reactivated after a
/// disappearance), reactivated, updated, grant_added, grant_removed, deactivated. Parameters:
/// `?1` source, `?2` base generation, `?3` new generation, `?4` sync id, `?5` time, `?6` JSON
/// array of the types this sync listed (what went missing counts only within them), `?7` JSON
/// object of each type's volatile fields.
fn statements() -> Vec<String> {
    let insert = "INSERT OR IGNORE INTO events (id, source, sync_id, event, subject, at, changes)";
    let in_old = |alias: &str, table: &str| {
        format!(
            "EXISTS (SELECT 1 FROM {table} o WHERE o.source = ?1 AND o.gen = ?2 AND o.id = {alias}.id)"
        )
    };
    let in_new = |alias: &str, table: &str| {
        format!(
            "EXISTS (SELECT 1 FROM {table} n WHERE n.source = ?1 AND n.gen = ?3 AND n.id = {alias}.id)"
        )
    };
    vec![
        // New resources; one that went missing earlier and is back enabled is reactivated.
        format!(
            "{insert} SELECT idhost_event_id(?1, ?4, id, kind), ?1, ?4, kind, id, ?5, changes FROM (
               SELECT n.id AS id,
                 CASE WHEN t.id IS NOT NULL AND n.status = {ACTIVE} THEN 'reactivated' ELSE 'created' END AS kind,
                 CASE WHEN t.id IS NOT NULL AND n.status = {ACTIVE}
                   THEN json_object('status', json_object('old', 'deleted', 'new', n.status)) ELSE '{{}}' END AS changes
               FROM snap_resources n LEFT JOIN tombstones t ON t.source = ?1 AND t.id = n.id
               WHERE n.source = ?1 AND n.gen = ?3 AND NOT {})
             ORDER BY id",
            in_old("n", "snap_resources")
        ),
        // Inactive before, active now.
        format!(
            "{insert} SELECT idhost_event_id(?1, ?4, n.id, 'reactivated'), ?1, ?4, 'reactivated', n.id, ?5,
               json_object('status', json_object('old', o.status, 'new', n.status))
             FROM snap_resources n JOIN snap_resources o ON o.source = ?1 AND o.gen = ?2 AND o.id = n.id
             WHERE n.source = ?1 AND n.gen = ?3 AND o.status != {ACTIVE} AND n.status = {ACTIVE}
             ORDER BY n.id"
        ),
        // Changed fields (a status flip is its own event, so it is left out here).
        format!(
            "{insert} SELECT idhost_event_id(?1, ?4, id, 'updated'), ?1, ?4, 'updated', id, ?5, c FROM (
               SELECT n.id AS id,
                 idhost_changes(o.record, n.record, (o.status = {ACTIVE}) != (n.status = {ACTIVE}),
                                json_extract(?7, '$.' || json_quote(n.type))) AS c
               FROM snap_resources n JOIN snap_resources o ON o.source = ?1 AND o.gen = ?2 AND o.id = n.id
               WHERE n.source = ?1 AND n.gen = ?3 AND o.record != n.record)
             WHERE c IS NOT NULL ORDER BY id"
        ),
        format!(
            "{insert} SELECT idhost_event_id(?1, ?4, n.id, 'grant_added'), ?1, ?4, 'grant_added', n.id, ?5,
               json_object('entitlement', json_object('old', NULL, 'new', n.entitlement),
                           'principal', json_object('old', NULL, 'new', n.principal))
             FROM snap_grants n WHERE n.source = ?1 AND n.gen = ?3 AND NOT {}
             ORDER BY n.id",
            in_old("n", "snap_grants")
        ),
        format!(
            "{insert} SELECT idhost_event_id(?1, ?4, g.id, 'grant_removed'), ?1, ?4, 'grant_removed', g.id, ?5,
               json_object('entitlement', json_object('old', g.entitlement, 'new', NULL),
                           'principal', json_object('old', g.principal, 'new', NULL))
             FROM snap_grants g WHERE g.source = ?1 AND g.gen = ?2
               AND g.rtype IN (SELECT value FROM json_each(?6)) AND NOT {}
             ORDER BY g.id",
            in_new("g", "snap_grants")
        ),
        // Active before, and now disabled or gone.
        format!(
            "{insert} SELECT idhost_event_id(?1, ?4, id, 'deactivated'), ?1, ?4, 'deactivated', id, ?5,
               json_object('status', json_object('old', old_status, 'new', new_status)) FROM (
               SELECT o.id AS id, o.status AS old_status, coalesce(n.status, 'deleted') AS new_status
               FROM snap_resources o LEFT JOIN snap_resources n ON n.source = ?1 AND n.gen = ?3 AND n.id = o.id
               WHERE o.source = ?1 AND o.gen = ?2 AND o.status = {ACTIVE}
                 AND ((n.id IS NULL AND o.type IN (SELECT value FROM json_each(?6)))
                      OR (n.id IS NOT NULL AND n.status != {ACTIVE})))
             ORDER BY id"
        ),
    ]
}

impl StateStore {
    /// Diffs `checkpoint`'s generation against its base, writes the events into the outbox
    /// and marks the sync `delivering`, in one transaction. Returns the number of events (none
    /// for a source's first sync, which is its baseline).
    pub async fn diff(
        &self,
        source: &str,
        checkpoint: &mut Checkpoint,
        at: String,
        volatile: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<u64, StateError> {
        checkpoint.phase = Phase::Delivering;
        let (source, cp) = (source.to_owned(), checkpoint.clone());
        let types = serde_json::to_string(&cp.types).unwrap_or_default();
        let volatile = serde_json::to_string(volatile).unwrap_or_else(|_| "{}".into());
        // Synced to disk before any sink commits the sync: a power cut after a sink made the
        // new snapshot visible cannot take back the outbox (and the pages) it was made from,
        // so a resumed delivery hands it the same events again, with the same ids.
        self.blocking(move |conn| {
            durably(conn, |conn| {
                let tx = conn.transaction()?;
                let mut total = 0u64;
                if let Some(base) = cp.base_gen {
                    let all = params![source, base, cp.generation, cp.sync_id, at, types, volatile];
                    for sql in statements() {
                        // Each statement binds the leading parameters it uses.
                        let mut stmt = tx.prepare(&sql)?;
                        let used = stmt.parameter_count();
                        total += stmt.execute(&all[..used])? as u64;
                    }
                }
                super::checkpoint::save(&tx, &source, &cp.to_json())?;
                tx.commit()?;
                // The sinks commit next.
                release_cache(conn)?;
                Ok(total)
            })
        })
        .await
    }

    /// Makes `checkpoint`'s generation `source`'s snapshot: records tombstones of what went
    /// missing, drops older generations, commits the connector state, and clears the outbox,
    /// the deliveries and the checkpoint, in one transaction.
    pub async fn commit_sync(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
        finished_at: String,
    ) -> Result<(), StateError> {
        let (source, cp) = (source.to_owned(), checkpoint.clone());
        let types = serde_json::to_string(&cp.types).unwrap_or_default();
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            if let Some(base) = cp.base_gen {
                tx.execute(
                    "INSERT OR REPLACE INTO tombstones (source, id, type, sync_id)
                     SELECT o.source, o.id, o.type, ?4 FROM snap_resources o
                     WHERE o.source = ?1 AND o.gen = ?2 AND o.type IN (SELECT value FROM json_each(?5))
                       AND NOT EXISTS (SELECT 1 FROM snap_resources n WHERE n.source = ?1 AND n.gen = ?3 AND n.id = o.id)",
                    params![source, base, cp.generation, cp.sync_id, types],
                )?;
            }
            tx.execute(
                "DELETE FROM tombstones WHERE source = ?1 AND EXISTS (
                   SELECT 1 FROM snap_resources n WHERE n.source = ?1 AND n.gen = ?2 AND n.id = tombstones.id)",
                params![source, cp.generation],
            )?;
            for table in ["snap_resources", "snap_entitlements", "snap_grants"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE source = ?1 AND gen < ?2"),
                    params![source, cp.generation],
                )?;
            }
            tx.execute(
                "INSERT OR REPLACE INTO snapshots (source, gen, sync_id, finished_at) VALUES (?1, ?2, ?3, ?4)",
                params![source, cp.generation, cp.sync_id, finished_at],
            )?;
            super::connector::apply_connector_state(&tx, &source, cp.staged_state.iter())?;
            for table in ["snap_removed", "events", "sync_deliveries", "sync_checkpoints"] {
                tx.execute(&format!("DELETE FROM {table} WHERE source = ?1"), params![source])?;
            }
            tx.commit()?;
            release_cache(conn)
        })
        .await
    }
}
