//! Stand-in for the shared-state backend's fence, so the daemon's fencing builds on its own:
//! the [`Fence`] type and [`StateStore::fenced`], which on the SQLite state database checks
//! nothing (one replica's own file shares nothing with another). The Postgres backend of the
//! state database replaces this file: there every committing operation of a fenced store
//! checks, in its own transaction, `SELECT 1 FROM idhost_leases WHERE source = $1 AND holder =
//! $2 AND epoch = $3 FOR SHARE` and fails with `StateError::Fenced` when the row is gone —
//! the `FOR SHARE` lock makes a takeover's grant (an `UPDATE` of that row) wait for a commit
//! under way, so a commit either lands before the new epoch exists or is refused.

use super::StateStore;

/// Which lease a sync acts under: the source, this replica's holder id and the epoch of the
/// grant (see the daemon's lease module).
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
    /// This store with every commit for `fence.source` checked against `fence`; on SQLite the
    /// same store (nothing to fence against).
    pub fn fenced(&self, _fence: Fence) -> StateStore {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn on_sqlite_a_fenced_store_commits_as_the_plain_one_does() {
        let dir = tempfile::tempdir().expect("dir");
        let state = StateStore::open(&dir.path().join("state.db")).expect("open");
        let fenced = state.fenced(Fence {
            source: "corp".into(),
            holder: "replica-a".into(),
            epoch: 7,
        });
        fenced
            .record_delivery("corp", "sync-1", "db", None)
            .await
            .expect("one replica's SQLite has nothing to fence against");
    }
}
