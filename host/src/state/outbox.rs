//! The outbox: the change events of complete syncs, kept in the state database until every
//! sink that takes events has taken them, and each sink's delivery position in it.
//!
//! Every sink that takes events has its own position per source (`sink_positions`): the `seq`
//! of the last event it committed. A delivery hands a sink every event after its position (its
//! own backlog first, then the sync's), and moves the position on only when the sink commits.
//! So a sink that fails does not hold the others back: they commit, the journal's snapshot
//! advances, the next sync lists again, and the failing sink gets what it missed, once, when it
//! takes a delivery again. A new sink starts at the sync it first sees.
//!
//! Retention: an event is dropped once every sink's position is past it. A sink that stays
//! behind keeps the outbox growing, up to [`OUTBOX_CAP`] events per source; past that the
//! oldest events are dropped and every sink whose position they were ahead of is marked as
//! having missed them (`dropped`, reported in every sync's log at error level, the
//! `idhost_sink_dropped_events` metric and a `sink_behind` notice): its tables are whole again
//! after its next committed sync (every sync hands each sink its complete snapshot), but the
//! change events in between are gone for it and need a backfill from another sink.

use std::collections::BTreeSet;

use rusqlite::{OptionalExtension as _, params};

use super::store::{SqliteState, StateError, bad_record};
use crate::clock::now_rfc3339;
use crate::record::{ChangeEvent, EventKind};

/// Most events the outbox keeps per source for sinks that fell behind (see the module docs).
pub const OUTBOX_CAP: i64 = 1_000_000;

/// How far one sink is behind in one source's outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkLag {
    /// The sink.
    pub sink: String,
    /// Events in the outbox it has not committed.
    pub events: u64,
    /// Events it missed for good: dropped from the outbox past [`OUTBOX_CAP`].
    pub dropped: u64,
}

impl SqliteState {
    /// Up to `limit` events of `source` after outbox position `after`, in order, with their
    /// positions.
    pub async fn events_after(
        &self,
        source: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, ChangeEvent)>, StateError> {
        let source = source.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, id, event, subject, at, changes, sync_id FROM events
                 WHERE source = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![source, after, limit as i64])?;
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
                        sync_id: row.get(6)?,
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
    pub async fn event_counts(
        &self,
        source: &str,
        sync_id: &str,
    ) -> Result<Vec<(String, u64)>, StateError> {
        let (source, sync_id) = (source.to_owned(), sync_id.to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT event, count(*) FROM events WHERE source = ?1 AND sync_id = ?2 GROUP BY event ORDER BY event",
            )?;
            let rows = stmt.query_map(params![source, sync_id], |r| {
                Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            rows.collect()
        })
        .await
    }

