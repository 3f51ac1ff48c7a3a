//! Snapshots, checkpoints and change events, kept in the state database (`state_path`).
//!
//! Per source the host keeps its last complete snapshot as *generation* `g` of three tables
//! (`snap_resources`, `snap_entitlements`, `snap_grants`). A sync writes generation `g + 1`
//! page by page, each page in one transaction together with the sync's checkpoint (where the
//! listing goes on, counts, staged connector state), so a sync killed or stopped at any point
//! resumes from its last committed page and never holds more than a page in memory. When the
//! listing is complete:
//! 1. resource types listed incrementally carry over what the delta did not touch from
//!    generation `g` ([`carry`]), so `g + 1` is a complete snapshot again;
//! 2. the diff of `g` against `g + 1` runs inside SQLite ([`diff`]) and writes change events
//!    into the `events` outbox, in the same transaction that marks the sync `delivering`;
//! 3. each sink takes the events and commits; the host records every sink that did;
//! 4. once every sink has, one transaction makes `g + 1` the snapshot, drops `g`, commits the
//!    connector state and clears the outbox and the checkpoint.
//!
//! A sink that fails in 3 leaves the sync `delivering`: the next `idhost sync` delivers the
//! same events (same ids) to the sinks that have not committed, so nothing is lost and a
//! redelivery is recognizable by id. The first sync of a source is its baseline: it emits no
//! events (a new source's whole directory is not a change).

mod carry;
mod checkpoint;
pub mod diff;
mod stage;

pub use checkpoint::{Checkpoint, Phase};
pub use stage::Table;

/// Tables of the state database this module owns.
const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS snapshots (
    source TEXT PRIMARY KEY, gen INTEGER NOT NULL, sync_id TEXT NOT NULL,
    finished_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snap_resources (
    source TEXT NOT NULL, gen INTEGER NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL,
    status TEXT NOT NULL, record TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS snap_resources_key ON snap_resources (source, gen, id);
CREATE TABLE IF NOT EXISTS snap_entitlements (
    source TEXT NOT NULL, gen INTEGER NOT NULL, id TEXT NOT NULL, rtype TEXT NOT NULL,
    resource TEXT NOT NULL, record TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS snap_entitlements_key ON snap_entitlements (source, gen, id);
CREATE TABLE IF NOT EXISTS snap_grants (
    source TEXT NOT NULL, gen INTEGER NOT NULL, id TEXT NOT NULL, rtype TEXT NOT NULL,
    entitlement TEXT NOT NULL, principal TEXT NOT NULL,
    PRIMARY KEY (source, gen, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snap_removed (
    source TEXT NOT NULL, gen INTEGER NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (source, gen, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tombstones (
    source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, sync_id TEXT NOT NULL,
    PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_checkpoints (
    source TEXT PRIMARY KEY, sync_id TEXT NOT NULL, data TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
    sync_id TEXT NOT NULL, event TEXT NOT NULL, subject TEXT NOT NULL, at TEXT NOT NULL,
    changes TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_sync ON events (source, sync_id, seq);
CREATE TABLE IF NOT EXISTS sync_deliveries (
    source TEXT NOT NULL, sync_id TEXT NOT NULL, sink TEXT NOT NULL, delivered_at TEXT NOT NULL,
    PRIMARY KEY (source, sync_id, sink));
"#;

/// Creates this module's tables and registers the SQL functions the diff uses.
pub(crate) fn migrate(conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
    conn.execute_batch(SCHEMA)?;
    diff::register_functions(conn)
}

/// Now, RFC 3339.
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
