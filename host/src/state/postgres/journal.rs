//! The journal's operations on Postgres, one for one with SQLite's (`stage.rs`, `carry.rs`,
//! `checkpoint.rs`, `connector.rs`, `diff.rs`, `outbox.rs`; their docs say what each does and
//! why). Multi-row writes go through `unnest` of arrays, one statement per page and table.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use idhost_connector_sdk::{Entitlement, Grant, Resource};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row, Transaction};

use super::{FETCH, Failure, PgState};
use crate::clock::now_rfc3339;
use crate::record::{Batch, ChangeEvent, EventKind, event_id};
use crate::state::backend::{CheckpointOf, StateBackend};
use crate::state::checkpoint::{Checkpoint, Phase, Removals};
use crate::state::fence::Fence;
use crate::state::functions::field_changes_except;
use crate::state::outbox::SinkLag;
use crate::state::stage::{Discarded, RecordTable};
use crate::state::store::StateError;

type Params<'a> = Vec<&'a (dyn ToSql + Sync)>;

fn table_name(table: RecordTable) -> &'static str {
    match table {
        RecordTable::Resources => "idhost_state_resources",
        RecordTable::Entitlements => "idhost_state_entitlements",
        RecordTable::Grants => "idhost_state_grants",
    }
}

/// The items of `items` whose id is not repeated later (a record listed twice keeps its last
/// version, as `INSERT OR REPLACE` does on SQLite; one statement may not touch a row twice).
fn last_of<'a, T>(items: &'a [T], id: impl Fn(&'a T) -> &'a str) -> Vec<&'a T> {
    let mut seen = HashSet::new();
    let mut out: Vec<&T> = items.iter().rev().filter(|t| seen.insert(id(t))).collect();
    out.reverse();
    out
}

fn bad_record(err: serde_json::Error) -> StateError {
    StateError::Corrupt {
        path: "state_url".into(),
        what: format!("a stored record does not parse: {err}"),
    }
}

/// Upserts a batch into generation `generation`.
async fn write_batch(
    tx: &Transaction<'_>,
    source: &str,
    generation: i64,
    rtype: &str,
    batch: &Batch,
) -> Result<(), Failure> {
    if !batch.resources.is_empty() {
        let rows = last_of(&batch.resources, |r: &Resource| r.id.as_str());
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let types: Vec<&str> = rows.iter().map(|r| r.rtype.as_str()).collect();
        let statuses: Vec<&str> = rows.iter().map(|r| r.status.as_str()).collect();
        let records = rows
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad_record)?;
        tx.execute(
            "INSERT INTO idhost_state_resources (source, gen, id, type, status, record)
             SELECT $1::text, $2::bigint, u.id, u.type, u.status, u.record
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS u(id, type, status, record)
             ON CONFLICT (source, gen, id) DO UPDATE
               SET type = excluded.type, status = excluded.status, record = excluded.record",
            &[&source, &generation, &ids, &types, &statuses, &records],
        )
        .await?;
    }
    if !batch.entitlements.is_empty() {
        let rows = last_of(&batch.entitlements, |e: &Entitlement| e.id.as_str());
        let ids: Vec<&str> = rows.iter().map(|e| e.id.as_str()).collect();
        let resources: Vec<&str> = rows.iter().map(|e| e.resource.as_str()).collect();
        let records = rows
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad_record)?;
        tx.execute(
            "INSERT INTO idhost_state_entitlements (source, gen, id, rtype, resource, record)
             SELECT $1::text, $2::bigint, u.id, $3::text, u.resource, u.record
             FROM unnest($4::text[], $5::text[], $6::text[]) AS u(id, resource, record)
             ON CONFLICT (source, gen, id) DO UPDATE
               SET rtype = excluded.rtype, resource = excluded.resource, record = excluded.record",
            &[&source, &generation, &rtype, &ids, &resources, &records],
        )
        .await?;
    }
    if !batch.grants.is_empty() {
        let rows = last_of(&batch.grants, |g: &Grant| g.id.as_str());
        let ids: Vec<&str> = rows.iter().map(|g| g.id.as_str()).collect();
        let entitlements: Vec<&str> = rows.iter().map(|g| g.entitlement.as_str()).collect();
        let principals: Vec<&str> = rows.iter().map(|g| g.principal.as_str()).collect();
        tx.execute(
            "INSERT INTO idhost_state_grants (source, gen, id, rtype, entitlement, principal)
             SELECT $1::text, $2::bigint, u.id, $3::text, u.entitlement, u.principal
             FROM unnest($4::text[], $5::text[], $6::text[]) AS u(id, entitlement, principal)
             ON CONFLICT (source, gen, id) DO UPDATE
               SET rtype = excluded.rtype, entitlement = excluded.entitlement,
                   principal = excluded.principal",
            &[
                &source,
                &generation,
                &rtype,
                &ids,
                &entitlements,
                &principals,
            ],
        )
        .await?;
    }
    Ok(())
}

