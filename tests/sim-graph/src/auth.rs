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
    /// `jti`s of the client assertions accepted so far: a second use is refused.
    seen_jti: std::collections::HashSet<String>,
    /// The last client assertion accepted (tests replay it).
    pub(crate) last_assertion: Option<String>,
    /// Device codes issued by `/devicecode`, by `device_code`.
    pub(crate) device_codes: HashMap<String, DeviceCode>,
    /// Live refresh tokens (delegated sign-ins).
    refresh: std::collections::HashSet<String>,
    /// Refresh tokens issued, oldest first.
    pub(crate) refresh_issued: Vec<String>,
    /// Retire a refresh token once it is used (Entra keeps old ones valid; tests turn this on
    /// to see that the rotated one is the one used next).
    pub(crate) retire_used_refresh_tokens: bool,
    /// Answer this many more device-code polls with `slow_down` (RFC 8628 §3.5).
    pub(crate) slow_downs: u32,
}

/// Where a device code's sign-in stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceState {
    Pending,
    Approved,
    Declined,
}

/// One device code (v2-oauth2-device-code.md, "Device authorization response").
#[derive(Debug, Clone)]
pub(crate) struct DeviceCode {
    pub(crate) user_code: String,
    pub(crate) expires_at: Instant,
    pub(crate) state: DeviceState,
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
    let assertion = form.get("client_assertion").cloned();
    let secret = match (form.get("client_secret"), &basic) {
        (Some(s), _) => Some(s.clone()),
        (None, Some((_, s))) => Some(s.clone()),
        (None, None) => None,
    };
    for required in ["grant_type", "scope"] {
        if required == "scope" && field("grant_type") == DEVICE_CODE_GRANT {
            continue;
        }
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
    if matches!(field("grant_type"), DEVICE_CODE_GRANT | "refresh_token") {
        return delegated_grant(config, tokens, &client_id, &form, stamp, now);
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
    if let Some(assertion) = &assertion {
        let audience = format!("{}/{tenant}/oauth2/v2.0/token", origin(headers));
        if let Some(refused) = check_assertion(
            config,
            tokens,
            &client_id,
            field("client_assertion_type"),
            assertion,
            &audience,
            stamp,
        ) {
            return refused;
        }
        tokens.last_assertion = Some(assertion.clone());
    } else if secret.as_deref() != Some(config.client_secret.as_str()) {
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
    if field("scope").split_whitespace().next() != Some(expected_scope.as_str()) {
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

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The registered certificate's key and validity.
struct Registered {
    x5t_s256: String,
    key: jsonwebtoken::DecodingKey,
    not_before: i64,
    not_after: i64,
}

fn registered(pem_text: &str) -> Option<Registered> {
    let block = pem::parse_many(pem_text.as_bytes())
        .ok()?
        .into_iter()
        .find(|b| b.tag() == "CERTIFICATE")?;
    let der = block.contents();
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let x509_parser::public_key::PublicKey::RSA(rsa) = cert.public_key().parsed().ok()? else {
        return None;
    };
    // DER integers carry a leading zero byte when the high bit is set; the key wants none.
    let unsigned = |b: &'_ [u8]| {
        let start = b.iter().position(|&x| x != 0).unwrap_or(b.len());
        b[start..].to_vec()
    };
    let key = jsonwebtoken::DecodingKey::from_rsa_raw_components(
        &unsigned(rsa.modulus),
        &unsigned(rsa.exponent),
    );
    Some(Registered {
        x5t_s256: base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(ring::digest::digest(&ring::digest::SHA256, der)),
        key,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Verifies a client assertion as certificate-credentials.md describes it: header `x5t#S256`
/// names a registered certificate, the signature verifies with its key, `aud` is the token URL,
/// `iss` = `sub` = the client id, `nbf`..`exp` holds now, and the `jti` was not seen before.
///
/// Codes: AADSTS700027 "Client assertion contains an invalid signature" (for a key that is not
/// registered, an expired key or a bad signature, with the reason in brackets, as Entra words
/// it); AADSTS700024 "Client assertion is not within its valid time range"; AADSTS700021
/// "Client assertion application identifier doesn't match 'client_id' parameter"; AADSTS700023
/// "Client assertion audience claim does not match Realm issuer" (the Azure SDK
/// troubleshooting page, learn.microsoft.com/azure/developer/java/sdk/
/// troubleshooting-authentication-service-principal, and reference-error-codes.md). For a
/// replayed `jti` Microsoft documents no code [UNVERIFIED]: RFC 7523 §3 lets the server refuse
/// a reused assertion and OpenID Connect Core §9 says a `private_key_jwt` "MUST only be used
/// once", so the simulator answers invalid_client AADSTS700027 with the reason named.
fn check_assertion(
    config: &SimConfig,
    tokens: &mut Tokens,
    client_id: &str,
    assertion_type: &str,
    assertion: &str,
    audience: &str,
    stamp: &str,
) -> Option<Response> {
    let refuse = |code: u32, description: String| {
        Some(sts_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            code,
            description,
            stamp,
        ))
    };
    if assertion_type != JWT_BEARER {
        return Some(sts_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            format!(
                "The request body must contain the following parameter: 'client_assertion_type' = '{JWT_BEARER}'."
            ),
            stamp,
        ));
    }
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(h) => h,
        Err(e) => return refuse(50027, format!("JWT token is invalid or malformed ({e}).")),
    };
    let thumbprint = header.x5t_s256.clone().unwrap_or_default();
    let not_found = format!(
        "Client assertion contains an invalid signature. [Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]"
    );
    let Some(registered) = config.client_certificate.as_deref().and_then(registered) else {
        return refuse(700027, not_found);
    };
    if thumbprint != registered.x5t_s256 {
        return refuse(700027, not_found);
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if now >= registered.not_after || now < registered.not_before {
        return refuse(
            700027,
            format!(
                "Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '{thumbprint}', Found key 'Start={}, End={}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{client_id}'.]",
                registered.not_before, registered.not_after
            ),
        );
    }
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.algorithms = vec![
        jsonwebtoken::Algorithm::RS256,
        jsonwebtoken::Algorithm::PS256,
    ];
    // Time and audience are checked below, each with its own documented code.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = match jsonwebtoken::decode::<serde_json::Value>(
        assertion,
        &registered.key,
        &validation,
    ) {
        Ok(data) => data.claims,
        Err(_) => {
            return refuse(
                700027,
                format!(
                    "Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '{thumbprint}', Found key 'Start={}, End={}']",
                    registered.not_before, registered.not_after
                ),
            );
        }
    };
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    let number = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
    if text("iss") != client_id || text("sub") != client_id {
        return refuse(
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .".to_owned(),
        );
    }
    if text("aud") != audience {
        return refuse(
            700023,
            format!(
                "Client assertion audience claim does not match Realm issuer. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials . (aud '{}', expected '{audience}')",
                text("aud")
            ),
        );
    }
    // A few seconds of clock skew, as token validators allow.
    let skew = 60;
    match (number("nbf"), number("exp")) {
        (Some(nbf), Some(exp)) if nbf - skew <= now && now < exp + skew => {}
        _ => {
            return refuse(
                700024,
                format!(
                    "Client assertion is not within its valid time range. Current time: {now}, assertion valid from {:?}, expiry time of assertion {:?}. Review the documentation at https://learn.microsoft.com/entra/identity-platform/certificate-credentials .",
                    number("nbf"),
                    number("exp")
                ),
            );
        }
    }
    let jti = text("jti");
    if jti.is_empty() || !tokens.seen_jti.insert(jti.to_owned()) {
        return refuse(
            700027,
            format!(
                "Client assertion failed validation. [Reason - The assertion with jti '{jti}' was already used; each assertion may be used once.]"
            ),
        );
    }
    None
}

/// `grant_type` of the device-code poll (RFC 8628 §3.4).
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn json_ok(body: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// Answers `POST /{tenant}/oauth2/v2.0/devicecode` (v2-oauth2-device-code.md, "Device
/// authorization request"): `client_id` and `scope` in a form body; the answer carries
/// `device_code`, `user_code`, `verification_uri`, `expires_in`, `interval` and `message`.
pub(crate) fn device_authorization(
    config: &SimConfig,
    tokens: &mut Tokens,
    tenant: &str,
    body: &[u8],
    stamp: &str,
    now: Instant,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if tenant != config.tenant_id {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            format!("Tenant '{tenant}' not found."),
            stamp,
        );
    }
    if field("client_id") != config.client_id {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!(
                "Application with identifier '{}' was not found in the directory '{tenant}'.",
                field("client_id")
            ),
            stamp,
        );
    }
    if field("scope").is_empty() {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.".to_owned(),
            stamp,
        );
    }
    tokens.counter += 1;
    let n = tokens.counter;
    let device_code = encode_token(&format!("{:016x}{n:08x}", mix(config.seed ^ n ^ 0xdc)));
    // The documented example user code is nine characters, e.g. "FAJ5GY4JU"-like.
    let user_code = format!("{:09X}", mix(n ^ 0x5eed) % 0xF_FFFF_FFFF);
    tokens.device_codes.insert(
        device_code.clone(),
        DeviceCode {
            user_code: user_code.clone(),
            expires_at: now + config.device_code_ttl,
            state: DeviceState::Pending,
        },
    );
    let verification_uri = "https://microsoft.com/devicelogin";
    json_ok(json!({
        "device_code": device_code,
        "user_code": user_code,
        "verification_uri": verification_uri,
        "expires_in": config.device_code_ttl.as_secs(),
        "interval": config.device_code_interval.as_secs(),
        "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
    }))
}

/// The device-code poll and the refresh grant of a delegated sign-in.
///
/// Device code (v2-oauth2-device-code.md, "Expected errors"): `authorization_pending` while
/// the user has not finished, `authorization_declined` when they declined, `bad_verification_code`
/// for an unknown code, `expired_token` after `expires_in`; RFC 8628 §3.5 `slow_down` when
/// scripted. Refresh (v2-oauth2-auth-code-flow.md, "Refresh the access token"): `client_id`,
/// `refresh_token` and `scope`; the answer carries a new refresh token (refresh-tokens.md:
/// "refresh tokens replace themselves with a fresh token upon every use").
fn delegated_grant(
    config: &SimConfig,
    tokens: &mut Tokens,
    client_id: &str,
    form: &HashMap<String, String>,
    stamp: &str,
    now: Instant,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if client_id != config.client_id {
        return sts_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory."),
            stamp,
        );
    }
    let pending = |error: &str, code: u32, text: &str| {
        sts_error(StatusCode::BAD_REQUEST, error, code, text.to_owned(), stamp)
    };
    if field("grant_type") == DEVICE_CODE_GRANT {
        let Some(device) = tokens.device_codes.get(field("device_code")).cloned() else {
            return pending(
                "bad_verification_code",
                70019,
                "The device_code sent to the /token endpoint wasn't recognized.",
            );
        };
        if now >= device.expires_at {
            return pending(
                "expired_token",
                70020,
                "The provided authorization code or refresh token has expired due to inactivity.",
            );
        }
        match device.state {
            DeviceState::Declined => {
                return pending(
                    "authorization_declined",
                    70016,
                    "The end user denied the authorization request.",
                );
            }
            DeviceState::Pending if tokens.slow_downs > 0 => {
                tokens.slow_downs -= 1;
                return pending("slow_down", 70016, "Polling too fast: slow down.");
            }
            DeviceState::Pending => {
                return pending(
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                );
            }
            DeviceState::Approved => {
                tokens.device_codes.remove(field("device_code"));
            }
        }
    } else {
        if field("scope").is_empty() {
            return pending(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'scope'.",
            );
        }
        let used = field("refresh_token");
        if !tokens.refresh.contains(used) {
            return pending(
                "invalid_grant",
                70000,
                "The provided value for the 'refresh_token' is not valid.",
            );
        }
        if tokens.retire_used_refresh_tokens {
            tokens.refresh.remove(used);
        }
    }
    let access = tokens.issue(config.seed, now);
    tokens.counter += 1;
    let refresh = format!(
        "0.sim-refresh.{}",
        encode_token(&format!(
            "{:016x}",
            mix(config.seed ^ tokens.counter ^ 0x7e)
        ))
    );
    tokens.refresh.insert(refresh.clone());
    tokens.refresh_issued.push(refresh.clone());
    json_ok(json!({
        "token_type": "Bearer",
        "scope": "https://graph.microsoft.com/.default",
        "expires_in": TOKEN_LIFETIME_SECS,
        "ext_expires_in": TOKEN_LIFETIME_SECS,
        "access_token": access,
        "refresh_token": refresh,
    }))
}
