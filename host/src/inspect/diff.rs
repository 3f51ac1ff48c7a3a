//! `idhost query diff`: the change events of a source, made readable: each with the name of
//! what changed (a resource's display name; for a grant, its principal's and entitlement's)
//! and only the leaf fields that changed (`user.title: "Dev" → "Lead"`, not two whole user
//! objects). Fields a connector declares volatile never make an event in the first place (see
//! `host/src/snapshot/diff.rs`).

use rusqlite::{OptionalExtension as _, params};
use serde_json::{Map, Value};

use super::InspectError;
use super::db::SinkDb;
use super::output::Rows;

/// Which events.
#[derive(Debug, Clone, Default)]
pub struct DiffFilter {
    /// At or after this RFC 3339 instant.
    pub since: Option<String>,
    /// Only this sync.
    pub sync_id: Option<String>,
}

/// The JSON keys of `query diff`.
pub const COLUMNS: [&str; 7] = [
    "seq", "at", "sync_id", "event", "subject", "name", "changes",
];

/// The events of `source`, oldest first, readable.
pub fn events(db: &SinkDb, source: &str, filter: &DiffFilter) -> Result<Rows, InspectError> {
    if !db.has_table("events")? {
        return Err(InspectError::NotConfigured(format!(
            "sink `{}` keeps no change events: add \"event\" to its `records`, e.g. records = [\"resource\", \"entitlement\", \"grant\", \"event\", \"sync_run\"]",
            db.sink
        )));
    }
    db.scope(Some(source))?;
    if let Some(sync_id) = &filter.sync_id {
        let known: bool = db
            .conn()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sync_runs WHERE source = ?1 AND sync_id = ?2)",
                params![source, sync_id],
                |r| r.get(0),
            )
            .map_err(|e| db.fail(e))?;
        if !known {
            return Err(InspectError::Unknown(format!(
                "--sync `{sync_id}` is not a sync of `{source}` in sink `{}` (sync ids are in `sync_runs`, and in `idhost sync -o json`)",
                db.sink
            )));
        }
    }
    let mut stmt = db
        .conn()
        .prepare(
            "SELECT seq, at, sync_id, event, subject, changes FROM events
             WHERE source = ?1 AND at >= ?2 AND (?3 IS NULL OR sync_id = ?3) ORDER BY seq",
        )
        .map_err(|e| db.fail(e))?;
    let raw: Vec<(i64, String, String, String, String, String)> = stmt
        .query_map(
            params![
                source,
                filter.since.as_deref().unwrap_or(""),
                filter.sync_id
            ],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .and_then(|rows| rows.collect())
        .map_err(|e| db.fail(e))?;
    let mut rows = Rows::new(&COLUMNS);
    for (seq, at, sync_id, event, subject, changes) in raw {
        let changes: Value = serde_json::from_str(&changes).unwrap_or(Value::Null);
        let name = if event.starts_with("grant_") {
            grant_name(db, source, &changes)?
        } else {
            resource_name(db, source, &subject, &changes)?
        };
        let shown = if event == "grant_added" || event == "grant_removed" || event == "created" {
            Value::Object(Map::new())
        } else {
            Value::Object(leaves(&changes))
        };
        rows.push(vec![
            Value::from(seq),
            Value::String(at),
            Value::String(sync_id),
            Value::String(event),
            Value::String(subject),
            Value::String(name),
            shown,
        ]);
    }
    Ok(rows)
}

