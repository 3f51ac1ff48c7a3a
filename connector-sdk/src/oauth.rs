//! OAuth 2.0 access tokens for connectors: client credentials or refresh token, fetched through
//! the host's HTTP, cached, refreshed before expiry and once after a 401.
//!
//! The standard exchanges (RFC 6749 §4.4 client credentials, §6 refresh, RFC 7523 client
//! assertions) go through the `oauth2` crate, plugged into the host's HTTP service by
//! [`crate::oauth_http::OAuthHttp`] (its custom async client hook), so no second HTTP stack
//! enters a plugin. The one hand-written exchange is [`TokenRequestStyle::Json`], for an
//! upstream that departs from RFC 6749's form bodies (Ironclad). What matters beyond the
//! exchange is the caching, which lives here once for every connector.

use std::time::{Duration, Instant};

use futures::lock::Mutex;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{ConnectorError, ErrorKind};
use crate::http::{Http, HttpResponse, RequestBuilder};

/// How the token request is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRequestStyle {
    /// `application/x-www-form-urlencoded` with client_id/client_secret in the body (RFC 6749).
    Form,
    /// A JSON body with the same fields (Ironclad's documented form).
    Json,
    /// A form body with the client authenticated by HTTP Basic (RFC 6749 §2.3.1).
    FormBasicAuth,
}

/// Makes a fresh client assertion (RFC 7523 §2.2, a signed JWT) for the token URL it is given;
/// called once per token request, so an assertion (and its `jti`) is never reused.
#[derive(Clone)]
pub struct AssertionSigner(std::sync::Arc<SignFn>);

/// What an [`AssertionSigner`] calls: token URL in, assertion out.
type SignFn = dyn Fn(&str) -> Result<SecretString, ConnectorError> + Send + Sync;

impl AssertionSigner {
    /// A signer over `sign(token_url)`.
    pub fn new(
        sign: impl Fn(&str) -> Result<SecretString, ConnectorError> + Send + Sync + 'static,
    ) -> Self {
        Self(std::sync::Arc::new(sign))
    }

    /// A fresh assertion for `token_url`.
    pub fn sign(&self, token_url: &str) -> Result<SecretString, ConnectorError> {
        (self.0)(token_url)
    }
}

impl std::fmt::Debug for AssertionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AssertionSigner")
    }
}

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Where tokens come from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// A static token from the config; never refreshed.
    Static(SecretString),
    /// The client credentials grant.
    ClientCredentials {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: SecretString,
        /// Space-separated scopes, if the upstream wants them.
        scope: Option<String>,
        /// Body encoding.
        style: TokenRequestStyle,
    },
    /// The client credentials grant, the client authenticated by a JWT assertion (RFC 7523
    /// §2.2, `private_key_jwt`) instead of a secret: a form body with `client_id`,
    /// `client_assertion_type` and a fresh `client_assertion` per request.
    ClientAssertion {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Space-separated scopes, if the upstream wants them.
        scope: Option<String>,
        /// Makes each request's assertion.
        signer: AssertionSigner,
    },
    /// The refresh token grant (the refresh token may rotate with each answer).
    RefreshToken {
        /// Token endpoint.
        token_url: String,
        /// Client id.
        client_id: String,
        /// Client secret, if the upstream wants one.
        client_secret: Option<SecretString>,
        /// The refresh token.
        refresh_token: SecretString,
        /// Body encoding.
        style: TokenRequestStyle,
    },
}

/// A token endpoint's answer, as far as a [`TokenCache`] needs it.
#[derive(Deserialize)]
pub(crate) struct TokenAnswer {
    pub(crate) access_token: String,
    #[serde(default)]
    pub(crate) expires_in: Option<u64>,
    #[serde(default)]
    pub(crate) refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct TokenErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// An access token and when it expires, as a [`TokenCache`] holds it: what a connector keeps
/// beyond one instance (e.g. in a process-wide map) to hand to the next one with
/// [`TokenCache::seed`], so a daemon's every sync does not fetch a new token.
#[derive(Clone)]
pub struct CachedToken {
    token: SecretString,
    expires_at: Option<Instant>,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

type Cached = CachedToken;

type RotationHook = Box<dyn Fn(&SecretString) + Send + Sync>;

/// A cached access token. Share one per connector instance.
pub struct TokenCache {
    http: Http,
    source: Mutex<TokenSource>,
    /// Told every refresh token that replaces the one held (rotation).
    on_rotation: Option<RotationHook>,
    /// Scopes sent with the refresh grant (RFC 6749 §6 `scope`), for upstreams that want them.
    refresh_scope: Option<String>,
    cached: Mutex<Option<Cached>>,
    /// Refresh this long before the token expires.
    skew: Duration,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache").finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache over `source`, fetching through `http`.
    pub fn new(http: Http, source: TokenSource) -> Self {
        Self {
            http,
            source: Mutex::new(source),
            on_rotation: None,
            refresh_scope: None,
            cached: Mutex::new(None),
            skew: Duration::from_secs(60),
        }
    }

