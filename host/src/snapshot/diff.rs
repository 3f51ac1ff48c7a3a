//! The diff of a complete sync against the last snapshot, and the commit that makes the new
//! snapshot the last one.
//!
//! The diff is a handful of `INSERT INTO events SELECT …` statements joining generation `g`
//! and `g + 1` on their `(source, gen, id)` keys, so SQLite streams both sides in id order
//! and no side is ever loaded into memory, whatever the size. Two Rust functions registered
//! on the connection do the rest: `idhost_event_id` ([`crate::sinks::event_id`]) and
//! `idhost_changes` ([`field_changes`]).

use rusqlite::functions::FunctionFlags;
use rusqlite::params;
use serde_json::{Map, Value};

use super::checkpoint::{Checkpoint, Phase};
use crate::sinks::{ChangeEvent, EventKind, event_id};
use crate::state::{StateError, StateStore};

/// Registers `idhost_event_id(source, sync_id, subject, kind)` and
/// `idhost_changes(old_json, new_json, skip_status[, volatile_json])`.
pub(crate) fn register_functions(conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("idhost_event_id", 4, flags, |ctx| {
        let part = |i| ctx.get_raw(i).as_str().unwrap_or_default();
        Ok(event_id(part(0), part(1), part(2), part(3)))
    })?;
    conn.create_scalar_function("idhost_changes", 3, flags, |ctx| {
        let old = ctx.get_raw(0).as_str().unwrap_or("{}");
        let new = ctx.get_raw(1).as_str().unwrap_or("{}");
        let skip_status: bool = ctx.get(2)?;
        Ok(field_changes(old, new, skip_status))
    })?;
    conn.create_scalar_function("idhost_changes", 4, flags, |ctx| {
        let old = ctx.get_raw(0).as_str().unwrap_or("{}");
        let new = ctx.get_raw(1).as_str().unwrap_or("{}");
        let skip_status: bool = ctx.get(2)?;
        let volatile: Vec<String> = ctx
            .get_raw(3)
            .as_str()
            .ok()
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        Ok(field_changes_except(old, new, skip_status, &volatile))
    })?;
    Ok(())
}

/// Fields never reported as changed: a record's identity, and bookkeeping.
const NOT_FIELDS: [&str; 2] = ["id", "type"];

/// The changed fields of two resource records (JSON), as `{"path": {"old": .., "new": ..}}`,
/// or `None` when nothing changed. Top-level fields are compared one level deep, so a trait
/// or the profile reports `user.title` or `profile.cost_center` rather than the whole
/// object; lists and deeper values compare whole. `skip_status` leaves out `status` when a
/// `deactivated`/`reactivated` event already carries it.
pub fn field_changes(old: &str, new: &str, skip_status: bool) -> Option<String> {
    field_changes_except(old, new, skip_status, &[])
}

/// [`field_changes`] with the connector's volatile fields (dotted record paths such as
/// `profile.meta.lastModified`; a list on the way applies the rest of the path to each item)
/// removed from both sides first, so a change of only those is no change.
pub fn field_changes_except(
    old: &str,
    new: &str,
    skip_status: bool,
    volatile: &[String],
) -> Option<String> {
    let mut old: Value = serde_json::from_str(old).ok()?;
    let mut new: Value = serde_json::from_str(new).ok()?;
    for path in volatile {
        let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
        remove_path(&mut old, &parts);
        remove_path(&mut new, &parts);
    }
    let mut out = Map::new();
    compare(&mut out, "", &old, &new, 0, skip_status);
    (!out.is_empty()).then(|| Value::Object(out).to_string())
}

/// Removes the field at `path` (through lists, from every item).
fn remove_path(value: &mut Value, path: &[&str]) {
    match value {
        Value::Array(items) => {
            for item in items {
                remove_path(item, path);
            }
        }
        Value::Object(map) => match path {
            [] => {}
            [last] => {
                map.remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(child) = map.get_mut(*first) {
                    remove_path(child, rest);
                }
            }
        },
        _ => {}
    }
}

fn compare(
    out: &mut Map<String, Value>,
    prefix: &str,
    old: &Value,
    new: &Value,
    depth: u8,
    skip_status: bool,
) {
    let empty = Map::new();
    let (old_map, new_map) = match (old, new) {
        (Value::Object(o), Value::Object(n)) => (o, n),
        (Value::Object(o), Value::Null) if depth > 0 => (o, &empty),
        (Value::Null, Value::Object(n)) if depth > 0 => (&empty, n),
        _ => {
            if old != new {
                out.insert(prefix.to_owned(), change(old, new));
            }
            return;
        }
    };
    let keys = new_map
        .keys()
        .chain(old_map.keys().filter(|k| !new_map.contains_key(*k)));
    for key in keys {
        if depth == 0 && (NOT_FIELDS.contains(&key.as_str()) || (skip_status && key == "status")) {
            continue;
        }
        let o = old_map.get(key).unwrap_or(&Value::Null);
        let n = new_map.get(key).unwrap_or(&Value::Null);
        if o == n {
            continue;
        }
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let nested = depth == 0 && (o.is_object() || n.is_object());
        if nested {
            compare(out, &path, o, n, depth + 1, skip_status);
        } else {
            out.insert(path, change(o, n));
        }
    }
}

