//! `POST /oauth/token`, the bearer check on every `/v1.1` call, and the documented rate limits.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

use crate::Simulator;
use crate::error::ApiError;

/// [UNVERIFIED] Lifetime of issued tokens. The createregenerate-access-token page was not
/// retrievable; docs/getting-your-access-token only says tokens "are generated using OAuth 2.0"
/// and can be rotated "at your own discretion via the API". One hour is the common OAuth2 default.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Tokens issued by `/oauth/token`, with their expiry.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    issued: Mutex<HashMap<String, Instant>>,
}

impl Tokens {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Instant>> {
        self.issued.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn issue(&self) -> String {
        let token = format!("cw_{}", uuid::Uuid::new_v4().simple());
        self.lock()
            .insert(token.clone(), Instant::now() + TOKEN_LIFETIME);
        token
    }

    fn is_live(&self, token: &str) -> bool {
        self.lock()
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    /// Forgets every issued token, so their next use answers 401.
    pub(crate) fn expire_all(&self) {
        self.lock().clear();
    }
}

/// `POST /oauth/token` (reference/createregenerate-access-token: "you must have already created
/// an API application in order to have a client_id and client_secret").
///
/// [UNVERIFIED] The request and response bodies were not retrievable. We accept the conventional
/// OAuth2 client-credentials request (RFC 6749 §4.4): `client_id` and `client_secret` in a form or
/// JSON body, or as HTTP Basic (RFC 6749 §2.3.1); `grant_type`, if sent, must be
/// `client_credentials`. The answer is `{"access_token","token_type":"Bearer","expires_in"}`.
/// Earlier tokens stay valid: the docs do not say that regenerating revokes them.
pub(crate) async fn token(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match issue_token(&sim, &headers, &body) {
        Ok(token) => Json(json!({
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME.as_secs(),
        }))
        .into_response(),
        Err(err) => err.into_response(),
    }
}

fn issue_token(sim: &Simulator, headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let params = body_params(headers, body)?;
    let get = |k: &str| params.get(k).map(String::as_str);
    if let Some(grant) = get("grant_type")
        && grant != "client_credentials"
    {
        return Err(ApiError::bad_request(format!(
            "grant_type must be `client_credentials`; got `{grant}`"
        )));
    }
    let basic = basic_credentials(headers);
    let (id, secret) = match (get("client_id"), get("client_secret"), &basic) {
        (Some(id), Some(secret), _) => (id.to_owned(), secret.to_owned()),
        (_, _, Some((id, secret))) => (id.clone(), secret.clone()),
        _ => {
            return Err(ApiError::bad_request(
                "client_id and client_secret are required",
            ));
        }
    };
    let config = sim.config();
    // RFC 6749 §5.2: a failed client authentication is 401 (`invalid_client`); the body uses
    // the PactSafe envelope, as every other error of this API does.
    if id != config.client_id || secret != config.client_secret {
        return Err(ApiError::unauthorized(format!(
            "unknown client `{id}` or wrong client secret"
        )));
    }
    Ok(sim.tokens().issue())
}

/// Form or JSON body as string pairs. JSON when the content type says so or the body looks like
/// an object; form-urlencoded otherwise.
fn body_params(headers: &HeaderMap, body: &[u8]) -> Result<HashMap<String, String>, ApiError> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"))
        || body.trim_ascii_start().starts_with(b"{");
    if !is_json {
        return Ok(url::form_urlencoded::parse(body).into_owned().collect());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("token request body is not JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(ApiError::bad_request(
            "token request body must be a JSON object",
        ));
    };
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k, s)),
            Value::Number(n) => Some((k, n.to_string())),
            _ => None,
        })
        .collect())
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Guards every `/v1.1` route.
///
/// docs/getting-your-access-token: "you'll need to add the access token as an Authorization HTTP
/// Header … `Authorization: Bearer YOUR_ACCESS_TOKEN`". Missing or unknown tokens answer
/// 401 "The requester is unauthorized." (reference/get_sites).
///
/// reference/rate-limits: REST "Authenticated requests 2000 maximum per 1 minute", limited by
/// "API Token"; "Unauthenticated requests 60 maximum per 1 minute", limited by "IP Address" ("The
/// most common scenario of Unauthenticated requests are requests that are missing a Site Access ID
/// or API token"); "The timer will start after the first request that reduces the quota", which is
/// `FixedWindow`'s behaviour. Over the limit: 429 with `Retry-After`, request not processed.
pub(crate) async fn require_bearer(
    State(sim): State<Simulator>,
    request: Request,
    next: Next,
) -> Response {
    let token = bearer(request.headers());
    let authorized = token.as_deref().is_some_and(|t| sim.accepts(t));
    if sim.config().rate_limits {
        let verdict = match (&token, authorized) {
            (Some(t), true) => sim.limits().authenticated.check(t),
            _ => sim
                .limits()
                .unauthenticated
                .check(&client_ip(request.headers())),
        };
        if let Err(wait) = verdict {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return ApiError::rate_limited(secs).into_response();
        }
    }
    if !authorized {
        let why = if token.is_some() {
            "unknown or expired bearer token"
        } else {
            "missing `Authorization: Bearer` header"
        };
        return ApiError::unauthorized(why).into_response();
    }
    next.run(request).await
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The unauthenticated limit is per IP. `sim_common::serve` does not expose peer addresses, so
/// the first `X-Forwarded-For` entry is used when present; otherwise every caller is loopback.
fn client_ip(headers: &HeaderMap) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map_or_else(|| "127.0.0.1".to_owned(), |ip| ip.trim().to_owned())
}

impl Simulator {
    /// Whether `token` is the configured long-lived token or a live issued one.
    fn accepts(&self, token: &str) -> bool {
        token == self.config().access_token || self.tokens().is_live(token)
    }
}