    /// Calls `hook` with every refresh token the upstream rotates in (an answer of the refresh
    /// grant holding a new `refresh_token`), before the access token is used: what a connector
    /// hands to [`crate::Context::store_refresh_token`], so the next sync starts from it.
    pub fn on_rotation(mut self, hook: impl Fn(&SecretString) + Send + Sync + 'static) -> Self {
        self.on_rotation = Some(Box::new(hook));
        self
    }

    /// Sends `scope` (space-separated) with every refresh grant (RFC 6749 §6), for an upstream
    /// that asks for it (the Microsoft identity platform).
    pub fn refresh_scope(mut self, scope: impl Into<String>) -> Self {
        self.refresh_scope = Some(scope.into());
        self
    }

    /// A valid access token: the cached one, or a fresh one when it is missing or about to expire.
    /// Concurrent callers wait for one fetch rather than each fetching.
    pub async fn token(&self) -> Result<SecretString, ConnectorError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            let fresh = c
                .expires_at
                .is_none_or(|at| Instant::now() + self.skew < at);
            if fresh {
                return Ok(c.token.clone());
            }
        }
        let fetched = self.fetch().await?;
        let token = fetched.token.clone();
        *cached = Some(fetched);
        Ok(token)
    }

    /// Forgets `rejected` after the upstream answered 401 with it, so the next
    /// [`TokenCache::token`] fetches a new one. Returns `false` for a static token, which cannot
    /// be renewed (the caller should then fail with `Unauthenticated`).
    pub async fn invalidate(&self, rejected: &SecretString) -> bool {
        if matches!(*self.source.lock().await, TokenSource::Static(_)) {
            return false;
        }
        let mut cached = self.cached.lock().await;
        if cached
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == rejected.expose_secret())
        {
            *cached = None;
        }
        true
    }

    /// The token held now, if one was fetched and has not been refused.
    pub async fn snapshot(&self) -> Option<CachedToken> {
        self.cached.lock().await.clone()
    }

    /// Starts with `token` (from an earlier instance) instead of fetching one; it is used until
    /// it is about to expire or the upstream refuses it, like a token this cache fetched.
    pub async fn seed(&self, token: CachedToken) {
        *self.cached.lock().await = Some(token);
    }

    /// Whether a refused token can be replaced by a fresh one: `false` for a static token.
    pub async fn renewable(&self) -> bool {
        !matches!(*self.source.lock().await, TokenSource::Static(_))
    }

    /// Sends the request `build` makes, with `Authorization: Bearer <token>` from this cache.
    /// After a 401 a renewable token is dropped, a fresh one fetched and the request built and
    /// sent once more; a static token is never retried. Every other status comes back as it is,
    /// and so does the final 401 (then [`TokenCache::renewable`] tells whether the configured
    /// token was refused or a freshly issued one was).
    ///
    /// This is the one "refresh once after a 401" every connector shares; `build` is called
    /// once per attempt because a request cannot be sent twice.
    ///
    /// ```
    /// # use idhost_connector_sdk::fuzzing::{Script, ScriptedHost};
    /// use idhost_connector_sdk::SourceInfo;
    /// use idhost_connector_sdk::oauth::{TokenCache, TokenRequestStyle, TokenSource};
    ///
    /// # let host = ScriptedHost::new(&Script::parse(b"HTTP 401\n\n%%\n{\"data\": []}"));
    /// # let ctx = host.context(SourceInfo::default());
    /// let tokens = TokenCache::new(
    ///     ctx.http().clone(),
    ///     TokenSource::ClientCredentials {
    ///         token_url: "https://api.example.com/oauth/token".into(),
    ///         client_id: "client".into(),
    ///         client_secret: "secret".to_owned().into(),
    ///         scope: None,
    ///         style: TokenRequestStyle::Form,
    ///     },
    /// );
    /// let url = "https://api.example.com/v1/users";
    /// let answer = futures::executor::block_on(
    ///     tokens.send_authorized(|| ctx.http().get(url).header("accept", "application/json")),
    /// )?;
    /// // The first answer was a 401: a fresh token was fetched and the request sent again.
    /// assert_eq!(answer.status, 200);
    /// # Ok::<(), idhost_connector_sdk::ConnectorError>(())
    /// ```
    pub async fn send_authorized<F>(&self, build: F) -> Result<HttpResponse, ConnectorError>
    where
        F: Fn() -> RequestBuilder,
    {
        let token = self.token().await?;
        let response = build().bearer(&token).send().await?;
        if response.status != 401 || !self.invalidate(&token).await {
            return Ok(response);
        }
        tracing::debug!(
            request = %response.request_line,
            "the upstream refused the access token; fetching a new one and retrying once"
        );
        let token = self.token().await?;
        build().bearer(&token).send().await
    }

    async fn fetch(&self) -> Result<Cached, ConnectorError> {
        let mut source = self.source.lock().await;
        let answer = match &*source {
            TokenSource::Static(token) => {
                return Ok(Cached {
                    token: token.clone(),
                    expires_at: None,
                });
            }
            TokenSource::ClientCredentials {
                style: TokenRequestStyle::Json,
                ..
            }
            | TokenSource::RefreshToken {
                style: TokenRequestStyle::Json,
                ..
            } => self.fetch_json(&source).await?,
            _ => self.fetch_oauth2(&source).await?,
        };
        if let (Some(new_refresh), TokenSource::RefreshToken { refresh_token, .. }) =
            (answer.refresh_token, &mut *source)
            && new_refresh != refresh_token.expose_secret()
        {
            *refresh_token = SecretString::from(new_refresh);
            if let Some(hook) = &self.on_rotation {
                hook(refresh_token);
            }
        }
        Ok(Cached {
            token: SecretString::from(answer.access_token),
            // An `expires_in` too large for an `Instant` (found by fuzzing: the addition
            // panicked) means the token does not expire in any time that matters.
            expires_at: answer
                .expires_in
                .and_then(|secs| Instant::now().checked_add(Duration::from_secs(secs))),
        })
    }

    /// The standard exchanges (RFC 6749 §4.4 client credentials, §6 refresh; RFC 7523 §2.2
    /// client assertions) through the `oauth2` crate, over the host's HTTP.
    async fn fetch_oauth2(&self, source: &TokenSource) -> Result<TokenAnswer, ConnectorError> {
        use oauth2::TokenResponse as _;
        let client_http = crate::oauth_http::OAuthHttp::new(self.http.clone());
        let (token_url, client_id, secret, style) = match source {
            TokenSource::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                style,
                ..
            } => (token_url, client_id, Some(client_secret), *style),
            TokenSource::ClientAssertion {
                token_url,
                client_id,
                ..
            } => (token_url, client_id, None, TokenRequestStyle::Form),
            TokenSource::RefreshToken {
                token_url,
                client_id,
                client_secret,
                style,
                ..
            } => (token_url, client_id, client_secret.as_ref(), *style),
            TokenSource::Static(_) => {
                return Err(ConnectorError::internal("a static token is never fetched"));
            }
        };
        let client = basic_client(token_url, client_id, secret, style)?;
        let refused = |e| crate::oauth_http::token_request_error(&client_http, token_url, e);
        let answer = match source {
            TokenSource::ClientCredentials { scope, .. } => {
                let mut request = client.exchange_client_credentials();
                for s in scope.iter().flat_map(|s| s.split_whitespace()) {
                    request = request.add_scope(oauth2::Scope::new(s.to_owned()));
                }
                request.request_async(&client_http).await.map_err(refused)?
            }
            TokenSource::ClientAssertion { scope, signer, .. } => {
                // A fresh assertion per request: its `jti` is never reused.
                let assertion = signer.sign(token_url)?;
                let mut request = client
                    .exchange_client_credentials()
                    .add_extra_param("client_assertion_type", JWT_BEARER_ASSERTION)
                    .add_extra_param("client_assertion", assertion.expose_secret().to_owned());
                for s in scope.iter().flat_map(|s| s.split_whitespace()) {
                    request = request.add_scope(oauth2::Scope::new(s.to_owned()));
                }
                request.request_async(&client_http).await.map_err(refused)?
            }
            TokenSource::RefreshToken { refresh_token, .. } => {
                let refresh = oauth2::RefreshToken::new(refresh_token.expose_secret().to_owned());
                let mut request = client.exchange_refresh_token(&refresh);
                for s in self.refresh_scope.iter().flat_map(|s| s.split_whitespace()) {
                    request = request.add_scope(oauth2::Scope::new(s.to_owned()));
                }
                request.request_async(&client_http).await.map_err(refused)?
            }
            TokenSource::Static(_) => {
                return Err(ConnectorError::internal("a static token is never fetched"));
            }
        };
        Ok(TokenAnswer {
            access_token: answer.access_token().secret().clone(),
            expires_in: answer.expires_in().map(|d| d.as_secs()),
            refresh_token: answer.refresh_token().map(|r| r.secret().clone()),
        })
    }

    /// A token request with a JSON body: not RFC 6749 (§4.4.2 and §6 are form bodies), but
    /// what Ironclad documents — its OAuth 2.0 OpenAPI's `TokenRequestBody` is
    /// `application/json` only, for every grant
    /// (<https://developer.ironcladapp.com/reference/client-credentials-grant>: "parameters in
    /// JSON format"). The `oauth2` crate speaks form bodies only, so this one is hand-written.
    async fn fetch_json(&self, source: &TokenSource) -> Result<TokenAnswer, ConnectorError> {
        let (token_url, client_id, client_secret, mut fields) = match source {
            TokenSource::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                ..
            } => {
                let mut fields = vec![("grant_type", "client_credentials".to_owned())];
                if let Some(scope) = scope {
                    fields.push(("scope", scope.clone()));
                }
                (token_url, client_id, Some(client_secret), fields)
            }
            TokenSource::RefreshToken {
                token_url,
                client_id,
                client_secret,
                refresh_token,
                ..
            } => (
                token_url,
                client_id,
                client_secret.as_ref(),
                vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", refresh_token.expose_secret().to_owned()),
                ],
            ),
            TokenSource::Static(_) | TokenSource::ClientAssertion { .. } => {
                return Err(ConnectorError::internal(
                    "only client credentials and refresh tokens have a JSON token request",
                ));
            }
        };
        fields.push(("client_id", client_id.clone()));
        if let Some(secret) = client_secret {
            fields.push(("client_secret", secret.expose_secret().to_owned()));
        }
        json_token_request(&self.http, token_url, fields).await
    }
}

