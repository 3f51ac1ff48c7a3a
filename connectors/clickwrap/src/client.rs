//! Authenticated GETs against the REST API: bearer token, rate budget, one retry after a 401,
//! error parsing, and the collection envelope.
//!
//! Retries on 429/5xx belong to the host (it honours `Retry-After`); this client only handles
//! what the host cannot: renewing a token the API refused.

use std::time::Duration;

use idhost_connector_sdk::oauth::{TokenCache, TokenRequestStyle, TokenSource};
use idhost_connector_sdk::{Budget, ConnectorError, Context, Http};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::{Config, Credentials};
use crate::error::upstream_error;

/// reference/rate-limits: REST "Authenticated requests 2000 maximum per 1 minute", limited by
/// API token. One budget for every REST call: they all count against the same token.
fn rest_budget() -> Budget {
    Budget::new("clickwrap-rest", 2000, Duration::from_secs(60))
}

/// The REST API as this connector uses it.
pub(crate) struct Client {
    http: Http,
    tokens: TokenCache,
    /// `true` for a long-lived `access_token`, which cannot be renewed.
    static_token: bool,
    base_url: String,
    budget: Budget,
}

/// The collection envelope of reference/pagination:
/// `{"page":1,"per_page":25,"count":11,"total_count":11,"has_more":false,"data":[…]}`.
/// `total_count` is absent with `no_count=true`, and not needed.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    #[serde(default = "Vec::new")]
    pub(crate) data: Vec<T>,
    #[serde(default)]
    has_more: Option<bool>,
    #[serde(default)]
    per_page: Option<u64>,
}

impl<T> Envelope<T> {
    /// Whether another page follows. reference/pagination says to "utilize the has_more
    /// property"; should an answer lack it, a full page means there may be more.
    pub(crate) fn has_more(&self, requested_per_page: u32) -> bool {
        self.has_more.unwrap_or_else(|| {
            let per_page = self.per_page.unwrap_or(u64::from(requested_per_page));
            per_page > 0 && self.data.len() as u64 >= per_page
        })
    }
}

impl Client {
    pub(crate) fn new(ctx: &Context, config: &Config) -> Self {
        let (source, static_token) = match &config.credentials {
            Credentials::AccessToken(token) => (TokenSource::Static(token.clone()), true),
            // [UNVERIFIED] reference/createregenerate-access-token shows only
            // `POST https://api.pactsafe.com/oauth/token` and that it needs "a client_id and
            // client_secret"; the body was not retrievable. We send the RFC 6749 §4.4 form
            // (grant_type=client_credentials, client_id, client_secret).
            Credentials::Client {
                client_id,
                client_secret,
                token_url,
            } => (
                TokenSource::ClientCredentials {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    client_secret: client_secret.clone(),
                    scope: None,
                    style: TokenRequestStyle::Form,
                },
                false,
            ),
        };
        Self {
            http: ctx.http().clone(),
            tokens: TokenCache::new(ctx.http().clone(), source),
            static_token,
            base_url: config.base_url.clone(),
            budget: rest_budget(),
        }
    }

    /// `GET {base_url}{path}?{query}` as JSON `T`.
    ///
    /// docs/getting-your-access-token: every call carries `Authorization: Bearer <token>`. After
    /// a 401 a fetched token is dropped and the call retried once with a fresh one; a static
    /// token (or a second 401) fails as unauthenticated.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ConnectorError> {
        let url = format!("{}{path}", self.base_url);
        let mut renewed = false;
        loop {
            let token = self.tokens.token().await?;
            let response = self
                .http
                .get(&url)
                .query(query)
                .bearer(&token)
                .header("accept", "application/json")
                .budget(&self.budget)
                .send()
                .await?;
            if response.is_success() {
                return response.json();
            }
            let hint = match response.status {
                401 if !renewed && self.tokens.invalidate(&token).await => {
                    tracing::debug!(path, "access token refused; fetching a new one");
                    renewed = true;
                    continue;
                }
                401 if self.static_token => Some(
                    "the configured `access_token` was refused: it may have been regenerated, \
                     or its user removed from the site; register a new API key or use \
                     `client_id` + `client_secret`",
                ),
                401 => Some("a freshly fetched access token was refused too"),
                403 => Some("the token's user lacks access to this account or site"),
                _ => None,
            };
            return Err(upstream_error(&response, hint));
        }
    }
}
