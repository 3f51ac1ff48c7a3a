//! Settings helpers every connector needs: a structured settings error the host can point at in
//! the config file, settings deserialization that names the offending key, and the URL rule
//! (https unless loopback or the source opted in to plain http).
//!
//! ```
//! use idhost_connector_sdk::settings::{self, SettingsError, SettingsErrorKind};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct AcmeSettings {
//!     base_url: String,
//!     #[serde(default)]
//!     allow_insecure_http: bool,
//! }
//!
//! let raw = serde_json::json!({"base_url": "http://acme.example.com", "tenant": 1});
//! let err = settings::from_value::<AcmeSettings>(raw).err().unwrap();
//! assert_eq!((err.kind, err.key.as_deref()), (SettingsErrorKind::Unknown, Some("tenant")));
//!
//! let s: AcmeSettings =
//!     settings::from_value(serde_json::json!({"base_url": "http://acme.example.com"})).unwrap();
//! let err = settings::checked_url("base_url", &s.base_url, "https://acme.example.com", s.allow_insecure_http)
//!     .err()
//!     .unwrap();
//! assert_eq!(err.key.as_deref(), Some("base_url"));
//! assert!(err.message.contains("allow_insecure_http"));
//! ```

use std::net::IpAddr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::error::{ConnectorError, ErrorKind};

/// The settings key that opts a source in to plain `http://` to hosts that are not loopback
/// (DESIGN §5). Connectors mark it in their manifest with [`crate::ConfigKey::insecure_http_opt_in`].
pub const INSECURE_HTTP_KEY: &str = "allow_insecure_http";

/// What is wrong with a setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SettingsErrorKind {
    /// A key the connector needs is absent.
    Missing,
    /// A key the connector does not know.
    Unknown,
    /// A key's value is wrong: its type, range or format.
    Invalid,
    /// Keys that cannot be set together, or a key that needs another one.
    Conflict,
    /// A kind this SDK does not know (sent by a newer plugin); treated like `Invalid`.
    #[serde(other)]
    Other,
}

impl SettingsErrorKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingsErrorKind::Missing => "missing",
            SettingsErrorKind::Unknown => "unknown",
            SettingsErrorKind::Invalid => "invalid",
            SettingsErrorKind::Conflict => "conflict",
            SettingsErrorKind::Other => "other",
        }
    }
}

/// A settings error: its kind, the key under `[sources.X.settings]` it is about (a dotted path
/// for a nested value), and a message for people that shows a correct value.
///
/// It converts into a [`ConnectorError`] of kind [`ErrorKind::InvalidInput`] that carries it
/// across the plugin boundary, so the host finds the key in the config file without reading
/// the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct SettingsError {
    /// What is wrong.
    pub kind: SettingsErrorKind,
    /// The key at fault; `None` when the error is about the settings as a whole.
    #[serde(default)]
    pub key: Option<String>,
    /// What is wrong, for people.
    pub message: String,
}

impl SettingsError {
    fn new(kind: SettingsErrorKind, key: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            kind,
            key: key.map(str::to_owned),
            message: message.into(),
        }
    }

    /// `key` is required and absent.
    pub fn missing(key: &str, message: impl Into<String>) -> Self {
        Self::new(SettingsErrorKind::Missing, Some(key), message)
    }

    /// `key` is not a setting of this connector.
    pub fn unknown(key: &str, message: impl Into<String>) -> Self {
        Self::new(SettingsErrorKind::Unknown, Some(key), message)
    }

    /// `key` has a wrong value.
    pub fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::new(SettingsErrorKind::Invalid, Some(key), message)
    }

    /// `key` cannot be set with another key, or needs one that is absent.
    pub fn conflict(key: &str, message: impl Into<String>) -> Self {
        Self::new(SettingsErrorKind::Conflict, Some(key), message)
    }

    /// An error about the settings as a whole (no single key is at fault).
    pub fn general(message: impl Into<String>) -> Self {
        Self::new(SettingsErrorKind::Invalid, None, message)
    }

    /// Prefixes the message with context, e.g. ``"invalid settings for source `legal`: "``.
    pub fn context(mut self, context: impl std::fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl From<SettingsError> for ConnectorError {
    fn from(err: SettingsError) -> Self {
        let mut out = ConnectorError::new(ErrorKind::InvalidInput, err.message.clone());
        out.settings = Some(err);
        out
    }
}

/// Deserializes a connector's settings from the JSON the host hands to `open`; a failure names
/// the key (its dotted path) and what is wrong with it. The plugin glue uses it for every
/// connector's `Settings`, so connectors get structured errors for serde's refusals for free.
pub fn from_str<T: DeserializeOwned>(json: &str) -> Result<T, SettingsError> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(&mut deserializer).map_err(describe)
}

