//! The services the host provides to a connector, as one plain Rust trait.
//!
//! The host implements it; the SDK carries it across the plugin boundary. Inside a plugin the
//! same trait is implemented over the ABI, so connector code (and in-process tests) see one
//! interface whichever side of the boundary they run on.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::ConnectorError;
use crate::http::{HttpRequest, HttpResponse};

/// Severity of a forwarded log event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Errors.
    Error = 1,
    /// Warnings.
    Warn = 2,
    /// Progress.
    Info = 3,
    /// Detail.
    Debug = 4,
    /// Everything.
    Trace = 5,
}

impl LogLevel {
    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => LogLevel::Error,
            2 => LogLevel::Warn,
            3 => LogLevel::Info,
            4 => LogLevel::Debug,
            _ => LogLevel::Trace,
        }
    }
}

/// One log event from a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Severity.
    pub level: LogLevel,
    /// The plugin module that logged it.
    pub target: String,
    /// The message.
    pub message: String,
    /// Structured fields, as JSON values.
    #[serde(default)]
    pub fields: Map<String, Value>,
}

/// What the host does for a connector. Every method must return promptly and never panic
/// (a host callback that panics across the boundary would abort the process, so the SDK's
/// host-side adapter catches panics around each of them as well).
pub trait HostServices: Send + Sync + 'static {
    /// Sends an upstream request with the host's retries, budgets, dry-run and redaction.
    fn http(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, ConnectorError>>;

    /// Records a log event from the connector.
    fn log(&self, record: LogRecord);

    /// Reads a value the connector stored for this source (e.g. a delta link).
    fn state_get(&self, key: &str) -> Option<String>;

    /// Stages a value for this source; the host commits it with the next complete sync, so a
    /// failed sync never advances connector state. `None` deletes the key.
    fn state_set(&self, key: &str, value: Option<String>);

    /// Waits, on the host's timer.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}
