//! OAuth 2.0 access tokens for connectors: client credentials or refresh token, fetched through
//! the host's HTTP, cached, refreshed before expiry and once after a 401.
//!
//! Why not the `oauth2` crate: it brings its own HTTP client into the plugin, and it only speaks
//! form bodies, while Ironclad documents a JSON token request. The token exchange itself is one
//! POST (RFC 6749 §4.4 and §6); what matters is the caching, which lives here once for every
//! connector.

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

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
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

/// A cached access token. Share one per connector instance.
pub struct TokenCache {
    http: Http,
    source: Mutex<TokenSource>,
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
            cached: Mutex::new(None),
            skew: Duration::from_secs(60),
        }
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
        let (token_url, style, client_id, client_secret, mut fields) = match &*source {
            TokenSource::Static(token) => {
                return Ok(Cached {
                    token: token.clone(),
                    expires_at: None,
                });
            }
            TokenSource::ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scope,
                style,
            } => {
                let mut fields = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
                if let Some(scope) = scope {
                    fields.push(("scope".to_owned(), scope.clone()));
                }
                (
                    token_url.clone(),
                    *style,
                    client_id.clone(),
                    Some(client_secret.clone()),
                    fields,
                )
            }
            TokenSource::RefreshToken {
                token_url,
                client_id,
                client_secret,
                refresh_token,
                style,
            } => (
                token_url.clone(),
                *style,
                client_id.clone(),
                client_secret.clone(),
                vec![
                    ("grant_type".to_owned(), "refresh_token".to_owned()),
                    (
                        "refresh_token".to_owned(),
                        refresh_token.expose_secret().to_owned(),
                    ),
                ],
            ),
        };
        let mut request = self.http.post(&token_url).read_only();
        match style {
            TokenRequestStyle::FormBasicAuth => {
                if let Some(secret) = &client_secret {
                    request = request.basic_auth(&client_id, secret);
                }
            }
            TokenRequestStyle::Form | TokenRequestStyle::Json => {
                fields.push(("client_id".to_owned(), client_id.clone()));
                if let Some(secret) = &client_secret {
                    fields.push((
                        "client_secret".to_owned(),
                        secret.expose_secret().to_owned(),
                    ));
                }
            }
        }
        request = match style {
            TokenRequestStyle::Json => {
                let body: serde_json::Map<String, serde_json::Value> = fields
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                request.json(&body)
            }
            TokenRequestStyle::Form | TokenRequestStyle::FormBasicAuth => {
                let pairs: Vec<(&str, &str)> = fields
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                request.form(&pairs)
            }
        };
        let response = request
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| e.context(format!("requesting an access token from {token_url}")))?;
        if !response.is_success() {
            return Err(token_error(&response));
        }
        let answer: TokenAnswer = response.json()?;
        if let (Some(new_refresh), TokenSource::RefreshToken { refresh_token, .. }) =
            (answer.refresh_token, &mut *source)
        {
            *refresh_token = SecretString::from(new_refresh);
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
}

/// An OAuth error answer (`{"error": "invalid_client", ...}`) as a connector error that names
/// the endpoint, the status and the OAuth error code, never the credentials.
fn token_error(response: &HttpResponse) -> ConnectorError {
    let kind = match response.status {
        400 | 401 | 403 => ErrorKind::Unauthenticated,
        other => ErrorKind::from_status(other).unwrap_or(ErrorKind::Internal),
    };
    let detail = match response.json::<TokenErrorAnswer>() {
        Ok(e) => match e.error_description {
            Some(d) => format!("{}: {d}", e.error),
            None => e.error,
        },
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
