//! One notice: what a `[notify]` target hears about an incident.

use serde::Serialize;

use super::incidents::Incident;
use crate::clock::now_rfc3339;
use crate::config::NotifyEvent;

/// One notice, as POSTed to a webhook (and summarized in a mail).
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    /// Always `notification`, like the `kind` of every other idhost wire object.
    pub kind: &'static str,
    /// Unique per notice (a receiver can drop redeliveries).
    pub id: String,
    /// `sync_failed`, `sync_overdue`, `schedule_missed`, `sync_held`, `sink_behind` or `recovered`.
    pub event: &'static str,
    /// The incident this notice opens or (for `recovered`) closes.
    pub incident_id: String,
    /// For `recovered`: which kind of incident it closes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolves: Option<String>,
    /// Source name.
    pub source: String,
    /// Connector name.
    pub connector: String,
    /// RFC 3339: when the incident opened.
    pub opened_at: String,
    /// RFC 3339: now.
    pub at: String,
    /// The sync concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_id: Option<String>,
    /// One line for people.
    pub summary: String,
    /// The error, for `sync_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The replica that noticed.
    pub replica: String,
}

impl Notification {
    /// The notice that opens `incident`.
    pub fn opened(
        incident: &Incident,
        event: NotifyEvent,
        source: &str,
        connector: &str,
        sync_id: Option<&str>,
        error: Option<&str>,
        replica: &str,
    ) -> Self {
        Self {
            kind: "notification",
            id: uuid::Uuid::now_v7().to_string(),
            event: event.as_str(),
            incident_id: incident.id.clone(),
            resolves: None,
            source: source.to_owned(),
            connector: connector.to_owned(),
            opened_at: incident.opened_at.clone(),
            at: now_rfc3339(),
            sync_id: sync_id.map(str::to_owned),
            summary: format!("source `{source}` ({connector}): {}", incident.detail),
            error: error.map(str::to_owned),
            replica: replica.to_owned(),
        }
    }

    /// The notice that closes `incident` after a successful sync.
    pub fn recovered(
        incident: &Incident,
        source: &str,
        connector: &str,
        sync_id: &str,
        replica: &str,
    ) -> Self {
        Self {
            kind: "notification",
            id: uuid::Uuid::now_v7().to_string(),
            event: NotifyEvent::Recovered.as_str(),
            incident_id: incident.id.clone(),
            resolves: Some(incident.event.clone()),
            source: source.to_owned(),
            connector: connector.to_owned(),
            opened_at: incident.opened_at.clone(),
            at: now_rfc3339(),
            sync_id: Some(sync_id.to_owned()),
            summary: format!(
                "source `{source}` ({connector}) recovered: a sync succeeded again (resolves {} since {})",
                incident.event, incident.opened_at
            ),
            error: None,
            replica: replica.to_owned(),
        }
    }

    pub(super) fn wanted_as(&self) -> NotifyEvent {
        NotifyEvent::ALL
            .into_iter()
            .find(|e| e.as_str() == self.event)
            .unwrap_or(NotifyEvent::SyncFailed)
    }

    /// Mail subject.
    pub(super) fn subject(&self) -> String {
        let what = match self.event {
            "sync_failed" => "sync failed",
            "sync_overdue" => "sync overdue",
            "schedule_missed" => "scheduled sync missed",
            "sync_held" => "sync held by the mass-removal brake",
            "sink_behind" => "a sink fell behind",
            _ => "recovered",
        };
        format!("[idhost] {}: {what}", self.source)
    }

    /// Mail body.
    pub(super) fn text(&self) -> String {
        let mut text = format!("{}\n\n", self.summary);
        let mut line = |k: &str, v: &str| text.push_str(&format!("{k:<12} {v}\n"));
        line("event", self.event);
        line("source", &self.source);
        line("connector", &self.connector);
        line("incident", &self.incident_id);
        line("opened at", &self.opened_at);
        line("at", &self.at);
        if let Some(sync_id) = &self.sync_id {
            line("sync id", sync_id);
        }
        if let Some(error) = &self.error {
            line("error", error);
        }
        line("replica", &self.replica);
        text
    }
}
