//! The Microsoft identity platform token endpoint (client credentials) and bearer-token checks.
//!
//! Source: entra-docs identity-platform/v2-oauth2-client-creds-grant-flow.md ("First case:
//! Access token request with a shared secret") and reference-error-codes.md for the error body
//! (`error`, `error_description`, `error_codes`, `timestamp`, `trace_id`, `correlation_id`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use url::form_urlencoded;

use crate::config::SimConfig;
use crate::ids::{encode_token, mix};

/// Seconds a token lives (the documented example answers `"expires_in": 3599`).
pub(crate) const TOKEN_LIFETIME_SECS: u64 = 3599;

/// Issued access tokens and when they stop working.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    issued: HashMap<String, Instant>,
    counter: u64,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenProblem {
    Missing,
    Expired,
    Unknown,
}

impl TokenProblem {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Self::Missing => "Access token is empty.",
            Self::Expired => "Access token has expired or is not yet valid.",
            Self::Unknown => "Access token validation failure. Invalid audience.",
        }
    }
}

impl Tokens {
    pub(crate) fn issue(&mut self, seed: u64, now: Instant) -> String {
        self.counter += 1;
        let token = format!(
            "eyJ0eXAiOiJKV1QiLCJhbGciOiJub25lIn0.{}.sim",
            encode_token(&format!(
                "{:016x}{:08x}",
                mix(seed ^ self.counter),
                self.counter
            ))
        );
        self.issued.insert(
            token.clone(),
            now + Duration::from_secs(TOKEN_LIFETIME_SECS),
        );
        token
    }

    /// Checks an `Authorization` header value.
    pub(crate) fn check(
        &self,
        authorization: Option<&str>,
        now: Instant,
    ) -> Result<(), TokenProblem> {
        let token = authorization
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(TokenProblem::Missing)?;
        match self.issued.get(token) {
            Some(expiry) if *expiry > now => Ok(()),
            Some(_) => Err(TokenProblem::Expired),
            None => Err(TokenProblem::Unknown),
        }
    }

    /// Every token issued so far expires now.
    pub(crate) fn expire_all(&mut self, now: Instant) {
        for expiry in self.issued.values_mut() {
            *expiry = now;
        }
    }
}

/// `http://{Host}`: the origin clients reach the simulator at, used for `.default` scopes,
/// `@odata.nextLink`s and `@odata.id`s.
pub(crate) fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn sts_error(
    status: StatusCode,
    error: &str,
    code: u32,
    description: String,
    stamp: &str,
) -> Response {
    let trace = format!(
        "{:08x}-0000-4000-8000-{:012x}",
        code,
        mix(u64::from(code)) & 0xffff_ffff_ffff
    );
    let body = json!({
        "error": error,
        "error_description": format!(
            "AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {trace}\r\nTimestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": trace,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The client secret from the form or, as the page allows, from HTTP Basic auth.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let unescape = |s: &str| {
        form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// Answers `POST /{tenant}/oauth2/v2.0/token`, issuing into `tokens` on success.
pub(crate) fn token_response(
    config: &SimConfig,
    tokens: &mut Tokens,
    tenant: &str,
    headers: &HeaderMap,
    body: &[u8],
    stamp: &str,
    now: Instant,
) -> Response {
    if tenant != config.tenant_id {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!(
                "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            ),
            stamp,
        );
    }
    let form: HashMap<String, String> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let basic = basic_credentials(headers);
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let client_id = match (field("client_id"), &basic) {
        ("", Some((id, _))) => id.clone(),
        (id, _) => id.to_owned(),
    };
    let secret = match (form.get("client_secret"), &basic) {
        (Some(s), _) => Some(s.clone()),
        (None, Some((_, s))) => Some(s.clone()),
        (None, None) => None,
    };
    for required in ["grant_type", "scope"] {
        if field(required).is_empty() {
            return sts_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                format!("The request body must contain the following parameter: '{required}'."),
                stamp,
            );
        }
    }
    if field("grant_type") != "client_credentials" {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            format!(
                "The app requested an unsupported grant type '{}'.",
                field("grant_type")
            ),
            stamp,
        );
    }
    if client_id != config.client_id {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{client_id}' was not found in the directory '{tenant}'."
            ),
            stamp,
        );
    }
    if secret.as_deref() != Some(config.client_secret.as_str()) {
        // invalid_client is "Client authentication failed" (reference-error-codes.md); RFC 6749
        // §5.2 answers it with 401.
        return sts_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
            ),
            stamp,
        );
    }
    let expected_scope = format!("{}/.default", origin(headers));
    if field("scope") != expected_scope {
        // The documented error example (v2-oauth2-client-creds-grant-flow.md, "Error response").
        return sts_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            70011,
            format!(
                "The provided value for the input parameter 'scope' is not valid. The scope {} is not valid.",
                field("scope")
            ),
            stamp,
        );
    }
    let token = tokens.issue(config.seed, now);
    let body = json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "ext_expires_in": TOKEN_LIFETIME_SECS,
        "access_token": token,
    });
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}
