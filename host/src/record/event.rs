//! Change events (DESIGN §4): what changed in a source between two complete syncs.
//!
//! The host makes them by diffing a complete sync against the source's last complete
//! snapshot (see [`crate::state`]); sinks that ask for `records = ["event"]` receive them
//! through [`crate::sinks::SinkSession::write_events`]. An event's `id` is a hash of source, sync id,
//! subject and kind: unique per change, and the same when a resumed sync delivers it again, so
//! every sink and receiver can drop a redelivery.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The kinds of change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A resource appeared for the first time.
    Created,
    /// A resource's fields changed (`changes` holds old and new of each changed field).
    Updated,
    /// A resource became disabled, or went missing from a complete sync while enabled.
    Deactivated,
    /// A disabled or missing resource is enabled again.
    Reactivated,
    /// A principal got an entitlement.
    GrantAdded,
    /// A principal lost an entitlement.
    GrantRemoved,
}

impl EventKind {
    /// Every kind, in the order a sync emits them.
    pub const ALL: [EventKind; 6] = [
        EventKind::Created,
        EventKind::Reactivated,
        EventKind::Updated,
        EventKind::GrantAdded,
        EventKind::GrantRemoved,
        EventKind::Deactivated,
    ];

    /// The wire name (also the last token of a NATS subject).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Updated => "updated",
            EventKind::Deactivated => "deactivated",
            EventKind::Reactivated => "reactivated",
            EventKind::GrantAdded => "grant_added",
            EventKind::GrantRemoved => "grant_removed",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One change: DESIGN §4 `{"kind":"event","id","source","event","subject","sync_id","at","changes"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    /// Unique per change, stable on redelivery (see [`event_id`]).
    pub id: String,
    /// Source name.
    pub source: String,
    /// What happened.
    pub event: EventKind,
    /// The resource id, or the grant id for grant events.
    pub subject: String,
    /// The sync that saw the change.
    pub sync_id: String,
    /// When the host computed the change (RFC 3339).
    pub at: String,
    /// `{field: {"old": .., "new": ..}}`; for grant events the entitlement and principal.
    pub changes: serde_json::Value,
}

/// The wire form, with `kind` first.
#[derive(Serialize)]
struct Wire<'a> {
    kind: &'static str,
    id: &'a str,
    source: &'a str,
    event: EventKind,
    subject: &'a str,
    sync_id: &'a str,
    at: &'a str,
    changes: &'a serde_json::Value,
}

impl ChangeEvent {
    fn wire(&self) -> Wire<'_> {
        Wire {
            kind: "event",
            id: &self.id,
            source: &self.source,
            event: self.event,
            subject: &self.subject,
            sync_id: &self.sync_id,
            at: &self.at,
            changes: &self.changes,
        }
    }

    /// Appends the event's wire JSON (no newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serializing plain strings and a parsed Value into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &self.wire());
    }

    /// The event's wire JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.write_json(&mut out);
        out
    }
}

impl Serialize for ChangeEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.wire().serialize(serializer)
    }
}

/// The id of a change: the first 128 bits of SHA-256 over source, sync id, subject and kind,
/// as hex. The same inputs give the same id, so a resumed sync's redelivery is recognizable.
pub fn event_id(source: &str, sync_id: &str, subject: &str, kind: &str) -> String {
    let mut hash = Sha256::new();
    for part in [source, sync_id, subject, kind] {
        hash.update(part.as_bytes());
        hash.update([0x1f]);
    }
    hex::encode(&hash.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_and_distinguish_every_part() {
        let a = event_id("corp", "s1", "user:u1", "created");
        assert_eq!(a, event_id("corp", "s1", "user:u1", "created"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, event_id("corp", "s2", "user:u1", "created"));
        assert_ne!(a, event_id("corp", "s1", "user:u1", "updated"));
        assert_ne!(a, event_id("corp", "s1", "user:u2", "created"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(event_id("ab", "c", "x", "k"), event_id("a", "bc", "x", "k"));
    }

    #[test]
    fn wire_form_starts_with_kind_and_carries_every_field() {
        let event = ChangeEvent {
            id: "abc".into(),
            source: "corp".into(),
            event: EventKind::GrantAdded,
            subject: "group:g1:member:user:u7".into(),
            sync_id: "s1".into(),
            at: "2026-01-01T00:00:00Z".into(),
            changes: serde_json::json!({}),
        };
        let text = String::from_utf8(event.to_json()).unwrap();
        assert!(
            text.starts_with(r#"{"kind":"event","id":"abc","source":"corp","event":"grant_added""#),
            "{text}"
        );
        assert!(text.contains(r#""subject":"group:g1:member:user:u7""#));
        assert_eq!(EventKind::parse("grant_added"), Some(EventKind::GrantAdded));
        assert_eq!(EventKind::parse("nope"), None);
    }
}