/// Like [`from_str`], from a JSON value.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, SettingsError> {
    serde_path_to_error::deserialize(value).map_err(describe)
}

/// serde says which key through the path, except for `missing field` and `unknown field`,
/// which it raises at the enclosing table and names only in its message; this is the one place
/// that reads that message, so nothing downstream has to.
fn describe(err: serde_path_to_error::Error<serde_json::Error>) -> SettingsError {
    let path = err.path().to_string();
    let parent = (!path.is_empty() && path != ".").then_some(path);
    let inner = strip_json_position(&err.into_inner().to_string());
    let named = |marker: &str| {
        let rest = inner.strip_prefix(marker)?;
        let end = rest.find('`')?;
        Some(rest[..end].to_owned())
    };
    let joined = |field: String| match &parent {
        // serde_path_to_error already points at an unknown key itself.
        Some(p) if p == &field || p.ends_with(&format!(".{field}")) => p.clone(),
        Some(p) => format!("{p}.{field}"),
        None => field,
    };
    // serde's own wording is kept for these two ("missing field `x`", "unknown field `x`,
    // expected one of …"): it already names the key and lists the valid ones.
    if let Some(field) = named("missing field `") {
        return SettingsError::missing(&joined(field), inner);
    }
    if let Some(field) = named("unknown field `") {
        return SettingsError::unknown(&joined(field), inner);
    }
    match parent {
        Some(key) => SettingsError::invalid(&key, format!("`{key}`: {inner}")),
        None => SettingsError::general(inner),
    }
}

