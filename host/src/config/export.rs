//! The export keys of a sink (`mapping`, `sync_key`, `mode`, `deactivate_missing`): an
//! Oomnitza-style table kept across runs (see [`crate::export`]).

use toml::Spanned;

use super::raw::RawSink;
use super::validator::Validator;

/// Oomnitza-style export write mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    /// Add new rows and update existing ones.
    CreateAndUpdate,
    /// Only add rows whose key is new.
    CreateOnly,
    /// Only update rows that exist.
    UpdateOnly,
}

/// Where a mapped column takes its value.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnSource {
    /// A record field path (`user.emails.primary`, `display_name`, `profile.x`).
    Field(String),
    /// A constant.
    Constant(String),
}

/// Oomnitza-style export settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// Columns in order.
    pub mapping: Vec<(String, ColumnSource)>,
    /// Key columns, first match wins.
    pub sync_key: Vec<String>,
    /// Write mode.
    pub mode: ExportMode,
    /// Mark rows missing from a complete sync inactive.
    pub deactivate_missing: bool,
}

impl Validator<'_> {
    pub(super) fn export(
        &mut self,
        name: &Spanned<String>,
        mapping_required: bool,
        raw: &RawSink,
    ) -> Option<ExportConfig> {
        let header_span = raw.sink_type.span().start;
        let Some(mapping) = &raw.mapping else {
            if mapping_required {
                self.errors.push(self.text.at(
                    header_span,
                    format!(
                        "csv sink `{}` needs a `[sinks.{}.mapping]` table (COLUMN = \"record.field.path\")",
                        name.get_ref(),
                        name.get_ref()
                    ),
                ));
            }
            for (key, present) in [
                ("sync_key", raw.sync_key.is_some()),
                ("mode", raw.mode.is_some()),
                ("deactivate_missing", raw.deactivate_missing.is_some()),
            ] {
                if present {
                    self.errors.push(self.text.at_key(
                        &format!("sinks.{}", name.get_ref()),
                        key,
                        format!("`{key}` only applies to an export with a `mapping` table"),
                    ));
                }
            }
            return None;
        };
        let mut columns = Vec::new();
        for (column, value) in mapping.get_ref() {
            let source = match value {
                toml::Value::String(path) => ColumnSource::Field(path.clone()),
                toml::Value::Table(t) => match t.get("value") {
                    Some(v) => ColumnSource::Constant(match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }),
                    None => {
                        self.errors.push(self.text.at_text(
                            mapping.span().start,
                            column,
                            format!("mapping `{column}` must be a field path string or `{{ value = \"constant\" }}`"),
                        ));
                        continue;
                    }
                },
                _ => {
                    self.errors.push(self.text.at_text(
                        mapping.span().start,
                        column,
                        format!("mapping `{column}` must be a field path string or `{{ value = \"constant\" }}`"),
                    ));
                    continue;
                }
            };
            columns.push((column.clone(), source));
        }
        let sync_key: Vec<String> = match raw.sync_key.as_ref().map(Spanned::get_ref) {
            Some(toml::Value::String(s)) => vec![s.clone()],
            Some(toml::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let key_offset = raw
            .sync_key
            .as_ref()
            .map_or(header_span, |k| k.span().start);
        if sync_key.is_empty() {
            self.errors.push(self.text.at(
                key_offset,
                format!(
                    "export sink `{}` needs `sync_key`: a mapped column (or a list, first match wins), e.g. sync_key = \"EMAIL\"",
                    name.get_ref()
                ),
            ));
        }
        for key in &sync_key {
            if !columns.iter().any(|(c, _)| c == key) {
                let mapped: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
                self.errors.push(self.text.at(
                    key_offset,
                    format!(
                        "sync_key `{key}` is not a mapped column; mapped columns are: {}",
                        mapped.join(", ")
                    ),
                ));
            }
        }
        let mode = match raw.mode.as_ref().map(|m| m.get_ref().as_str()) {
            None | Some("create_and_update") => ExportMode::CreateAndUpdate,
            Some("create_only") => ExportMode::CreateOnly,
            Some("update_only") => ExportMode::UpdateOnly,
            Some(other) => {
                let offset = raw.mode.as_ref().map_or(header_span, |m| m.span().start);
                self.errors.push(self.text.at(
                    offset,
                    format!(
                        "mode must be one of `create_and_update`, `create_only`, `update_only`; got `{other}`"
                    ),
                ));
                ExportMode::CreateAndUpdate
            }
        };
        Some(ExportConfig {
            mapping: columns,
            sync_key,
            mode,
            deactivate_missing: raw.deactivate_missing.unwrap_or(false),
        })
    }
}