/// `(id, record)` rows (or `(id, entitlement, principal)` for grants) as a batch.
fn read_rows(rows: &[Row], table: RecordTable) -> Result<(Batch, Option<String>), Failure> {
    let mut batch = Batch::default();
    let mut last = None;
    for row in rows {
        let id: String = row.try_get(0)?;
        match table {
            RecordTable::Resources => {
                let text: &str = row.try_get(1)?;
                batch
                    .resources
                    .push(serde_json::from_str(text).map_err(bad_record)?);
            }
            RecordTable::Entitlements => {
                let text: &str = row.try_get(1)?;
                batch
                    .entitlements
                    .push(serde_json::from_str(text).map_err(bad_record)?);
            }
            RecordTable::Grants => batch.grants.push(Grant::from_parts(
                id.clone(),
                row.try_get(1)?,
                row.try_get(2)?,
            )),
        }
        last = Some(id);
    }
    Ok((batch, last))
}

/// Writes the checkpoint row.
async fn save(tx: &Transaction<'_>, source: &str, data: &str) -> Result<u64, Failure> {
    Ok(tx
        .execute(
            "UPDATE idhost_state_checkpoints SET data = $2, updated_at = $3 WHERE source = $1",
            &[&source, &data, &now_rfc3339()],
        )
        .await?)
}

/// Deletes every staged generation above `base` of `source`, and the events of the
/// abandoned sync `sync_id`; the events of committed syncs stay.
async fn drop_pending(
    tx: &Transaction<'_>,
    source: &str,
    base: i64,
    sync_id: Option<&str>,
) -> Result<(), Failure> {
    for table in RecordTable::ALL {
        tx.execute(
            &format!(
                "DELETE FROM {} WHERE source = $1 AND gen > $2",
                table_name(table)
            ),
            &[&source, &base],
        )
        .await?;
    }
    tx.execute(
        "DELETE FROM idhost_state_removed WHERE source = $1",
        &[&source],
    )
    .await?;
    if let Some(sync_id) = sync_id {
        tx.execute(
            "DELETE FROM idhost_state_events WHERE source = $1 AND sync_id = $2",
            &[&source, &sync_id],
        )
        .await?;
    }
    tx.execute(
        "DELETE FROM idhost_state_deliveries WHERE source = $1",
        &[&source],
    )
    .await?;
    Ok(())
}

/// Writes staged connector state inside `tx`.
async fn apply_connector_state<'a>(
    tx: &Transaction<'_>,
    source: &str,
    staged: impl Iterator<Item = (&'a String, &'a Option<String>)>,
) -> Result<(), Failure> {
    for (key, value) in staged {
        match value {
            Some(v) => {
                tx.execute(
                    "INSERT INTO idhost_state_connector (source, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (source, key) DO UPDATE SET value = excluded.value",
                    &[&source, key, v],
                )
                .await?
            }
            None => {
                tx.execute(
                    "DELETE FROM idhost_state_connector WHERE source = $1 AND key = $2",
                    &[&source, key],
                )
                .await?
            }
        };
    }
    Ok(())
}

