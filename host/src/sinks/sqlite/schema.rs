//! The SQLite sink's tables: the visible ones (DESIGN §4 names and columns), the staging a sync
//! writes into, and the events table of a sink that keeps change events.

use rusqlite::Connection;

/// The visible tables.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS resources (
    source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, display_name TEXT NOT NULL,
    status TEXT NOT NULL, parent TEXT, user TEXT, "group" TEXT, app TEXT, role TEXT,
    profile TEXT, sync_id TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resources_type ON resources (source, type);
CREATE TABLE IF NOT EXISTS entitlements (
    source TEXT NOT NULL, id TEXT NOT NULL, resource TEXT NOT NULL, slug TEXT NOT NULL,
    display_name TEXT NOT NULL, purpose TEXT NOT NULL, grantable_to TEXT NOT NULL,
    sync_id TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS grants (
    source TEXT NOT NULL, id TEXT NOT NULL, entitlement TEXT NOT NULL, principal TEXT NOT NULL,
    sync_id TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS grants_principal ON grants (principal);
CREATE INDEX IF NOT EXISTS grants_entitlement ON grants (entitlement);
CREATE TABLE IF NOT EXISTS departed_users (
    source TEXT NOT NULL, id TEXT NOT NULL, display_name TEXT NOT NULL, user TEXT,
    sync_id TEXT NOT NULL, departed_at TEXT NOT NULL, PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_runs (
    source TEXT NOT NULL, sync_id TEXT NOT NULL PRIMARY KEY, started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL, status TEXT NOT NULL, counts TEXT NOT NULL, error TEXT);
CREATE TABLE IF NOT EXISTS _staging_events (
    sync_id TEXT NOT NULL, source TEXT NOT NULL, id TEXT NOT NULL, event TEXT NOT NULL,
    subject TEXT NOT NULL, at TEXT NOT NULL, changes TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS _staging_events_sync ON _staging_events (sync_id);
"#;

/// The staging of records, keyed like the visible tables: a record staged twice keeps its last
/// version (as the visible table would), and the swap reads staging in key order, so it never
/// sorts and finds each visible row by a merge of two ordered keys. No other index.
const STAGING_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS _staging_resources (
    source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, display_name TEXT NOT NULL,
    status TEXT NOT NULL, parent TEXT, user TEXT, "group" TEXT, app TEXT, role TEXT,
    profile TEXT, PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _staging_entitlements (
    source TEXT NOT NULL, id TEXT NOT NULL, resource TEXT NOT NULL, slug TEXT NOT NULL,
    display_name TEXT NOT NULL, purpose TEXT NOT NULL, grantable_to TEXT NOT NULL,
    PRIMARY KEY (source, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _staging_grants (
    source TEXT NOT NULL, id TEXT NOT NULL, entitlement TEXT NOT NULL, principal TEXT NOT NULL,
    PRIMARY KEY (source, id)) WITHOUT ROWID;
"#;

/// Earlier versions staged records in rowid tables tagged with `sync_id`: such a staging
/// holds only what killed runs left (a resumed sync replays its pages), so it is replaced when
/// the sink opens the file. (An older `idhost` syncing into the same file at that moment would
/// fail that sync; its next one resumes it.)
const OLD_STAGING: &str = r#"
DROP TABLE IF EXISTS _staging_resources;
DROP TABLE IF EXISTS _staging_entitlements;
DROP TABLE IF EXISTS _staging_grants;
"#;

/// The change events table, created when the sink's `records` include `event` (so a file
/// without it tells `idhost query` that the sink keeps no events).
const EVENTS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, source TEXT NOT NULL,
    event TEXT NOT NULL, subject TEXT NOT NULL, sync_id TEXT NOT NULL, at TEXT NOT NULL,
    changes TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_subject ON events (source, subject);
"#;

/// Applies the schema, replacing a staging of the old layout.
pub(super) fn prepare(conn: &Connection, events: bool) -> Result<(), rusqlite::Error> {
    conn.execute_batch(SCHEMA)?;
    let old_staging: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('_staging_grants') WHERE name = 'sync_id')",
        [],
        |r| r.get(0),
    )?;
    if old_staging {
        conn.execute_batch(OLD_STAGING)?;
    }
    conn.execute_batch(STAGING_SCHEMA)?;
    if events {
        conn.execute_batch(EVENTS_SCHEMA)?;
    }
    Ok(())
}
