//! The checkpoint of a source's sync under way: enough to resume it after a crash or a stop,
//! and to finish delivering its events if the listing was already complete.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{OptionalExtension as _, params};
use serde::{Deserialize, Serialize};

use super::store::{SqliteState, StateError};
use crate::clock::now_rfc3339;
use crate::record::Counts;

/// Where a sync is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Listing pages; `type_index`/`page_token` say where it goes on.
    Listing,
    /// The listing is complete and the events are in the outbox; sinks are committing.
    Delivering,
    /// The listing is complete but removes more than `max_removals` allows: nothing was
    /// diffed or delivered; `idhost approve` goes on from here without listing again.
    Held,
}

/// What a complete sync would remove from the previous snapshot (DESIGN §7.1): resources gone
/// from the listing or newly `deleted`, and grants gone, each out of the previous snapshot's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removals {
    /// Resources removed.
    pub resources: u64,
    /// Resources in the previous snapshot.
    pub resources_before: u64,
    /// Grants removed.
    pub grants: u64,
    /// Grants in the previous snapshot.
    pub grants_before: u64,
}

/// A sync's durable progress (stored as JSON in `sync_checkpoints`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The sync; a resumed sync keeps its id, so its events keep theirs.
    pub sync_id: String,
    /// When the first attempt started (RFC 3339).
    pub started_at: String,
    /// Hash of the source's config; a resume with another config starts over instead.
    pub config_hash: String,
    /// `--full`: connector state was ignored.
    pub full: bool,
    /// `--resources-only`: entitlements and grants carry over from the last snapshot.
    pub resources_only: bool,
    /// The resource types this sync lists, in order.
    pub types: Vec<String>,
    /// Where the sync is.
    pub phase: Phase,
    /// The snapshot generation this sync is diffed against (`None`: the source's first sync).
    pub base_gen: Option<i64>,
    /// The generation this sync writes.
    pub generation: i64,
    /// Index into `types` of the listing under way (`types.len()` once all are listed).
    pub type_index: usize,
    /// Token of the next page of that listing (`None`: its first page).
    pub page_token: Option<String>,
    /// Pages committed so far.
    pub pages: u64,
    /// Resource types the connector listed incrementally (delta pages).
    pub incremental_types: BTreeSet<String>,
    /// Records received so far (pages and carried-over records).
    pub counts: Counts,
    /// Connector state staged by the connector so far (committed with the snapshot).
    pub staged_state: BTreeMap<String, Option<String>>,
    /// How many times this sync was started (1 for an uninterrupted one).
    pub attempts: u32,
    /// What the sync removes, once its listing is complete and it was held (or approved).
    #[serde(default)]
    pub removals: Option<Removals>,
}

impl Checkpoint {
    /// A new sync's checkpoint.
    pub fn new(
        sync_id: String,
        started_at: String,
        config_hash: String,
        types: Vec<String>,
        base_gen: Option<i64>,
    ) -> Self {
        Self {
            sync_id,
            started_at,
            config_hash,
            full: false,
            resources_only: false,
            types,
            phase: Phase::Listing,
            base_gen,
            generation: base_gen.unwrap_or(0) + 1,
            type_index: 0,
            page_token: None,
            pages: 0,
            incremental_types: BTreeSet::new(),
            counts: Counts::default(),
            staged_state: BTreeMap::new(),
            attempts: 1,
            removals: None,
        }
    }

    /// The types whose entitlements and grants carry over from the last snapshot: those
    /// listed incrementally, and every type in a `--resources-only` sync.
    pub fn detail_carry_types(&self) -> Vec<String> {
        if self.resources_only {
            self.types.clone()
        } else {
            self.incremental_types.iter().cloned().collect()
        }
    }

