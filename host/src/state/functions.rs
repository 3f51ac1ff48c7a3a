//! The SQL functions the diff calls, registered on the state database's connection:
//! `idhost_event_id` ([`crate::record::event_id`]) and `idhost_changes` ([`field_changes`]).

use rusqlite::functions::FunctionFlags;
use serde_json::{Map, Value};

use crate::record::event_id;

/// Registers `idhost_event_id(source, sync_id, subject, kind)` and
/// `idhost_changes(old_json, new_json, skip_status)`.
pub(super) fn register(conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
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
pub(crate) fn field_changes_except(
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
