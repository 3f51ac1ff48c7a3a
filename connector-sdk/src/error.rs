//! The one error type connectors return, with a kind the host acts on.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::SettingsError;

/// What went wrong, in terms the host can act on (retry, re-authenticate, report, skip).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Credentials missing, wrong or expired (HTTP 401).
    Unauthenticated,
    /// Authenticated but not allowed (HTTP 403), or a read-only source asked to write.
    PermissionDenied,
    /// The object does not exist (HTTP 404).
    NotFound,
    /// The object already exists (HTTP 409).
    AlreadyExists,
    /// The upstream throttled us (HTTP 429).
    RateLimited,
    /// The upstream is down or timed out (HTTP 5xx, connection errors).
    Unavailable,
    /// The request or settings are invalid (HTTP 400, bad config).
    InvalidInput,
    /// The connector does not support the operation.
    Unsupported,
    /// A bug, a panic, or an answer we could not understand.
    Internal,
    /// A kind this SDK does not know (from a newer 1.x SDK), kept as sent; a host treats it
    /// like [`ErrorKind::Internal`].
    Other(crate::wire::UnknownName),
}

crate::wire::wire_enum!(ErrorKind {
    Unauthenticated => "unauthenticated",
    PermissionDenied => "permission_denied",
    NotFound => "not_found",
    AlreadyExists => "already_exists",
    RateLimited => "rate_limited",
    Unavailable => "unavailable",
    InvalidInput => "invalid_input",
    Unsupported => "unsupported",
    Internal => "internal",
});

impl ErrorKind {
    /// The kind an upstream HTTP status maps to, `None` for success.
    pub fn from_status(status: u16) -> Option<Self> {
        Some(match status {
            200..=399 => return None,
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::PermissionDenied,
            404 | 410 => ErrorKind::NotFound,
            409 => ErrorKind::AlreadyExists,
            429 => ErrorKind::RateLimited,
            400..=499 => ErrorKind::InvalidInput,
            _ => ErrorKind::Unavailable,
        })
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            ErrorKind::Unauthenticated => 1,
            ErrorKind::PermissionDenied => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::AlreadyExists => 4,
            ErrorKind::RateLimited => 5,
            ErrorKind::Unavailable => 6,
            ErrorKind::InvalidInput => 7,
            ErrorKind::Unsupported => 8,
            ErrorKind::Internal => 9,
            // A kind this side does not know travels as "unknown" (0).
            ErrorKind::Other(_) => 0,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Self {
        match v {
            1 => ErrorKind::Unauthenticated,
            2 => ErrorKind::PermissionDenied,
            3 => ErrorKind::NotFound,
            4 => ErrorKind::AlreadyExists,
            5 => ErrorKind::RateLimited,
            6 => ErrorKind::Unavailable,
            7 => ErrorKind::InvalidInput,
            8 => ErrorKind::Unsupported,
            9 => ErrorKind::Internal,
            0 => ErrorKind::Other(crate::wire::UnknownName::UNKNOWN),
            // A code from a newer SDK: kept, so it is reported as unknown, not as a bug.
            other => ErrorKind::Other(crate::wire::intern(&format!("kind_{other}"))),
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a connector or from the host services it called.
///
/// The message names the upstream request and status where there is one, and never a secret:
/// the host redacts known secrets once more before it logs or stores a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// What happened, for people.
    pub message: String,
    /// For [`ErrorKind::RateLimited`]: how long the upstream asked us to wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Duration>,
    /// The upstream HTTP status, when the error came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// For a settings error (kind [`ErrorKind::InvalidInput`], usually from `open`): the key at
    /// fault and what is wrong with it, so the host points at the key in the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsError>,
    /// Set when a listing asked to start over (its upstream shifted under it) and the host
    /// could not: resuming that listing would page on from a position that no longer exists,
    /// so the host starts the source's next sync over instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relist: bool,
}

impl ConnectorError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after: None,
            status: None,
            settings: None,
            relist: false,
        }
    }

    /// [`ErrorKind::Unauthenticated`].
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, message)
    }
    /// [`ErrorKind::PermissionDenied`].
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }
    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// [`ErrorKind::AlreadyExists`].
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::AlreadyExists, message)
    }
    /// [`ErrorKind::RateLimited`], optionally with the wait the upstream asked for.
    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self {
            retry_after,
            ..Self::new(ErrorKind::RateLimited, message)
        }
    }
    /// [`ErrorKind::Unavailable`].
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Records the upstream HTTP status this error came from.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Prefixes the message with context, e.g. `"listing users: "`.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        if let Some(settings) = &mut self.settings {
            settings.message = self.message.clone();
        }
        self
    }

    /// The structured settings error this error carries, if it is one.
    pub fn settings_error(&self) -> Option<&SettingsError> {
        self.settings.as_ref()
    }
}

impl From<serde_json::Error> for ConnectorError {
    fn from(err: serde_json::Error) -> Self {
        ConnectorError::internal(format!("could not decode JSON: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(ErrorKind::from_status(204), None);
        assert_eq!(
            ErrorKind::from_status(401),
            Some(ErrorKind::Unauthenticated)
        );
        assert_eq!(ErrorKind::from_status(422), Some(ErrorKind::InvalidInput));
        assert_eq!(ErrorKind::from_status(503), Some(ErrorKind::Unavailable));
        for kind in [
            ErrorKind::Unauthenticated,
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::RateLimited,
            ErrorKind::Unavailable,
            ErrorKind::InvalidInput,
            ErrorKind::Unsupported,
            ErrorKind::Internal,
        ] {
            assert_eq!(ErrorKind::from_u8(kind.to_u8()), kind);
        }
    }
}
