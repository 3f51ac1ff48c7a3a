//! The Oomnitza-style merge, independent of storage: one source's complete sync applied to the
//! target's rows.
//!
//! Rules, in order:
//! 1. A record's row is found by its `sync_key` columns in priority order: the first key column
//!    whose value (non-empty) matches a row identifies it. A record with no value in any key
//!    column is reported and skipped, never merged.
//! 2. Keys are global to the target (one people table, as in Oomnitza): a record of any source
//!    finds a row written by any source; the `source` column then names the last source that
//!    wrote it. Two records of one sync that find the same row are a duplicate: the first wins,
//!    the others are reported and skipped.
//! 3. `mode` decides what happens to mapped columns, relative to rows already in the target:
//!    `create_and_update` adds and updates, `create_only` adds and leaves existing rows' mapped
//!    values as they are, `update_only` updates and adds nothing.
//! 4. A row a sync saw gets the tracking columns of that sync, in every mode: `active` = the
//!    record is enabled (so a row that comes back is reactivated), `source`, `synced_at`.
//! 5. With `deactivate_missing`, after a complete sync every active row last written by this
//!    source that the sync did not see becomes inactive (its values and `synced_at` stay). Rows
//!    of other sources are never touched, and an incomplete sync deactivates nobody.

use std::collections::HashMap;

use super::plan::{Plan, Staged};
use super::table::{Row, TargetTable};
use crate::config::ExportMode;

/// How many record ids a report keeps per kind of problem.
const SAMPLE: usize = 20;

/// The sync being applied.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SyncInfo<'a> {
    /// Source name (written to `source`).
    pub(crate) source: &'a str,
    /// RFC 3339 time (written to `synced_at`).
    pub(crate) synced_at: &'a str,
    /// Whether the sync listed everything the export holds: only then are missing rows
    /// deactivated.
    pub(crate) complete: bool,
}

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// Records received.
    pub(crate) received: u64,
    /// Rows added.
    pub(crate) created: u64,
    /// Rows whose mapped values changed.
    pub(crate) updated: u64,
    /// Rows seen with the same mapped values.
    pub(crate) unchanged: u64,
    /// `create_only`: existing rows whose mapped values were left as they were.
    pub(crate) kept: u64,
    /// `update_only`: records whose key matched no row, so no row was added.
    pub(crate) skipped_new: u64,
    /// Records with no value in any key column.
    pub(crate) no_key: u64,
    /// Records that found a row an earlier record of the same sync had found.
    pub(crate) duplicates: u64,
    /// Some ids of the records without a key.
    pub(crate) no_key_ids: Vec<String>,
    /// Some ids of the duplicates, with the key value they shared.
    pub(crate) duplicate_ids: Vec<String>,
    /// Inactive rows made active again.
    pub(crate) reactivated: u64,
    /// Active rows made inactive because their record is disabled upstream.
    pub(crate) disabled: u64,
    /// Active rows made inactive because the complete sync did not see them.
    pub(crate) deactivated: u64,
    /// Rows of this source the sync did not see that stayed as they were because the sync was
    /// not complete (or `deactivate_missing` is off).
    pub(crate) missing_kept: u64,
}

/// Applies `records` (one sync of `sync.source`, in arrival order) to `table`.
pub(crate) fn apply(
    plan: &Plan,
    table: &mut TargetTable,
    records: Vec<Staged>,
    sync: SyncInfo<'_>,
) -> Report {
    let mut report = Report {
        received: records.len() as u64,
        ..Report::default()
    };
    let mut index = Index::new(plan, table);
    let mut seen = vec![false; table.rows.len()];
    let updates_values = matches!(
        plan.mode,
        ExportMode::CreateAndUpdate | ExportMode::UpdateOnly
    );
    for mut record in records {
        for (i, value) in record.values.iter_mut().enumerate() {
            if plan.is_sync_time(i) {
                *value = Some(sync.synced_at.to_owned());
            }
        }
        if plan.keys.iter().all(|k| record.values[*k].is_none()) {
            report.no_key += 1;
            sample(&mut report.no_key_ids, record.id);
            continue;
        }
        let Some(found) = index.find(plan, &record.values) else {
            if plan.mode == ExportMode::UpdateOnly {
                report.skipped_new += 1;
                continue;
            }
            let row = Row {
                values: record.values,
                active: record.enabled,
                source: sync.source.to_owned(),
                synced_at: sync.synced_at.to_owned(),
            };
            index.insert(plan, &row.values, table.rows.len());
            table.rows.push(row);
            seen.push(true);
            report.created += 1;
            continue;
        };
        if seen[found] {
            report.duplicates += 1;
            let key = plan
                .keys
                .iter()
                .find_map(|k| record.values[*k].clone())
                .unwrap_or_default();
            sample(&mut report.duplicate_ids, format!("{} ({key})", record.id));
            continue;
        }
        seen[found] = true;
        let row = &mut table.rows[found];
        if updates_values {
            let changed = row
                .values
                .iter()
                .zip(&record.values)
                .enumerate()
                .any(|(i, (old, new))| old != new && !plan.is_sync_time(i));
            if changed {
                index.replace(plan, &row.values, &record.values, found);
                report.updated += 1;
            } else {
                report.unchanged += 1;
            }
            row.values = record.values;
        } else {
            report.kept += 1;
        }
        match (row.active, record.enabled) {
            (false, true) => report.reactivated += 1,
            (true, false) => report.disabled += 1,
            _ => {}
        }
        row.active = record.enabled;
        row.source = sync.source.to_owned();
        row.synced_at = sync.synced_at.to_owned();
    }
    for (row, seen) in table.rows.iter_mut().zip(&seen) {
        if *seen || row.source != sync.source || !row.active {
            continue;
        }
        if sync.complete && plan.deactivate_missing {
            row.active = false;
            report.deactivated += 1;
        } else {
            report.missing_kept += 1;
        }
    }
    report
}

fn sample(ids: &mut Vec<String>, id: String) {
    if ids.len() < SAMPLE {
        ids.push(id);
    }
}

/// For each key column, value → the first row holding it.
struct Index(Vec<HashMap<String, usize>>);

impl Index {
    fn new(plan: &Plan, table: &TargetTable) -> Self {
        let mut index = Index(vec![HashMap::new(); plan.keys.len()]);
        for (i, row) in table.rows.iter().enumerate() {
            index.insert(plan, &row.values, i);
        }
        index
    }

    fn find(&self, plan: &Plan, values: &[Option<String>]) -> Option<usize> {
        plan.keys
            .iter()
            .zip(&self.0)
            .find_map(|(k, map)| values[*k].as_deref().and_then(|v| map.get(v).copied()))
    }

    fn insert(&mut self, plan: &Plan, values: &[Option<String>], row: usize) {
        for (k, map) in plan.keys.iter().zip(&mut self.0) {
            if let Some(v) = &values[*k] {
                map.entry(v.clone()).or_insert(row);
            }
        }
    }

    /// Row `row`'s key values change from `old` to `new`.
    fn replace(&mut self, plan: &Plan, old: &[Option<String>], new: &[Option<String>], row: usize) {
        for (k, map) in plan.keys.iter().zip(&mut self.0) {
            if old[*k] == new[*k] {
                continue;
            }
            if let Some(v) = &old[*k]
                && map.get(v) == Some(&row)
            {
                map.remove(v);
            }
            if let Some(v) = &new[*k] {
                map.entry(v.clone()).or_insert(row);
            }
        }
    }
}

#[cfg(test)]
mod tests;