/// serde_json appends "at line 1 column 42" of the JSON the host built from the TOML; that
/// position means nothing to the person who wrote the TOML.
fn strip_json_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// Whether `url` names a loopback host (`localhost`, `127.0.0.0/8`, `::1`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Parses setting `key` as an absolute http(s) URL without query or fragment. Plain `http://`
/// is accepted only for loopback hosts unless `allow_insecure_http` (the source's
/// [`INSECURE_HTTP_KEY`]) is set: credentials would cross the network in clear text. Every
/// error names `key` and shows `example`, a correct value.
pub fn checked_url(
    key: &str,
    raw: &str,
    example: &str,
    allow_insecure_http: bool,
) -> Result<Url, SettingsError> {
    let url = Url::parse(raw.trim()).map_err(|err| {
        SettingsError::invalid(
            key,
            format!("`{key}` must be an absolute URL such as `{example}`; got `{raw}` ({err})"),
        )
    })?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure_http || is_loopback(&url) => {}
        "http" => {
            return Err(SettingsError::invalid(
                key,
                format!(
                    "`{key}` uses plain http:// to `{}`, which is not a loopback address: use \
                     https:// (e.g. `{example}`), or set `{INSECURE_HTTP_KEY} = true` if you \
                     really mean it",
                    url.host_str().unwrap_or_default()
                ),
            ));
        }
        other => {
            return Err(SettingsError::invalid(
                key,
                format!("`{key}` must be an http(s) URL such as `{example}`; got scheme `{other}`"),
            ));
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(SettingsError::invalid(
            key,
            format!("`{key}` must not carry a query or fragment (e.g. `{example}`); got `{raw}`"),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Nested {
        retries: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        client_id: String,
        #[serde(default)]
        page_size: Option<u32>,
        #[serde(default)]
        http: Option<Nested>,
    }

    fn err(json: serde_json::Value) -> SettingsError {
        match from_value::<Example>(json) {
            Ok(v) => panic!("accepted: {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn serde_refusals_name_the_key_and_the_kind() {
        let e = err(serde_json::json!({}));
        assert_eq!(
            (e.kind, e.key.as_deref()),
            (SettingsErrorKind::Missing, Some("client_id"))
        );
        let e = err(serde_json::json!({"client_id": "c", "tenant": 1}));
        assert_eq!(
            (e.kind, e.key.as_deref()),
            (SettingsErrorKind::Unknown, Some("tenant"))
        );
        assert!(e.message.contains("tenant"), "{}", e.message);
        let e = err(serde_json::json!({"client_id": "c", "page_size": "many"}));
        assert_eq!(
            (e.kind, e.key.as_deref()),
            (SettingsErrorKind::Invalid, Some("page_size"))
        );
        assert!(!e.message.contains("line 1"), "{}", e.message);
        let e = err(serde_json::json!({"client_id": "c", "http": {"retries": -1}}));
        assert_eq!(e.key.as_deref(), Some("http.retries"));
        let e = err(serde_json::json!({"client_id": "c", "http": {"tries": 1}}));
        assert_eq!(
            (e.kind, e.key.as_deref()),
            (SettingsErrorKind::Unknown, Some("http.tries"))
        );
        let e = err(serde_json::json!({"client_id": "c", "http": {}}));
        assert_eq!(
            (e.kind, e.key.as_deref()),
            (SettingsErrorKind::Missing, Some("http.retries"))
        );
        let e = from_str::<Example>("\"text\"").expect_err("not a table");
        assert_eq!(e.key, None);
    }

    #[test]
    fn urls_need_https_unless_loopback_or_opted_in_and_errors_name_the_key() {
        let ex = "https://api.example.com/v1";
        checked_url("base_url", "https://api.example.com/v1", ex, false).expect("https");
        for loopback in [
            "http://127.0.0.1:8080",
            "http://127.9.0.1/",
            "http://[::1]:1",
            "http://localhost:2",
        ] {
            checked_url("base_url", loopback, ex, false).expect(loopback);
        }
        let e = checked_url("base_url", "http://api.example.com", ex, false).expect_err("http");
        assert_eq!(e.key.as_deref(), Some("base_url"));
        assert!(
            e.message.contains(INSECURE_HTTP_KEY) && e.message.contains(ex),
            "{}",
            e.message
        );
        checked_url("base_url", "http://api.example.com", ex, true).expect("opted in");
        for bad in ["ftp://x", "not a url", "https://x/?q=1", "https://x/#f"] {
            let e = checked_url("token_url", bad, ex, false).expect_err(bad);
            assert!(e.message.starts_with("`token_url`"), "{}", e.message);
            assert!(e.message.contains(ex), "{}", e.message);
        }
    }

    #[test]
    fn a_settings_error_becomes_an_invalid_input_connector_error_that_keeps_it() {
        let e: ConnectorError =
            SettingsError::invalid("page_size", "page_size is 1 to 1000").into();
        assert_eq!(e.kind, ErrorKind::InvalidInput);
        assert_eq!(e.message, "page_size is 1 to 1000");
        let s = e.settings_error().expect("structured");
        assert_eq!(s.key.as_deref(), Some("page_size"));
        let e = e.context("source `legal`");
        assert_eq!(
            e.settings_error().map(|s| s.message.as_str()),
            Some("source `legal`: page_size is 1 to 1000")
        );
        let unknown: SettingsErrorKind =
            serde_json::from_str("\"from_the_future\"").expect("other");
        assert_eq!(unknown, SettingsErrorKind::Other);
    }
}
