//! The outbox: the change events of a complete sync, kept in the state database until every
//! sink has taken them, and the record of which sinks committed the sync.

use std::collections::BTreeSet;

use rusqlite::params;

use super::store::{StateError, StateStore, bad_record};
use crate::clock::now_rfc3339;
use crate::record::{ChangeEvent, EventKind};

impl StateStore {
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
                        changes: serde_json::from_str(&changes).map_err(|e| bad_record(5, e))?,
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

    /// The sinks that already committed sync `sync_id` of `source`.
    pub fn delivered_sinks(
        &self,
        source: &str,
        sync_id: &str,
    ) -> Result<BTreeSet<String>, StateError> {
        self.with_conn(|conn| {
            let mut stmt = conn
                .prepare("SELECT sink FROM sync_deliveries WHERE source = ?1 AND sync_id = ?2")?;
            let rows = stmt.query_map(params![source, sync_id], |r| r.get(0))?;
            rows.collect()
        })
    }

    /// Records that `sink` committed sync `sync_id` of `source` (so a resumed delivery skips it).
    pub fn record_delivery(
        &self,
        source: &str,
        sync_id: &str,
        sink: &str,
    ) -> Result<(), StateError> {
        self.with_conn(|conn| {
            conn.execute(
                "INSERT OR REPLACE INTO sync_deliveries (source, sync_id, sink, delivered_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![source, sync_id, sink, now_rfc3339()],
            )
            .map(drop)
        })
    }
}
