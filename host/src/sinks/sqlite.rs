//! The embedded default sink: one SQLite file, queryable with plain SQL.
//!
//! Schema (each table carries `source`; JSON columns hold the DESIGN §4 traits):
//! - `resources(source, id, type, display_name, status, parent, user, "group", app, role, profile, sync_id)`
//! - `entitlements(source, id, resource, slug, display_name, purpose, grantable_to, sync_id)`
//! - `grants(source, id, entitlement, principal, sync_id)`
//! - `sync_runs(source, sync_id, started_at, finished_at, status, counts, error)`
//! - `events(seq, id, source, event, subject, sync_id, at, changes)` when `records` include
//!   `event`: appended on commit, `seq` increasing, a redelivered event (same `id`) ignored
//! - `departed_users(source, id, display_name, user, sync_id, departed_at)`: the last record of
//!   every user a snapshot dropped (until it is listed again), so `idhost query orphans` can
//!   tell an account of a deleted person from one that never had a person
//!
//! A sync writes its pages into staging tables (`_staging_*`, keyed by `(source, id)` like the
//! visible tables) in short transactions, so several sources can sync into one file at once.
//! Its commit swaps the source's snapshot in ONE transaction, as a diff of the staged rows
//! against the visible ones: rows no longer listed are deleted, new and changed rows are
//! upserted, unchanged rows are left in place (only their `sync_id` moves to the new sync), and
//! the staging is dropped. A source's first snapshot is a plain copy in key order; when it is
//! most of the table, the indexes whose order has nothing to do with the key (`grants` by
//! principal, `resources` by type) are dropped and rebuilt inside that transaction: one sort
//! instead of a million inserts at random places. Every visible row carries the `sync_id` of
//! the sync whose snapshot it belongs to, as before. A failed, cancelled or killed sync never
//! touches the visible tables (a failed commit rolls back whole, dropped indexes included); its
//! staging is deleted on abort or when the source's next sync begins (a resumed sync is
//! replayed from the host's state database).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, params};

use super::{Batch, ChangeEvent, Sink, SinkError, SinkSession, SyncRun};
use crate::config::SinkConfig;

/// Connection settings, applied every time the sink opens its file.
///
/// Crash safety (WAL mode): `synchronous = NORMAL` does not fsync at commit, only before a
/// checkpoint; a committed transaction survives a killed process (it is in the WAL, which the
/// next opener replays) but the newest ones may be lost on a power cut, never half of one. That
/// is enough for the staging: a sync killed at any point is resumed by replaying its committed
/// pages from the host's state database, and whatever the killed attempt staged is dropped.
/// The swap that makes a snapshot visible runs with `synchronous = FULL` (see `commit`), so
/// once the host records the delivery, the new snapshot is on disk.
///
/// `page_size` only applies to a new file (an existing one keeps its own): 16 KiB pages hold
/// four times the rows of the default 4 KiB, so a large sync balances, writes and checkpoints
/// far fewer pages. `threads` lets the sorter of `CREATE INDEX` use a helper thread.
const PRAGMAS: &str = r#"
PRAGMA page_size = 16384;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA busy_timeout = 30000;
PRAGMA cache_size = -24576;
PRAGMA threads = 2;
"#;

/// The visible tables.
const SCHEMA: &str = r#"
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

/// The SQLite sink.
pub struct SqliteSink {
    config: SinkConfig,
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

/// Applies the settings and the schema, replacing a staging of the old layout.
fn prepare(conn: &Connection, events: bool) -> Result<(), rusqlite::Error> {
    conn.execute_batch(PRAGMAS)?;
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

impl SqliteSink {
    /// Opens (creating) the database and applies the schema.
    pub async fn open(config: SinkConfig) -> Result<Self, SinkError> {
        let path = config
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("idhost.db"));
        let name = config.name.clone();
        let p = path.clone();
        let events = config.records.wants_kind("event");
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, rusqlite::Error> {
            if let Some(dir) = p.parent()
                && !dir.as_os_str().is_empty()
            {
                let _ = std::fs::create_dir_all(dir);
            }
            let conn = Connection::open(&p)?;
            prepare(&conn, events)?;
            Ok(conn)
        })
        .await
        .map_err(|e| SinkError::Other {
            sink: name.clone(),
            message: e.to_string(),
        })?
        .map_err(|source| SinkError::Sqlite {
            sink: name,
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            config,
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Deletes staging rows no running sync owns (left by a killed process).
    pub async fn drop_stale_staging(&self) -> Result<(), SinkError> {
        self.blocking(|conn| {
            let tx = conn.transaction()?;
            for table in TABLES {
                tx.execute(&format!("DELETE FROM {}", table.staging), [])?;
            }
            tx.execute("DELETE FROM _staging_events", [])?;
            tx.commit()
        })
        .await
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, SinkError> {
        run_blocking(
            self.conn.clone(),
            self.config.name.clone(),
            self.path.clone(),
            f,
        )
        .await
    }
}

async fn run_blocking<T: Send + 'static>(
    conn: Arc<Mutex<Connection>>,
    sink: String,
    path: PathBuf,
    f: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error> + Send + 'static,
) -> Result<T, SinkError> {
    let name = sink.clone();
    let p = path.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut conn)
    })
    .await
    .map_err(|e| SinkError::Other {
        sink: name,
        message: format!("the writer task failed: {e}"),
    })?
    .map_err(|source| SinkError::Sqlite {
        sink,
        path: p,
        source,
    })
}

