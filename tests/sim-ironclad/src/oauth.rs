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
    /// Issued through the authorization-code grant (or a refresh of one): a person's token,
    /// which needs no acting-user header.
    person: bool,
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
    /// Authorization codes issued by `/oauth/authorize`, not yet exchanged.
    codes: HashMap<String, IssuedCode>,
    /// Answer every refresh with a new refresh token and retire the one used (rotation).
    pub(crate) rotate_refresh_tokens: bool,
    /// Refresh tokens issued, in order (tests compare the vault's with the last one).
    pub(crate) refresh_issued: Vec<String>,
    /// Refresh tokens of the authorization-code grant (a person's).
    person_refresh: std::collections::HashSet<String>,
}

/// An authorization code and what it was issued for.
#[derive(Debug, Clone)]
struct IssuedCode {
    redirect_uri: String,
    scopes: ScopeSet,
    /// RFC 7636 `code_challenge` (S256) sent with the authorization request, if any.
    challenge: Option<String>,
    expires_at: Instant,
}

/// Why a bearer token was refused; the texts are the OAuth OpenAPI's 401 messages.
pub(crate) const INVALID_TOKEN: &str = "invalid authentication token";
const REVOKED_TOKEN: &str = "token has been revoked";
const EXPIRED_TOKEN: &str = "token has expired";

impl Tokens {
    fn new_refresh(&mut self, scopes: ScopeSet) -> String {
        let r = uuid::Uuid::new_v4().simple().to_string();
        self.refresh.insert(r.clone(), scopes);
        self.refresh_issued.push(r.clone());
        r
    }

    /// Whether `token` is a person's (authorization-code) access token: the SCIM OpenAPI asks
    /// for an acting user only "when the associated token was produced from the Client
    /// Credentials grant or with legacy bearer tokens".
    pub(crate) fn acts_as_person(&self, token: &str) -> bool {
        self.access.get(token).is_some_and(|t| t.person)
    }

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
        self.issue_as(scopes, ttl, false)
    }

    fn issue_as(&mut self, scopes: ScopeSet, ttl: std::time::Duration, person: bool) -> String {
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
                person,
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
        "client_credentials" | "refresh_token" | "authorization_code" => {}
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
    if grant == "authorization_code" {
        return exchange_code(config, &mut tokens, &params);
    }
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
        let person = tokens.person_refresh.contains(refresh.as_str());
        let refresh = if tokens.rotate_refresh_tokens {
            // Rotation: the used refresh token is retired and a new one answered (what the
            // AuthorizationCodeGrantTokenResponse's required `refresh_token` allows; whether
            // Ironclad rotates is not documented [UNVERIFIED], so it is a switch).
            tokens.refresh.remove(refresh);
            let new = tokens.new_refresh(granted);
            if person {
                tokens.person_refresh.insert(new.clone());
            }
            new
        } else {
            refresh.clone()
        };
        if person {
            let access_token = tokens.issue_as(scopes, config.token_ttl, true);
            return no_store(
                (
                    StatusCode::OK,
                    axum::Json(json!({
                        "token_type": "Bearer",
                        "access_token": access_token,
                        "refresh_token": refresh,
                        "expires_in": config.token_ttl.as_secs(),
                        "scope": scopes.render(),
                    })),
                )
                    .into_response(),
            );
        }
        (scopes, Some(refresh))
    } else {
        // Without `scope`, the token carries what the application is registered for.
        let scopes = requested.unwrap_or(registered);
        let refresh = tokens
            .issue_refresh_tokens
            .then(|| tokens.new_refresh(scopes));
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

/// The token answer of the authorization-code grant (AuthorizationCodeGrantTokenResponse:
/// `token_type`, `access_token`, `refresh_token`, `expires_in` required, `scope`).
fn exchange_code(
    config: &crate::SimConfig,
    tokens: &mut Tokens,
    params: &HashMap<String, String>,
) -> Response {
    let (Some(code), Some(redirect_uri)) = (params.get("code"), params.get("redirect_uri")) else {
        // OAuth OpenAPI TokenRequestBody: `code` and `redirect_uri` are required; its 400
        // example is "missing redirect uri".
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "missing redirect uri",
        );
    };
    // Codes are single-use (RFC 6749 §4.1.2): exchanged or not, this one is gone.
    let Some(issued) = tokens.codes.remove(code) else {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "invalid_grant",
            "invalid authorization code",
        );
    };
    // OAuth OpenAPI 403 example: "authorization code has expired".
    if Instant::now() >= issued.expires_at {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "invalid_grant",
            "authorization code has expired",
        );
    }
    if *redirect_uri != issued.redirect_uri {
        return oauth_error(
            StatusCode::FORBIDDEN,
            "invalid_grant",
            "invalid redirect uri",
        );
    }
    // RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) must equal the code_challenge. Ironclad
    // documents no PKCE parameter [UNVERIFIED]; the simulator verifies it as the RFC says
    // whenever the authorization request carried a challenge.
    if let Some(challenge) = &issued.challenge {
        let verified = params.get("code_verifier").is_some_and(|v| {
            use sha2::Digest as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(v.as_bytes()))
                == *challenge
        });
        if !verified {
            return oauth_error(
                StatusCode::FORBIDDEN,
                "invalid_grant",
                "code verifier does not match the code challenge",
            );
        }
    }
    let access_token = tokens.issue_as(issued.scopes, config.token_ttl, true);
    let refresh = tokens.new_refresh(issued.scopes);
    tokens.person_refresh.insert(refresh.clone());
    let body = json!({
        "token_type": "Bearer",
        "access_token": access_token,
        "refresh_token": refresh,
        "expires_in": config.token_ttl.as_secs(),
        "scope": issued.scopes.render(),
    });
    no_store((StatusCode::OK, axum::Json(body)).into_response())
}

