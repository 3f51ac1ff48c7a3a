//! What every part of validation shares: the file's text (to locate errors), the collected
//! errors, `${VAR}`/`${file:}` interpolation and the settings' conversion to JSON.

use std::path::PathBuf;

use toml::Spanned;

use super::error::Located;
use super::interpolate;
use super::text::SourceText;

pub(super) struct Validator<'a> {
    pub(super) text: &'a SourceText,
    pub(super) base_dir: PathBuf,
    pub(super) file_dir: PathBuf,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) errors: Vec<Located>,
}

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Validator<'_> {
    /// Paths in the file are taken as written: relative ones are relative to the directory
    /// idhost runs in (as in DESIGN §5's `plugin_dir = "target/release"`); only the default
    /// state database sits beside the config file.
    pub(super) fn resolve(&self, p: &str) -> PathBuf {
        PathBuf::from(p)
    }

    pub(super) fn expand_string(
        &mut self,
        s: &Spanned<String>,
        secrets: &mut Vec<String>,
    ) -> Option<String> {
        match interpolate::expand(s.get_ref(), &self.file_dir, self.env) {
            Ok((value, subs)) => {
                secrets.extend(subs);
                Some(value)
            }
            Err(err) => {
                let located = self
                    .text
                    .at_text(s.span().start, &err.needle(), err.to_string());
                self.errors.push(located);
                None
            }
        }
    }

    /// Converts a settings table to JSON, expanding references in every string.
    /// Interpolated values count as secrets when they land in a secret-looking key or come
    /// from a file; an `account_id = "${ACCOUNT}"` is configuration, not a credential (the
    /// plugin's manifest names its other secret keys, redacted once the plugin is known).
    pub(super) fn settings_json(
        &mut self,
        value: &toml::Value,
        from: usize,
        key: &str,
        secrets: &mut Vec<String>,
    ) -> serde_json::Value {
        use serde_json::Value as J;
        match value {
            toml::Value::String(s) => match interpolate::expand(s, &self.file_dir, self.env) {
                Ok((v, subs)) => {
                    if crate::redact::looks_secret(key) || s.contains("${file:") {
                        secrets.extend(subs);
                    }
                    J::String(v)
                }
                Err(err) => {
                    let located = self.text.at_text(from, &err.needle(), err.to_string());
                    self.errors.push(located);
                    J::Null
                }
            },
            toml::Value::Integer(i) => J::from(*i),
            toml::Value::Float(f) => J::from(*f),
            toml::Value::Boolean(b) => J::Bool(*b),
            toml::Value::Datetime(d) => J::String(d.to_string()),
            toml::Value::Array(items) => J::Array(
                items
                    .iter()
                    .map(|v| self.settings_json(v, from, key, secrets))
                    .collect(),
            ),
            toml::Value::Table(t) => J::Object(
                t.iter()
                    .map(|(k, v)| (k.clone(), self.settings_json(v, from, k, secrets)))
                    .collect(),
            ),
        }
    }
}
