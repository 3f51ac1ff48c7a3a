//! The SCIM client: base URL, bearer token (cached, refreshed before expiry and once after a
//! 401), the acting-user header, the documented rate budgets, and error parsing.
//!
//! Requests go through the host (`ctx.http()`), which retries 429/5xx with backoff and jitter,
//! enforces the budgets and intercepts writes under `--dry-run`; nothing here retries except the
//! single re-authentication after a 401.

use std::time::Duration;

use idhost_connector_sdk::prelude::*;
use serde_json::Value;
use url::Url;

use crate::config::{Actor, Auth, Validated};
use crate::error::upstream_error;

/// The per-account limits Ironclad documents (developer.ironcladapp.com/reference/
/// clm-api-rate-limits): "GET/PUT/POST scim/v2/users 600 requests per minute", "PATCH/DELETE
/// scim/v2/users 50 requests per minute", "All scim/v2/groups 600 requests per minute".
#[derive(Debug)]
pub(crate) struct Budgets {
    /// GET, PUT and POST on `/Users`.
    pub(crate) users_read: Budget,
    /// PATCH and DELETE on `/Users`.
    pub(crate) users_write: Budget,
    /// Everything on `/Groups`.
    pub(crate) groups: Budget,
}

impl Budgets {
    fn documented() -> Self {
        let minute = Duration::from_secs(60);
        Self {
            users_read: Budget::new("ironclad-users-get-put-post", 600, minute),
            users_write: Budget::new("ironclad-users-patch-delete", 50, minute),
            groups: Budget::new("ironclad-groups", 600, minute),
        }
    }
}

/// One SCIM request, described so it can be sent again after a token refresh.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub(crate) method: &'static str,
    /// Path segments under the SCIM base, e.g. `["Groups", id]` (each is percent-encoded).
    pub(crate) segments: Vec<&'a str>,
    pub(crate) query: Vec<(&'static str, String)>,
    pub(crate) body: Option<Value>,
    pub(crate) budget: &'a Budget,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: &'static str, segments: &[&'a str], budget: &'a Budget) -> Self {
        Self {
            method,
            segments: segments.to_vec(),
            query: Vec::new(),
            body: None,
            budget,
        }
    }

    pub(crate) fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    pub(crate) fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
}

/// Talks SCIM to one Ironclad company.
pub(crate) struct Client {
    http: Http,
    scim_base: Url,
    tokens: TokenCache,
    actor: Option<Actor>,
    pub(crate) budgets: Budgets,
    pub(crate) page_size: u32,
}

impl Client {
    pub(crate) fn new(http: Http, settings: Validated) -> Result<Self, ConnectorError> {
        let scim_base = Url::parse(&settings.scim_base).map_err(|err| {
            ConnectorError::invalid_input(format!(
                "base_url gives an invalid SCIM URL `{}`: {err}",
                settings.scim_base
            ))
        })?;
        // client-credentials-grant: "parameters in JSON format" (Basic auth is also accepted).
        let style = TokenRequestStyle::Json;
        let source = match settings.auth {
            Auth::Static(token) => TokenSource::Static(token),
            Auth::ClientCredentials {
                client_id,
                client_secret,
            } => TokenSource::ClientCredentials {
                token_url: settings.token_url,
                client_id,
                client_secret,
                scope: Some(settings.scopes),
                style,
            },
            Auth::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            } => TokenSource::RefreshToken {
                token_url: settings.token_url,
                client_id,
                client_secret: Some(client_secret),
                refresh_token,
                style,
            },
        };
        Ok(Self {
            tokens: TokenCache::new(http.clone(), source),
            http,
            scim_base,
            actor: settings.actor,
            budgets: Budgets::documented(),
            page_size: settings.page_size,
        })
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ConnectorError> {
        let mut url = self.scim_base.clone();
        url.path_segments_mut()
            .map_err(|()| {
                ConnectorError::invalid_input(format!("`{}` cannot take a path", self.scim_base))
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn attempt(
        &self,
        call: &Call<'_>,
        token: &SecretString,
    ) -> Result<HttpResponse, ConnectorError> {
        let mut request = self
            .http
            .request(call.method, self.url(&call.segments)?)
            .bearer(token)
            .header("accept", "application/scim+json, application/json")
            .budget(call.budget);
        if !call.query.is_empty() {
            let pairs: Vec<(&str, &str)> =
                call.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            request = request.query(&pairs);
        }
        if let Some(actor) = &self.actor {
            request = request.header(actor.header, actor.value.clone());
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        request.send().await
    }

    /// Sends `call`; after a 401 fetches a new token and sends it once more. Any status comes
    /// back as `Ok`, except a 401 that a new token cannot fix.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<HttpResponse, ConnectorError> {
        let token = self.tokens.token().await?;
        let response = self.attempt(call, &token).await?;
        if response.status != 401 {
            return Ok(response);
        }
        if !self.tokens.invalidate(&token).await {
            return Err(upstream_error(&response)
                .context("Ironclad refused the configured bearer_token (it cannot be renewed)"));
        }
        tracing::debug!(
            request = %response.request_line,
            "Ironclad refused the access token; fetching a new one and retrying once"
        );
        let token = self.tokens.token().await?;
        let retried = self.attempt(call, &token).await?;
        if retried.status == 401 {
            return Err(upstream_error(&retried).context("Ironclad refused a freshly issued token"));
        }
        Ok(retried)
    }

    /// Sends `call` and turns any non-2xx answer into an error. A write intercepted by
    /// `--dry-run` comes back as is (`dry_run: true`, empty body).
    pub(crate) async fn ok(&self, call: &Call<'_>) -> Result<HttpResponse, ConnectorError> {
        let response = self.send(call).await?;
        if response.dry_run || response.is_success() {
            Ok(response)
        } else {
            Err(upstream_error(&response))
        }
    }
}