    pub(crate) fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl SqliteState {
    /// The generation and sync id of `source`'s last complete snapshot.
    pub async fn committed_snapshot(
        &self,
        source: &str,
    ) -> Result<Option<(i64, String)>, StateError> {
        let source = source.to_owned();
        self.read(move |conn| {
            conn.query_row(
                "SELECT gen, sync_id FROM snapshots WHERE source = ?1",
                params![source],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .await
    }

    /// The checkpoint of `source`'s unfinished sync, if any.
    pub async fn checkpoint(&self, source: &str) -> Result<Option<Checkpoint>, StateError> {
        let owned = source.to_owned();
        let data: Option<String> = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT data FROM sync_checkpoints WHERE source = ?1",
                    params![owned],
                    |r| r.get(0),
                )
                .optional()
            })
            .await?;
        match data {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                self.corrupt(format!(
                    "the checkpoint of source `{source}` cannot be read ({e}); run `idhost sync --restart --source {source}`"
                ))
            }),
        }
    }

    /// Starts a new sync of `source`: drops what an abandoned listing left (staged
    /// generations; never the outbox, whose events wait for the sinks that have not taken
    /// them) and stores `checkpoint`.
    pub async fn begin_sync(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), StateError> {
        let data = checkpoint.to_json();
        let base = checkpoint.base_gen.unwrap_or(0);
        let (source, sync_id) = (source.to_owned(), checkpoint.sync_id.clone());
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            drop_pending(&tx, &source, base, None)?;
            tx.execute(
                "INSERT OR REPLACE INTO sync_checkpoints (source, sync_id, data, updated_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![source, sync_id, data, now_rfc3339()],
            )?;
            tx.commit()
        })
        .await
    }

    /// Forgets `source`'s unfinished sync while it is still listing or held (`--restart`, or
    /// a resume that no longer fits the config): its staged pages, and any event a diff cut
    /// short left. The committed snapshot stays; the next sync diffs against it again. The
    /// events of committed syncs that some sink has not taken yet stay in the outbox; a sync
    /// already delivering is never discarded (see [`StateStore::settle_delivering`]).
    pub async fn discard_sync(&self, source: &str) -> Result<(), StateError> {
        let base = self.committed_snapshot(source).await?.map_or(0, |(g, _)| g);
        let Some(cp) = self.checkpoint(source).await? else {
            return Ok(());
        };
        if cp.phase == Phase::Delivering {
            return Err(self.corrupt(format!(
                "refusing to discard sync {} of source `{source}`: it is delivering its events",
                cp.sync_id
            )));
        }
        let source = source.to_owned();
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            drop_pending(&tx, &source, base, Some(&cp.sync_id))?;
            tx.execute(
                "DELETE FROM sync_checkpoints WHERE source = ?1",
                params![source],
            )?;
            tx.commit()
        })
        .await
    }

    /// Stores `checkpoint` on its own (phase changes, attempts).
    pub async fn save_checkpoint(
        &self,
        source: &str,
        checkpoint: &Checkpoint,
    ) -> Result<(), StateError> {
        let data = checkpoint.to_json();
        let source = source.to_owned();
        self.blocking(move |conn| save(conn, &source, &data).map(drop))
            .await
    }
}

/// Writes the checkpoint row (inside the caller's transaction, if any).
pub(super) fn save(
    conn: &rusqlite::Connection,
    source: &str,
    data: &str,
) -> Result<usize, rusqlite::Error> {
    conn.execute(
        "UPDATE sync_checkpoints SET data = ?2, updated_at = ?3 WHERE source = ?1",
        params![source, data, now_rfc3339()],
    )
}

/// Deletes every staged generation above `base` of `source`, and the events of the
/// abandoned sync `sync_id` (a diff cut short); the events of committed syncs stay.
fn drop_pending(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    base: i64,
    sync_id: Option<&str>,
) -> Result<(), rusqlite::Error> {
    for table in ["snap_resources", "snap_entitlements", "snap_grants"] {
        tx.execute(
            &format!("DELETE FROM {table} WHERE source = ?1 AND gen > ?2"),
            params![source, base],
        )?;
    }
    tx.execute(
        "DELETE FROM snap_removed WHERE source = ?1",
        params![source],
    )?;
    if let Some(sync_id) = sync_id {
        tx.execute(
            "DELETE FROM events WHERE source = ?1 AND sync_id = ?2",
            params![source, sync_id],
        )?;
    }
    tx.execute(
        "DELETE FROM sync_deliveries WHERE source = ?1",
        params![source],
    )?;
    Ok(())
}