/// A visible table, its staging, and what its swap needs to know.
struct Table {
    visible: &'static str,
    staging: &'static str,
    /// Columns besides `source`, `id` and `sync_id`, in staging order.
    columns: &'static [&'static str],
    /// Secondary indexes of the visible table.
    indexes: &'static [Index],
}

/// A secondary index of a visible table.
struct Index {
    name: &'static str,
    /// The statement creating it, as in [`SCHEMA`].
    create: &'static str,
    /// Whether a bulk copy (see [`REBUILD_MIN_ROWS`]) drops and rebuilds it: yes for an index
    /// whose order is unrelated to the key (each copied row would land on a random page), no
    /// for one the key order fills nearly in order anyway.
    rebuild: bool,
}

/// Resources, entitlements, grants: the order of `SqliteSession::staged` and `Page::tables`.
const TABLES: [Table; 3] = [
    Table {
        visible: "resources",
        staging: "_staging_resources",
        columns: &[
            "type",
            "display_name",
            "status",
            "parent",
            "user",
            "group",
            "app",
            "role",
            "profile",
        ],
        indexes: &[Index {
            name: "resources_type",
            create: "CREATE INDEX IF NOT EXISTS resources_type ON resources (source, type);",
            rebuild: true,
        }],
    },
    Table {
        visible: "entitlements",
        staging: "_staging_entitlements",
        columns: &[
            "resource",
            "slug",
            "display_name",
            "purpose",
            "grantable_to",
        ],
        indexes: &[],
    },
    Table {
        visible: "grants",
        staging: "_staging_grants",
        columns: &["entitlement", "principal"],
        indexes: &[
            Index {
                name: "grants_principal",
                create: "CREATE INDEX IF NOT EXISTS grants_principal ON grants (principal);",
                rebuild: true,
            },
            // A grant's id starts with its entitlement's (`<entitlement>:<principal>`), so a
            // copy in id order appends to this index one entitlement after another.
            Index {
                name: "grants_entitlement",
                create: "CREATE INDEX IF NOT EXISTS grants_entitlement ON grants (entitlement);",
                rebuild: false,
            },
        ],
    },
];

/// A source's first snapshot of at least this many rows, and at least as many as the table
/// holds for other sources, is copied with the table's [`Index::rebuild`] indexes dropped and
/// rebuilt (measured on 1M grants: about 3 s to copy them with both indexes in place, 1 s to
/// copy them and then rebuild `grants_principal`).
const REBUILD_MIN_ROWS: u64 = 50_000;

