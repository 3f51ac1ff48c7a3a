//! `POST /oauth/token` and the tokens it issues.
//!
//! Sources: developer.ironcladapp.com/reference/client-credentials-grant and the OAuth 2.0
//! OpenAPI (`ironclad-oauth-20-api-openapi.yml`, operation `oauth-token`).

use std::collections::HashMap;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::Simulator;

/// The SCIM scopes, as the SCIM OpenAPI names them per operation ("OAuth Scope required").
pub(crate) const SCOPES: [&str; 9] = [
    "scim.users.readUsers",
    "scim.users.createUsers",
    "scim.users.updateUsers",
    "scim.users.deleteUsers",
    "scim.groups.readGroups",
    "scim.groups.createGroups",
    "scim.groups.updateGroups",
    "scim.groups.deleteGroups",
    "scim.schemas.readSchemas",
];

/// One scope; the discriminant is its index in [`SCOPES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    ReadUsers = 0,
    CreateUsers = 1,
    UpdateUsers = 2,
    DeleteUsers = 3,
    ReadGroups = 4,
    CreateGroups = 5,
    UpdateGroups = 6,
    DeleteGroups = 7,
    ReadSchemas = 8,
}

/// A set of scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScopeSet(u16);

impl ScopeSet {
    /// Every SCIM scope: what the registered client may ask for, and what the legacy token has.
    pub(crate) const ALL: ScopeSet = ScopeSet((1 << SCOPES.len()) - 1);

    pub(crate) fn has(self, scope: Scope) -> bool {
        self.0 & (1 << scope as u16) != 0
    }

    fn is_subset_of(self, other: ScopeSet) -> bool {
        self.0 & !other.0 == 0
    }

    /// The set named by `names`, ignoring names that are not SCIM scopes.
    pub(crate) fn of(names: &[String]) -> ScopeSet {
        ScopeSet(
            SCOPES
                .iter()
                .enumerate()
                .filter(|(_, s)| names.iter().any(|n| n == *s))
                .fold(0, |bits, (i, _)| bits | (1 << i)),
        )
    }

    /// Parses a space-separated scope string; `Err` names the first unknown scope.
    fn parse(raw: &str) -> Result<ScopeSet, String> {
        let mut bits = 0u16;
        for name in raw.split_whitespace() {
            let i = SCOPES
                .iter()
                .position(|s| *s == name)
                .ok_or_else(|| name.to_owned())?;
            bits |= 1 << i;
        }
        Ok(ScopeSet(bits))
    }

    fn render(self) -> String {
        SCOPES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, s)| *s)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenState {
    Live,
    Expired,
    Revoked,
}

#[derive(Debug)]
struct AccessToken {
    scopes: ScopeSet,
    expires_at: Instant,
    state: TokenState,
}

/// Issued tokens and the state of the client's credentials.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    access: HashMap<String, AccessToken>,
    /// Refresh token → scopes it may grant.
    refresh: HashMap<String, ScopeSet>,
    /// Credentials refused and the legacy token dead (`revoke_tokens`) until restored.
    revoked: bool,
    /// Put a `refresh_token` in client-credentials answers (not documented; off by default).
    pub(crate) issue_refresh_tokens: bool,
}

/// Why a bearer token was refused; the texts are the OAuth OpenAPI's 401 messages.
pub(crate) const INVALID_TOKEN: &str = "invalid authentication token";
const REVOKED_TOKEN: &str = "token has been revoked";
const EXPIRED_TOKEN: &str = "token has expired";

impl Tokens {
    /// The scopes of a bearer token, or why it is refused.
    pub(crate) fn authenticate(&self, token: &str, legacy: &str) -> Result<ScopeSet, &'static str> {
        if !legacy.is_empty() && token == legacy {
            return if self.revoked {
                Err(REVOKED_TOKEN)
            } else {
                Ok(ScopeSet::ALL)
            };
        }
        let access = self.access.get(token).ok_or(INVALID_TOKEN)?;
        match access.state {
            TokenState::Revoked => Err(REVOKED_TOKEN),
            TokenState::Expired => Err(EXPIRED_TOKEN),
            TokenState::Live if Instant::now() >= access.expires_at => Err(EXPIRED_TOKEN),
            TokenState::Live => Ok(access.scopes),
        }
    }

    pub(crate) fn expire_all(&mut self) {
        for token in self.access.values_mut() {
            if token.state == TokenState::Live {
                token.state = TokenState::Expired;
            }
        }
    }

    pub(crate) fn revoke_all(&mut self) {
        for token in self.access.values_mut() {
            token.state = TokenState::Revoked;
        }
        self.refresh.clear();
        self.revoked = true;
    }

    pub(crate) fn restore(&mut self) {
        self.revoked = false;
    }

    fn issue(&mut self, scopes: ScopeSet, ttl: std::time::Duration) -> String {
        if self.access.len() > 10_000 {
            let now = Instant::now();
            self.access
                .retain(|_, t| t.state == TokenState::Live && t.expires_at > now);
        }
        let token = uuid::Uuid::new_v4().simple().to_string();
        self.access.insert(
            token.clone(),
            AccessToken {
                scopes,
                expires_at: Instant::now() + ttl,
                state: TokenState::Live,
            },
        );
        token
    }
}

/// An OAuth error answer (`{"error", "error_description"}`, as the OAuth OpenAPI shows).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    no_store((status, axum::Json(body)).into_response())
}

