//! Why a notice could not be delivered.

/// Why a notice could not be delivered. Messages name the target and its host, never a
/// webhook's path (Slack-style URLs carry their token there) or a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// The webhook answered with a non-2xx status.
    #[error("notify target `{target}`: POST to {host} answered {status}: {body_excerpt}")]
    WebhookStatus {
        /// Target name.
        target: String,
        /// Host of the URL.
        host: String,
        /// HTTP status.
        status: u16,
        /// Start of the answer body.
        body_excerpt: String,
    },
    /// The webhook could not be reached.
    #[error("notify target `{target}`: POST to {host} failed: {message}")]
    WebhookTransport {
        /// Target name.
        target: String,
        /// Host of the URL.
        host: String,
        /// Cause.
        message: String,
    },
    /// The mail could not be built or sent.
    #[error("notify target `{target}`: mail through {host}:{port} failed: {message}")]
    Email {
        /// Target name.
        target: String,
        /// SMTP host.
        host: String,
        /// SMTP port.
        port: u16,
        /// Cause.
        message: String,
    },
}

impl NotifyError {
    /// Whether trying again may help (transport errors, 429, 5xx; not a 4xx or a bad address).
    pub(super) fn retryable(&self) -> bool {
        match self {
            NotifyError::WebhookStatus { status, .. } => *status == 429 || *status >= 500,
            NotifyError::WebhookTransport { .. } | NotifyError::Email { .. } => true,
        }
    }
}
