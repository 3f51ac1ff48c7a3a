//! `idhost review`: the access review of one frozen snapshot per source, one row per effective
//! grant (`source, principal, principal_name, email, entitlement, entitlement_name, resource,
//! via, synced_at`), to CSV or XLSX (one sheet per source plus a summary).
//!
//! A source is reviewed whole in memory: its grants, interned as numbers in id order (so a
//! path compares like its ids and the review names the same `via` as `query access`), are
//! indexed by principal and by entitlement; each group's effective grants are walked once
//! ([`super::access::effective`]) and every other principal's are its direct grants plus those
//! of its groups. Cells are formula-safe (DESIGN §7.3); the file is written beside its final
//! name and renamed into place, so a failed export leaves no half-written review.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::{Path, PathBuf};

use rusqlite::params;
use serde_json::Value;

use super::InspectError;
use super::access::{Graph, Held, Via, effective};
use super::db::SinkDb;
use super::lookup::{ACCOUNT_COLUMNS, Account};
use super::output::{cell_text, formula_safe};

/// The review's columns.
pub const COLUMNS: [&str; 9] = [
    "source",
    "principal",
    "principal_name",
    "email",
    "entitlement",
    "entitlement_name",
    "resource",
    "via",
    "synced_at",
];

/// Rows an XLSX sheet holds besides its header (Excel's limit is 1,048,576 rows).
const SHEET_ROWS: usize = 1_048_575;

/// One source's snapshot, interned.
struct Source {
    name: String,
    synced_at: String,
    /// Every id (principals, entitlements, groups), sorted: an id's index orders like its text.
    ids: Vec<String>,
    /// Entitlement index → (display name, resource).
    entitlements: HashMap<u32, (String, String)>,
    /// Principal index → (display name, email, is a group).
    principals: HashMap<u32, (String, Option<String>, bool)>,
    /// Principal → its direct grants.
    held: HashMap<u32, Vec<Held<u32>>>,
}

impl Graph for Source {
    type Id = u32;
    type Error = Infallible;
    fn held_by(&mut self, principal: &u32) -> Result<Vec<Held<u32>>, Infallible> {
        Ok(self.held.get(principal).cloned().unwrap_or_default())
    }
    fn members_of(&mut self, _group: &u32) -> Result<Vec<(u32, bool)>, Infallible> {
        // A review walks from principals up; nothing asks for members.
        Ok(Vec::new())
    }
}

/// A review row: principal, entitlement, path.
type Grant = (u32, u32, Via<u32>);

