//! The diff of a complete sync against the last snapshot, and the commit that makes the new
//! snapshot the last one.
//!
//! The diff is a handful of `SELECT` statements joining generation `g` and `g + 1` on their
//! `(source, gen, id)` keys, so SQLite streams both sides in id order and no side is ever
//! loaded into memory, whatever the size. Two Rust functions registered on the connection do
//! the rest ([`super::functions`]). The statements run on a connection of their own, and the
//! events they yield are written to the outbox in short transactions of [`EVENT_CHUNK`], so a
//! long diff never holds the writing connection other sources wait for. A diff cut short
//! (a crash) is simply run again: event ids are stable and inserts ignore repeats.

use rusqlite::params;

use super::checkpoint::{Checkpoint, Phase, Removals};
use super::store::{SqliteState, StateError};
use crate::db::{durably, release_cache};

/// Events written to the outbox per transaction of a diff.
const EVENT_CHUNK: usize = 2000;

/// One event row as the diff yields it: id, sync_id, event, subject, at, changes.
type EventRow = (String, String, String, String, String, String);

/// Which statuses count as active.
const ACTIVE: &str = "'enabled'";

/// The diff statements, in the order events are emitted: created (and reactivated after a
/// disappearance), reactivated, updated, grant_added, grant_removed, deactivated. Parameters:
/// `?1` source, `?2` base generation, `?3` new generation, `?4` sync id, `?5` time, `?6` JSON
/// array of the types this sync listed (what went missing counts only within them), `?7` JSON
/// object of each type's volatile fields.
fn statements() -> Vec<String> {
    let insert = "";
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

impl SqliteState {
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
        let store = self.clone();
        let total = tokio::task::spawn_blocking(move || -> Result<u64, StateError> {
            let mut total = 0u64;
            slow_diff_hook(&source);
            if let Some(base) = cp.base_gen {
                let mut reader = store.own_connection().map_err(|e| store.sqlite(e))?;
                for sql in statements() {
                    total += store.diff_statement(
                        &mut reader,
                        &sql,
                        &source,
                        base,
                        &cp,
                        &at,
                        &types,
                        &volatile,
                    )?;
                }
            }
            // Synced to disk before any sink commits the sync: a power cut after a sink made
            // the new snapshot visible cannot take back the outbox (and the pages) it was
            // made from, so a resumed delivery hands it the same events again, same ids.
            store.writer().with_conn(|conn| {
                durably(conn, |conn| {
                    super::checkpoint::save(conn, &source, &cp.to_json())?;
                    // The sinks commit next.
                    release_cache(conn)
                })
            })?;
            Ok(total)
        })
        .await
        .map_err(|e| StateError::Task {
            path: self.path().to_owned(),
            message: e.to_string(),
        })??;
        Ok(total)
    }

    fn sqlite(&self, source: rusqlite::Error) -> StateError {
        StateError::Sqlite {
            path: self.path().to_owned(),
            source,
        }
    }

    /// Runs one diff statement on `reader`, writing what it yields to the outbox in chunks.
    #[allow(
        clippy::too_many_arguments,
        reason = "the statement's parameters, in order"
    )]
    fn diff_statement(
        &self,
        reader: &mut rusqlite::Connection,
        sql: &str,
        source: &str,
        base: i64,
        cp: &Checkpoint,
        at: &str,
        types: &str,
        volatile: &str,
    ) -> Result<u64, StateError> {
        let all = params![source, base, cp.generation, cp.sync_id, at, types, volatile];
        let mut stmt = reader.prepare(sql).map_err(|e| self.sqlite(e))?;
        // Each statement binds the leading parameters it uses.
        let used = stmt.parameter_count();
        let mut rows = stmt.query(&all[..used]).map_err(|e| self.sqlite(e))?;
        let mut chunk: Vec<EventRow> = Vec::with_capacity(EVENT_CHUNK);
        let mut total = 0u64;
        loop {
            let row = rows.next().map_err(|e| self.sqlite(e))?;
            if let Some(row) = row {
                let get = |i| row.get::<_, String>(i);
                let event = (|| {
                    Ok::<_, rusqlite::Error>((get(0)?, get(2)?, get(3)?, get(4)?, get(5)?, get(6)?))
                })()
                .map_err(|e| self.sqlite(e))?;
                chunk.push(event);
            }
            let done = row.is_none();
            if chunk.len() >= EVENT_CHUNK || (done && !chunk.is_empty()) {
                let rows = std::mem::take(&mut chunk);
                total += self
                    .writer()
                    .with_conn(|conn| insert_events(conn, source, &rows))?;
            }
            if done {
                return Ok(total);
            }
        }
    }

    /// What `checkpoint`'s complete listing removes from the previous snapshot: resources gone
    /// (within the types it listed) or newly `deleted`, and grants gone (DESIGN §7.1).
    pub async fn removals(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
    ) -> Result<Removals, StateError> {
        let Some(base) = checkpoint.base_gen else {
            return Ok(Removals::default());
        };
        let (source, generation) = (source.to_owned(), checkpoint.generation);
        let types = serde_json::to_string(&checkpoint.types).unwrap_or_default();
        self.read(move |conn| {
            let count = |sql: &str| -> Result<u64, rusqlite::Error> {
                let mut stmt = conn.prepare(sql)?;
                let used = stmt.parameter_count();
                let all = params![source, base, generation, types];
                stmt.query_row(&all[..used], |r| r.get::<_, i64>(0))
                    .map(|n| n.max(0) as u64)
            };
            Ok(Removals {
                resources_before: count(
                    "SELECT count(*) FROM snap_resources WHERE source = ?1 AND gen = ?2",
                )?,
                resources: count(
                    "SELECT count(*) FROM snap_resources o
                     LEFT JOIN snap_resources n ON n.source = ?1 AND n.gen = ?3 AND n.id = o.id
                     WHERE o.source = ?1 AND o.gen = ?2 AND o.status != 'deleted'
                       AND ((n.id IS NULL AND o.type IN (SELECT value FROM json_each(?4)))
                            OR n.status = 'deleted')",
                )?,
                grants_before: count(
                    "SELECT count(*) FROM snap_grants WHERE source = ?1 AND gen = ?2",
                )?,
                grants: count(
                    "SELECT count(*) FROM snap_grants o
                     WHERE o.source = ?1 AND o.gen = ?2 AND o.rtype IN (SELECT value FROM json_each(?4))
                       AND NOT EXISTS (SELECT 1 FROM snap_grants n WHERE n.source = ?1 AND n.gen = ?3 AND n.id = o.id)",
                )?,
            })
        })
        .await
    }

    /// Makes `checkpoint`'s generation `source`'s snapshot: records tombstones of what went
    /// missing, drops older generations, commits the connector state, clears the deliveries
    /// and the checkpoint, and drops the events every sink has taken (the others wait for
    /// the sinks behind; see [`super::outbox`]), in one transaction. Returns the sinks that
    /// lost events past the outbox's cap, with how many.
    pub async fn commit_sync(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
        finished_at: String,
    ) -> Result<Vec<(String, u64)>, StateError> {
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
            for table in ["snap_removed", "sync_deliveries", "sync_checkpoints"] {
                tx.execute(&format!("DELETE FROM {table} WHERE source = ?1"), params![source])?;
            }
            let lost = super::outbox::prune(&tx, &source)?;
            tx.commit()?;
            release_cache(conn)?;
            Ok(lost)
        })
        .await
    }
}

/// Inserts diff rows into the outbox in one transaction; returns how many were new.
fn insert_events(
    conn: &mut rusqlite::Connection,
    source: &str,
    rows: &[EventRow],
) -> Result<u64, rusqlite::Error> {
    let tx = conn.transaction()?;
    let mut total = 0u64;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO events (id, source, sync_id, event, subject, at, changes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (id, sync_id, event, subject, at, changes) in rows {
            total +=
                stmt.execute(params![id, source, sync_id, event, subject, at, changes])? as u64;
        }
    }
    tx.commit()?;
    Ok(total)
}

/// Fault hook (tests): `IDHOST_FAULT_SLOW_DIFF=<source>:<ms>` makes that source's diff take
/// `ms` longer, holding no connection other sources need, as a diff of a very large snapshot
/// would read for long.
fn slow_diff_hook(source: &str) {
    let Ok(spec) = std::env::var("IDHOST_FAULT_SLOW_DIFF") else {
        return;
    };
    if let Some((name, ms)) = spec.split_once(':')
        && name == source
        && let Ok(ms) = ms.parse::<u64>()
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}
