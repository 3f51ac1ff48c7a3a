//! The export target as the engine sees it, whatever stores it: mapped columns in order, then
//! the three tracking columns every target carries (DESIGN §5).

/// `true`/`false`: whether the row's record was present (and enabled) in the last sync.
pub(crate) const ACTIVE: &str = "active";
/// The name of the source that last wrote the row (Oomnitza's "Connect: Credentials").
pub(crate) const SOURCE: &str = "source";
/// RFC 3339 time of the last sync that saw the row (Oomnitza's "Connector Sync Time").
pub(crate) const SYNCED_AT: &str = "synced_at";
/// The tracking columns, after the mapped ones.
pub(crate) const TRACKING: [&str; 3] = [ACTIVE, SOURCE, SYNCED_AT];

/// One row of the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// Mapped column values, in [`TargetTable::columns`] order; `None` is empty.
    pub(crate) values: Vec<Option<String>>,
    /// Tracking: active.
    pub(crate) active: bool,
    /// Tracking: source that last wrote the row.
    pub(crate) source: String,
    /// Tracking: last sync that saw the row.
    pub(crate) synced_at: String,
}

/// The whole target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TargetTable {
    /// Mapped column names, in order.
    pub(crate) columns: Vec<String>,
    /// Rows in stored order (new rows are appended, so the order is stable across runs).
    pub(crate) rows: Vec<Row>,
}

impl TargetTable {
    /// An empty target with these mapped columns.
    pub(crate) fn empty(columns: &[String]) -> Self {
        Self {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Every column name: mapped, then tracking.
    pub(crate) fn header(&self) -> Vec<String> {
        header(&self.columns)
    }
}

/// Mapped columns followed by the tracking columns.
pub(crate) fn header(columns: &[String]) -> Vec<String> {
    columns
        .iter()
        .cloned()
        .chain(TRACKING.iter().map(|c| (*c).to_owned()))
        .collect()
}

/// Text of the `active` column.
pub(crate) fn bool_text(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// Parses the `active` column as written by any target (`true`/`false`, `1`/`0`).
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// How a stored header lines up with the configured columns, so a target written before the
/// mapping changed still loads: columns are matched by name, a new column starts empty, and a
/// column no longer mapped is reported (and not written back).
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// For each configured column, its position in the stored header.
    mapped: Vec<Option<usize>>,
    active: Option<usize>,
    source: Option<usize>,
    synced_at: Option<usize>,
    /// Stored columns that are neither mapped nor tracking.
    pub(crate) dropped: Vec<String>,
}

impl Layout {
    /// Lines `stored` up with `columns`.
    pub(crate) fn new(stored: &[String], columns: &[String]) -> Self {
        let find = |name: &str| stored.iter().position(|s| s == name);
        let dropped = stored
            .iter()
            .filter(|s| !columns.contains(s) && !TRACKING.contains(&s.as_str()))
            .cloned()
            .collect();
        Self {
            mapped: columns.iter().map(|c| find(c)).collect(),
            active: find(ACTIVE),
            source: find(SOURCE),
            synced_at: find(SYNCED_AT),
            dropped,
        }
    }

    /// Whether the stored header is exactly the configured one.
    pub(crate) fn is_exact(&self, stored_len: usize) -> bool {
        self.dropped.is_empty()
            && self.mapped.iter().all(Option::is_some)
            && self.active.is_some()
            && self.source.is_some()
            && self.synced_at.is_some()
            && stored_len == self.mapped.len() + TRACKING.len()
    }

    /// The row stored as `fields` (by stored position; empty text is absent). A row without
    /// an `active` column counts as active.
    pub(crate) fn row(&self, fields: &[Option<String>]) -> Row {
        let get = |i: Option<usize>| {
            i.and_then(|i| fields.get(i).cloned().flatten())
                .filter(|s| !s.is_empty())
        };
        Row {
            values: self.mapped.iter().map(|i| get(*i)).collect(),
            active: get(self.active)
                .and_then(|t| parse_bool(&t))
                .unwrap_or(true),
            source: get(self.source).unwrap_or_default(),
            synced_at: get(self.synced_at).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_older_header_loads_by_name() {
        let stored = names(&["NAME", "OLD", "EMAIL", "active", "source", "synced_at"]);
        let layout = Layout::new(&stored, &names(&["EMAIL", "NAME", "NEW"]));
        assert!(!layout.is_exact(stored.len()));
        assert_eq!(layout.dropped, names(&["OLD"]));
        let fields: Vec<Option<String>> =
            ["Alex", "x", "a@x", "false", "corp", "2024-01-01T00:00:00Z"]
                .iter()
                .map(|s| Some((*s).to_owned()))
                .collect();
        let row = layout.row(&fields);
        assert_eq!(
            row.values,
            vec![Some("a@x".into()), Some("Alex".into()), None]
        );
        assert!(!row.active);
        assert_eq!(row.source, "corp");
        let exact = Layout::new(&header(&names(&["EMAIL"])), &names(&["EMAIL"]));
        assert!(exact.is_exact(4));
    }
}