// RFC 6749 §5.1: token answers carry "Cache-Control: no-store" and "Pragma: no-cache".
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// Reads the token request parameters.
// client-credentials-grant: the request body holds "several parameters in JSON format". OAuth
// client libraries send RFC 6749's form encoding instead, so a form body is accepted too
// (leniency of the simulator, not a documented Ironclad behaviour).
fn parameters(headers: &HeaderMap, body: &[u8]) -> HashMap<String, String> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form && let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) {
        return object
            .into_iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k, s)),
                Value::Null => None,
                other => Some((k, other.to_string())),
            })
            .collect();
    }
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Client id and secret from the body, else from `Authorization: Basic`.
// client-credentials-grant: "The client ID and secret can be optionally included in the
// Authorization header prepended with the “Basic” keyword, a space, and then the client ID and
// secret base64 encoded with a colon separator."
fn client_credentials(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Option<(String, String)> {
    if let (Some(id), Some(secret)) = (params.get("client_id"), params.get("client_secret")) {
        return Some((id.clone(), secret.clone()));
    }
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// `POST /oauth/token`.
pub(crate) async fn token(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = sim.config();
    let params = parameters(&headers, &body);
    let Some(grant) = params.get("grant_type").map(String::as_str) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing grant_type",
        );
    };
    match grant {
        "client_credentials" | "refresh_token" => {}
        // OAuth OpenAPI 403: "If the client is not authorized to use a particular grant, the
        // client will receive an 'unauthorized_client' response." This client is registered for
        // the client-credentials grant; the authorization-code flow (/authorize) is not simulated.
        "authorization_code" => {
            return oauth_error(
                StatusCode::FORBIDDEN,
                "unauthorized_client",
                "client not authorized to use this oauth grant type",
            );
        }
        // OAuth OpenAPI 400: "If the request is missing required parameters or has invalid
        // parameters, the client will receive either an 'invalid_request' or 'invalid_scope'
        // response." Ironclad documents no `unsupported_grant_type` (RFC 6749 §5.2), so an
        // unknown grant is invalid_request.
        other => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("Invalid or missing parameters: unsupported grant_type {other}"),
            );
        }
    }
    // OAuth OpenAPI 401: a client that does not match answers 'invalid_client' ("invalid client").
    let authenticated = client_credentials(&headers, &params)
        .is_some_and(|(id, secret)| id == config.client_id && secret == config.client_secret);
    let mut tokens = sim.tokens();
    if !authenticated || tokens.revoked {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "invalid client");
    }
    let registered = ScopeSet::of(&config.registered_scopes);
    let requested = match params
        .get("scope")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => None,
        // OAuth OpenAPI `scope`: "The scopes requested must be equal to or a subset of the client
        // application's registered scopes." RFC 6749 §5.2: a scope that is "invalid, unknown,
        // malformed, or exceeds the scope granted" is `invalid_scope`.
        Some(raw) => match ScopeSet::parse(raw) {
            Ok(set) if set.is_subset_of(registered) => Some(set),
            Ok(set) => {
                let unregistered = ScopeSet(set.0 & !registered.0).render();
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("scope not registered for this client: {unregistered}"),
                );
            }
            Err(unknown) => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_scope",
                    &format!("invalid scope: {unknown}"),
                );
            }
        },
    };
    let (scopes, refresh) = if grant == "refresh_token" {
        let Some(refresh) = params.get("refresh_token") else {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "missing refresh token",
            );
        };
        // OAuth OpenAPI 403: "an invalid refresh token ... 'invalid_grant'".
        let Some(&granted) = tokens.refresh.get(refresh) else {
            return oauth_error(
                StatusCode::FORBIDDEN,
                "invalid_grant",
                "invalid refresh token",
            );
        };
        // Refresh `scope`: "equal to or a subset of ... the previously granted scopes. When
        // omitted, the previously granted scopes are used."
        let scopes = requested.unwrap_or(granted);
        if !scopes.is_subset_of(granted) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "scope exceeds the granted scopes",
            );
        }
        (scopes, Some(refresh.clone()))
    } else {
        // Without `scope`, the token carries what the application is registered for.
        let scopes = requested.unwrap_or(registered);
        let refresh = tokens.issue_refresh_tokens.then(|| {
            let r = uuid::Uuid::new_v4().simple().to_string();
            tokens.refresh.insert(r.clone(), scopes);
            r
        });
        (scopes, refresh)
    };
    let access_token = tokens.issue(scopes, config.token_ttl);
    drop(tokens);
    // ClientCredentialsGrantTokenResponse: token_type, access_token, expires_in required, and it
    // "Will include the token scope if scope was requested". It documents no refresh_token; the
    // refresh grant's answer (AuthorizationCodeGrantTokenResponse) requires one.
    let mut body = json!({
        "token_type": "Bearer",
        "access_token": access_token,
        "expires_in": config.token_ttl.as_secs(),
    });
    if requested.is_some() {
        body["scope"] = Value::from(scopes.render());
    }
    if let Some(refresh) = refresh {
        body["refresh_token"] = Value::from(refresh);
    }
    no_store((StatusCode::OK, axum::Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_strings_round_trip_and_unknown_scopes_are_named() {
        let set = ScopeSet::parse("scim.users.readUsers  scim.groups.readGroups").unwrap();
        assert!(
            set.has(Scope::ReadUsers) && set.has(Scope::ReadGroups) && !set.has(Scope::CreateUsers)
        );
        assert_eq!(set.render(), "scim.users.readUsers scim.groups.readGroups");
        assert_eq!(
            ScopeSet::parse("public.records.readRecords").unwrap_err(),
            "public.records.readRecords"
        );
        assert!(set.is_subset_of(ScopeSet::ALL) && !ScopeSet::ALL.is_subset_of(set));
    }
}