fn load(db: &SinkDb, source: &str, synced_at: String) -> Result<Source, InspectError> {
    let fail = |e| db.fail(e);
    let conn = db.conn();
    let grants: Vec<(String, String)> = conn
        .prepare("SELECT entitlement, principal FROM grants WHERE source = ?1")
        .and_then(|mut s| {
            s.query_map(params![source], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
        })
        .map_err(fail)?;
    // Entitlements: (id, display name, resource, slug, resource type).
    let entitlements: Vec<(String, String, String, String, Option<String>)> = conn
        .prepare(
            "SELECT e.id, e.display_name, e.resource, e.slug, r.type FROM entitlements e
             LEFT JOIN resources r ON r.source = e.source AND r.id = e.resource
             WHERE e.source = ?1",
        )
        .and_then(|mut s| {
            s.query_map(params![source], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .and_then(|rows| rows.collect())
        })
        .map_err(fail)?;
    let accounts: Vec<Account> = conn
        .prepare(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM resources WHERE source = ?1"
        ))
        .and_then(|mut s| {
            s.query_map(params![source], Account::from_row)
                .and_then(|rows| rows.collect())
        })
        .map_err(fail)?;

    let mut ids: Vec<String> = Vec::with_capacity(accounts.len() + entitlements.len());
    ids.extend(accounts.iter().map(|a| a.id.clone()));
    ids.extend(entitlements.iter().map(|e| e.0.clone()));
    ids.extend(entitlements.iter().map(|e| e.2.clone()));
    for (entitlement, principal) in &grants {
        ids.push(entitlement.clone());
        ids.push(principal.clone());
    }
    ids.sort_unstable();
    ids.dedup();
    let index: HashMap<&str, u32> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let at = |id: &str| index.get(id).copied().unwrap_or(u32::MAX);

    let mut membership: HashMap<u32, u32> = HashMap::new();
    let mut entitlement_names = HashMap::new();
    for (id, name, resource, slug, rtype) in &entitlements {
        if slug == "member" && rtype.as_deref() == Some("group") {
            membership.insert(at(id), at(resource));
        }
        entitlement_names.insert(at(id), (name.clone(), resource.clone()));
    }
    let principals: HashMap<u32, (String, Option<String>, bool)> = accounts
        .into_iter()
        .map(|a| {
            let is_group = a.rtype == "group";
            (at(&a.id), (a.display_name, a.email, is_group))
        })
        .collect();
    let mut held: HashMap<u32, Vec<Held<u32>>> = HashMap::new();
    for (entitlement, principal) in &grants {
        let e = at(entitlement);
        held.entry(at(principal)).or_default().push(Held {
            entitlement: e,
            group: membership.get(&e).copied(),
        });
    }
    drop(index);
    Ok(Source {
        name: source.to_owned(),
        synced_at,
        ids,
        entitlements: entitlement_names,
        principals,
        held,
    })
}

/// Every effective grant of the source, by principal then entitlement.
fn effective_grants(source: &mut Source) -> Vec<Grant> {
    let mut principals: Vec<u32> = source.held.keys().copied().collect();
    principals.sort_unstable();
    let is_group = |s: &Source, p: u32| s.principals.get(&p).is_some_and(|x| x.2);
    // Each group's effective grants, walked once.
    let mut of_group: HashMap<u32, BTreeMap<u32, Via<u32>>> = HashMap::new();
    for p in &principals {
        if is_group(source, *p) {
            let Ok(found) = effective(source, p, true);
            of_group.insert(*p, found);
        }
    }
    let mut rows = Vec::new();
    for p in principals {
        let found = match of_group.get(&p) {
            Some(found) => found.clone(),
            None => {
                // Direct grants, then each group's grants one level further out.
                let mut found: BTreeMap<u32, Via<u32>> = BTreeMap::new();
                let direct = source.held.get(&p).cloned().unwrap_or_default();
                for held in &direct {
                    found.insert(held.entitlement, None);
                }
                for held in &direct {
                    let Some(group) = held.group else { continue };
                    let Some(inherited) = of_group.get(&group) else {
                        continue;
                    };
                    for (entitlement, via) in inherited {
                        let mut path = via.clone().unwrap_or_default();
                        path.push(group);
                        let better = match found.get(entitlement) {
                            None => true,
                            Some(None) => false,
                            Some(Some(existing)) => {
                                (path.len(), &path) < (existing.len(), existing)
                            }
                        };
                        if better {
                            found.insert(*entitlement, Some(path));
                        }
                    }
                }
                found
            }
        };
        rows.extend(found.into_iter().map(|(e, via)| (p, e, via)));
    }
    rows
}

/// One source's review rows, as text cells in [`COLUMNS`] order.
fn cells(source: &Source, grant: &Grant) -> [String; 9] {
    let (p, e, via) = grant;
    let id = |i: u32| source.ids.get(i as usize).cloned().unwrap_or_default();
    let (name, email) = source
        .principals
        .get(p)
        .map(|(n, e, _)| (n.clone(), e.clone().unwrap_or_default()))
        .unwrap_or_default();
    let (entitlement_name, resource) = source.entitlements.get(e).cloned().unwrap_or_default();
    let via = via
        .as_ref()
        .map(|path| {
            cell_text(&Value::Array(
                path.iter().map(|g| Value::String(id(*g))).collect(),
            ))
            .into_owned()
        })
        .unwrap_or_default();
    [
        source.name.clone(),
        id(*p),
        name,
        email,
        id(*e),
        entitlement_name,
        resource,
        via,
        source.synced_at.clone(),
    ]
}

/// What the review covers, per source.
#[derive(Debug, Clone)]
pub struct Reviewed {
    /// Source name.
    pub source: String,
    /// When its snapshot was taken (the sync's `finished_at`).
    pub synced_at: String,
    /// Rows written.
    pub rows: usize,
    /// Distinct principals.
    pub principals: usize,
}

/// The file format, from the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.csv`.
    Csv,
    /// `.xlsx`.
    Xlsx,
}

