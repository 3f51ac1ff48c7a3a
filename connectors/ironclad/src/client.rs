//! The SCIM client: base URL, bearer token (the SDK's `TokenCache`: cached, refreshed before
//! expiry and once after a 401), the acting-user header, the documented rate budgets, the scopes
//! asked for, and error parsing.
//!
//! Requests go through the host (`ctx.http()`), which paces them to the budgets, retries 429/5xx
//! under its one retry policy and intercepts writes under `--dry-run`. Every request names
//! Ironclad's rate window (one minute), so a 429 without `Retry-After` is waited out until the
//! window can have reset rather than given up after a few seconds.

use std::time::Duration;

use idhost_connector_sdk::http::url_with_segments;
use idhost_connector_sdk::login::AuthorizationCodeLogin;
use idhost_connector_sdk::prelude::*;
use serde_json::Value;
use url::Url;

use crate::config::{Actor, Auth, Validated};
use crate::error::upstream_error;
use crate::schemas::SchemaCache;
use crate::scopes::Scopes;

/// developer.ironcladapp.com/reference/clm-api-rate-limits: "These API limits are set on a per
/// account basis" and stated per minute.
pub(crate) const RATE_WINDOW: Duration = Duration::from_secs(60);

/// The per-account limits Ironclad documents (developer.ironcladapp.com/reference/
/// clm-api-rate-limits): "GET/PUT/POST scim/v2/users 600 requests per minute", "PATCH/DELETE
/// scim/v2/users 50 requests per minute", "All scim/v2/groups 600 requests per minute", "All
/// other APIs 800 requests per minute". Counted per window: the page does not say when a minute
/// starts, so never more than the allowance in any minute.
#[derive(Debug)]
pub(crate) struct Budgets {
    /// GET, PUT and POST on `/Users`.
    pub(crate) users_read: Budget,
    /// PATCH and DELETE on `/Users`.
    pub(crate) users_write: Budget,
    /// Everything on `/Groups`.
    pub(crate) groups: Budget,
    /// Everything else (`/Schemas`).
    pub(crate) other: Budget,
}

impl Budgets {
    fn documented() -> Self {
        Self {
            users_read: Budget::per_window("ironclad-users-get-put-post", 600, RATE_WINDOW),
            users_write: Budget::per_window("ironclad-users-patch-delete", 50, RATE_WINDOW),
            groups: Budget::per_window("ironclad-groups", 600, RATE_WINDOW),
            other: Budget::per_window("ironclad-other", 800, RATE_WINDOW),
        }
    }
}

/// One SCIM request, described so it can be sent again after a token refresh.
#[derive(Debug)]
pub(crate) struct Call<'a> {
    pub(crate) method: &'static str,
    /// Path segments under the SCIM base, e.g. `["Groups", id]` (each percent-encoded as one
    /// segment; `.`/`..` refused).
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
    pub(crate) scopes: Scopes,
    pub(crate) schemas: SchemaCache,
    pub(crate) budgets: Budgets,
    pub(crate) page_size: u32,
    /// SCIM list pages fetched at once (`pages_at_once`).
    pub(crate) pages_at_once: u32,
    /// The pages a window read beyond the one handed to the host (see `sync`).
    pub(crate) read_ahead: crate::sync::ReadAhead,
    /// `auth = "authorization_code"`: what `idhost login` runs, and whether it has to.
    pub(crate) login: Option<Login>,
}

/// The login of an `auth = "authorization_code"` source.
pub(crate) struct Login {
    pub(crate) flow: AuthorizationCodeLogin,
    /// The vault holds no refresh token for the source.
    pub(crate) missing: bool,
    pub(crate) source: String,
}

