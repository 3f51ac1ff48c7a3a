//! Webhook delivery: the notice as JSON, POSTed with `X-Idhost-Signature: sha256=<hex>`, the
//! HMAC-SHA256 of the exact body under the target's `secret` (GitHub's scheme, so existing
//! receivers verify it unchanged), plus `X-Idhost-Event` and `X-Idhost-Delivery` (the notice id).

use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use super::error::NotifyError;
use super::notice::Notification;

pub(super) struct Webhook {
    target: String,
    client: reqwest::Client,
    url: SecretString,
    host: String,
    secret: Option<SecretString>,
    timeout: Duration,
}

use crate::sign::signature;

impl Webhook {
    pub(super) fn new(
        target: &str,
        client: reqwest::Client,
        url: SecretString,
        secret: Option<SecretString>,
        timeout: Duration,
    ) -> Self {
        let host = url::Url::parse(url.expose_secret())
            .ok()
            .and_then(|u| {
                u.host_str().map(|h| {
                    format!(
                        "{h}{}",
                        u.port().map(|p| format!(":{p}")).unwrap_or_default()
                    )
                })
            })
            .unwrap_or_else(|| "the webhook".to_owned());
        Self {
            target: target.to_owned(),
            client,
            url,
            host,
            secret,
            timeout,
        }
    }

    pub(super) async fn deliver(&self, notice: &Notification) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(notice).unwrap_or_default();
        let mut request = self
            .client
            .post(self.url.expose_secret())
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("x-idhost-event", notice.event)
            .header("x-idhost-delivery", &notice.id);
        if let Some(secret) = &self.secret {
            request = request.header(
                "x-idhost-signature",
                signature(secret.expose_secret().as_bytes(), &body),
            );
        }
        let response =
            request
                .body(body)
                .send()
                .await
                .map_err(|e| NotifyError::WebhookTransport {
                    target: self.target.clone(),
                    host: self.host.clone(),
                    // reqwest's message carries the full URL; keep only what it says after it.
                    message: describe(&e),
                })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let outcome = crate::retry::Outcome::from_headers(status.as_u16(), |name| {
            response.headers().get(name).and_then(|v| v.to_str().ok())
        });
        let text = response.text().await.unwrap_or_default();
        Err(NotifyError::WebhookStatus {
            target: self.target.clone(),
            host: self.host.clone(),
            status: status.as_u16(),
            body_excerpt: text.chars().take(200).collect(),
            outcome,
        })
    }
}

/// A reqwest error without its URL.
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut cause = String::new();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}
