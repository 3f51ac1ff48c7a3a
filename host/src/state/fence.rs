//! Fencing a sync's commits with its lease (stand-in for the shared-state backend).
//!
//! Under `[coordination]` every lease grant hands out a new *epoch* (see the daemon's lease
//! module). A sync runs against `state.fenced(fence)`: a clone of the state store whose every
//! committing operation for the fenced source checks, in the same transaction, that the lease
//! row still names this holder with this epoch (`SELECT 1 FROM idhost_leases WHERE source = $1
//! AND holder = $2 AND epoch = $3 FOR SHARE`) and fails with [`StateError::Fenced`] otherwise.
//! The `FOR SHARE` lock makes a takeover's grant (an `UPDATE` of that row) wait for the
//! commit under way, so a commit either lands before the new epoch exists or is refused.
//!
//! The state database on SQLite belongs to one replica, which shares nothing with another, so
//! there the fence is carried but checks nothing; the Postgres backend of the state database
//! does the check.

use super::{StateError, StateStore};

/// Which lease a sync acts under: the source, this replica's holder id and the epoch of the
/// grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The source the lease is for.
    pub source: String,
    /// The replica holding it (`idhost_leases.holder`).
    pub holder: String,
    /// The epoch of the grant (`idhost_leases.epoch`).
    pub epoch: i64,
}

impl StateStore {
    /// This store, with every commit for `fence.source` checked against `fence` (see the
    /// module docs; a no-op on SQLite).
    pub fn fenced(&self, fence: Fence) -> StateStore {
        let mut store = self.clone();
        store.fence = Some(std::sync::Arc::new(fence));
        store
    }

    /// The fence this store's commits are checked against, if any.
    pub fn fence(&self) -> Option<&Fence> {
        self.fence.as_deref()
    }

    /// The error of a commit the fence refused.
    pub fn fenced_error(fence: &Fence) -> StateError {
        StateError::Fenced {
            source: fence.source.clone(),
            epoch: fence.epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn on_sqlite_a_fenced_store_commits_as_the_plain_one_does() {
        let dir = tempfile::tempdir().expect("dir");
        let state = StateStore::open(&dir.path().join("state.db")).expect("open");
        let fence = Fence {
            source: "corp".into(),
            holder: "replica-a".into(),
            epoch: 7,
        };
        let fenced = state.fenced(fence.clone());
        assert_eq!(fenced.fence(), Some(&fence));
        assert_eq!(state.fence(), None, "the original stays unfenced");
        fenced
            .record_delivery("corp", "sync-1", "db", None)
            .await
            .expect("one replica's SQLite has nothing to fence against");
        let refused = StateStore::fenced_error(&fence).to_string();
        assert!(
            refused.contains("corp") && refused.contains("epoch 7"),
            "{refused}"
        );
    }
}
