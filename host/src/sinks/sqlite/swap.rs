//! The commit's swap: a source's staged rows become its visible rows in one transaction, as a
//! diff of staging against the visible table, so unchanged rows stay where they are.

use rusqlite::params;
use rusqlite::types::{ToSqlOutput, ValueRef};

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
    if !merge(tx, table, source, sync_id)? {
        apply_in_sql(tx, table, source, sync_id)?;
    }
    // Unchanged rows stay where they are; they belong to the new snapshot all the same.
    tx.execute(
        &format!("UPDATE {visible} SET sync_id = ?2 WHERE source = ?1 AND sync_id IS NOT ?2"),
        params![source, sync_id],
    )?;
    Ok(())
}

/// The set-based swap of a source's rows that differ: delete what staging no longer holds,
/// upsert what is new or changed. Each row is a B-tree probe of the other table, so this is
/// for a sync that changed many rows (see [`merge`]).
fn apply_in_sql(
    tx: &rusqlite::Transaction<'_>,
    table: &SwapTable,
    source: &str,
    sync_id: &str,
) -> Result<(), rusqlite::Error> {
    let (visible, staging) = (table.visible, table.staging);
    let columns = quoted(table.columns, "");
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
    Ok(())
}

/// At most this many differing rows are collected by [`merge`] (their ids, in memory); a sync
/// that changed more is swapped by [`apply_in_sql`].
const MERGE_MAX_CHANGES: usize = 20_000;

/// One row of a side of [`merge`], copied into buffers reused from row to row.
#[derive(Default)]
struct Current {
    present: bool,
    id: Vec<u8>,
    /// Each column: a type tag and the value's bytes; `None` for NULL.
    values: Vec<Option<Vec<u8>>>,
}

impl Current {
    fn load(&mut self, rows: &mut rusqlite::Rows<'_>, width: usize) -> Result<(), rusqlite::Error> {
        let Some(row) = rows.next()? else {
            self.present = false;
            return Ok(());
        };
        self.present = true;
        self.id.clear();
        put(&mut self.id, row.get_ref(0)?);
        self.values.resize_with(width, || None);
        for (i, slot) in self.values.iter_mut().enumerate() {
            match row.get_ref(i + 1)? {
                ValueRef::Null => *slot = None,
                value => {
                    let buf = slot.get_or_insert_with(Vec::new);
                    buf.clear();
                    put(buf, value);
                }
            }
        }
        Ok(())
    }
}

/// `value`'s bytes behind a tag of its type (what `IS` compares).
fn put(buf: &mut Vec<u8>, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => buf.push(b'N'),
        ValueRef::Integer(i) => {
            buf.push(b'I');
            buf.extend_from_slice(&i.to_le_bytes());
        }
        ValueRef::Real(r) => {
            buf.push(b'R');
            buf.extend_from_slice(&r.to_le_bytes());
        }
        ValueRef::Text(t) => {
            buf.push(b'T');
            buf.extend_from_slice(t);
        }
        ValueRef::Blob(b) => {
            buf.push(b'B');
            buf.extend_from_slice(b);
        }
    }
}