impl Format {
    /// The format `path`'s extension names.
    pub fn of(path: &Path) -> Option<Self> {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("csv") => Some(Self::Csv),
            Some("xlsx") => Some(Self::Xlsx),
            _ => None,
        }
    }
}

/// Checks that every source has a complete snapshot: `(source, synced_at)` of each. A named
/// source (`named`) must have completed its latest sync too.
pub fn snapshots(
    db: &SinkDb,
    sources: &[String],
    named: bool,
) -> Result<Vec<(String, String)>, InspectError> {
    let mut out = Vec::new();
    for source in sources {
        let Some((_, synced_at)) = db.last_complete(source)? else {
            return Err(InspectError::Incomplete(format!(
                "source `{source}` has no complete snapshot in sink `{}`: run `idhost sync -c FILE --source {source}` and review again",
                db.sink
            )));
        };
        if let Some(latest) = db.latest_run(source)?
            && latest.status != "succeeded"
        {
            let why = format!(
                "the latest sync of `{source}` ({}, finished {}) is `{}`{}",
                latest.sync_id,
                latest.finished_at,
                latest.status,
                latest.error.map(|e| format!(": {e}")).unwrap_or_default()
            );
            if named {
                return Err(InspectError::Incomplete(format!(
                    "{why}; a review of it would be of an older snapshot ({synced_at}). Sync it again, or review without --source to accept the older one"
                )));
            }
            tracing::warn!("{why}; reviewing its last complete snapshot, taken {synced_at}");
        }
        out.push((source.clone(), synced_at));
    }
    Ok(out)
}

/// Writes the review of `sources` (with their `synced_at`) to `path`.
pub fn write(
    db: &SinkDb,
    sources: &[(String, String)],
    path: &Path,
    format: Format,
) -> Result<Vec<Reviewed>, InspectError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    let fail = |message: String| InspectError::Write {
        path: path.to_owned(),
        message,
    };
    let temp = tempfile::Builder::new()
        .prefix(".idhost-review-")
        .tempfile_in(&dir)
        .map_err(|e| fail(format!("cannot create a file in {}: {e}", dir.display())))?;
    let mut loaded = Vec::new();
    for (name, synced_at) in sources {
        let mut source = load(db, name, synced_at.clone())?;
        let grants = effective_grants(&mut source);
        loaded.push((source, grants));
    }
    let summary: Vec<Reviewed> = loaded
        .iter()
        .map(|(s, g)| {
            let mut principals: Vec<u32> = g.iter().map(|r| r.0).collect();
            principals.dedup();
            Reviewed {
                source: s.name.clone(),
                synced_at: s.synced_at.clone(),
                rows: g.len(),
                principals: principals.len(),
            }
        })
        .collect();
    match format {
        Format::Csv => write_csv(temp.as_file(), &loaded).map_err(|e| fail(e.to_string()))?,
        Format::Xlsx => {
            write_xlsx(temp.path(), &loaded, &summary, &db.sink).map_err(|e| fail(e.to_string()))?
        }
    }
    temp.persist(path)
        .map_err(|e| fail(format!("cannot move the review into place: {e}")))?;
    Ok(summary)
}

