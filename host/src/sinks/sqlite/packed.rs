//! A page packed for the writer: each table's column values in one buffer, so the blocking
//! writer owns the page without a copy of the batch, and staging it is one prepared insert per
//! table.

use rusqlite::Connection;
use rusqlite::types::{ToSqlOutput, ValueRef};

use super::swap::{TABLES, quoted};
use crate::record::Batch;

/// One table's column values of a page, packed into one buffer: the blocking writer owns them
/// without a copy of the batch (a `String` per field), and each JSON column is serialized once,
/// straight into the buffer.
#[derive(Default)]
pub(super) struct Packed {
    text: Vec<u8>,
    /// Where each field ends in `text`; [`NULL`] set for a NULL.
    ends: Vec<u32>,
    /// Fields per row.
    width: usize,
}

/// The flag of a NULL field in [`Packed::ends`].
const NULL: u32 = 1 << 31;

impl Packed {
    pub(super) fn new(width: usize, rows: usize, text: usize) -> Self {
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

    pub(super) fn rows(&self) -> usize {
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

    pub(super) fn too_large(&self) -> bool {
        self.text.len() >= (NULL - 1) as usize
    }
}

/// A page, packed for the writer: resources, entitlements, grants.
pub(super) struct Page {
    pub(super) tables: [Packed; 3],
}

impl Page {
    pub(super) fn pack(batch: &Batch) -> Self {
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
pub(super) fn stage(
    conn: &mut Connection,
    source: &str,
    page: &Page,
) -> Result<(), rusqlite::Error> {
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
    if page.tables.iter().map(Packed::rows).sum::<usize>() >= crate::db::LARGE_WRITE {
        crate::db::release_cache(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