/// An `oauth2` client of `token_url` for `client_id`: the secret in the form body (`Form`,
/// RFC 6749 §2.3.1's alternative) or as HTTP Basic (`FormBasicAuth`); without a secret (a
/// public client, a client assertion) only `client_id` is sent.
pub(crate) fn basic_client(
    token_url: &str,
    client_id: &str,
    secret: Option<&SecretString>,
    style: TokenRequestStyle,
) -> Result<
    oauth2::basic::BasicClient<
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    ConnectorError,
> {
    let url = oauth2::TokenUrl::new(token_url.to_owned()).map_err(|e| {
        ConnectorError::invalid_input(format!("`{token_url}` is not a token URL: {e}"))
    })?;
    let auth = match (style, secret) {
        (TokenRequestStyle::FormBasicAuth, Some(_)) => oauth2::AuthType::BasicAuth,
        _ => oauth2::AuthType::RequestBody,
    };
    let mut client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(client_id.to_owned()))
        .set_token_uri(url)
        .set_auth_type(auth);
    if let Some(secret) = secret {
        client =
            client.set_client_secret(oauth2::ClientSecret::new(secret.expose_secret().to_owned()));
    }
    Ok(client)
}

/// POSTs `fields` as a JSON object to `token_url` (see [`TokenCache::fetch_json`] for why).
pub(crate) async fn json_token_request(
    http: &Http,
    token_url: &str,
    fields: Vec<(&str, String)>,
) -> Result<TokenAnswer, ConnectorError> {
    let body: serde_json::Map<String, serde_json::Value> = fields
        .into_iter()
        .map(|(k, v)| (k.to_owned(), serde_json::Value::String(v)))
        .collect();
    let response = http
        .post(token_url)
        .read_only()
        .json(&body)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| e.context(format!("requesting an access token from {token_url}")))?;
    if !response.is_success() {
        return Err(token_error(&response));
    }
    response.json()
}