/// The carry-over condition (see `carry.rs`): `$1` source, `$2` base generation, `$3` new
/// generation, `$4` ids after, `$5` the carried types; the row is `o`.
fn carry_condition(table: RecordTable) -> &'static str {
    match table {
        RecordTable::Resources => {
            "o.source = $1 AND o.gen = $2 AND o.id > $4 AND o.type = ANY($5::text[])
             AND NOT EXISTS (SELECT 1 FROM idhost_state_resources n WHERE n.source = $1 AND n.gen = $3 AND n.id = o.id)
             AND NOT EXISTS (SELECT 1 FROM idhost_state_removed x WHERE x.source = $1 AND x.gen = $3 AND x.id = o.id)"
        }
        RecordTable::Entitlements => {
            "o.source = $1 AND o.gen = $2 AND o.id > $4 AND o.rtype = ANY($5::text[])
             AND NOT EXISTS (SELECT 1 FROM idhost_state_entitlements n WHERE n.source = $1 AND n.gen = $3 AND n.id = o.id)
             AND NOT EXISTS (SELECT 1 FROM idhost_state_removed x WHERE x.source = $1 AND x.gen = $3 AND x.id IN (o.id, o.resource))
             AND (NOT EXISTS (SELECT 1 FROM idhost_state_resources r WHERE r.source = $1 AND r.gen = $2 AND r.id = o.resource)
                  OR EXISTS (SELECT 1 FROM idhost_state_resources r WHERE r.source = $1 AND r.gen = $3 AND r.id = o.resource))"
        }
        RecordTable::Grants => {
            "o.source = $1 AND o.gen = $2 AND o.id > $4 AND o.rtype = ANY($5::text[])
             AND NOT EXISTS (SELECT 1 FROM idhost_state_grants n WHERE n.source = $1 AND n.gen = $3 AND n.id = o.id)
             AND NOT EXISTS (SELECT 1 FROM idhost_state_removed x WHERE x.source = $1 AND x.gen = $3
                             AND x.id IN (o.id, o.entitlement, o.principal))
             AND (NOT EXISTS (SELECT 1 FROM idhost_state_entitlements e WHERE e.source = $1 AND e.gen = $2 AND e.id = o.entitlement)
                  OR EXISTS (SELECT 1 FROM idhost_state_entitlements e WHERE e.source = $1 AND e.gen = $3 AND e.id = o.entitlement))
             AND (NOT EXISTS (SELECT 1 FROM idhost_state_resources r WHERE r.source = $1 AND r.gen = $2 AND r.id = o.principal)
                  OR EXISTS (SELECT 1 FROM idhost_state_resources r WHERE r.source = $1 AND r.gen = $3 AND r.id = o.principal))"
        }
    }
}

fn carried_types(checkpoint: &Checkpoint, table: RecordTable) -> Vec<String> {
    match table {
        RecordTable::Resources => checkpoint.incremental_types.iter().cloned().collect(),
        RecordTable::Entitlements | RecordTable::Grants => checkpoint.detail_carry_types(),
    }
}

/// The diff's statements, in the order events are emitted (see `diff.rs`): `$1` source, `$2`
/// base generation, `$3` new generation, `$4` the types this sync listed (only the last two
/// statements). Each yields rows [`event_of`] turns into events.
const DIFF: [(&str, bool); 6] = [
    // created, or reactivated after a disappearance
    (
        "SELECT n.id, (t.id IS NOT NULL AND n.status = 'enabled'), n.status
         FROM idhost_state_resources n
         LEFT JOIN idhost_state_tombstones t ON t.source = $1 AND t.id = n.id
         WHERE n.source = $1 AND n.gen = $3 AND NOT EXISTS (
           SELECT 1 FROM idhost_state_resources o WHERE o.source = $1 AND o.gen = $2 AND o.id = n.id)
         ORDER BY n.id",
        false,
    ),
    // reactivated
    (
        "SELECT n.id, o.status, n.status FROM idhost_state_resources n
         JOIN idhost_state_resources o ON o.source = $1 AND o.gen = $2 AND o.id = n.id
         WHERE n.source = $1 AND n.gen = $3 AND o.status <> 'enabled' AND n.status = 'enabled'
         ORDER BY n.id",
        false,
    ),
    // updated
    (
        "SELECT n.id, o.record, n.record, (o.status = 'enabled') <> (n.status = 'enabled'), n.type
         FROM idhost_state_resources n
         JOIN idhost_state_resources o ON o.source = $1 AND o.gen = $2 AND o.id = n.id
         WHERE n.source = $1 AND n.gen = $3 AND o.record <> n.record
         ORDER BY n.id",
        false,
    ),
    // grant_added
    (
        "SELECT n.id, n.entitlement, n.principal FROM idhost_state_grants n
         WHERE n.source = $1 AND n.gen = $3 AND NOT EXISTS (
           SELECT 1 FROM idhost_state_grants o WHERE o.source = $1 AND o.gen = $2 AND o.id = n.id)
         ORDER BY n.id",
        false,
    ),
    // grant_removed
    (
        "SELECT g.id, g.entitlement, g.principal FROM idhost_state_grants g
         WHERE g.source = $1 AND g.gen = $2 AND g.rtype = ANY($4::text[]) AND NOT EXISTS (
           SELECT 1 FROM idhost_state_grants n WHERE n.source = $1 AND n.gen = $3 AND n.id = g.id)
         ORDER BY g.id",
        true,
    ),
    // deactivated
    (
        "SELECT o.id, o.status, coalesce(n.status, 'deleted') FROM idhost_state_resources o
         LEFT JOIN idhost_state_resources n ON n.source = $1 AND n.gen = $3 AND n.id = o.id
         WHERE o.source = $1 AND o.gen = $2 AND o.status = 'enabled'
           AND ((n.id IS NULL AND o.type = ANY($4::text[])) OR (n.id IS NOT NULL AND n.status <> 'enabled'))
         ORDER BY o.id",
        true,
    ),
];

