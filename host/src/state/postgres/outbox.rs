//! The outbox on Postgres: retention of the events every sink took, as
//! [`crate::state`]'s SQLite outbox does it (see its module docs), inside the snapshot commit.

use tokio_postgres::Transaction;

use crate::clock::now_rfc3339;
use crate::state::OUTBOX_CAP;

/// Drops the events every sink of `source` has taken, then, past [`OUTBOX_CAP`], the oldest
/// ones, marking each sink that had not taken them. Returns the sinks that lost events this
/// way, with how many.
pub(super) async fn prune(
    tx: &Transaction<'_>,
    source: &str,
) -> Result<Vec<(String, u64)>, tokio_postgres::Error> {
    prune_capped(tx, source, OUTBOX_CAP).await
}

pub(super) async fn prune_capped(
    tx: &Transaction<'_>,
    source: &str,
    cap: i64,
) -> Result<Vec<(String, u64)>, tokio_postgres::Error> {
    let floor: Option<i64> = tx
        .query_one(
            "SELECT min(seq) FROM idhost_state_positions WHERE source = $1",
            &[&source],
        )
        .await?
        .get(0);
    match floor {
        // No sink takes events: nothing waits for them.
        None => {
            tx.execute(
                "DELETE FROM idhost_state_events WHERE source = $1",
                &[&source],
            )
            .await?
        }
        Some(floor) => {
            tx.execute(
                "DELETE FROM idhost_state_events WHERE source = $1 AND seq <= $2",
                &[&source, &floor],
            )
            .await?
        }
    };
    let kept: i64 = tx
        .query_one(
            "SELECT count(*) FROM idhost_state_events WHERE source = $1",
            &[&source],
        )
        .await?
        .get(0);
    if kept <= cap {
        return Ok(Vec::new());
    }
    // The seq of the newest event that goes: everything up to it is dropped.
    let cut: i64 = tx
        .query_one(
            "SELECT seq FROM idhost_state_events WHERE source = $1 ORDER BY seq LIMIT 1 OFFSET $2",
            &[&source, &(kept - cap - 1)],
        )
        .await?
        .get(0);
    let rows = tx
        .query(
            "SELECT p.sink, (SELECT count(*) FROM idhost_state_events e
                             WHERE e.source = p.source AND e.seq > p.seq AND e.seq <= $2)
             FROM idhost_state_positions p WHERE p.source = $1 AND p.seq < $2",
            &[&source, &cut],
        )
        .await?;
    let lost: Vec<(String, u64)> = rows
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1).max(0) as u64))
        .collect();
    for (sink, n) in &lost {
        tx.execute(
            "UPDATE idhost_state_positions SET seq = $3, dropped = dropped + $4, updated_at = $5
             WHERE source = $1 AND sink = $2",
            &[&source, sink, &cut, &(*n as i64), &now_rfc3339()],
        )
        .await?;
    }
    tx.execute(
        "DELETE FROM idhost_state_events WHERE source = $1 AND seq <= $2",
        &[&source, &cut],
    )
    .await?;
    Ok(lost)
}
