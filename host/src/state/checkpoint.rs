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

/// Where the listing of one resource type is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeCursor {
    /// Token of the type's next page (`None`: its first page).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_token: Option<String>,
    /// The type's listing is complete.
    #[serde(default)]
    pub done: bool,
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
    /// Index into `types` of the first type not completely listed (`types.len()` once all
    /// are). Types are listed at once, each from its own entry in `cursors`; a checkpoint
    /// written before that (no `cursors`) listed them one after another, and its
    /// `type_index`/`page_token` are read as the cursors they mean ([`Checkpoint::cursor`]).
    pub type_index: usize,
    /// Token of the next page of the type at `type_index`, in a checkpoint written before
    /// `cursors` existed; always `None` in a newer one.
    pub page_token: Option<String>,
    /// Where each type's listing is; a type without an entry starts from its first page.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cursors: BTreeMap<String, TypeCursor>,
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
            cursors: BTreeMap::new(),
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

    /// Where the listing of `rtype` is. In a checkpoint from before per-type cursors, the
    /// types before `type_index` are done and the one at it goes on from `page_token`.
    pub fn cursor(&self, rtype: &str) -> TypeCursor {
        if let Some(cursor) = self.cursors.get(rtype) {
            return cursor.clone();
        }
        if !self.cursors.is_empty() {
            return TypeCursor::default();
        }
        match self.types.iter().position(|t| t == rtype) {
            Some(i) if i < self.type_index => TypeCursor {
                page_token: None,
                done: true,
            },
            Some(i) if i == self.type_index => TypeCursor {
                page_token: self.page_token.clone(),
                done: false,
            },
            _ => TypeCursor::default(),
        }
    }

    /// Whether every type is completely listed.
    pub fn listing_complete(&self) -> bool {
        self.types.iter().all(|t| self.cursor(t).done)
    }

    /// Moves the cursors to per-type form (a checkpoint from before them is read as it meant).
    fn own_cursors(&mut self) {
        if self.cursors.is_empty() {
            let cursors = self
                .types
                .iter()
                .map(|t| (t.clone(), self.cursor(t)))
                .collect();
            self.cursors = cursors;
            self.page_token = None;
        }
    }

    /// Keeps `type_index` on the first type not done, for readers of the older form.
    fn sync_type_index(&mut self) {
        self.type_index = self
            .types
            .iter()
            .position(|t| !self.cursor(t).done)
            .unwrap_or(self.types.len());
    }

    /// After a committed page of `rtype`: its listing goes on from `next`, or is done.
    pub fn advance(&mut self, rtype: &str, next: Option<String>) {
        self.own_cursors();
        let done = next.is_none();
        self.cursors.insert(
            rtype.to_owned(),
            TypeCursor {
                page_token: next,
                done,
            },
        );
        self.sync_type_index();
    }

    /// `rtype` is listed again from its first page (its listing shifted).
    pub fn restart_type(&mut self, rtype: &str) {
        self.own_cursors();
        self.cursors.insert(rtype.to_owned(), TypeCursor::default());
        self.sync_type_index();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint::new(
            "s1".into(),
            "2026-01-01T00:00:00Z".into(),
            "h".into(),
            vec!["user".into(), "group".into(), "role".into()],
            None,
        )
    }

    #[test]
    fn a_checkpoint_from_before_per_type_cursors_resumes_where_it_was() {
        // What the previous version wrote: `role` not begun, `group` mid-listing, `user` done.
        let mut old = serde_json::to_value(sample()).expect("serializes");
        old["type_index"] = 1.into();
        old["page_token"] = "p7".into();
        old.as_object_mut().expect("object").remove("cursors");
        let cp: Checkpoint = serde_json::from_value(old).expect("an old checkpoint is read");
        assert!(cp.cursor("user").done);
        assert_eq!(
            cp.cursor("group"),
            TypeCursor {
                page_token: Some("p7".into()),
                done: false
            }
        );
        assert_eq!(cp.cursor("role"), TypeCursor::default());
        assert!(!cp.listing_complete());
    }

    #[test]
    fn types_advance_on_their_own_cursors_and_a_relisted_type_starts_over() {
        let mut cp = sample();
        cp.advance("role", None);
        cp.advance("group", Some("g2".into()));
        assert_eq!(cp.type_index, 0, "`user` is the first type not done");
        assert!(cp.cursor("role").done);
        assert_eq!(cp.cursor("group").page_token.as_deref(), Some("g2"));
        assert_eq!(cp.cursor("user"), TypeCursor::default());
        cp.advance("user", None);
        assert_eq!(cp.type_index, 1);
        cp.restart_type("group");
        assert_eq!(cp.cursor("group"), TypeCursor::default());
        cp.advance("group", None);
        assert!(cp.listing_complete());
        assert_eq!(cp.type_index, 3);
        // Round trip through the stored form.
        let back: Checkpoint = serde_json::from_str(&cp.to_json()).expect("reads back");
        assert_eq!(back, cp);
        assert!(back.listing_complete());
    }
}