impl Client {
    pub(crate) fn new(ctx: &Context, settings: Validated) -> Result<Self, ConnectorError> {
        let http = ctx.http().clone();
        let scim_base = Url::parse(&settings.scim_base).map_err(|err| {
            ConnectorError::from(SettingsError::invalid(
                "base_url",
                format!(
                    "base_url gives an invalid SCIM URL `{}`: {err}",
                    settings.scim_base
                ),
            ))
        })?;
        let scopes = Scopes::new(&settings.scopes, settings.scopes_apply());
        // client-credentials-grant: "parameters in JSON format" (Basic auth is also accepted).
        let style = TokenRequestStyle::Json;
        let mut login = None;
        let mut rotates = false;
        let source = match settings.auth {
            Auth::AuthorizationCode {
                client_id,
                client_secret,
            } => {
                let refresh = ctx.vault_refresh_token();
                rotates = true;
                login = Some(Login {
                    flow: AuthorizationCodeLogin {
                        authorize_url: settings.authorize_url.clone(),
                        token_url: settings.token_url.clone(),
                        client_id: client_id.clone(),
                        client_secret: Some(client_secret.clone()),
                        scopes: settings.scopes.clone(),
                        json_token_request: true,
                    },
                    missing: refresh.is_none(),
                    source: ctx.source().source.clone(),
                });
                TokenSource::RefreshToken {
                    token_url: settings.token_url,
                    client_id,
                    client_secret: Some(client_secret),
                    refresh_token: refresh.unwrap_or_else(|| SecretString::from(String::new())),
                    style,
                }
            }
            Auth::Static(token) => TokenSource::Static(token),
            Auth::ClientCredentials {
                client_id,
                client_secret,
            } => TokenSource::ClientCredentials {
                token_url: settings.token_url,
                client_id,
                client_secret,
                scope: Some(settings.scopes.join(" ")),
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
        let mut tokens = TokenCache::new(http.clone(), source);
        if rotates {
            // A rotated refresh token goes to the vault at once: Ironclad may have retired the
            // old one, so the next sync must start from the new one.
            let ctx = ctx.clone();
            tokens = tokens.on_rotation(move |token| ctx.store_refresh_token(token));
        }
        Ok(Self {
            tokens,
            login,
            http,
            scim_base,
            actor: settings.actor,
            scopes,
            schemas: SchemaCache::default(),
            budgets: Budgets::documented(),
            page_size: settings.page_size,
            pages_at_once: settings.pages_at_once,
            read_ahead: crate::sync::ReadAhead::default(),
        })
    }

    /// Sends `call`; after a 401 fetches a new token and sends it once more (the SDK's
    /// authorized request). Any status comes back as `Ok`, except a 401 that a new token cannot
    /// fix.
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<HttpResponse, ConnectorError> {
        if let Some(login) = self.login.as_ref().filter(|l| l.missing) {
            return Err(ConnectorError::unauthenticated(format!(
                "source `{}` signs in with `auth = \"authorization_code\"` and the vault holds \
                 no refresh token for it: run `idhost login -c FILE --source {}` first",
                login.source, login.source
            )));
        }
        let url = url_with_segments(&self.scim_base, &call.segments)?;
        let pairs: Vec<(&str, &str)> = call.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = self
            .tokens
            .send_authorized(|| {
                let mut request = self
                    .http
                    .request(call.method, url.as_str())
                    .header("accept", "application/scim+json, application/json")
                    .budget(call.budget)
                    .rate_window(RATE_WINDOW);
                if !pairs.is_empty() {
                    request = request.query(&pairs);
                }
                if let Some(actor) = &self.actor {
                    request = request.header(actor.header, actor.value.clone());
                }
                if let Some(body) = &call.body {
                    request = request.json(body);
                }
                request
            })
            .await?;
        if response.status != 401 {
            return Ok(response);
        }
        Err(if self.tokens.renewable().await {
            upstream_error(&response).context("Ironclad refused a freshly issued token")
        } else {
            upstream_error(&response)
                .context("Ironclad refused the configured bearer_token (it cannot be renewed)")
        })
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
