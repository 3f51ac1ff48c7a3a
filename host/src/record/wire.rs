//! The wire form every record takes in the `jsonl` sink, webhook bodies and NATS messages
//! (DESIGN §4): one JSON object with a `kind` field.

use serde::Serialize;

/// The record kinds on the wire.
pub const RECORD_KINDS: [&str; 5] = ["resource", "entitlement", "grant", "event", "sync_run"];

/// One record as a JSON object with `kind` and `source` first (DESIGN §4 wire format).
pub fn wire_object<T: Serialize>(
    kind: &str,
    source: &str,
    record: &T,
) -> serde_json::Map<String, serde_json::Value> {
    let mut object = serde_json::Map::new();
    object.insert("kind".into(), kind.into());
    object.insert("source".into(), source.into());
    if let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(record) {
        for (k, v) in fields {
            if k != "source" {
                object.insert(k, v);
            }
        }
    }
    object
}