/// One event of the diff: kind, subject, changes (JSON).
type Event = (&'static str, String, String);

fn pair(old: serde_json::Value, new: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"old": old, "new": new})
}

/// The event row `row` of diff statement `statement` stands for (`None`: an update that
/// changed only volatile fields, or none a record's comparison counts).
fn event_of(
    statement: usize,
    row: &Row,
    volatile: &BTreeMap<String, Vec<String>>,
) -> Result<Option<Event>, tokio_postgres::Error> {
    let id: String = row.try_get(0)?;
    let text = |i| row.try_get::<_, String>(i);
    Ok(Some(match statement {
        0 => {
            if row.try_get::<_, bool>(1)? {
                let changes =
                    serde_json::json!({"status": pair("deleted".into(), text(2)?.into())});
                ("reactivated", id, changes.to_string())
            } else {
                ("created", id, "{}".to_owned())
            }
        }
        1 | 5 => {
            let changes = serde_json::json!({"status": pair(text(1)?.into(), text(2)?.into())});
            let kind = if statement == 1 {
                "reactivated"
            } else {
                "deactivated"
            };
            (kind, id, changes.to_string())
        }
        2 => {
            let (old, new, skip_status, rtype) =
                (text(1)?, text(2)?, row.try_get::<_, bool>(3)?, text(4)?);
            let volatile = volatile.get(&rtype).map(Vec::as_slice).unwrap_or_default();
            let Some(changes) = field_changes_except(&old, &new, skip_status, volatile) else {
                return Ok(None);
            };
            ("updated", id, changes)
        }
        3 => {
            let changes = serde_json::json!({
                "entitlement": pair(serde_json::Value::Null, text(1)?.into()),
                "principal": pair(serde_json::Value::Null, text(2)?.into()),
            });
            ("grant_added", id, changes.to_string())
        }
        _ => {
            let changes = serde_json::json!({
                "entitlement": pair(text(1)?.into(), serde_json::Value::Null),
                "principal": pair(text(2)?.into(), serde_json::Value::Null),
            });
            ("grant_removed", id, changes.to_string())
        }
    }))
}

impl PgState {
    /// Writes a chunk of the diff's events to the outbox (ids are stable: repeats are
    /// ignored), fenced like every commit. Returns how many were new.
    async fn insert_events(
        &self,
        source: &str,
        sync_id: &str,
        at: &str,
        events: &[Event],
    ) -> Result<u64, StateError> {
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            let ids: Vec<String> = events
                .iter()
                .map(|(kind, subject, _)| event_id(source, sync_id, subject, kind))
                .collect();
            let kinds: Vec<&str> = events.iter().map(|e| e.0).collect();
            let subjects: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
            let changes: Vec<&str> = events.iter().map(|e| e.2.as_str()).collect();
            let n = tx
                .execute(
                    "INSERT INTO idhost_state_events (id, source, sync_id, event, subject, at, changes)
                     SELECT u.id, $1::text, $2::text, u.event, u.subject, $3::text, u.changes
                     FROM unnest($4::text[], $5::text[], $6::text[], $7::text[])
                          WITH ORDINALITY AS u(id, event, subject, changes, n)
                     ORDER BY u.n
                     ON CONFLICT (id) DO NOTHING",
                    &[&source, &sync_id, &at, &ids, &kinds, &subjects, &changes],
                )
                .await?;
            tx.commit().await?;
            Ok(n)
        }
        .await;
        self.told(result)
    }

    /// The diff's reading side: each statement through a cursor of a repeatable-read
    /// snapshot on a connection of its own, written out in chunks of [`FETCH`].
    async fn run_diff(
        &self,
        source: &str,
        base: i64,
        cp: &Checkpoint,
        at: &str,
        volatile: &BTreeMap<String, Vec<String>>,
    ) -> Result<u64, StateError> {
        let mut reader = self.own_conn().await?;
        let tx = reader
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.pg_error(&e))?;
        let mut total = 0u64;
        for (n, (sql, uses_types)) in DIFF.iter().enumerate() {
            let mut params: Params<'_> = vec![&source, &base, &cp.generation];
            if *uses_types {
                params.push(&cp.types);
            }
            let portal = tx
                .bind(*sql, &params)
                .await
                .map_err(|e| self.pg_error(&e))?;
            loop {
                let rows = tx
                    .query_portal(&portal, FETCH)
                    .await
                    .map_err(|e| self.pg_error(&e))?;
                let mut chunk = Vec::with_capacity(rows.len());
                for row in &rows {
                    if let Some(event) =
                        event_of(n, row, volatile).map_err(|e| self.pg_error(&e))?
                    {
                        chunk.push(event);
                    }
                }
                if !chunk.is_empty() {
                    total += self.insert_events(source, &cp.sync_id, at, &chunk).await?;
                }
                if rows.len() < FETCH as usize {
                    break;
                }
            }
        }
        tx.commit().await.map_err(|e| self.pg_error(&e))?;
        Ok(total)
    }
}