/// What a refused token request is: a 400/401/403 from a token endpoint means the credentials
/// (or the grant) were refused; anything else keeps the kind its status implies.
pub(crate) fn token_error_kind(status: u16) -> ErrorKind {
    match status {
        400 | 401 | 403 => ErrorKind::Unauthenticated,
        other => ErrorKind::from_status(other).unwrap_or(ErrorKind::Internal),
    }
}

/// An OAuth error code with its description, as every token refusal prints it
/// (RFC 6749 §5.2: `error`, optional `error_description`).
pub(crate) fn refusal_detail(code: &dyn std::fmt::Display, description: Option<&str>) -> String {
    match description {
        Some(description) => format!("{code}: {description}"),
        None => code.to_string(),
    }
}

/// An OAuth error answer (`{"error": "invalid_client", ...}`) as a connector error that names
/// the endpoint, the status and the OAuth error code, never the credentials.
pub(crate) fn token_error(response: &HttpResponse) -> ConnectorError {
    let kind = token_error_kind(response.status);
    let detail = match response.json::<TokenErrorAnswer>() {
        Ok(e) => refusal_detail(&e.error, e.error_description.as_deref()),
        // Not an OAuth error answer: summarised, never echoed (an endpoint that echoes the
        // request would print the client secret, in encodings no redactor can guess).
        Err(_) => format!(
            "no OAuth error code in the answer ({} bytes{})",
            response.body.len(),
            response
                .header("content-type")
                .map(|t| format!(" of {t}"))
                .unwrap_or_default()
        ),
    };
    response.to_error(kind, &format!("the token request was refused ({detail})"))
}