fn change(old: &Value, new: &Value) -> Value {
    let mut pair = Map::new();
    pair.insert("old".into(), old.clone());
    pair.insert("new".into(), new.clone());
    Value::Object(pair)
}

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
            crate::state::durably(conn, |conn| {
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
                crate::state::release_cache(conn)?;
                Ok(total)
            })
        })
        .await
    }

    /// Up to `limit` events of sync `sync_id` after outbox position `after`, in order, with
    /// their positions.
    pub async fn events_after(
        &self,
        source: &str,
        sync_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, ChangeEvent)>, StateError> {
        let (source, sync_id) = (source.to_owned(), sync_id.to_owned());
        self.blocking(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, id, event, subject, at, changes FROM events
                 WHERE source = ?1 AND sync_id = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
            )?;
            let mut rows = stmt.query(params![source, sync_id, after, limit as i64])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let kind: String = row.get(2)?;
                let changes: String = row.get(5)?;
                let event = EventKind::parse(&kind).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        2,
                        rusqlite::types::Type::Text,
                        format!("unknown event kind `{kind}`").into(),
                    )
                })?;
                out.push((
                    row.get(0)?,
                    ChangeEvent {
                        id: row.get(1)?,
                        source: source.clone(),
                        event,
                        subject: row.get(3)?,
                        sync_id: sync_id.clone(),
                        at: row.get(4)?,
                        changes: serde_json::from_str(&changes)
                            .map_err(|e| super::stage::bad_record(5, e))?,
                    },
                ));
            }
            Ok(out)
        })
        .await
    }

    /// Counts of the outbox events of sync `sync_id` by kind.
    pub fn event_counts(
        &self,
        source: &str,
        sync_id: &str,
    ) -> Result<Vec<(String, u64)>, StateError> {
        self.with_conn(|conn| {
            let mut stmt = conn.prepare(
                "SELECT event, count(*) FROM events WHERE source = ?1 AND sync_id = ?2 GROUP BY event ORDER BY event",
            )?;
            let rows = stmt.query_map(params![source, sync_id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
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
            crate::state::apply_connector_state(&tx, &source, cp.staged_state.iter())?;
            for table in ["snap_removed", "events", "sync_deliveries", "sync_checkpoints"] {
                tx.execute(&format!("DELETE FROM {table} WHERE source = ?1"), params![source])?;
            }
            tx.commit()?;
            crate::state::release_cache(conn)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(old: &str, new: &str, skip: bool) -> Option<Value> {
        field_changes(old, new, skip).map(|s| serde_json::from_str(&s).unwrap())
    }

    #[test]
    fn changed_fields_are_reported_one_level_deep_with_old_and_new() {
        let old = r#"{"type":"user","id":"user:u1","display_name":"A","status":"enabled",
            "user":{"login":"a@x","title":"Dev","emails":[{"address":"a@x","primary":true}]},"profile":{"n":1}}"#;
        let new = r#"{"type":"user","id":"user:u1","display_name":"B","status":"disabled",
            "user":{"login":"a@x","emails":[{"address":"b@x","primary":true}]},"profile":{"n":1,"cost":"7"}}"#;
        let changes = parsed(old, new, false).unwrap();
        assert_eq!(
            changes["display_name"],
            serde_json::json!({"old":"A","new":"B"})
        );
        assert_eq!(
            changes["status"],
            serde_json::json!({"old":"enabled","new":"disabled"})
        );
        assert_eq!(
            changes["user.title"],
            serde_json::json!({"old":"Dev","new":null})
        );
        assert_eq!(changes["user.emails"]["new"][0]["address"], "b@x");
        assert_eq!(
            changes["profile.cost"],
            serde_json::json!({"old":null,"new":"7"})
        );
        assert!(changes.get("user.login").is_none() && changes.get("id").is_none());
        let without_status = parsed(old, new, true).unwrap();
        assert!(without_status.get("status").is_none());
    }

    #[test]
    fn equal_records_and_a_lone_status_flip_report_nothing() {
        let a = r#"{"id":"user:u1","status":"enabled","profile":{"a":1,"b":2}}"#;
        let b = r#"{"status":"enabled","id":"user:u1","profile":{"b":2,"a":1}}"#;
        assert_eq!(
            field_changes(a, b, false),
            None,
            "key order is not a change"
        );
        let c = r#"{"id":"user:u1","status":"disabled","profile":{"a":1,"b":2}}"#;
        assert_eq!(field_changes(a, c, true), None);
    }

    #[test]
    fn volatile_fields_never_count_as_a_change() {
        let old = r#"{"id":"user:u1","profile":{"meta":{"lastModified":"1","created":"0"},
            "profiles":[{"updated_time":"a","id":"x"}]}}"#;
        let new = r#"{"id":"user:u1","profile":{"meta":{"lastModified":"2","created":"0"},
            "profiles":[{"updated_time":"b","id":"x"}]}}"#;
        let volatile = [
            "profile.meta.lastModified".to_owned(),
            "profile.profiles.updated_time".to_owned(),
        ];
        assert_eq!(field_changes_except(old, new, false, &volatile), None);
        assert!(field_changes(old, new, false).is_some());
        let renamed = new.replace(r#""id":"x""#, r#""id":"y""#);
        let changes: Value =
            serde_json::from_str(&field_changes_except(old, &renamed, false, &volatile).unwrap())
                .unwrap();
        assert_eq!(
            changes["profile.profiles"]["new"][0],
            serde_json::json!({"id": "y"})
        );
    }

    #[test]
    fn a_trait_that_appears_reports_its_fields() {
        let old = r#"{"id":"group:g1","display_name":"G"}"#;
        let new = r#"{"id":"group:g1","display_name":"G","group":{"kind":"security"}}"#;
        let changes = parsed(old, new, false).unwrap();
        assert_eq!(
            changes["group.kind"],
            serde_json::json!({"old":null,"new":"security"})
        );
    }
}
