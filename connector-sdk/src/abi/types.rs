//! FFI-safe types and the two `#[sabi_trait]` objects that cross the boundary, with their
//! conversions to the plain Rust types on either side.

// The sabi_trait expansion generates items whose visibility follows the trait's.
#![allow(unreachable_pub, missing_docs, non_local_definitions)]

use std::time::Duration;

use abi_stable::StableAbi;
use abi_stable::sabi_trait;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec, Tuple2};
use async_ffi::FfiFuture;

use crate::error::{ConnectorError, ErrorKind};
use crate::http::{HttpRequest, HttpResponse, RequestOptions};
use crate::services::{LogLevel, LogRecord};

/// An error crossing the boundary: the kind as a byte, the message, the optional wait and status.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct AbiError {
    pub kind: u8,
    pub message: RString,
    /// Milliseconds; `u64::MAX` for none.
    pub retry_after_ms: u64,
    /// HTTP status; 0 for none.
    pub status: u16,
}

impl From<ConnectorError> for AbiError {
    fn from(err: ConnectorError) -> Self {
        let message = if err.settings.is_some() || err.relist {
            settings_envelope::wrap(&err.message, err.settings.as_ref(), err.relist)
        } else {
            err.message
        };
        Self {
            kind: err.kind.to_u8(),
            message: message.into(),
            retry_after_ms: err
                .retry_after
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX - 1))
                .unwrap_or(u64::MAX),
            status: err.status.unwrap_or(0),
        }
    }
}

impl From<AbiError> for ConnectorError {
    fn from(err: AbiError) -> Self {
        let (message, settings, relist) = settings_envelope::unwrap(err.message.into());
        ConnectorError {
            kind: ErrorKind::from_u8(err.kind),
            message,
            retry_after: (err.retry_after_ms != u64::MAX)
                .then(|| Duration::from_millis(err.retry_after_ms)),
            status: (err.status != 0).then_some(err.status),
            settings,
            relist,
        }
    }
}

/// How a structured settings error (and the relist flag) crosses the boundary without a layout
/// change to [`AbiError`]: the human message, then one line holding a marker and a versioned
/// JSON envelope (`{"v":1,"kind":"unknown","key":"tenant"}`, `{"v":1,"relist":true}`). A host built before the envelope
/// existed shows the message with that one extra line, still readable; this SDK's host side
/// strips the line and restores the structured error. A line that does not parse is left as
/// it is, so a message can never be lost to the envelope.
pub(crate) mod settings_envelope {
    use serde::{Deserialize, Serialize};

    use crate::settings::{SettingsError, SettingsErrorKind};

    /// Starts the envelope line.
    pub(crate) const MARKER: &str = "\n[idhost settings-error] ";
    /// The envelope version this SDK writes; readers accept any version whose fields they know.
    const VERSION: u32 = 1;

    #[derive(Serialize, Deserialize)]
    struct Envelope {
        v: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<SettingsErrorKind>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
        /// [`crate::ConnectorError::relist`].
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        relist: bool,
    }

    pub(crate) fn wrap(message: &str, settings: Option<&SettingsError>, relist: bool) -> String {
        let envelope = Envelope {
            v: VERSION,
            kind: settings.map(|s| s.kind),
            key: settings.and_then(|s| s.key.clone()),
            relist,
        };
        match serde_json::to_string(&envelope) {
            Ok(json) => format!("{message}{MARKER}{json}"),
            Err(_) => message.to_owned(),
        }
    }

    pub(crate) fn unwrap(message: String) -> (String, Option<SettingsError>, bool) {
        let Some(at) = message.rfind(MARKER) else {
            return (message, None, false);
        };
        match serde_json::from_str::<Envelope>(&message[at + MARKER.len()..]) {
            Ok(envelope) => {
                let head = message[..at].to_owned();
                let settings = envelope.kind.map(|kind| SettingsError {
                    kind,
                    key: envelope.key,
                    message: head.clone(),
                });
                (head, settings, envelope.relist)
            }
            Err(_) => (message, None, false),
        }
    }
}

/// An upstream request crossing from plugin to host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct AbiHttpRequest {
    pub method: RString,
    pub url: RString,
    pub headers: RVec<Tuple2<RString, RString>>,
    pub body: RVec<u8>,
    /// [`RequestOptions`] as JSON, so options can grow without a layout change.
    pub options: RString,
}

impl From<HttpRequest> for AbiHttpRequest {
    fn from(req: HttpRequest) -> Self {
        Self {
            method: req.method.into(),
            url: req.url.into(),
            headers: req
                .headers
                .into_iter()
                .map(|(k, v)| Tuple2(k.into(), v.into()))
                .collect(),
            body: req.body.into(),
            options: serde_json::to_string(&req.options)
                .unwrap_or_default()
                .into(),
        }
    }
}

