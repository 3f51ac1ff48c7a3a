//! The commit's swap: a source's staged rows become its visible rows in one transaction, as a
//! diff of staging against the visible table, so unchanged rows stay where they are.

use rusqlite::params;

/// A visible table, its staging, and what its swap needs to know.
pub(super) struct SwapTable {
    pub(super) visible: &'static str,
    pub(super) staging: &'static str,
    /// Columns besides `source`, `id` and `sync_id`, in staging order.
    pub(super) columns: &'static [&'static str],
    /// Secondary indexes of the visible table.
    pub(super) indexes: &'static [Index],
}

/// A secondary index of a visible table.
pub(super) struct Index {
    pub(super) name: &'static str,
    /// The statement creating it, as in [`super::schema::SCHEMA`].
    pub(super) create: &'static str,
    /// Whether a bulk copy (see [`REBUILD_MIN_ROWS`]) drops and rebuilds it: yes for an index
    /// whose order is unrelated to the key (each copied row would land on a random page), no
    /// for one the key order fills nearly in order anyway.
    rebuild: bool,
}

/// Resources, entitlements, grants: the order of `SqliteSession::staged` and `Page::tables`.
pub(super) const TABLES: [SwapTable; 3] = [
    SwapTable {
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
    SwapTable {
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
    SwapTable {
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

pub(super) fn quoted(columns: &[&str], prefix: &str) -> String {
    columns
        .iter()
        .map(|c| format!("{prefix}\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Makes the staged rows of `source` its visible rows in `table` (inside the commit's
/// transaction). `staged` is how many rows the session staged (an upper bound: a record
/// staged twice counts twice).
pub(super) fn swap(
    tx: &rusqlite::Transaction<'_>,
    table: &SwapTable,
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
pub(super) fn clear_staging(
    tx: &rusqlite::Transaction<'_>,
    source: &str,
) -> Result<(), rusqlite::Error> {
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

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::sinks::sqlite::schema::{SCHEMA, prepare};

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
}