    /// The sinks that already committed sync `sync_id` of `source`.
    pub async fn delivered_sinks(
        &self,
        source: &str,
        sync_id: &str,
    ) -> Result<BTreeSet<String>, StateError> {
        let (source, sync_id) = (source.to_owned(), sync_id.to_owned());
        self.read(move |conn| {
            let mut stmt = conn
                .prepare("SELECT sink FROM sync_deliveries WHERE source = ?1 AND sync_id = ?2")?;
            let rows = stmt.query_map(params![source, sync_id], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    /// Starts the delivery of sync `sync_id` of `source` to `sinks` (those that take events):
    /// forgets the positions of sinks no longer routed from the source, gives a sink seen for
    /// the first time a position just before this sync's events, and returns each sink's
    /// position and the end of the outbox (the last event any of them gets in this delivery).
    pub async fn open_delivery(
        &self,
        source: &str,
        sync_id: &str,
        sinks: Vec<String>,
    ) -> Result<(Vec<(String, i64)>, i64), StateError> {
        let (source, sync_id) = (source.to_owned(), sync_id.to_owned());
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            let names = serde_json::to_string(&sinks).unwrap_or_else(|_| "[]".into());
            tx.execute(
                "DELETE FROM sink_positions WHERE source = ?1
                   AND sink NOT IN (SELECT value FROM json_each(?2))",
                params![source, names],
            )?;
            let start: i64 = tx.query_row(
                "SELECT coalesce(
                   (SELECT min(seq) - 1 FROM events WHERE source = ?1 AND sync_id = ?2),
                   (SELECT max(seq) FROM events WHERE source = ?1), 0)",
                params![source, sync_id],
                |r| r.get(0),
            )?;
            let end: i64 = tx.query_row(
                "SELECT coalesce(max(seq), 0) FROM events WHERE source = ?1",
                params![source],
                |r| r.get(0),
            )?;
            let mut positions = Vec::new();
            for sink in sinks {
                tx.execute(
                    "INSERT OR IGNORE INTO sink_positions (source, sink, seq, updated_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![source, sink, start, now_rfc3339()],
                )?;
                let seq: i64 = tx.query_row(
                    "SELECT seq FROM sink_positions WHERE source = ?1 AND sink = ?2",
                    params![source, sink],
                    |r| r.get(0),
                )?;
                positions.push((sink, seq));
            }
            tx.commit()?;
            Ok((positions, end))
        })
        .await
    }

    /// Records that `sink` committed sync `sync_id` of `source` (so a resumed delivery skips
    /// it) and, for a sink that takes events, that its position is now `upto`, in one
    /// transaction.
    pub async fn record_delivery(
        &self,
        source: &str,
        sync_id: &str,
        sink: &str,
        upto: Option<i64>,
    ) -> Result<(), StateError> {
        let (source, sync_id, sink) = (source.to_owned(), sync_id.to_owned(), sink.to_owned());
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT OR REPLACE INTO sync_deliveries (source, sync_id, sink, delivered_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![source, sync_id, sink, now_rfc3339()],
            )?;
            if let Some(upto) = upto {
                tx.execute(
                    "UPDATE sink_positions SET seq = max(seq, ?3), updated_at = ?4
                     WHERE source = ?1 AND sink = ?2",
                    params![source, sink, upto, now_rfc3339()],
                )?;
            }
            tx.commit()
        })
        .await
    }

    /// How far behind each sink that takes events of `source` is.
    pub async fn sink_lag(&self, source: &str) -> Result<Vec<SinkLag>, StateError> {
        let source = source.to_owned();
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT p.sink, (SELECT count(*) FROM events e WHERE e.source = p.source AND e.seq > p.seq),
                        p.dropped
                 FROM sink_positions p WHERE p.source = ?1 ORDER BY p.sink",
            )?;
            let rows = stmt.query_map(params![source], |r| {
                Ok(SinkLag {
                    sink: r.get(0)?,
                    events: r.get::<_, i64>(1)?.max(0) as u64,
                    dropped: r.get::<_, i64>(2)?.max(0) as u64,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

/// Drops the events every sink of `source` has taken, then, past [`OUTBOX_CAP`], the oldest
/// ones, marking each sink that had not taken them (inside the snapshot commit). Returns the
/// sinks that lost events this way, with how many.
pub(super) fn prune(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
) -> Result<Vec<(String, u64)>, rusqlite::Error> {
    prune_capped(tx, source, OUTBOX_CAP)
}

fn prune_capped(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    cap: i64,
) -> Result<Vec<(String, u64)>, rusqlite::Error> {
    let floor: Option<i64> = tx
        .query_row(
            "SELECT min(seq) FROM sink_positions WHERE source = ?1",
            params![source],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    match floor {
        // No sink takes events: nothing waits for them.
        None => tx.execute("DELETE FROM events WHERE source = ?1", params![source])?,
        Some(floor) => tx.execute(
            "DELETE FROM events WHERE source = ?1 AND seq <= ?2",
            params![source, floor],
        )?,
    };
    let kept: i64 = tx.query_row(
        "SELECT count(*) FROM events WHERE source = ?1",
        params![source],
        |r| r.get(0),
    )?;
    if kept <= cap {
        return Ok(Vec::new());
    }
    // The seq of the newest event that goes: everything up to it is dropped.
    let cut: i64 = tx.query_row(
        "SELECT seq FROM events WHERE source = ?1 ORDER BY seq LIMIT 1 OFFSET ?2",
        params![source, kept - cap - 1],
        |r| r.get(0),
    )?;
    let mut lost = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT p.sink, (SELECT count(*) FROM events e WHERE e.source = p.source AND e.seq > p.seq AND e.seq <= ?2)
             FROM sink_positions p WHERE p.source = ?1 AND p.seq < ?2",
        )?;
        let rows = stmt.query_map(params![source, cut], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        for row in rows {
            lost.push(row?);
        }
    }
    for (sink, n) in &lost {
        tx.execute(
            "UPDATE sink_positions SET seq = ?3, dropped = dropped + ?4, updated_at = ?5
             WHERE source = ?1 AND sink = ?2",
            params![source, sink, cut, *n as i64, now_rfc3339()],
        )?;
    }
    tx.execute(
        "DELETE FROM events WHERE source = ?1 AND seq <= ?2",
        params![source, cut],
    )?;
    Ok(lost)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteState) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteState::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    fn add_events(conn: &rusqlite::Connection, n: usize) {
        for i in 0..n {
            conn.execute(
                "INSERT INTO events (id, source, sync_id, event, subject, at, changes)
                 VALUES (?1, 'a', 's1', 'created', ?1, 't', '{}')",
                params![format!("e{i}")],
            )
            .unwrap();
        }
    }

    #[tokio::test]
    async fn a_sink_behind_keeps_the_events_it_has_not_taken_and_loses_only_past_the_cap() {
        let (_dir, store) = store();
        let (positions, end) = store
            .open_delivery("a", "s1", vec!["fast".into(), "slow".into()])
            .await
            .unwrap();
        assert_eq!((positions[0].1, end), (0, 0));
        let lost = store
            .writer()
            .with_conn(|conn| {
                add_events(conn, 5);
                // `fast` took all five, `slow` none.
                conn.execute("UPDATE sink_positions SET seq = 5 WHERE sink = 'fast'", [])?;
                let tx = conn.transaction()?;
                let kept = prune_capped(&tx, "a", 10)?;
                let left: i64 = tx.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
                assert_eq!((kept.len(), left), (0, 5), "slow still needs all five");
                let lost = prune_capped(&tx, "a", 2)?;
                tx.commit()?;
                Ok(lost)
            })
            .unwrap();
        assert_eq!(
            lost,
            vec![("slow".to_owned(), 3)],
            "past a cap of 2, the oldest 3 go"
        );
        let lag = store.sink_lag("a").await.unwrap();
        assert_eq!(
            lag,
            vec![
                SinkLag {
                    sink: "fast".into(),
                    events: 0,
                    dropped: 0
                },
                SinkLag {
                    sink: "slow".into(),
                    events: 2,
                    dropped: 3
                },
            ]
        );
        let next = store
            .events_after("a", lag_position(&store).await, 10)
            .await
            .unwrap();
        assert_eq!(next.len(), 2, "slow gets the two that are left");
    }

    async fn lag_position(store: &SqliteState) -> i64 {
        store
            .read(|conn| {
                conn.query_row(
                    "SELECT seq FROM sink_positions WHERE sink = 'slow'",
                    [],
                    |r| r.get(0),
                )
            })
            .await
            .unwrap()
    }
}
