//! Incidents: the memory that turns "this sync failed again" into one notification per
//! incident instead of one per failing run, and a success into one recovery notice.
//!
//! The state is small and serializable so the daemon can keep it in its schedule store (the
//! state database, or Postgres under `[coordination]`): a restart, or another replica taking a
//! source over, neither repeats an open incident nor forgets to announce its recovery.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::NotifyEvent;

/// One open problem of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// Stable id, repeated by the recovery notice that closes it.
    pub id: String,
    /// `sync_failed`, `sync_overdue` or `schedule_missed`.
    pub event: String,
    /// RFC 3339 time it opened.
    pub opened_at: String,
    /// What happened, for the first notice.
    pub detail: String,
}

/// The open incidents of one source, by event name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incidents {
    open: BTreeMap<String, Incident>,
}

impl Incidents {
    /// Parses stored state; unreadable state counts as no open incident.
    pub fn from_json(text: Option<&str>) -> Self {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    /// The stored form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Opens an incident of `event` unless one is open; returns it only when it is new (the
    /// caller notifies then, and only then).
    pub fn open(&mut self, event: NotifyEvent, detail: &str, now: &str) -> Option<Incident> {
        if self.open.contains_key(event.as_str()) {
            return None;
        }
        let incident = Incident {
            id: uuid::Uuid::now_v7().to_string(),
            event: event.as_str().to_owned(),
            opened_at: now.to_owned(),
            detail: detail.to_owned(),
        };
        self.open
            .insert(event.as_str().to_owned(), incident.clone());
        Some(incident)
    }

    /// Closes every open incident (a sync succeeded) and returns them for recovery notices.
    pub fn resolve_all(&mut self) -> Vec<Incident> {
        std::mem::take(&mut self.open).into_values().collect()
    }

    /// Whether `event` has an open incident.
    pub fn is_open(&self, event: NotifyEvent) -> bool {
        self.open.contains_key(event.as_str())
    }

    /// Whether nothing is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_failures_open_one_incident_and_success_resolves_it_once() {
        let mut incidents = Incidents::default();
        let first = incidents.open(NotifyEvent::SyncFailed, "503", "t1");
        assert!(first.is_some());
        assert!(
            incidents
                .open(NotifyEvent::SyncFailed, "503", "t2")
                .is_none()
        );
        assert!(
            incidents
                .open(NotifyEvent::SyncFailed, "timeout", "t3")
                .is_none()
        );
        let resolved = incidents.resolve_all();
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].id, first.map(|i| i.id).unwrap_or_default());
        assert!(incidents.resolve_all().is_empty());
        assert!(
            incidents
                .open(NotifyEvent::SyncFailed, "503", "t4")
                .is_some()
        );
    }

    #[test]
    fn state_survives_a_round_trip_and_garbage_reads_as_empty() {
        let mut incidents = Incidents::default();
        incidents.open(NotifyEvent::SyncOverdue, "still running", "t1");
        let back = Incidents::from_json(Some(&incidents.to_json()));
        assert_eq!(back, incidents);
        assert!(back.is_open(NotifyEvent::SyncOverdue));
        assert!(Incidents::from_json(Some("not json")).is_empty());
        assert!(Incidents::from_json(None).is_empty());
    }
}