impl From<AbiHttpRequest> for HttpRequest {
    fn from(req: AbiHttpRequest) -> Self {
        Self {
            method: req.method.into(),
            url: req.url.into(),
            headers: req
                .headers
                .into_iter()
                .map(|Tuple2(k, v)| (k.into(), v.into()))
                .collect(),
            body: req.body.into(),
            // Options a newer plugin sends that this host does not know are ignored.
            options: serde_json::from_str::<RequestOptions>(req.options.as_str())
                .unwrap_or_default(),
        }
    }
}

/// The host's answer crossing back.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct AbiHttpResponse {
    pub status: u16,
    pub dry_run: bool,
    pub headers: RVec<Tuple2<RString, RString>>,
    pub body: RVec<u8>,
    pub request_line: RString,
}

impl From<HttpResponse> for AbiHttpResponse {
    fn from(res: HttpResponse) -> Self {
        Self {
            status: res.status,
            dry_run: res.dry_run,
            headers: res
                .headers
                .into_iter()
                .map(|(k, v)| Tuple2(k.into(), v.into()))
                .collect(),
            body: res.body.into(),
            request_line: res.request_line.into(),
        }
    }
}

impl From<AbiHttpResponse> for HttpResponse {
    fn from(res: AbiHttpResponse) -> Self {
        Self {
            status: res.status,
            dry_run: res.dry_run,
            headers: res
                .headers
                .into_iter()
                .map(|Tuple2(k, v)| (k.into(), v.into()))
                .collect(),
            body: res.body.into(),
            request_line: res.request_line.into(),
        }
    }
}

/// A log event crossing from plugin to host.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct AbiLogRecord {
    pub level: u8,
    pub target: RString,
    pub message: RString,
    /// Fields as a JSON object.
    pub fields: RString,
}

impl From<LogRecord> for AbiLogRecord {
    fn from(rec: LogRecord) -> Self {
        Self {
            level: rec.level as u8,
            target: rec.target.into(),
            message: rec.message.into(),
            fields: serde_json::to_string(&rec.fields)
                .unwrap_or_default()
                .into(),
        }
    }
}

impl From<AbiLogRecord> for LogRecord {
    fn from(rec: AbiLogRecord) -> Self {
        Self {
            level: LogLevel::from_u8(rec.level),
            target: rec.target.into(),
            message: rec.message.into(),
            fields: serde_json::from_str(rec.fields.as_str()).unwrap_or_default(),
        }
    }
}

/// Host services as seen through the ABI. Implemented by the host-side adapter
/// (`crate::host::HostAdapter`), called by the plugin-side `PluginServices`.
#[sabi_trait]
pub trait HostServicesAbi: Send + Sync {
    fn http(&self, request: AbiHttpRequest) -> FfiFuture<RResult<AbiHttpResponse, AbiError>>;
    fn log(&self, record: AbiLogRecord);
    fn state_get(&self, key: RStr<'_>) -> ROption<RString>;
    fn state_set(&self, key: RStr<'_>, value: ROption<RString>);
    /// Add new methods below this one only.
    #[sabi(last_prefix_field)]
    fn sleep(&self, millis: u64) -> FfiFuture<()>;
}

/// One opened connector instance as seen through the ABI.
#[sabi_trait]
pub trait ConnectorAbi: Send + Sync {
    /// Runs operation `op` with a JSON `payload`, answering JSON.
    /// Add new methods below this one only.
    #[sabi(last_prefix_field)]
    fn call(&self, op: RString, payload: RString) -> FfiFuture<RResult<RString, AbiError>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{SettingsError, SettingsErrorKind};

    #[test]
    fn a_settings_error_crosses_as_a_readable_message_with_a_versioned_envelope() {
        let err: ConnectorError =
            SettingsError::unknown("tenant", "unknown field `tenant`, expected `base_url`").into();
        let abi = AbiError::from(err.clone());
        // What an older host prints: the message, then one line it does not understand.
        let shown = abi.message.as_str();
        assert!(
            shown.starts_with("unknown field `tenant`, expected `base_url`\n"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 2, "{shown}");
        let back = ConnectorError::from(abi);
        assert_eq!(back, err);
        let settings = back.settings_error().expect("restored");
        assert_eq!(settings.kind, SettingsErrorKind::Unknown);
        assert_eq!(settings.key.as_deref(), Some("tenant"));
        // A message that merely mentions the marker is left alone.
        let plain =
            ConnectorError::invalid_input(format!("odd{}not json", settings_envelope::MARKER));
        let back = ConnectorError::from(AbiError::from(plain.clone()));
        assert_eq!(back, plain);
        assert!(back.settings_error().is_none());
    }
}