fn quoted(columns: &[&str], prefix: &str) -> String {
    columns
        .iter()
        .map(|c| format!("{prefix}\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes the staged rows of `source` its visible rows in `table` (inside the commit's
/// transaction). `staged` is how many rows the session staged (an upper bound: a record
/// staged twice counts twice).
fn swap(
    tx: &rusqlite::Transaction<'_>,
    table: &Table,
    source: &str,
    sync_id: &str,
    staged: u64,
) -> Result<(), rusqlite::Error> {
    let (visible, staging) = (table.visible, table.staging);
    let columns = quoted(table.columns, "");
    let had_rows: bool = tx.query_row(
        &format!("SELECT EXISTS (SELECT 1 FROM {visible} WHERE source = ?1)"),
        params![source],
        |r| r.get(0),
    )?;
    if table.visible == "resources" {
        remember_departed_users(tx, source, sync_id, had_rows)?;
    }
    if !had_rows {
        // The source's first snapshot here: every staged row is new, and staging is read in
        // key order, so the rows append to the table's key.
        let rebuild = table.indexes.iter().any(|i| i.rebuild)
            && staged >= REBUILD_MIN_ROWS
            && tx.query_row(
                &format!("SELECT count(*) FROM (SELECT 1 FROM {visible} LIMIT ?1)"),
                params![staged as i64 + 1],
                |r| r.get::<_, i64>(0),
            )? as u64
                <= staged;
        if rebuild {
            for index in table.indexes.iter().filter(|i| i.rebuild) {
                tx.execute_batch(&format!("DROP INDEX IF EXISTS {}", index.name))?;
            }
        }
        tx.execute(
            &format!(
                "INSERT INTO {visible} (source, id, {columns}, sync_id)
                 SELECT source, id, {columns}, ?2 FROM {staging} WHERE source = ?1"
            ),
            params![source, sync_id],
        )?;
        if rebuild {
            for index in table.indexes.iter().filter(|i| i.rebuild) {
                tx.execute_batch(index.create)?;
            }
        }
        return Ok(());
    }
    tx.execute(
        &format!(
            "DELETE FROM {visible} WHERE source = ?1 AND NOT EXISTS
               (SELECT 1 FROM {staging} s WHERE s.source = ?1 AND s.id = {visible}.id)"
        ),
        params![source],
    )?;
    let same = table
        .columns
        .iter()
        .map(|c| format!("t.\"{c}\" IS s.\"{c}\""))
        .collect::<Vec<_>>()
        .join(" AND ");
    let set = table
        .columns
        .iter()
        .map(|c| format!("\"{c}\" = excluded.\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let staged_columns = quoted(table.columns, "s.");
    tx.execute(
        &format!(
            "INSERT INTO {visible} (source, id, {columns}, sync_id)
             SELECT s.source, s.id, {staged_columns}, ?2 FROM {staging} s
             WHERE s.source = ?1 AND NOT EXISTS
               (SELECT 1 FROM {visible} t WHERE t.source = ?1 AND t.id = s.id AND {same})
             ON CONFLICT (source, id) DO UPDATE SET {set}, sync_id = excluded.sync_id"
        ),
        params![source, sync_id],
    )?;
    // Unchanged rows stay where they are; they belong to the new snapshot all the same.
    tx.execute(
        &format!("UPDATE {visible} SET sync_id = ?2 WHERE source = ?1 AND sync_id IS NOT ?2"),
        params![source, sync_id],
    )?;
    Ok(())
}

/// Keeps the last record of each user the new snapshot of `source` drops, and forgets the
/// departed users it lists again (inside the commit's transaction, before the swap). Both
/// statements walk only the source's users (the `resources_type` index) or its departed
/// ones, probing the staging by its key.
fn remember_departed_users(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    sync_id: &str,
    had_rows: bool,
) -> Result<(), rusqlite::Error> {
    if had_rows {
        tx.execute(
            "INSERT OR REPLACE INTO departed_users (source, id, display_name, user, sync_id, departed_at)
             SELECT r.source, r.id, r.display_name, r.user, ?2, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')
             FROM resources r WHERE r.source = ?1 AND r.type = 'user' AND NOT EXISTS
               (SELECT 1 FROM _staging_resources s WHERE s.source = ?1 AND s.id = r.id)",
            params![source, sync_id],
        )?;
    }
    tx.execute(
        "DELETE FROM departed_users WHERE source = ?1 AND EXISTS
           (SELECT 1 FROM _staging_resources s WHERE s.source = ?1 AND s.id = departed_users.id)",
        params![source],
    )?;
    Ok(())
}

/// Deletes the staged records of `source`: the whole staging (one cheap truncation) when no
/// other source has rows in it.
fn clear_staging(tx: &rusqlite::Transaction<'_>, source: &str) -> Result<(), rusqlite::Error> {
    for table in TABLES {
        let staging = table.staging;
        let others: bool = tx.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {staging} WHERE source < ?1)
                     OR EXISTS (SELECT 1 FROM {staging} WHERE source > ?1)"
            ),
            params![source],
            |r| r.get(0),
        )?;
        if others {
            tx.execute(
                &format!("DELETE FROM {staging} WHERE source = ?1"),
                params![source],
            )?;
        } else {
            tx.execute(&format!("DELETE FROM {staging}"), [])?;
        }
    }
    Ok(())
}

#[async_trait]
impl Sink for SqliteSink {
    fn config(&self) -> &SinkConfig {
        &self.config
    }

    async fn begin(&self, source: &str, sync_id: &str) -> Result<Box<dyn SinkSession>, SinkError> {
        // A resumed sync starts its staging over: what a killed attempt staged is dropped
        // (one sync per source runs at a time, so every staged row of the source is stale).
        let owner = source.to_owned();
        self.blocking(move |conn| {
            let tx = conn.transaction()?;
            clear_staging(&tx, &owner)?;
            tx.execute(
                "DELETE FROM _staging_events WHERE source = ?1",
                params![owner],
            )?;
            tx.commit()
        })
        .await?;
        Ok(Box::new(SqliteSession {
            conn: self.conn.clone(),
            sink: self.config.name.clone(),
            path: self.path.clone(),
            source: source.to_owned(),
            sync_id: sync_id.to_owned(),
            events: self.config.records.wants_kind("event"),
            staged: [0; 3],
        }))
    }
}

struct SqliteSession {
    conn: Arc<Mutex<Connection>>,
    sink: String,
    path: PathBuf,
    source: String,
    sync_id: String,
    /// Whether the sink keeps change events (has an `events` table).
    events: bool,
    /// Rows staged so far per table of [`TABLES`].
    staged: [u64; 3],
}

/// One table's column values of a page, packed into one buffer: the blocking writer owns them
/// without a copy of the batch (a `String` per field), and each JSON column is serialized once,
/// straight into the buffer.
#[derive(Default)]
struct Packed {
    text: Vec<u8>,
    /// Where each field ends in `text`; [`NULL`] set for a NULL.
    ends: Vec<u32>,
    /// Fields per row.
    width: usize,
}

/// The flag of a NULL field in [`Packed::ends`].
const NULL: u32 = 1 << 31;

impl Packed {
    fn new(width: usize, rows: usize, text: usize) -> Self {
        Self {
            text: Vec::with_capacity(text),
            ends: Vec::with_capacity(rows * width),
            width,
        }
    }

    fn end(&mut self) {
        // Checked in `finish`: a page never holds 2 GiB of text in practice.
        self.ends
            .push(self.text.len().min((NULL - 1) as usize) as u32);
    }

    fn push(&mut self, value: &str) {
        self.text.extend_from_slice(value.as_bytes());
        self.end();
    }

    fn push_null(&mut self) {
        self.end();
        if let Some(last) = self.ends.last_mut() {
            *last |= NULL;
        }
    }

    /// `value` as JSON, or `fallback` (a JSON literal) if it does not serialize.
    fn push_json<T: serde::Serialize + ?Sized>(&mut self, value: &T, fallback: &str) {
        let start = self.text.len();
        if serde_json::to_writer(&mut self.text, value).is_err() {
            self.text.truncate(start);
            self.text.extend_from_slice(fallback.as_bytes());
        }
        self.end();
    }

    /// `value` as JSON; NULL if absent or if it does not serialize.
    fn push_json_or_null<T: serde::Serialize>(&mut self, value: &Option<T>) {
        let start = self.text.len();
        match value {
            Some(v) if serde_json::to_writer(&mut self.text, v).is_ok() => self.end(),
            _ => {
                self.text.truncate(start);
                self.push_null();
            }
        }
    }

    fn rows(&self) -> usize {
        self.ends.len().checked_div(self.width).unwrap_or(0)
    }

    /// Field `index` as a TEXT (or NULL) value, borrowed from the buffer.
    fn value(&self, index: usize) -> ToSqlOutput<'_> {
        let start = match index {
            0 => 0,
            i => (self.ends[i - 1] & !NULL) as usize,
        };
        let end = self.ends[index];
        if end & NULL != 0 {
            ToSqlOutput::Borrowed(ValueRef::Null)
        } else {
            ToSqlOutput::Borrowed(ValueRef::Text(&self.text[start..end as usize]))
        }
    }

    fn too_large(&self) -> bool {
        self.text.len() >= (NULL - 1) as usize
    }
}

/// A page, packed for the writer: resources, entitlements, grants.
struct Page {
    tables: [Packed; 3],
}

impl Page {
    fn pack(batch: &Batch) -> Self {
        let mut resources = Packed::new(
            TABLES[0].columns.len() + 1,
            batch.resources.len(),
            batch.resources.len() * 256,
        );
        for r in &batch.resources {
            resources.push(&r.id);
            resources.push(&r.rtype);
            resources.push(&r.display_name);
            resources.push(r.status.as_str());
            match &r.parent {
                Some(parent) => resources.push(parent),
                None => resources.push_null(),
            }
            resources.push_json_or_null(&r.user);
            resources.push_json_or_null(&r.group);
            resources.push_json_or_null(&r.app);
            resources.push_json_or_null(&r.role);
            resources.push_json(&r.profile, "{}");
        }
        let mut entitlements = Packed::new(
            TABLES[1].columns.len() + 1,
            batch.entitlements.len(),
            batch.entitlements.len() * 128,
        );
        for e in &batch.entitlements {
            entitlements.push(&e.id);
            entitlements.push(&e.resource);
            entitlements.push(&e.slug);
            entitlements.push(&e.display_name);
            let purpose = serde_json::to_value(e.purpose)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            entitlements.push(&purpose);
            entitlements.push_json(&e.grantable_to, "[]");
        }
        let text = batch
            .grants
            .iter()
            .map(|g| g.id.len() + g.entitlement.len() + g.principal.len())
            .sum();
        let mut grants = Packed::new(TABLES[2].columns.len() + 1, batch.grants.len(), text);
        for g in &batch.grants {
            grants.push(&g.id);
            grants.push(&g.entitlement);
            grants.push(&g.principal);
        }
        Self {
            tables: [resources, entitlements, grants],
        }
    }
}

/// Stages a page in one transaction (a record staged again replaces its earlier version).
fn stage(conn: &mut Connection, source: &str, page: &Page) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    for (table, rows) in TABLES.iter().zip(&page.tables) {
        if rows.rows() == 0 {
            continue;
        }
        let placeholders = (1..=rows.width + 1)
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut stmt = tx.prepare_cached(&format!(
            "INSERT OR REPLACE INTO {} (source, id, {}) VALUES ({placeholders})",
            table.staging,
            quoted(table.columns, "")
        ))?;
        stmt.raw_bind_parameter(1, source)?;
        for row in 0..rows.rows() {
            for field in 0..rows.width {
                stmt.raw_bind_parameter(field + 2, rows.value(row * rows.width + field))?;
            }
            stmt.raw_execute()?;
        }
    }
    tx.commit()?;
    if page.tables.iter().map(Packed::rows).sum::<usize>() >= crate::state::LARGE_WRITE {
        crate::state::release_cache(conn)?;
    }
    Ok(())
}

