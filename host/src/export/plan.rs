//! The export settings of a sink, checked and compiled once when the sink is built: parsed
//! field paths, key column positions, and the refusal of names that would collide in a target.

use idhost_connector_sdk::{Resource, Status};

use super::error::ExportError;
use super::fields::FieldPath;
use super::table::TRACKING;
use crate::config::{ColumnSource, ExportMode, SinkConfig};
use crate::route::RecordFilter;

/// Where one mapped column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnValue {
    /// A record field.
    Field(FieldPath),
    /// The same text in every row.
    Constant(String),
}

/// One mapped column.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    /// Its name in the target.
    pub(crate) name: String,
    /// Its value.
    pub(crate) value: ColumnValue,
}

/// A record as the export keeps it between `write` and `commit`: only its mapped values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Staged {
    /// The record id, for reports (`user:42`).
    pub(crate) id: String,
    /// Mapped values in column order (`synced_at` columns are filled at commit).
    pub(crate) values: Vec<Option<String>>,
    /// Whether the record's status is `enabled` (a disabled record makes its row inactive).
    pub(crate) enabled: bool,
}

/// A compiled export.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Sink name, for messages.
    pub(crate) sink: String,
    /// Mapped columns in target order.
    pub(crate) columns: Vec<Column>,
    /// Positions in `columns` of the `sync_key` columns, in priority order.
    pub(crate) keys: Vec<usize>,
    /// Write mode.
    pub(crate) mode: ExportMode,
    /// Deactivate rows missing from a complete sync.
    pub(crate) deactivate_missing: bool,
    /// The sink's record filter (which resource types a complete sync must have listed).
    pub(crate) records: RecordFilter,
}

impl Plan {
    /// Compiles the export of `config`; every problem is reported at once.
    pub(crate) fn new(config: &SinkConfig) -> Result<Self, ExportError> {
        let sink = &config.name;
        let Some(export) = &config.export else {
            return Err(ExportError::Config(format!(
                "sink `{sink}` has no `[sinks.{sink}.mapping]` table"
            )));
        };
        let mut problems = Vec::new();
        let mut columns = Vec::new();
        for (name, source) in &export.mapping {
            if name.trim().is_empty() {
                problems.push("a mapped column has an empty name".to_owned());
                continue;
            }
            if let Some(t) = TRACKING.iter().find(|t| t.eq_ignore_ascii_case(name)) {
                problems.push(format!(
                    "mapping `{name}` collides with the tracking column `{t}` every export carries; rename the column"
                ));
                continue;
            }
            if let Some(other) = columns
                .iter()
                .find(|c: &&Column| c.name.eq_ignore_ascii_case(name))
            {
                problems.push(format!(
                    "mapping `{name}` and `{}` differ only in case, which SQL targets cannot tell apart; rename one",
                    other.name
                ));
                continue;
            }
            let value = match source {
                ColumnSource::Constant(text) => ColumnValue::Constant(text.clone()),
                ColumnSource::Field(path) => match FieldPath::parse(path, &config.records) {
                    Ok(p) => ColumnValue::Field(p),
                    Err(message) => {
                        problems.push(format!("mapping `{name}` = \"{path}\": {message}"));
                        continue;
                    }
                },
            };
            columns.push(Column {
                name: name.clone(),
                value,
            });
        }
        let mut keys = Vec::new();
        for key in &export.sync_key {
            match columns.iter().position(|c| &c.name == key) {
                Some(i) if matches!(columns[i].value, ColumnValue::Constant(_)) => problems.push(
                    format!("sync_key `{key}` is a constant column, so every record would share one key; use a column mapped to a unique field such as `user.emails.primary`"),
                ),
                Some(i) if columns[i].value == ColumnValue::Field(FieldPath::SyncedAt) => problems.push(
                    format!("sync_key `{key}` maps `synced_at`, which changes every sync; use a unique record field"),
                ),
                Some(i) => keys.push(i),
                // The config validation already reported a key that is not mapped; a column
                // refused above lands here too and is reported there.
                None => {}
            }
        }
        if keys.is_empty() && problems.is_empty() {
            problems.push(format!(
                "sink `{sink}` needs a `sync_key` naming a mapped column"
            ));
        }
        if !problems.is_empty() {
            return Err(ExportError::Config(format!(
                "sink `{sink}`: {}",
                problems.join("; ")
            )));
        }
        Ok(Self {
            sink: sink.clone(),
            columns,
            keys,
            mode: export.mode,
            deactivate_missing: export.deactivate_missing,
            records: config.records.clone(),
        })
    }

    /// Mapped column names, in order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// Key column names, in priority order.
    pub(crate) fn key_names(&self) -> Vec<&str> {
        self.keys
            .iter()
            .map(|i| self.columns[*i].name.as_str())
            .collect()
    }

    /// Whether column `i` holds the sync time (it changes every sync, so it does not count
    /// as a change of the row's data).
    pub(crate) fn is_sync_time(&self, i: usize) -> bool {
        self.columns[i].value == ColumnValue::Field(FieldPath::SyncedAt)
    }

    /// The mapped values of `r`, sent by `source`.
    pub(crate) fn stage(&self, r: &Resource, source: &str) -> Staged {
        Staged {
            id: r.id.clone(),
            values: self
                .columns
                .iter()
                .map(|c| match &c.value {
                    ColumnValue::Constant(text) => Some(text.clone()),
                    ColumnValue::Field(path) => path.resolve(r, source).filter(|v| !v.is_empty()),
                })
                .collect(),
            enabled: r.status == Status::Enabled,
        }
    }
}
