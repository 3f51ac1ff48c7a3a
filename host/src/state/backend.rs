//! One state trait, two backends: [`StateStore`] is what the sync, the daemon and the commands
//! hold; behind it [`StateBackend`] is SQLite (the embedded default for one machine, the file
//! `state_path` names; [`SqliteState`]) or Postgres (`state_url = "postgres://…"`, shared by
//! every replica; [`super::pg::PgState`]). Callers see the same operations either way, and the
//! state test suite runs the same cases against both.
//!
//! Fencing: [`StateStore::fenced`] ties every committing operation for one source to a lease
//! epoch. On Postgres each of those transactions first checks `idhost_leases` (`FOR SHARE`,
//! so the row cannot change hands until it commits) and fails with [`StateError::Fenced`] when
//! the lease moved on; SQLite has one machine and so one writer, and ignores the fence.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::checkpoint::{Checkpoint, Removals};
use super::fence::Fence;
use super::outbox::SinkLag;
use super::stage::{Discarded, RecordTable};
use super::store::{SqliteState, StateError};
use crate::record::{Batch, ChangeEvent};

/// What `discard_listing` stores as the checkpoint, made from what it dropped.
pub type CheckpointOf = Box<dyn FnOnce(Discarded) -> String + Send + 'static>;

/// Declares the operations once: the trait, SQLite's implementation (its inherent methods,
/// in `stage.rs`, `carry.rs`, … as before), and [`StateStore`]'s forwarding methods.
macro_rules! operations {
    ($( $(#[doc = $doc:literal])* fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        /// The state database's operations, implemented by SQLite and by Postgres.
        #[async_trait]
        pub trait StateBackend: Send + Sync + Debug {
            /// A handle whose committing operations for `fence.source` check `fence` in the
            /// same transaction (a no-op on SQLite).
            fn fenced(&self, fence: Fence) -> Arc<dyn StateBackend>;
            /// The database, for messages (never a password).
            fn describe(&self) -> String;
            /// `discard_listing` (see [`StateStore::discard_listing`]).
            async fn discard_listing(
                &self,
                source: &str,
                generation: i64,
                rtype: &str,
                checkpoint: CheckpointOf,
            ) -> Result<Discarded, StateError>;
            $( $(#[doc = $doc])* async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StateError>; )*
        }

        #[async_trait]
        impl StateBackend for SqliteState {
            fn fenced(&self, _fence: Fence) -> Arc<dyn StateBackend> {
                // One machine, one writer: nothing to fence against.
                Arc::new(self.clone())
            }
            fn describe(&self) -> String {
                self.path().display().to_string()
            }
            async fn discard_listing(
                &self,
                source: &str,
                generation: i64,
                rtype: &str,
                checkpoint: CheckpointOf,
            ) -> Result<Discarded, StateError> {
                SqliteState::discard_listing(self, source, generation, rtype, checkpoint).await
            }
            $( async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StateError> {
                SqliteState::$name(self $(, $arg)*).await
            } )*
        }

        impl StateStore {
            $( $(#[doc = $doc])* pub async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StateError> {
                self.backend.$name($($arg),*).await
            } )*
        }
    };
}

operations! {
    /// Commits one page of `rtype` and the checkpoint that follows it, in one transaction.
    /// `removed` are the ids an incremental page names as removed.
    fn stage_page(&self, source: &str, checkpoint: &Checkpoint, rtype: &str, batch: Arc<Batch>, removed: Vec<String>) -> ();
    /// Up to `limit` records of `table` in generation `gen` of `source` whose id sorts after
    /// `after`, in id order, and the last id returned.
    fn replay_chunk(&self, source: &str, generation: i64, table: RecordTable, after: String, limit: usize) -> (Batch, Option<String>);
    /// The committed connector state of `source`.
    fn connector_state(&self, source: &str) -> HashMap<String, String>;
    /// Commits staged connector state changes of `source` in one transaction.
    fn commit_connector_state(&self, source: &str, staged: HashMap<String, Option<String>>) -> ();
    /// Forgets the connector state of `source` (`--full`).
    fn clear_connector_state(&self, source: &str) -> ();
    /// Up to `limit` events of `source` after outbox position `after`, in order, with their
    /// positions.
    fn events_after(&self, source: &str, after: i64, limit: usize) -> Vec<(i64, ChangeEvent)>;
    /// Counts of the outbox events of sync `sync_id` by kind.
    fn event_counts(&self, source: &str, sync_id: &str) -> Vec<(String, u64)>;
    /// The sinks that already committed sync `sync_id` of `source`.
    fn delivered_sinks(&self, source: &str, sync_id: &str) -> BTreeSet<String>;
    /// Starts the delivery of sync `sync_id` of `source` to `sinks` (those that take events):
    /// forgets the positions of sinks no longer routed from the source, gives a sink seen for
    /// the first time a position just before this sync's events, and returns each sink's
    /// position and the end of the outbox.
    fn open_delivery(&self, source: &str, sync_id: &str, sinks: Vec<String>) -> (Vec<(String, i64)>, i64);
    /// Records that `sink` committed sync `sync_id` of `source` and, for a sink that takes
    /// events, that its position is now `upto`, in one transaction.
    fn record_delivery(&self, source: &str, sync_id: &str, sink: &str, upto: Option<i64>) -> ();
    /// How far behind each sink that takes events of `source` is.
    fn sink_lag(&self, source: &str) -> Vec<SinkLag>;
    /// Up to `limit` records of `table` that carry over into `checkpoint`'s generation, with
    /// ids after `after`, in id order, and the last id returned.
    fn carry_chunk(&self, source: &str, checkpoint: &Checkpoint, table: RecordTable, after: String, limit: usize) -> (Batch, Option<String>);
    /// Copies the records of `table` that carry over, with ids in `(after, upto]`, into
    /// `checkpoint`'s generation, and stores `checkpoint`, in one transaction.
    fn keep_carried(&self, source: &str, checkpoint: &Checkpoint, table: RecordTable, after: String, upto: String) -> usize;
    /// The generation and sync id of `source`'s last complete snapshot.
    fn committed_snapshot(&self, source: &str) -> Option<(i64, String)>;
    /// The checkpoint of `source`'s unfinished sync, if any.
    fn checkpoint(&self, source: &str) -> Option<Checkpoint>;
    /// Starts a new sync of `source`: drops what an abandoned listing left and stores
    /// `checkpoint`.
    fn begin_sync(&self, source: &str, checkpoint: &Checkpoint) -> ();
    /// Forgets `source`'s unfinished sync while it is still listing or held.
    fn discard_sync(&self, source: &str) -> ();
    /// Stores `checkpoint` on its own (phase changes, attempts).
    fn save_checkpoint(&self, source: &str, checkpoint: &Checkpoint) -> ();
    /// Diffs `checkpoint`'s generation against its base, writes the events into the outbox
    /// and marks the sync `delivering`. Returns the number of events (none for a source's
    /// first sync, which is its baseline).
    fn diff(&self, source: &str, checkpoint: &mut Checkpoint, at: String, volatile: &BTreeMap<String, Vec<String>>) -> u64;
    /// What `checkpoint`'s complete listing removes from the previous snapshot.
    fn removals(&self, source: &str, checkpoint: &Checkpoint) -> Removals;
    /// Makes `checkpoint`'s generation `source`'s snapshot, in one transaction; returns the
    /// sinks that lost events past the outbox's cap, with how many.
    fn commit_sync(&self, source: &str, checkpoint: &Checkpoint, finished_at: String) -> Vec<(String, u64)>;
}

/// The state database: SQLite or Postgres behind one set of operations. Cheap to clone.
#[derive(Clone, Debug)]
pub struct StateStore {
    backend: Arc<dyn StateBackend>,
}

impl StateStore {
    /// Opens (creating and migrating) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Self, StateError> {
        Ok(Self::from_backend(Arc::new(SqliteState::open(path)?)))
    }

    /// The state database `config` names: `state_url`'s Postgres, else the SQLite file.
    pub async fn for_config(config: &crate::config::Config) -> Result<Self, StateError> {
        match &config.state_postgres {
            Some(url) => Self::connect(url).await,
            None => Self::open(&config.state_path),
        }
    }

    /// A store over `backend`.
    pub fn from_backend(backend: Arc<dyn StateBackend>) -> Self {
        Self { backend }
    }

    /// A clone whose committing operations for `fence.source` are refused with
    /// [`StateError::Fenced`] once the lease `fence` names is no longer held (Postgres; on
    /// SQLite the same store).
    pub fn fenced(&self, fence: Fence) -> StateStore {
        Self {
            backend: self.backend.fenced(fence),
        }
    }

    /// The database, for messages: the SQLite file, or `postgres://host:port/db`.
    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Drops what generation `generation` of `source` staged from the listing of `rtype` (its
    /// resources, and the entitlements and grants its pages carried) and stores the checkpoint
    /// `checkpoint` makes from the numbers dropped, in one transaction. For a listing that
    /// shifted under the connector: it is listed again from its first page.
    pub async fn discard_listing(
        &self,
        source: &str,
        generation: i64,
        rtype: &str,
        checkpoint: impl FnOnce(Discarded) -> String + Send + 'static,
    ) -> Result<Discarded, StateError> {
        self.backend
            .discard_listing(source, generation, rtype, Box::new(checkpoint))
            .await
    }
}