#[async_trait]
impl StateBackend for PgState {
    fn fenced(&self, fence: Fence) -> Arc<dyn StateBackend> {
        Arc::new(self.with_fence(fence))
    }

    fn describe(&self) -> String {
        self.db().to_owned()
    }

    async fn stage_page(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
        rtype: &str,
        batch: Arc<Batch>,
        removed: Vec<String>,
    ) -> Result<(), StateError> {
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            write_batch(&tx, source, checkpoint.generation, rtype, &batch).await?;
            if !removed.is_empty() {
                tx.execute(
                    "INSERT INTO idhost_state_removed (source, gen, id)
                     SELECT $1::text, $2::bigint, unnest($3::text[]) ON CONFLICT DO NOTHING",
                    &[&source, &checkpoint.generation, &removed],
                )
                .await?;
            }
            save(&tx, source, &checkpoint.to_json()).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.told(result)
    }

    async fn discard_listing(
        &self,
        source: &str,
        generation: i64,
        rtype: &str,
        checkpoint: CheckpointOf,
    ) -> Result<Discarded, StateError> {
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            let mut dropped = [0u64; 3];
            for (n, (table, column)) in [
                ("idhost_state_resources", "type"),
                ("idhost_state_entitlements", "rtype"),
                ("idhost_state_grants", "rtype"),
            ]
            .into_iter()
            .enumerate()
            {
                dropped[n] = tx
                    .execute(
                        &format!(
                            "DELETE FROM {table} WHERE source = $1 AND gen = $2 AND {column} = $3"
                        ),
                        &[&source, &generation, &rtype],
                    )
                    .await?;
            }
            let discarded = Discarded {
                resources: dropped[0],
                entitlements: dropped[1],
                grants: dropped[2],
            };
            save(&tx, source, &checkpoint(discarded)).await?;
            tx.commit().await?;
            Ok(discarded)
        }
        .await;
        self.told(result)
    }

    async fn replay_chunk(
        &self,
        source: &str,
        generation: i64,
        table: RecordTable,
        after: String,
        limit: usize,
    ) -> Result<(Batch, Option<String>), StateError> {
        let columns = match table {
            RecordTable::Resources | RecordTable::Entitlements => "id, record",
            RecordTable::Grants => "id, entitlement, principal",
        };
        let sql = format!(
            "SELECT {columns} FROM {} WHERE source = $1 AND gen = $2 AND id > $3 ORDER BY id LIMIT $4",
            table_name(table)
        );
        let conn = self.conn().await?;
        let result = async {
            let rows = conn
                .query(&sql, &[&source, &generation, &after, &(limit as i64)])
                .await?;
            read_rows(&rows, table)
        }
        .await;
        self.told(result)
    }

    async fn connector_state(&self, source: &str) -> Result<HashMap<String, String>, StateError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT key, value FROM idhost_state_connector WHERE source = $1",
                &[&source],
            )
            .await
            .map_err(|e| self.pg_error(&e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn commit_connector_state(
        &self,
        source: &str,
        staged: HashMap<String, Option<String>>,
    ) -> Result<(), StateError> {
        if staged.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            apply_connector_state(&tx, source, staged.iter()).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.told(result)
    }

    async fn clear_connector_state(&self, source: &str) -> Result<(), StateError> {
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            tx.execute(
                "DELETE FROM idhost_state_connector WHERE source = $1",
                &[&source],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.told(result)
    }

    async fn events_after(
        &self,
        source: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, ChangeEvent)>, StateError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT seq, id, event, subject, at, changes, sync_id FROM idhost_state_events
                 WHERE source = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                &[&source, &after, &(limit as i64)],
            )
            .await
            .map_err(|e| self.pg_error(&e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let kind: String = row.get(2);
            let changes: String = row.get(5);
            let event = EventKind::parse(&kind).ok_or_else(|| StateError::Corrupt {
                path: "state_url".into(),
                what: format!("unknown event kind `{kind}` in the outbox"),
            })?;
            out.push((
                row.get(0),
                ChangeEvent {
                    id: row.get(1),
                    source: source.to_owned(),
                    event,
                    subject: row.get(3),
                    sync_id: row.get(6),
                    at: row.get(4),
                    changes: serde_json::from_str(&changes).map_err(bad_record)?,
                },
            ));
        }
        Ok(out)
    }

    async fn event_counts(
        &self,
        source: &str,
        sync_id: &str,
    ) -> Result<Vec<(String, u64)>, StateError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT event, count(*) FROM idhost_state_events WHERE source = $1 AND sync_id = $2
                 GROUP BY event ORDER BY event",
                &[&source, &sync_id],
            )
            .await
            .map_err(|e| self.pg_error(&e))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1).max(0) as u64))
            .collect())
    }

    async fn delivered_sinks(
        &self,
        source: &str,
        sync_id: &str,
    ) -> Result<BTreeSet<String>, StateError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT sink FROM idhost_state_deliveries WHERE source = $1 AND sync_id = $2",
                &[&source, &sync_id],
            )
            .await
            .map_err(|e| self.pg_error(&e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn open_delivery(
        &self,
        source: &str,
        sync_id: &str,
        sinks: Vec<String>,
    ) -> Result<(Vec<(String, i64)>, i64), StateError> {
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            tx.execute(
                "DELETE FROM idhost_state_positions WHERE source = $1 AND NOT (sink = ANY($2::text[]))",
                &[&source, &sinks],
            )
            .await?;
            let start: i64 = tx
                .query_one(
                    "SELECT coalesce(
                       (SELECT min(seq) - 1 FROM idhost_state_events WHERE source = $1 AND sync_id = $2),
                       (SELECT max(seq) FROM idhost_state_events WHERE source = $1), 0)",
                    &[&source, &sync_id],
                )
                .await?
                .get(0);
            let end: i64 = tx
                .query_one(
                    "SELECT coalesce(max(seq), 0) FROM idhost_state_events WHERE source = $1",
                    &[&source],
                )
                .await?
                .get(0);
            let mut positions = Vec::new();
            for sink in sinks {
                tx.execute(
                    "INSERT INTO idhost_state_positions (source, sink, seq, updated_at)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (source, sink) DO NOTHING",
                    &[&source, &sink, &start, &now_rfc3339()],
                )
                .await?;
                let seq: i64 = tx
                    .query_one(
                        "SELECT seq FROM idhost_state_positions WHERE source = $1 AND sink = $2",
                        &[&source, &sink],
                    )
                    .await?
                    .get(0);
                positions.push((sink, seq));
            }
            tx.commit().await?;
            Ok((positions, end))
        }
        .await;
        self.told(result)
    }

    async fn record_delivery(
        &self,
        source: &str,
        sync_id: &str,
        sink: &str,
        upto: Option<i64>,
    ) -> Result<(), StateError> {
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            tx.execute(
                "INSERT INTO idhost_state_deliveries (source, sync_id, sink, delivered_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (source, sync_id, sink) DO UPDATE SET delivered_at = excluded.delivered_at",
                &[&source, &sync_id, &sink, &now_rfc3339()],
            )
            .await?;
            if let Some(upto) = upto {
                tx.execute(
                    "UPDATE idhost_state_positions SET seq = greatest(seq, $3), updated_at = $4
                     WHERE source = $1 AND sink = $2",
                    &[&source, &sink, &upto, &now_rfc3339()],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.told(result)
    }

    async fn sink_lag(&self, source: &str) -> Result<Vec<SinkLag>, StateError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT p.sink, (SELECT count(*) FROM idhost_state_events e
                                 WHERE e.source = p.source AND e.seq > p.seq), p.dropped
                 FROM idhost_state_positions p WHERE p.source = $1 ORDER BY p.sink",
                &[&source],
            )
            .await
            .map_err(|e| self.pg_error(&e))?;
        Ok(rows
            .iter()
            .map(|r| SinkLag {
                sink: r.get(0),
                events: r.get::<_, i64>(1).max(0) as u64,
                dropped: r.get::<_, i64>(2).max(0) as u64,
            })
            .collect())
    }

    async fn carry_chunk(
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
        let columns = match table {
            RecordTable::Resources | RecordTable::Entitlements => "o.id, o.record",
            RecordTable::Grants => "o.id, o.entitlement, o.principal",
        };
        let sql = format!(
            "SELECT {columns} FROM {} o WHERE {} ORDER BY o.id LIMIT $6",
            table_name(table),
            carry_condition(table)
        );
        let conn = self.conn().await?;
        let result = async {
            let rows = conn
                .query(
                    &sql,
                    &[
                        &source,
                        &base,
                        &checkpoint.generation,
                        &after,
                        &types,
                        &(limit as i64),
                    ],
                )
                .await?;
            read_rows(&rows, table)
        }
        .await;
        self.told(result)
    }

    async fn keep_carried(
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
            "INSERT INTO {table} (source, gen, {columns})
             SELECT o.source, $3::bigint, {selected} FROM {table} o WHERE {cond} AND o.id <= $6
             ON CONFLICT DO NOTHING",
            table = table_name(table),
            cond = carry_condition(table),
        );
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            let copied = tx
                .execute(
                    &sql,
                    &[
                        &source,
                        &base,
                        &checkpoint.generation,
                        &after,
                        &types,
                        &upto,
                    ],
                )
                .await?;
            save(&tx, source, &checkpoint.to_json()).await?;
            tx.commit().await?;
            Ok(copied as usize)
        }
        .await;
        self.told(result)
    }

    async fn committed_snapshot(&self, source: &str) -> Result<Option<(i64, String)>, StateError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT gen, sync_id FROM idhost_state_snapshots WHERE source = $1",
                &[&source],
            )
            .await
            .map_err(|e| self.pg_error(&e))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    async fn checkpoint(&self, source: &str) -> Result<Option<Checkpoint>, StateError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                "SELECT data FROM idhost_state_checkpoints WHERE source = $1",
                &[&source],
            )
            .await
            .map_err(|e| self.pg_error(&e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let text: String = row.get(0);
        serde_json::from_str(&text).map(Some).map_err(|e| {
            self.error(format!(
                "the checkpoint of source `{source}` cannot be read ({e}); run `idhost sync --restart --source {source}`"
            ))
        })
    }

    async fn begin_sync(&self, source: &str, checkpoint: &Checkpoint) -> Result<(), StateError> {
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            drop_pending(&tx, source, checkpoint.base_gen.unwrap_or(0), None).await?;
            tx.execute(
                "INSERT INTO idhost_state_checkpoints (source, sync_id, data, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (source) DO UPDATE
                   SET sync_id = excluded.sync_id, data = excluded.data, updated_at = excluded.updated_at",
                &[&source, &checkpoint.sync_id, &checkpoint.to_json(), &now_rfc3339()],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.told(result)
    }

    async fn discard_sync(&self, source: &str) -> Result<(), StateError> {
        let base = self.committed_snapshot(source).await?.map_or(0, |(g, _)| g);
        let Some(cp) = self.checkpoint(source).await? else {
            return Ok(());
        };
        if cp.phase == Phase::Delivering {
            return Err(self.error(format!(
                "refusing to discard sync {} of source `{source}`: it is delivering its events",
                cp.sync_id
            )));
        }
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            drop_pending(&tx, source, base, Some(&cp.sync_id)).await?;
            tx.execute(
                "DELETE FROM idhost_state_checkpoints WHERE source = $1",
                &[&source],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.told(result)
    }

    async fn save_checkpoint(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), StateError> {
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            save(&tx, source, &checkpoint.to_json()).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.told(result)
    }

    async fn diff(
        &self,
        source: &str,
        checkpoint: &mut Checkpoint,
        at: String,
        volatile: &BTreeMap<String, Vec<String>>,
    ) -> Result<u64, StateError> {
        checkpoint.phase = Phase::Delivering;
        let total = match checkpoint.base_gen {
            Some(base) => {
                self.run_diff(source, base, checkpoint, &at, volatile)
                    .await?
            }
            None => 0,
        };
        self.save_checkpoint(source, checkpoint).await?;
        Ok(total)
    }

    async fn removals(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
    ) -> Result<Removals, StateError> {
        let Some(base) = checkpoint.base_gen else {
            return Ok(Removals::default());
        };
        let conn = self.conn().await?;
        let generation = checkpoint.generation;
        let result = async {
            let count = |row: Row| row.get::<_, i64>(0).max(0) as u64;
            Ok::<_, Failure>(Removals {
                resources_before: count(
                    conn.query_one(
                        "SELECT count(*) FROM idhost_state_resources WHERE source = $1 AND gen = $2",
                        &[&source, &base],
                    )
                    .await?,
                ),
                resources: count(
                    conn.query_one(
                        "SELECT count(*) FROM idhost_state_resources o
                         LEFT JOIN idhost_state_resources n ON n.source = $1 AND n.gen = $3 AND n.id = o.id
                         WHERE o.source = $1 AND o.gen = $2 AND o.status <> 'deleted'
                           AND ((n.id IS NULL AND o.type = ANY($4::text[])) OR n.status = 'deleted')",
                        &[&source, &base, &generation, &checkpoint.types],
                    )
                    .await?,
                ),
                grants_before: count(
                    conn.query_one(
                        "SELECT count(*) FROM idhost_state_grants WHERE source = $1 AND gen = $2",
                        &[&source, &base],
                    )
                    .await?,
                ),
                grants: count(
                    conn.query_one(
                        "SELECT count(*) FROM idhost_state_grants o
                         WHERE o.source = $1 AND o.gen = $2 AND o.rtype = ANY($4::text[])
                           AND NOT EXISTS (SELECT 1 FROM idhost_state_grants n
                                           WHERE n.source = $1 AND n.gen = $3 AND n.id = o.id)",
                        &[&source, &base, &generation, &checkpoint.types],
                    )
                    .await?,
                ),
            })
        }
        .await;
        self.told(result)
    }

    async fn commit_sync(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
        finished_at: String,
    ) -> Result<Vec<(String, u64)>, StateError> {
        let cp = checkpoint;
        let mut conn = self.conn().await?;
        let result = async {
            let tx = self.begin(&mut conn, source).await?;
            if let Some(base) = cp.base_gen {
                tx.execute(
                    "INSERT INTO idhost_state_tombstones (source, id, type, sync_id)
                     SELECT o.source, o.id, o.type, $4 FROM idhost_state_resources o
                     WHERE o.source = $1 AND o.gen = $2 AND o.type = ANY($5::text[])
                       AND NOT EXISTS (SELECT 1 FROM idhost_state_resources n
                                       WHERE n.source = $1 AND n.gen = $3 AND n.id = o.id)
                     ON CONFLICT (source, id) DO UPDATE SET type = excluded.type, sync_id = excluded.sync_id",
                    &[&source, &base, &cp.generation, &cp.sync_id, &cp.types],
                )
                .await?;
            }
            tx.execute(
                "DELETE FROM idhost_state_tombstones t WHERE t.source = $1 AND EXISTS (
                   SELECT 1 FROM idhost_state_resources n WHERE n.source = $1 AND n.gen = $2 AND n.id = t.id)",
                &[&source, &cp.generation],
            )
            .await?;
            for table in RecordTable::ALL {
                tx.execute(
                    &format!("DELETE FROM {} WHERE source = $1 AND gen < $2", table_name(table)),
                    &[&source, &cp.generation],
                )
                .await?;
            }
            tx.execute(
                "INSERT INTO idhost_state_snapshots (source, gen, sync_id, finished_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (source) DO UPDATE
                   SET gen = excluded.gen, sync_id = excluded.sync_id, finished_at = excluded.finished_at",
                &[&source, &cp.generation, &cp.sync_id, &finished_at],
            )
            .await?;
            apply_connector_state(&tx, source, cp.staged_state.iter()).await?;
            for table in [
                "idhost_state_removed",
                "idhost_state_deliveries",
                "idhost_state_checkpoints",
            ] {
                tx.execute(&format!("DELETE FROM {table} WHERE source = $1"), &[&source])
                    .await?;
            }
            let lost = super::outbox::prune(&tx, source).await?;
            tx.commit().await?;
            Ok(lost)
        }
        .await;
        self.told(result)
    }
}
