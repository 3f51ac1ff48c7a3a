//! Why a notice could not be delivered.

use crate::retry::Outcome;

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
        /// What the answer's `Retry-After` and rate-limit headers asked for.
        #[doc(hidden)]
        outcome: Outcome,
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
    /// The attempt's outcome as the retry policy sees it. A mail failure counts as a transport
    /// failure: the relay may be back on the next try.
    pub(super) fn outcome(&self) -> Outcome {
        match self {
            NotifyError::WebhookStatus { outcome, .. } => outcome.clone(),
            NotifyError::WebhookTransport { .. } | NotifyError::Email { .. } => {
                Outcome::Transport { connected: false }
            }
        }
    }
}
