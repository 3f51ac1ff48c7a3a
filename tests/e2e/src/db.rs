//! What landed in SQLite: a sink's (or the state database's) file, opened read-only, with
//! readers for counts, id sets, `resources` rows (JSON columns parsed) and `sync_runs`.
#![allow(
    clippy::disallowed_methods,
    reason = "the tests read the databases idhost wrote the way an outside client would"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, Params};
use serde_json::Value;

/// One row of `resources`, JSON columns parsed (`Null` when absent).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRow {
    /// `user:<id>`, `group:<id>`, ...
    pub id: String,
    /// Resource type.
    pub rtype: String,
    /// Display name.
    pub display_name: String,
    /// `enabled`, `disabled` or `deleted`.
    pub status: String,
    /// The user trait.
    pub user: Value,
    /// The group trait.
    pub group: Value,
    /// The app trait.
    pub app: Value,
    /// The role trait.
    pub role: Value,
    /// Everything else the upstream sent.
    pub profile: Value,
    /// The sync that wrote the row.
    pub sync_id: String,
}

/// One row of `sync_runs`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRunRow {
    /// Sync id.
    pub sync_id: String,
    /// `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// Counts as JSON.
    pub counts: Value,
    /// The error, if any.
    pub error: Option<String>,
}

/// What a source's visible snapshot holds: resources by type, entitlements, grants, and the
/// sync ids its rows carry (exactly one for a snapshot swapped in by one sync).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Resource counts by type.
    pub resources: BTreeMap<String, i64>,
    /// Entitlement count.
    pub entitlements: i64,
    /// Grant count.
    pub grants: i64,
    /// Distinct `sync_id`s over the source's rows of the three tables.
    pub sync_ids: BTreeSet<String>,
}

/// The SQLite sink's file, opened read-only.
#[derive(Debug)]
pub struct Db {
    conn: Connection,
}

fn json_column(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

impl std::ops::Deref for Db {
    type Target = Connection;

    /// The connection, for queries the helpers do not cover.
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Db {
    /// Opens `path` read-only; panics naming the file if it does not exist.
    pub fn open(path: &Path) -> Self {
        assert!(path.exists(), "{} was not written", path.display());
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Self { conn }
    }

    /// Opens `path` for writing; panics naming the file if it does not exist.
    pub fn open_writable(path: &Path) -> Self {
        assert!(path.exists(), "{} was not written", path.display());
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        Self { conn }
    }

    /// The connection, for queries the helpers do not cover.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The single integer `sql` answers.
    pub fn count(&self, sql: &str, params: impl Params) -> i64 {
        self.conn
            .query_row(sql, params, |r| r.get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The first column of every row `sql` answers, as text.
    pub fn strings(&self, sql: &str, params: impl Params) -> Vec<String> {
        let mut stmt = self
            .conn
            .prepare(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        stmt.query_map(params, |r| r.get::<_, String>(0))
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Like [`Db::strings`], as a set.
    pub fn set(&self, sql: &str, params: impl Params) -> BTreeSet<String> {
        self.strings(sql, params).into_iter().collect()
    }

    /// Ids of `source`'s resources of type `rtype`.
    pub fn resource_ids(&self, source: &str, rtype: &str) -> BTreeSet<String> {
        self.set(
            "SELECT id FROM resources WHERE source = ?1 AND type = ?2",
            [source, rtype],
        )
    }

    /// Ids of `source`'s grants.
    pub fn grant_ids(&self, source: &str) -> BTreeSet<String> {
        self.set("SELECT id FROM grants WHERE source = ?1", [source])
    }

    /// Ids of `source`'s entitlements.
    pub fn entitlement_ids(&self, source: &str) -> BTreeSet<String> {
        self.set("SELECT id FROM entitlements WHERE source = ?1", [source])
    }

    /// `source`'s visible snapshot in numbers.
    pub fn snapshot(&self, source: &str) -> Snapshot {
        let mut resources = BTreeMap::new();
        let mut stmt = self
            .conn
            .prepare("SELECT type, count(*) FROM resources WHERE source = ?1 GROUP BY type")
            .expect("prepare");
        let rows = stmt
            .query_map([source], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .expect("resource counts");
        resources.extend(rows);
        Snapshot {
            resources,
            entitlements: self.count(
                "SELECT count(*) FROM entitlements WHERE source = ?1",
                [source],
            ),
            grants: self.count("SELECT count(*) FROM grants WHERE source = ?1", [source]),
            sync_ids: self.set(
                "SELECT sync_id FROM resources WHERE source = ?1
                 UNION SELECT sync_id FROM entitlements WHERE source = ?1
                 UNION SELECT sync_id FROM grants WHERE source = ?1",
                [source],
            ),
        }
    }

    /// One resource of `source`, or `None`.
    pub fn resource(&self, source: &str, id: &str) -> Option<ResourceRow> {
        self.conn
            .query_row(
                r#"SELECT id, type, display_name, status, user, "group", app, role, profile, sync_id
                   FROM resources WHERE source = ?1 AND id = ?2"#,
                [source, id],
                |r| {
                    Ok(ResourceRow {
                        id: r.get(0)?,
                        rtype: r.get(1)?,
                        display_name: r.get(2)?,
                        status: r.get(3)?,
                        user: json_column(r.get(4)?),
                        group: json_column(r.get(5)?),
                        app: json_column(r.get(6)?),
                        role: json_column(r.get(7)?),
                        profile: json_column(r.get(8)?),
                        sync_id: r.get(9)?,
                    })
                },
            )
            .optional()
            .unwrap_or_else(|e| panic!("resource {id}: {e}"))
    }

    /// Every resource of `source` with type `rtype`, by id.
    pub fn resources(&self, source: &str, rtype: &str) -> BTreeMap<String, ResourceRow> {
        self.resource_ids(source, rtype)
            .into_iter()
            .filter_map(|id| self.resource(source, &id).map(|row| (id, row)))
            .collect()
    }

    /// `source`'s sync runs, oldest first.
    pub fn sync_runs(&self, source: &str) -> Vec<SyncRunRow> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT sync_id, status, counts, error FROM sync_runs WHERE source = ?1
                 ORDER BY started_at, sync_id",
            )
            .expect("prepare");
        stmt.query_map([source], |r| {
            Ok(SyncRunRow {
                sync_id: r.get(0)?,
                status: r.get(1)?,
                counts: json_column(r.get(2)?),
                error: r.get(3)?,
            })
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .expect("sync runs")
    }
}

/// The single integer `sql` answers on `conn` (a [`Db`] derefs to its connection).
pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}