/// `GET /oauth/authorize`: the consent page, with the person's answer given by the test as
/// `approve=yes` or `approve=no` (the simulated user clicking Allow or Deny).
///
/// Per the OAuth OpenAPI (`oauth-authorize`): `response_type=code`, `client_id` and
/// `redirect_uri` are required (400 `invalid_request` otherwise); a user who denies is
/// redirected with `error=access_denied`, an invalid scope with `error=invalid_scope`; `state`
/// comes back as sent. The redirect URI must be registered; a loopback
/// `http://127.0.0.1:<port>/callback` of any port is, as RFC 8252 §7.3 has servers allow.
pub(crate) async fn authorize(
    State(sim): State<Simulator>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let config = sim.config();
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    if get("response_type") != "code" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid or missing parameters: response_type must be code",
        );
    }
    if get("client_id") != config.client_id {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid or missing parameters: Invalid value for client_id",
        );
    }
    let redirect_uri = get("redirect_uri").to_owned();
    let registered = url::Url::parse(&redirect_uri).is_ok_and(|u| {
        u.scheme() == "http" && u.host_str() == Some("127.0.0.1") && u.path() == "/callback"
    });
    if !registered {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Invalid or missing parameters: redirect_uri is not registered for this client",
        );
    }
    let state = params.get("state").cloned();
    let redirect = |pairs: &[(&str, &str)]| {
        let mut url = match url::Url::parse(&redirect_uri) {
            Ok(url) => url,
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        };
        {
            let mut query = url.query_pairs_mut();
            for (k, v) in pairs {
                query.append_pair(k, v);
            }
            if let Some(state) = &state {
                query.append_pair("state", state);
            }
        }
        (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
    };
    let registered_scopes = ScopeSet::of(&config.registered_scopes);
    let scopes = match ScopeSet::parse(get("scope")) {
        Ok(set) if set.is_subset_of(registered_scopes) => {
            if set.0 == 0 {
                registered_scopes
            } else {
                set
            }
        }
        _ => return redirect(&[("error", "invalid_scope")]),
    };
    if get("approve") != "yes" {
        return redirect(&[
            ("error", "access_denied"),
            ("error_description", "the user denied the request"),
        ]);
    }
    // RFC 7636 §4.3: only S256 is accepted here (the `plain` method is not worth simulating).
    let challenge = match (params.get("code_challenge"), get("code_challenge_method")) {
        (None, _) => None,
        (Some(c), "S256") => Some(c.clone()),
        (Some(_), _) => {
            return redirect(&[
                ("error", "invalid_request"),
                ("error_description", "code_challenge_method must be S256"),
            ]);
        }
    };
    let code = uuid::Uuid::new_v4().simple().to_string();
    sim.tokens().codes.insert(
        code.clone(),
        IssuedCode {
            redirect_uri: redirect_uri.clone(),
            scopes,
            challenge,
            expires_at: Instant::now() + std::time::Duration::from_secs(600),
        },
    );
    redirect(&[("code", &code)])
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
