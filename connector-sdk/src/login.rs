//! `idhost login`: the interactive OAuth flows that end with a refresh token in the host's vault.
//!
//! A connector says which flow its source uses and where the endpoints are
//! ([`crate::Connector::login_flow`], a [`LoginFlow`]); the host runs it — it owns the terminal
//! and the loopback redirect listener — with the helpers here, which do the standard parts with
//! the `oauth2` crate over the host's HTTP service ([`crate::oauth_http::OAuthHttp`]):
//!
//! - the authorization code grant with PKCE (RFC 6749 §4.1, RFC 7636 `S256`), on a loopback
//!   redirect `http://127.0.0.1:<port>/callback` (RFC 8252 §7.3), `state` checked;
//! - the device authorization grant (RFC 8628): the code and URL to show, then polling at the
//!   answered interval, `authorization_pending` waited out, `slow_down` adding 5 s, and
//!   `expired_token` / `access_denied` ending it.

use std::future::Future;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::ConnectorError;
use crate::http::Http;
use crate::oauth::{TokenRequestStyle, basic_client, json_token_request};
use crate::oauth_http::{OAuthHttp, token_request_error};

/// Which interactive flow a source signs in with, and its endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "flow", rename_all = "snake_case")]
pub enum LoginFlow {
    /// Authorization code + PKCE in a browser, redirected to a loopback listener.
    AuthorizationCode(AuthorizationCodeLogin),
    /// The device authorization grant: a code typed in on another device.
    DeviceCode(DeviceCodeLogin),
}

/// The endpoints and client of an authorization-code login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthorizationCodeLogin {
    /// The authorization endpoint the browser opens.
    pub authorize_url: String,
    /// The token endpoint the code is exchanged at.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Client secret, for a confidential client.
    #[serde(default, with = "crate::secret_serde")]
    pub client_secret: Option<SecretString>,
    /// Scopes asked for.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The token request's body is JSON rather than RFC 6749's form (an upstream that departs
    /// from the RFC, as Ironclad does).
    #[serde(default)]
    pub json_token_request: bool,
}

/// The endpoints and client of a device-code login.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeviceCodeLogin {
    /// The device authorization endpoint (RFC 8628 §3.1).
    pub device_authorization_url: String,
    /// The token endpoint polled (RFC 8628 §3.4).
    pub token_url: String,
    /// Client id (a public client: no secret).
    pub client_id: String,
    /// Scopes asked for (`offline_access` for a refresh token, where the upstream wants it).
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// What a login obtained.
pub struct LoginTokens {
    /// The refresh token: what goes to the vault.
    pub refresh_token: SecretString,
}

impl std::fmt::Debug for LoginTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginTokens").finish_non_exhaustive()
    }
}

fn no_refresh_token(token_url: &str) -> ConnectorError {
    ConnectorError::unauthenticated(format!(
        "{token_url} issued no refresh token, so later syncs could not sign in; check that the \
         app registration allows refresh tokens (for Entra: the `offline_access` scope)"
    ))
}

/// An authorization request on its way: the URL to open, and what the callback must match.
pub struct PendingAuthorization {
    /// The URL the user opens in a browser.
    pub url: String,
    redirect_uri: String,
    state: String,
    verifier: String,
}

impl std::fmt::Debug for PendingAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuthorization")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl AuthorizationCodeLogin {
    /// A fresh authorization request for `redirect_uri`: a random `state` and a PKCE `S256`
    /// challenge (RFC 7636 §4.2), made by the `oauth2` crate.
    pub fn start(&self, redirect_uri: &str) -> Result<PendingAuthorization, ConnectorError> {
        let auth_url = oauth2::AuthUrl::new(self.authorize_url.clone()).map_err(|e| {
            ConnectorError::invalid_input(format!(
                "`{}` is not an authorization URL: {e}",
                self.authorize_url
            ))
        })?;
        let redirect = oauth2::RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| {
            ConnectorError::internal(format!("`{redirect_uri}` is not a redirect URL: {e}"))
        })?;
        let client = basic_client(
            &self.token_url,
            &self.client_id,
            self.client_secret.as_ref(),
            TokenRequestStyle::Form,
        )?
        .set_auth_uri(auth_url)
        .set_redirect_uri(redirect);
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(oauth2::CsrfToken::new_random)
            .set_pkce_challenge(challenge);
        for scope in &self.scopes {
            request = request.add_scope(oauth2::Scope::new(scope.clone()));
        }
        let (url, state) = request.url();
        Ok(PendingAuthorization {
            url: url.to_string(),
            redirect_uri: redirect_uri.to_owned(),
            state: state.secret().clone(),
            verifier: verifier.secret().clone(),
        })
    }
}