/// The name of a resource: as the snapshot has it, else as it was when it was dropped, else
/// as the event records it, else its id.
fn resource_name(
    db: &SinkDb,
    source: &str,
    id: &str,
    changes: &Value,
) -> Result<String, InspectError> {
    let current: Option<String> = db
        .conn()
        .prepare_cached("SELECT display_name FROM resources WHERE source = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row(params![source, id], |r| r.get(0)).optional())
        .map_err(|e| db.fail(e))?;
    if let Some(name) = current {
        return Ok(name);
    }
    if db.has_table("departed_users")? {
        let departed: Option<String> = db
            .conn()
            .prepare_cached("SELECT display_name FROM departed_users WHERE source = ?1 AND id = ?2")
            .and_then(|mut s| s.query_row(params![source, id], |r| r.get(0)).optional())
            .map_err(|e| db.fail(e))?;
        if let Some(name) = departed {
            return Ok(name);
        }
    }
    Ok(changes
        .get("display_name")
        .and_then(|c| c.get("old").or_else(|| c.get("new")))
        .and_then(Value::as_str)
        .unwrap_or(id)
        .to_owned())
}

/// `principal name → entitlement name` of a grant event.
fn grant_name(db: &SinkDb, source: &str, changes: &Value) -> Result<String, InspectError> {
    let side = |field: &str| {
        changes
            .get(field)
            .and_then(|c| {
                c.get("new")
                    .filter(|v| !v.is_null())
                    .or_else(|| c.get("old"))
            })
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let (principal, entitlement) = (side("principal"), side("entitlement"));
    let principal_name = resource_name(db, source, &principal, &Value::Null)?;
    let entitlement_name: Option<String> = db
        .conn()
        .prepare_cached("SELECT display_name FROM entitlements WHERE source = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![source, entitlement], |r| r.get(0))
                .optional()
        })
        .map_err(|e| db.fail(e))?;
    Ok(format!(
        "{principal_name} → {}",
        entitlement_name.unwrap_or(entitlement)
    ))
}

/// `{path: {old, new}}` narrowed to the leaves that differ: two objects are compared key by
/// key, lists and scalars whole.
pub fn leaves(changes: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(fields) = changes.as_object() {
        for (path, change) in fields {
            let old = change.get("old").unwrap_or(&Value::Null);
            let new = change.get("new").unwrap_or(&Value::Null);
            walk(&mut out, path, old, new);
        }
    }
    out
}

fn walk(out: &mut Map<String, Value>, path: &str, old: &Value, new: &Value) {
    if old == new {
        return;
    }
    let empty = Map::new();
    let pair = match (old, new) {
        (Value::Object(o), Value::Object(n)) => Some((o, n)),
        (Value::Object(o), Value::Null) => Some((o, &empty)),
        (Value::Null, Value::Object(n)) => Some((&empty, n)),
        _ => None,
    };
    match pair {
        Some((o, n)) => {
            for key in n.keys().chain(o.keys().filter(|k| !n.contains_key(*k))) {
                let child = format!("{path}.{key}");
                walk(
                    out,
                    &child,
                    o.get(key).unwrap_or(&Value::Null),
                    n.get(key).unwrap_or(&Value::Null),
                );
            }
        }
        None => {
            let mut change = Map::new();
            change.insert("old".into(), old.clone());
            change.insert("new".into(), new.clone());
            out.insert(path.to_owned(), Value::Object(change));
        }
    }
}

/// One line of changes for a table: `path: old → new; ...`.
pub fn describe(changes: &Value) -> String {
    changes
        .as_object()
        .map(|fields| {
            fields
                .iter()
                .map(|(path, c)| {
                    let show = |v: Option<&Value>| match v {
                        None | Some(Value::Null) => "∅".to_owned(),
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    };
                    format!("{path}: {} → {}", show(c.get("old")), show(c.get("new")))
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_leaves_that_changed_are_shown() {
        let changes = json!({
            "profile.meta": {"old": {"created": "x", "version": "1", "location": "l"},
                             "new": {"created": "x", "version": "2", "location": "l"}},
            "user.title": {"old": "Dev", "new": "Lead"},
            "user.emails": {"old": [{"address": "a"}], "new": [{"address": "b"}]},
        });
        let leaves = Value::Object(leaves(&changes));
        assert_eq!(
            leaves,
            json!({
                "profile.meta.version": {"old": "1", "new": "2"},
                "user.title": {"old": "Dev", "new": "Lead"},
                "user.emails": {"old": [{"address": "a"}], "new": [{"address": "b"}]},
            })
        );
        assert_eq!(
            describe(&json!({"user.title": {"old": "Dev", "new": null}})),
            "user.title: Dev → ∅"
        );
    }
}