fn write_csv(file: &std::fs::File, loaded: &[(Source, Vec<Grant>)]) -> Result<(), csv::Error> {
    let mut out = csv::Writer::from_writer(std::io::BufWriter::new(file));
    out.write_record(COLUMNS)?;
    for (source, grants) in loaded {
        for grant in grants {
            let row = cells(source, grant);
            out.write_record(row.iter().map(|c| formula_safe(c).into_owned()))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// A sheet name from a source name: at most 31 characters, none of `[]:*?/\`.
fn sheet_name(source: &str, part: usize) -> String {
    let clean: String = source
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect();
    let suffix = if part == 0 {
        String::new()
    } else {
        format!(" ({})", part + 1)
    };
    let room = 31usize.saturating_sub(suffix.len());
    format!("{}{suffix}", clean.chars().take(room).collect::<String>())
}

fn write_xlsx(
    path: &Path,
    loaded: &[(Source, Vec<Grant>)],
    summary: &[Reviewed],
    sink: &str,
) -> Result<(), rust_xlsxwriter::XlsxError> {
    use rust_xlsxwriter::{Format as CellFormat, Workbook};
    let bold = CellFormat::new().set_bold();
    let mut workbook = Workbook::new();
    let widths = [12.0, 40.0, 28.0, 32.0, 48.0, 32.0, 40.0, 40.0, 22.0];
    {
        let sheet = workbook.add_worksheet();
        sheet.set_name("Summary")?;
        let header = ["source", "rows", "principals", "synced_at", "sheets"];
        for (col, title) in header.iter().enumerate() {
            sheet.write_string_with_format(0, col as u16, *title, &bold)?;
        }
        for (i, reviewed) in summary.iter().enumerate() {
            let row = (i + 1) as u32;
            let sheets = reviewed.rows.div_ceil(SHEET_ROWS).max(1);
            let names: Vec<String> = (0..sheets)
                .map(|p| sheet_name(&reviewed.source, p))
                .collect();
            sheet.write_string(row, 0, formula_safe(&reviewed.source))?;
            sheet.write_number(row, 1, reviewed.rows as f64)?;
            sheet.write_number(row, 2, reviewed.principals as f64)?;
            sheet.write_string(row, 3, formula_safe(&reviewed.synced_at))?;
            sheet.write_string(row, 4, formula_safe(&names.join(", ")))?;
        }
        let note = summary.len() as u32 + 2;
        sheet.write_string(
            note,
            0,
            format!(
                "One row per effective grant from sink `{sink}`; `via` lists the groups the access flows through, outermost first (empty: a direct grant)."
            ),
        )?;
        for (col, width) in [14.0, 10.0, 12.0, 24.0, 40.0].iter().enumerate() {
            sheet.set_column_width(col as u16, *width)?;
        }
        sheet.set_freeze_panes(1, 0)?;
    }
    for (source, grants) in loaded {
        let parts: Vec<&[Grant]> = if grants.is_empty() {
            vec![&grants[..]]
        } else {
            grants.chunks(SHEET_ROWS).collect()
        };
        for (part, chunk) in parts.into_iter().enumerate() {
            let sheet = workbook.add_worksheet_with_constant_memory()?;
            sheet.set_name(sheet_name(&source.name, part))?;
            for (col, width) in widths.iter().enumerate() {
                sheet.set_column_width(col as u16, *width)?;
            }
            sheet.set_freeze_panes(1, 0)?;
            for (col, title) in COLUMNS.iter().enumerate() {
                sheet.write_string_with_format(0, col as u16, *title, &bold)?;
            }
            for (i, grant) in chunk.iter().enumerate() {
                let row = (i + 1) as u32;
                for (col, cell) in cells(source, grant).iter().enumerate() {
                    if !cell.is_empty() {
                        sheet.write_string(row, col as u16, formula_safe(cell))?;
                    }
                }
            }
            sheet.autofilter(0, 0, chunk.len() as u32, (COLUMNS.len() - 1) as u16)?;
        }
    }
    workbook.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_fit_excel() {
        assert_eq!(sheet_name("corp", 0), "corp");
        assert_eq!(sheet_name("corp", 1), "corp (2)");
        let long = "a".repeat(40);
        assert_eq!(sheet_name(&long, 0).len(), 31);
        assert_eq!(sheet_name(&long, 2).len(), 31);
    }
}
