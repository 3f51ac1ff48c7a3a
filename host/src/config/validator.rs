//! What every part of validation shares: the file's text (to locate errors), the collected
//! errors, `${VAR}`/`${file:}` interpolation and the settings' conversion to JSON.

use std::path::PathBuf;

use toml::Spanned;

use super::error::Located;
use super::interpolate;
use super::text::SourceText;

/// Which `${VAR}` and `${file:}` references a load resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Every one; an unset variable or unreadable file is an error (sync, run, provision).
    All,
    /// Those that can be resolved; the others are recorded in [`Config::unresolved`] and their
    /// values left out (`check --offline`).
    Available,
    /// Only sink paths: commands that read what syncs wrote (`query`, `review`, `audit`) never
    /// read a credential, so they run with none set.
    SinkPaths,
}

/// A reference a lenient load left unresolved.
#[derive(Debug, Clone)]
pub struct Unresolved {
    /// The source whose settings hold it, if it is in a source's settings.
    pub source: Option<String>,
    /// Why, located in the file.
    pub problem: Located,
}

pub(super) struct Validator<'a> {
    pub(super) text: &'a SourceText,
    pub(super) base_dir: PathBuf,
    pub(super) file_dir: PathBuf,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    pub(super) errors: Vec<Located>,
    pub(super) resolve: Resolve,
    pub(super) unresolved: Vec<Unresolved>,
    /// The source whose settings are being converted, for [`Unresolved::source`].
    pub(super) settings_of: Option<String>,
}

pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl Validator<'_> {
    /// A relative path in the file is relative to the file's directory, so a config works
    /// the same from wherever idhost runs (`-c /etc/idhost/idhost.toml` with `path =
    /// "idhost.db"` means /etc/idhost/idhost.db).
    pub(super) fn resolve(&self, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        if path.is_absolute() {
            path
        } else {
            self.base_dir.join(path)
        }
    }

    /// Whether a string's references are resolved in this load (a string without one is
    /// always taken as written).
    pub(super) fn resolves(&self, text: &str) -> bool {
        self.resolve != Resolve::SinkPaths || !text.contains("${")
    }

    /// Records (lenient load) or reports (strict load) a reference that did not resolve.
    fn unresolved_reference(&mut self, located: Located, err: &interpolate::InterpolationError) {
        let lenient = self.resolve == Resolve::Available
            && !matches!(err, interpolate::InterpolationError::Malformed(_));
        if lenient {
            self.unresolved.push(Unresolved {
                source: self.settings_of.clone(),
                problem: located,
            });
        } else {
            self.errors.push(located);
        }
    }

    pub(super) fn expand_string(
        &mut self,
        s: &Spanned<String>,
        secrets: &mut Vec<String>,
    ) -> Option<String> {
        if !self.resolves(s.get_ref()) {
            return None;
        }
        match interpolate::expand(s.get_ref(), &self.file_dir, self.env) {
            Ok((value, subs)) => {
                // Every interpolated value is redacted process-wide, whichever field holds it.
                for sub in &subs {
                    crate::redact::global().add(sub.clone());
                }
                secrets.extend(subs);
                Some(value)
            }
            Err(err) => {
                let located = self
                    .text
                    .at_text(s.span().start, &err.needle(), err.to_string());
                self.unresolved_reference(located, &err);
                None
            }
        }
    }

    /// A sink's file path: resolved in every load (the commands that read a sink need it).
    pub(super) fn expand_path(
        &mut self,
        s: &Spanned<String>,
        secrets: &mut Vec<String>,
    ) -> Option<String> {
        let resolve = std::mem::replace(&mut self.resolve, Resolve::All);
        let path = self.expand_string(s, secrets);
        self.resolve = resolve;
        path
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
            toml::Value::String(s) if !self.resolves(s) => J::String(s.clone()),
            toml::Value::String(s) => match interpolate::expand(s, &self.file_dir, self.env) {
                Ok((v, subs)) => {
                    if crate::redact::looks_secret(key)
                        || s.contains("${file:")
                        || names_a_secret_variable(s)
                    {
                        secrets.extend(subs);
                    }
                    // A password inside a URL (`https://user:pw@host`) is a secret wherever
                    // the URL is; so is its decoded form.
                    if let Ok(url) = url::Url::parse(&v)
                        && let Some(password) = url.password()
                    {
                        secrets.push(password.to_owned());
                        if let Ok(decoded) =
                            percent_encoding::percent_decode_str(password).decode_utf8()
                        {
                            secrets.push(decoded.into_owned());
                        }
                    }
                    J::String(v)
                }
                Err(err) => {
                    let located = self.text.at_text(from, &err.needle(), err.to_string());
                    self.unresolved_reference(located, &err);
                    J::Null
                }
            },
            // A secret typed as a number is still a secret (a mistyped value is echoed by the
            // plugin's "invalid type" error).
            toml::Value::Integer(i) => {
                if crate::redact::looks_secret(key) {
                    secrets.push(i.to_string());
                }
                J::from(*i)
            }
            toml::Value::Float(f) => {
                if crate::redact::looks_secret(key) {
                    secrets.push(f.to_string());
                }
                J::from(*f)
            }
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

/// Whether `raw` references a variable whose name says it holds a credential
/// (`${IRONCLAD_CLIENT_SECRET}` in a `base_url`), which makes its value a secret wherever it
/// lands — the rule every field follows, settings or not.
fn names_a_secret_variable(raw: &str) -> bool {
    raw.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .any(|name| !name.starts_with("file:") && crate::redact::looks_secret(name))
}