fn record_run(tx: &rusqlite::Transaction<'_>, run: &SyncRun) -> Result<(), rusqlite::Error> {
    tx.execute(
        "INSERT OR REPLACE INTO sync_runs (source, sync_id, started_at, finished_at, status, counts, error)
         VALUES (?1,?2,?3,?4,?5,?6,?7)",
        params![
            run.source,
            run.sync_id,
            run.started_at,
            run.finished_at,
            run.status.as_str(),
            serde_json::to_string(&run.counts).unwrap_or_else(|_| "{}".into()),
            run.error,
        ],
    )
    .map(drop)
}

fn stage_events(
    conn: &mut Connection,
    source: &str,
    sync_id: &str,
    events: &[ChangeEvent],
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO _staging_events (sync_id, source, id, event, subject, at, changes)
             VALUES (?1,?2,?3,?4,?5,?6,?7)",
        )?;
        for e in events {
            stmt.execute(params![
                sync_id,
                source,
                e.id,
                e.event.as_str(),
                e.subject,
                e.at,
                e.changes.to_string(),
            ])?;
        }
    }
    tx.commit()
}

/// Drops what the session staged (inside the caller's transaction).
fn drop_staging(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
    sync_id: &str,
) -> Result<(), rusqlite::Error> {
    clear_staging(tx, source)?;
    tx.execute(
        "DELETE FROM _staging_events WHERE sync_id = ?1",
        params![sync_id],
    )?;
    Ok(())
}

