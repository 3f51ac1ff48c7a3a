//! Connector state: the opaque values a connector keeps between syncs (delta links), committed
//! only with a complete sync's snapshot, so a failed sync never advances them.

use std::collections::HashMap;

use rusqlite::params;

use super::store::{SqliteState, StateError};

impl SqliteState {
    /// The committed connector state of `source`.
    pub async fn connector_state(
        &self,
        source: &str,
    ) -> Result<HashMap<String, String>, StateError> {
        let source = source.to_owned();
        self.read(move |conn| {
            let mut stmt =
                conn.prepare("SELECT key, value FROM connector_state WHERE source = ?1")?;
            let rows = stmt.query_map(params![source], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    /// Commits staged connector state changes of `source` in one transaction.
    pub async fn commit_connector_state(
        &self,
        source: &str,
        staged: HashMap<String, Option<String>>,
    ) -> Result<(), StateError> {
        if staged.is_empty() {
            return Ok(());
        }
        let source = source.to_owned();
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            apply_connector_state(&tx, &source, staged.iter())?;
            tx.commit()
        })
        .await
    }

    /// Forgets the connector state of `source` (`--full`).
    pub async fn clear_connector_state(&self, source: &str) -> Result<(), StateError> {
        let source = source.to_owned();
        self.blocking(move |conn| {
            conn.execute(
                "DELETE FROM connector_state WHERE source = ?1",
                params![source],
            )
            .map(drop)
        })
        .await
    }
}

/// Writes staged connector state inside `tx` (shared with the snapshot commit, so a sync's
/// delta links and its snapshot advance together).
pub(crate) fn apply_connector_state<'a>(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    staged: impl Iterator<Item = (&'a String, &'a Option<String>)>,
) -> Result<(), rusqlite::Error> {
    for (key, value) in staged {
        match value {
            Some(v) => tx.execute(
                "INSERT INTO connector_state (source, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (source, key) DO UPDATE SET value = excluded.value",
                params![source, key, v],
            ),
            None => tx.execute(
                "DELETE FROM connector_state WHERE source = ?1 AND key = ?2",
                params![source, key],
            ),
        }?;
    }
    Ok(())
}
