//! Authenticated GETs against the REST API: bearer token, rate budget, one retry after a 401,
//! error parsing, and the collection envelope.
//!
//! Retries on 429/5xx belong to the host (it honours `Retry-After`); this client only handles
//! what the host cannot: choosing and renewing the token.

use std::collections::BTreeMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use idhost_connector_sdk::oauth::{CachedToken, TokenCache, TokenRequestStyle, TokenSource};
use idhost_connector_sdk::{Budget, ConnectorError, Context, ExposeSecret, Http, HttpResponse};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::config::{ClientCredentials, Config, Credentials};
use crate::error::upstream_error;

/// reference/rate-limits: REST "Authenticated requests 2000 maximum per 1 minute", limited by
/// API token. One budget for every REST call: they all count against the same token.
fn rest_budget() -> Budget {
    Budget::new("clickwrap-rest", 2000, Duration::from_secs(60))
}

/// Client-credentials tokens kept for the life of the process, by token endpoint and client:
/// each sync opens a new connector instance, and a daemon would otherwise ask
/// `POST /oauth/token` ("Create / Regenerate Access Token") for a new token every sync.
/// [UNVERIFIED] whether regenerating a token revokes the previous one; reusing the cached one
/// until it expires or is refused keeps the endpoint out of the way either way.
static SHARED_TOKENS: Mutex<BTreeMap<String, CachedToken>> = Mutex::new(BTreeMap::new());

fn shared_key(client: &ClientCredentials) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    client.client_secret.expose_secret().hash(&mut hasher);
    format!(
        "{}\n{}\n{:x}",
        client.token_url,
        client.client_id,
        hasher.finish()
    )
}

/// The REST API as this connector uses it.
pub(crate) struct Client {
    http: Http,
    /// The configured long-lived `access_token`, if any: always tried first.
    preferred: Option<TokenCache>,
    /// Client credentials: the only source, or the fallback once the static token is refused.
    fetched: Option<(TokenCache, String)>,
    /// Set once the preferred static token was refused and the client credentials took over.
    fell_back: AtomicBool,
    base_url: String,
    budget: Budget,
}

/// The collection envelope of reference/pagination:
/// `{"page":1,"per_page":25,"count":11,"total_count":11,"has_more":false,"data":[…]}`.
/// `total_count` is absent with `no_count=true`; listings that must notice a collection
/// shifting under them ask for it.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope<T> {
    #[serde(default = "Vec::new")]
    pub(crate) data: Vec<T>,
    #[serde(default)]
    has_more: Option<bool>,
    #[serde(default)]
    per_page: Option<u64>,
    #[serde(default)]
    pub(crate) total_count: Option<u64>,
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
        let http = ctx.http().clone();
        let client_credentials = |client: &ClientCredentials| {
            // [UNVERIFIED] reference/createregenerate-access-token shows only
            // `POST https://api.pactsafe.com/oauth/token` and that it needs "a client_id and
            // client_secret"; the body was not retrievable. We send the RFC 6749 §4.4 form
            // (grant_type=client_credentials, client_id, client_secret).
            let cache = TokenCache::new(
                http.clone(),
                TokenSource::ClientCredentials {
                    token_url: client.token_url.clone(),
                    client_id: client.client_id.clone(),
                    client_secret: client.client_secret.clone(),
                    scope: None,
                    style: TokenRequestStyle::Form,
                },
            );
            (cache, shared_key(client))
        };
        let (preferred, fetched) = match &config.credentials {
            Credentials::AccessToken { token, fallback } => (
                Some(TokenCache::new(
                    http.clone(),
                    TokenSource::Static(token.clone()),
                )),
                fallback.as_ref().map(client_credentials),
            ),
            Credentials::Client(client) => (None, Some(client_credentials(client))),
        };
        Self {
            http,
            preferred,
            fetched,
            fell_back: AtomicBool::new(false),
            base_url: config.base_url.clone(),
            budget: rest_budget(),
        }
    }

    /// The fetched-token cache, seeded from the process-wide one.
    async fn fetched(&self) -> Option<&TokenCache> {
        let (cache, key) = self.fetched.as_ref()?;
        if cache.snapshot().await.is_none() {
            let shared = SHARED_TOKENS.lock().ok().and_then(|m| m.get(key).cloned());
            if let Some(token) = shared {
                cache.seed(token).await;
            }
        }
        Some(cache)
    }

    /// Keeps the fetched token for later instances (or forgets a refused one).
    async fn share(&self) {
        let Some((cache, key)) = &self.fetched else {
            return;
        };
        let token = cache.snapshot().await;
        if let Ok(mut shared) = SHARED_TOKENS.lock() {
            match token {
                Some(token) => shared.insert(key.clone(), token),
                None => shared.remove(key),
            };
        }
    }

    /// `GET {base_url}{path}?{query}` as JSON `T`.
    ///
    /// docs/getting-your-access-token: every call carries `Authorization: Bearer <token>`. The
    /// configured `access_token` is preferred; when the API refuses it and client credentials
    /// are configured too, they take over for the rest of the instance. A fetched token is
    /// renewed once after a 401 (the SDK's authorized request); a static token with nothing
    /// to fall back to, or a second 401, fails as unauthenticated.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ConnectorError> {
        let url = format!("{}{path}", self.base_url);
        let build = || {
            self.http
                .get(&url)
                .query(query)
                .header("accept", "application/json")
                .budget(&self.budget)
        };
        if let Some(preferred) = self.preferred.as_ref()
            && !self.fell_back.load(Ordering::Relaxed)
        {
            let response = preferred.send_authorized(build).await?;
            if response.is_success() {
                return response.json();
            }
            if response.status != 401 || self.fetched.is_none() {
                return Err(self.refused(&response, true));
            }
            tracing::warn!(
                path,
                "the configured access_token was refused; using client_id + client_secret"
            );
            self.fell_back.store(true, Ordering::Relaxed);
        }
        let Some(cache) = self.fetched().await else {
            return Err(ConnectorError::internal("no credentials to send"));
        };
        let response = cache.send_authorized(build).await;
        self.share().await;
        let response = response?;
        if response.is_success() {
            return response.json();
        }
        Err(self.refused(&response, false))
    }

    fn refused(&self, response: &HttpResponse, static_token: bool) -> ConnectorError {
        let hint = match response.status {
            401 if static_token => Some(
                "the configured `access_token` was refused: it may have been regenerated, \
                 or its user removed from the site; register a new API key or use \
                 `client_id` + `client_secret`",
            ),
            401 => Some("a freshly fetched access token was refused too"),
            403 => Some("the token's user lacks access to this account or site"),
            _ => None,
        };
        upstream_error(response, hint)
    }
}