#[async_trait]
impl SinkSession for SqliteSession {
    async fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        // Packed here (one buffer per table), so the writer owns the page without a clone of
        // the batch.
        let page = Page::pack(batch);
        if page.tables.iter().any(Packed::too_large) {
            return Err(SinkError::Other {
                sink: self.sink.clone(),
                message: "a page holds more than 2 GiB of text; use a smaller page size".into(),
            });
        }
        for (count, rows) in self.staged.iter_mut().zip(&page.tables) {
            *count += rows.rows() as u64;
        }
        let source = self.source.clone();
        run_blocking(
            self.conn.clone(),
            self.sink.clone(),
            self.path.clone(),
            move |conn| stage(conn, &source, &page),
        )
        .await
    }

    async fn write_events(&mut self, events: &[ChangeEvent]) -> Result<(), SinkError> {
        let (source, sync_id) = (self.source.clone(), self.sync_id.clone());
        let events = events.to_vec();
        run_blocking(
            self.conn.clone(),
            self.sink.clone(),
            self.path.clone(),
            move |conn| stage_events(conn, &source, &sync_id, &events),
        )
        .await
    }

    async fn commit(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let (source, sync_id, run) = (self.source.clone(), self.sync_id.clone(), run.clone());
        let (events, staged) = (self.events, self.staged);
        run_blocking(self.conn.clone(), self.sink.clone(), self.path.clone(), move |conn| {
            crate::state::durably(conn, |conn| {
                let tx = conn.transaction()?;
                for (table, staged) in TABLES.iter().zip(staged) {
                    swap(&tx, table, &source, &sync_id, staged)?;
                }
                if events {
                    tx.execute(
                        "INSERT OR IGNORE INTO events (id, source, event, subject, sync_id, at, changes)
                         SELECT id, source, event, subject, sync_id, at, changes FROM _staging_events
                         WHERE sync_id = ?1 ORDER BY rowid",
                        params![sync_id],
                    )?;
                }
                drop_staging(&tx, &source, &sync_id)?;
                record_run(&tx, &run)?;
                tx.commit()?;
                // The sink is idle until the source's next sync.
                crate::state::release_cache(conn)
            })
        })
        .await
    }

    async fn abort(self: Box<Self>, run: &SyncRun) -> Result<(), SinkError> {
        let (source, sync_id, run) = (self.source.clone(), self.sync_id.clone(), run.clone());
        run_blocking(
            self.conn.clone(),
            self.sink.clone(),
            self.path.clone(),
            move |conn| {
                let tx = conn.transaction()?;
                drop_staging(&tx, &source, &sync_id)?;
                record_run(&tx, &run)?;
                tx.commit()?;
                crate::state::release_cache(conn)
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rebuilt_index_is_the_one_the_schema_creates() {
        for table in TABLES {
            for index in table.indexes {
                assert!(SCHEMA.contains(index.create), "{}", index.create);
                assert!(
                    index
                        .create
                        .contains(&format!(" {} ON {} ", index.name, table.visible))
                );
            }
        }
        let conn = Connection::open_in_memory().unwrap();
        prepare(&conn, true).unwrap();
        for table in TABLES {
            let indexes: Vec<String> = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_index_list('{}') WHERE origin = 'c' ORDER BY name",
                    table.visible
                ))
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let mut want: Vec<String> = table.indexes.iter().map(|i| i.name.to_owned()).collect();
            want.sort();
            assert_eq!(indexes, want, "{}", table.visible);
            for staging in [table.visible, table.staging] {
                let columns: Vec<String> = conn
                    .prepare(&format!(
                        "SELECT name FROM pragma_table_info('{staging}') ORDER BY cid"
                    ))
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let mut want = vec!["source".to_owned(), "id".to_owned()];
                want.extend(table.columns.iter().map(|c| c.to_string()));
                if staging == table.visible {
                    want.push("sync_id".into());
                }
                assert_eq!(columns, want);
            }
        }
    }

    #[test]
    fn a_packed_page_gives_back_every_field_and_null() {
        let mut p = Packed::new(3, 2, 0);
        p.push("a");
        p.push_null();
        p.push("");
        p.push_json(&serde_json::json!({"k": 1}), "{}");
        p.push_json_or_null::<String>(&None);
        p.push("zz");
        assert_eq!(p.rows(), 2);
        let text = |i| match p.value(i) {
            ToSqlOutput::Borrowed(ValueRef::Text(t)) => {
                Some(String::from_utf8(t.to_vec()).unwrap())
            }
            ToSqlOutput::Borrowed(ValueRef::Null) => None,
            _ => unreachable!(),
        };
        assert_eq!(
            (0..6).map(text).collect::<Vec<_>>(),
            [
                Some("a".into()),
                None,
                Some("".into()),
                Some(r#"{"k":1}"#.into()),
                None,
                Some("zz".into())
            ]
        );
    }
}