/// Swaps the rows of `source` that differ between staging and the visible table by a merge of
/// the two in key order: both are read front to back once (sequential pages, no B-tree probe
/// per row), and only the rows that differ are deleted or upserted. For a re-sync where little
/// or nothing changed this is the whole cost of the swap besides moving `sync_id`; the
/// set-based statements probe the other table once per row, twice over (measured on 1M
/// unchanged grants: 1.9 s of CPU for the two statements, 0.4 s for the merge). Returns
/// `false`, having written nothing, when more than [`MERGE_MAX_CHANGES`] rows differ.
fn merge(
    tx: &rusqlite::Transaction<'_>,
    table: &SwapTable,
    source: &str,
    sync_id: &str,
) -> Result<bool, rusqlite::Error> {
    let (visible, staging) = (table.visible, table.staging);
    let columns = quoted(table.columns, "");
    let width = table.columns.len();
    let mut gone: Vec<Vec<u8>> = Vec::new();
    let mut changed: Vec<Vec<u8>> = Vec::new();
    {
        let select =
            |t: &str| format!("SELECT id, {columns} FROM {t} WHERE source = ?1 ORDER BY id");
        let mut old = tx.prepare(&select(visible))?;
        let mut new = tx.prepare(&select(staging))?;
        let mut old_rows = old.query(params![source])?;
        let mut new_rows = new.query(params![source])?;
        let (mut o, mut n) = (Current::default(), Current::default());
        o.load(&mut old_rows, width)?;
        n.load(&mut new_rows, width)?;
        while o.present || n.present {
            let order = match (o.present, n.present) {
                (true, true) => o.id.cmp(&n.id),
                (true, false) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    gone.push(o.id.clone());
                    o.load(&mut old_rows, width)?;
                }
                std::cmp::Ordering::Greater => {
                    changed.push(n.id.clone());
                    n.load(&mut new_rows, width)?;
                }
                std::cmp::Ordering::Equal => {
                    if o.values != n.values {
                        changed.push(n.id.clone());
                    }
                    o.load(&mut old_rows, width)?;
                    n.load(&mut new_rows, width)?;
                }
            }
            if gone.len() + changed.len() > MERGE_MAX_CHANGES {
                return Ok(false);
            }
        }
    }
    // The ids were read as TEXT with their tag; bound back as the same TEXT.
    let text = |id: &[u8]| -> Vec<u8> { id.get(1..).unwrap_or_default().to_vec() };
    if !gone.is_empty() {
        let mut delete = tx.prepare(&format!(
            "DELETE FROM {visible} WHERE source = ?1 AND id = ?2"
        ))?;
        for id in &gone {
            let id = text(id);
            delete.execute(params![source, ToSqlOutput::Borrowed(ValueRef::Text(&id))])?;
        }
    }
    if !changed.is_empty() {
        let set = table
            .columns
            .iter()
            .map(|c| format!("\"{c}\" = excluded.\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut upsert = tx.prepare(&format!(
            "INSERT INTO {visible} (source, id, {columns}, sync_id)
             SELECT source, id, {columns}, ?3 FROM {staging} WHERE source = ?1 AND id = ?2
             ON CONFLICT (source, id) DO UPDATE SET {set}, sync_id = excluded.sync_id"
        ))?;
        for id in &changed {
            let id = text(id);
            upsert.execute(params![
                source,
                ToSqlOutput::Borrowed(ValueRef::Text(&id)),
                sync_id
            ])?;
        }
    }
    Ok(true)
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

    /// The merge and the set-based statements leave the same visible rows, and the merge
    /// gives up (writing nothing) past its bound.
    #[test]
    fn the_merge_swaps_exactly_as_the_set_based_statements_do() {
        let fill = |conn: &Connection, changes: u32| {
            let grants = &TABLES[2];
            for n in 0..50u32 {
                conn.execute(
                    "INSERT INTO grants (source, id, entitlement, principal, sync_id) VALUES ('s', ?1, 'e', ?2, 'old')",
                    params![format!("g{n:03}"), format!("p{n}")],
                )
                .unwrap();
            }
            // Another source's rows are never touched.
            conn.execute(
                "INSERT INTO grants (source, id, entitlement, principal, sync_id) VALUES ('t', 'g001', 'e', 'p1', 'other')",
                [],
            )
            .unwrap();
            // Staged: g000..g009 gone, g010..g019 changed, the rest the same, n new ones.
            for n in 10..50u32 {
                let principal = if n < 20 {
                    format!("q{n}")
                } else {
                    format!("p{n}")
                };
                conn.execute(
                    &format!("INSERT INTO {} (source, id, entitlement, principal) VALUES ('s', ?1, 'e', ?2)", grants.staging),
                    params![format!("g{n:03}"), principal],
                )
                .unwrap();
            }
            for n in 0..changes {
                conn.execute(
                    &format!("INSERT INTO {} (source, id, entitlement, principal) VALUES ('s', ?1, 'e', '')", grants.staging),
                    params![format!("h{n:06}")],
                )
                .unwrap();
            }
        };
        let visible = |conn: &Connection| -> Vec<String> {
            conn.prepare("SELECT source || id || entitlement || principal || sync_id FROM grants ORDER BY source, id")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let run = |merged: bool, changes: u32| {
            let mut conn = Connection::open_in_memory().unwrap();
            prepare(&conn, false).unwrap();
            fill(&conn, changes);
            let tx = conn.transaction().unwrap();
            let took = if merged {
                merge(&tx, &TABLES[2], "s", "new").unwrap()
            } else {
                apply_in_sql(&tx, &TABLES[2], "s", "new").unwrap();
                true
            };
            tx.commit().unwrap();
            (took, visible(&conn))
        };
        let (took, merged) = run(true, 3);
        assert!(took);
        assert_eq!(merged, run(false, 3).1);
        assert_eq!(merged.len(), 40 + 3 + 1);
        assert!(merged.contains(&"sg010eq10new".to_owned()), "{merged:?}");
        assert!(
            merged.contains(&"sg020ep20old".to_owned()),
            "unchanged rows are left alone"
        );
        assert!(merged.contains(&"tg001ep1other".to_owned()));
        let many = MERGE_MAX_CHANGES as u32;
        let (took, rows) = run(true, many);
        assert!(!took, "past the bound the merge gives up");
        assert_eq!(rows.len(), 51, "and has written nothing");
    }
}