impl PendingAuthorization {
    /// Whether a callback's `state` is the one this request sent (RFC 6749 §10.12).
    pub fn state_matches(&self, state: &str) -> bool {
        // Compared in full; a length mismatch or any differing byte refuses.
        self.state.len() == state.len()
            && self
                .state
                .bytes()
                .zip(state.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Exchanges the callback's `code` (with the PKCE verifier) for tokens.
    pub async fn exchange(
        self,
        http: &Http,
        flow: &AuthorizationCodeLogin,
        code: &str,
    ) -> Result<LoginTokens, ConnectorError> {
        if flow.json_token_request {
            // RFC 6749 §4.1.3's fields, as JSON (see `TokenRequestStyle::Json`).
            let mut fields = vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code.to_owned()),
                ("redirect_uri", self.redirect_uri.clone()),
                ("code_verifier", self.verifier.clone()),
                ("client_id", flow.client_id.clone()),
            ];
            if let Some(secret) = &flow.client_secret {
                fields.push(("client_secret", secret.expose_secret().to_owned()));
            }
            let answer = json_token_request(http, &flow.token_url, fields).await?;
            return answer
                .refresh_token
                .map(|r| LoginTokens {
                    refresh_token: SecretString::from(r),
                })
                .ok_or_else(|| no_refresh_token(&flow.token_url));
        }
        use oauth2::TokenResponse as _;
        let redirect = oauth2::RedirectUrl::new(self.redirect_uri.clone()).map_err(|e| {
            ConnectorError::internal(format!(
                "`{}` is not a redirect URL: {e}",
                self.redirect_uri
            ))
        })?;
        let client = basic_client(
            &flow.token_url,
            &flow.client_id,
            flow.client_secret.as_ref(),
            TokenRequestStyle::Form,
        )?
        .set_redirect_uri(redirect);
        let client_http = OAuthHttp::new(http.clone());
        let answer = client
            .exchange_code(oauth2::AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(oauth2::PkceCodeVerifier::new(self.verifier.clone()))
            .request_async(&client_http)
            .await
            .map_err(|e| token_request_error(&client_http, &flow.token_url, e))?;
        answer
            .refresh_token()
            .map(|r| LoginTokens {
                refresh_token: SecretString::from(r.secret().clone()),
            })
            .ok_or_else(|| no_refresh_token(&flow.token_url))
    }
}

/// A device authorization in progress: what to show the user, and the polling.
pub struct DeviceAuthorization {
    details: oauth2::StandardDeviceAuthorizationResponse,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("verification_uri", &self.verification_uri())
            .finish_non_exhaustive()
    }
}

impl DeviceAuthorization {
    /// The code the user types in.
    pub fn user_code(&self) -> &str {
        self.details.user_code().secret()
    }
    /// Where the user types it.
    pub fn verification_uri(&self) -> &str {
        self.details.verification_uri().as_str()
    }
    /// How long the code is good for.
    pub fn expires_in(&self) -> Duration {
        self.details.expires_in()
    }
    /// The polling interval the server asked for.
    pub fn interval(&self) -> Duration {
        self.details.interval()
    }

    /// Polls the token endpoint until the user approved (tokens), denied, or the code expired
    /// (errors naming which), waiting with `sleep` between polls.
    pub async fn wait<S, F>(
        &self,
        http: &Http,
        flow: &DeviceCodeLogin,
        sleep: S,
    ) -> Result<LoginTokens, ConnectorError>
    where
        S: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        use oauth2::TokenResponse as _;
        let client = device_client(flow)?;
        let client_http = OAuthHttp::new(http.clone());
        let answer = client
            .exchange_device_access_token(&self.details)
            .request_async(&client_http, sleep, None)
            .await
            .map_err(|e| match &e {
                oauth2::RequestTokenError::ServerResponse(r) => {
                    let code = r.error().to_string();
                    let what = match code.as_str() {
                        "expired_token" => "the device code expired before the sign-in was approved; run `idhost login` again",
                        // RFC 8628 §3.5 `access_denied`; Entra answers `authorization_declined`
                        // (v2-oauth2-device-code.md, "Expected errors").
                        "access_denied" | "authorization_declined" => "the sign-in was declined",
                        _ => "the sign-in failed",
                    };
                    token_request_error(&client_http, &flow.token_url, e).context(what)
                }
                _ => token_request_error(&client_http, &flow.token_url, e),
            })?;
        answer
            .refresh_token()
            .map(|r| LoginTokens {
                refresh_token: SecretString::from(r.secret().clone()),
            })
            .ok_or_else(|| no_refresh_token(&flow.token_url))
    }
}

fn device_client(
    flow: &DeviceCodeLogin,
) -> Result<
    oauth2::basic::BasicClient<
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointNotSet,
        oauth2::EndpointSet,
    >,
    ConnectorError,
> {
    let url = oauth2::DeviceAuthorizationUrl::new(flow.device_authorization_url.clone()).map_err(
        |e| {
            ConnectorError::invalid_input(format!(
                "`{}` is not a device authorization URL: {e}",
                flow.device_authorization_url
            ))
        },
    )?;
    Ok(basic_client(
        &flow.token_url,
        &flow.client_id,
        None,
        TokenRequestStyle::Form,
    )?
    .set_device_authorization_url(url))
}

impl DeviceCodeLogin {
    /// Asks for a device code (RFC 8628 §3.1).
    pub async fn start(&self, http: &Http) -> Result<DeviceAuthorization, ConnectorError> {
        let client = device_client(self)?;
        let client_http = OAuthHttp::new(http.clone());
        let mut request = client.exchange_device_code();
        for scope in &self.scopes {
            request = request.add_scope(oauth2::Scope::new(scope.clone()));
        }
        let details = request
            .request_async(&client_http)
            .await
            .map_err(|e| token_request_error(&client_http, &self.device_authorization_url, e))?;
        Ok(DeviceAuthorization { details })
    }
}
