//! Upstream HTTP, as connectors see it.
//!
//! A connector never owns an HTTP client: it describes a request and the host sends it with its
//! one reqwest client (rustls), its retry policy (429/5xx/connection errors with backoff, jitter
//! and `Retry-After`), the source's rate budgets, `--dry-run` interception of writes, and secret
//! redaction. So a plugin carries no tokio, TLS or connection pool of its own.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{ConnectorError, ErrorKind};
use crate::services::HostServices;

/// A rate budget the host enforces for requests that name it, per source: at most `requests`
/// per `period_ms`. Budgets are how a connector states an upstream's documented limits
/// ("50 PATCH/DELETE per minute") once, and have every request under them respect it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Budget {
    /// Name, unique within the connector (e.g. `scim-users-write`).
    pub name: String,
    /// Requests allowed per period.
    pub requests: u32,
    /// Period length in milliseconds.
    pub period_ms: u64,
    /// `true` when the upstream counts in windows of `period_ms` whose start it does not say
    /// ("600 requests per minute"): the host then never sends more than `requests` within any
    /// `period_ms`. `false` (the default) is a token bucket that refills continuously and may
    /// burst up to `requests` (Graph's documented model).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub windowed: bool,
}

impl Budget {
    /// A token bucket: bursts up to `requests`, refilled evenly over `period`.
    pub fn new(name: &str, requests: u32, period: Duration) -> Self {
        Self {
            name: name.to_owned(),
            requests,
            period_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX),
            windowed: false,
        }
    }

    /// At most `requests` in any `period`: for limits documented per fixed window, whose
    /// alignment a client cannot know.
    pub fn per_window(name: &str, requests: u32, period: Duration) -> Self {
        Self {
            windowed: true,
            ..Self::new(name, requests, period)
        }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms)
    }
}

/// How the host should treat a request, beyond what its method says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestOptions {
    /// Whether the request may be repeated safely after a 5xx; `None` decides by method
    /// (GET, HEAD, PUT, DELETE yes; POST, PATCH no: those retry only on 429 and connect errors).
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// Whether the request changes upstream state; `None` decides by method. A token request or
    /// a Graph `$batch` of reads is a POST that is not a write, so `--dry-run` must let it through.
    #[serde(default)]
    pub write: Option<bool>,
    /// Rate budget to draw from.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// How much of `budget` the request uses (1 when absent). Upstreams that meter by cost
    /// rather than by request (Graph's resource units, where a `$batch` costs the sum of its
    /// inner reads) state the cost here; a cost above the budget's allowance takes all of it.
    #[serde(default)]
    pub cost: Option<u32>,
    /// Timeout for one attempt, in milliseconds (the host's default otherwise).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Most attempts, first included (the host's default otherwise).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The upstream's rate-limit window, in milliseconds, for an upstream that answers 429
    /// without `Retry-After` (Ironclad: "per minute"). The host then keeps backing off until
    /// the window can have reset (rate-limit reset headers when present), within its maximum
    /// wait per request, instead of giving up after its usual attempts.
    #[serde(default)]
    pub rate_window_ms: Option<u64>,
}

/// A request a connector asks the host to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes (empty for none).
    pub body: Vec<u8>,
    /// Host-side handling.
    pub options: RequestOptions,
}

impl HttpRequest {
    /// Whether the request changes upstream state.
    pub fn is_write(&self) -> bool {
        self.options
            .write
            .unwrap_or(!matches!(self.method.as_str(), "GET" | "HEAD" | "OPTIONS"))
    }

    /// Whether it may be retried after a 5xx.
    pub fn is_idempotent(&self) -> bool {
        self.options.idempotent.unwrap_or(matches!(
            self.method.as_str(),
            "GET" | "HEAD" | "OPTIONS" | "PUT" | "DELETE"
        ))
    }
}

/// The host's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
    /// `true` when `--dry-run` intercepted this write and nothing was sent.
    pub dry_run: bool,
    /// `METHOD url` of the request, for error messages.
    pub request_line: String,
}

impl HttpResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first `max` characters of the body, for error messages.
    pub fn body_excerpt(&self, max: usize) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let mut excerpt: String = text.chars().take(max).collect();
        if text.chars().count() > max {
            excerpt.push('…');
        }
        excerpt
    }

    /// Decodes the body as JSON; a decode failure names the request and shows the body's start.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|err| {
            ConnectorError::internal(format!(
                "{} answered {} with a body that is not the expected JSON ({err}): {}",
                self.request_line,
                self.status,
                self.body_excerpt(200)
            ))
            .with_status(self.status)
        })
    }

    /// `Retry-After` as a duration: delay-seconds or an HTTP date.
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(self.header("retry-after")?)
    }

    /// Turns a non-2xx answer into an error of the matching kind that names the request, the
    /// status and the start of the body. Connectors that understand the upstream's error body
    /// should build their own message first and use [`HttpResponse::error_kind`].
    pub fn error_for_status(self) -> Result<Self, ConnectorError> {
        match ErrorKind::from_status(self.status) {
            None => Ok(self),
            Some(kind) => Err(self.to_error(kind, &self.body_excerpt(300))),
        }
    }

    /// The error kind of this status, `None` for success.
    pub fn error_kind(&self) -> Option<ErrorKind> {
        ErrorKind::from_status(self.status)
    }

    /// An error of `kind` naming this request and status, with `detail`.
    pub fn to_error(&self, kind: ErrorKind, detail: &str) -> ConnectorError {
        let mut err = ConnectorError::new(
            kind,
            format!("{} answered {}: {detail}", self.request_line, self.status),
        )
        .with_status(self.status);
        if kind == ErrorKind::RateLimited {
            err.retry_after = self.retry_after();
        }
        err
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        // A value beyond what a Duration holds (found by fuzzing) is a very long wait, which
        // the host's policy caps anyway; it must never panic.
        return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// What one URL path segment may hold as is: RFC 3986 `unreserved`. Everything else, `/`, `\\`,
/// `%`, `?` and `#` included, is percent-encoded.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `segment` percent-encoded as exactly one URL path segment. An empty segment, `.` or `..`
/// is refused (URL parsers treat `.` and `..`, even percent-encoded, as steps through the path,
/// so `DELETE …/Users/..` would reach the collection), naming the segment.
pub fn encode_path_segment(segment: &str) -> Result<String, ConnectorError> {
    if segment.is_empty() || segment == "." || segment == ".." {
        return Err(ConnectorError::invalid_input(format!(
            "`{segment}` cannot be placed in a URL as an id: it is empty or a path step"
        )));
    }
    Ok(percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string())
}

/// `base` with `segments` appended to its path, each percent-encoded as one path segment
/// ([`encode_path_segment`]), so an id can never add, remove or escape a path level. Query and
/// fragment of `base` are dropped.
///
/// ```
/// use idhost_connector_sdk::http::url_with_segments;
///
/// let base = url::Url::parse("https://na1.ironcladapp.com/scim/v2").unwrap();
/// let url = url_with_segments(&base, &["Users", "a/b?c"]).unwrap();
/// assert_eq!(url.as_str(), "https://na1.ironcladapp.com/scim/v2/Users/a%2Fb%3Fc");
/// assert!(url_with_segments(&base, &["Users", ".."]).is_err());
/// ```
pub fn url_with_segments(base: &url::Url, segments: &[&str]) -> Result<url::Url, ConnectorError> {
    let mut path = base.path().trim_end_matches('/').to_owned();
    for segment in segments {
        path.push('/');
        path.push_str(&encode_path_segment(segment)?);
    }
    let mut url = base.clone();
    if url.cannot_be_a_base() {
        return Err(ConnectorError::invalid_input(format!(
            "`{base}` cannot take a path"
        )));
    }
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The HTTP service a connector gets from its [`crate::Context`].
#[derive(Clone)]
pub struct Http {
    services: Arc<dyn HostServices>,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").finish_non_exhaustive()
    }
}

impl Http {
    pub(crate) fn new(services: Arc<dyn HostServices>) -> Self {
        Self { services }
    }

    /// A request with `method` to `url`.
    pub fn request(&self, method: &str, url: impl AsRef<str>) -> RequestBuilder {
        RequestBuilder {
            http: self.clone(),
            request: HttpRequest {
                method: method.to_ascii_uppercase(),
                url: url.as_ref().to_owned(),
                headers: Vec::new(),
                body: Vec::new(),
                options: RequestOptions::default(),
            },
            error: None,
        }
    }
    /// `GET url`.
    pub fn get(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request("GET", url)
    }
    /// `POST url`.
    pub fn post(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request("POST", url)
    }
    /// `PUT url`.
    pub fn put(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request("PUT", url)
    }
    /// `PATCH url`.
    pub fn patch(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request("PATCH", url)
    }
    /// `DELETE url`.
    pub fn delete(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request("DELETE", url)
    }

    /// Sends a prepared request.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        self.services.http(request).await
    }
}

/// Builds one request; nothing is sent until [`RequestBuilder::send`].
#[derive(Debug)]
pub struct RequestBuilder {
    http: Http,
    request: HttpRequest,
    error: Option<ConnectorError>,
}

impl RequestBuilder {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.request.headers.push((name.to_owned(), value.into()));
        self
    }

    /// `Authorization: Bearer <token>` (the host redacts it in every log and error).
    pub fn bearer(self, token: &SecretString) -> Self {
        let value = format!("Bearer {}", token.expose_secret());
        self.header("authorization", value)
    }

    /// `Authorization: Basic base64(user:secret)`.
    pub fn basic_auth(self, user: &str, secret: &SecretString) -> Self {
        let raw = format!("{user}:{}", secret.expose_secret());
        let value = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        self.header("authorization", value)
    }

    /// Appends URL-encoded query parameters.
    pub fn query(mut self, pairs: &[(&str, &str)]) -> Self {
        match url::Url::parse(&self.request.url) {
            Ok(mut url) => {
                url.query_pairs_mut().extend_pairs(pairs);
                self.request.url = url.into();
            }
            Err(err) => {
                self.error = Some(ConnectorError::invalid_input(format!(
                    "`{}` is not a valid URL: {err}",
                    self.request.url
                )));
            }
        }
        self
    }

    /// A JSON body (`content-type: application/json` unless set already).
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        match serde_json::to_vec(body) {
            Ok(bytes) => {
                self.request.body = bytes;
                self.ensure_content_type("application/json")
            }
            Err(err) => {
                self.error = Some(ConnectorError::internal(format!(
                    "could not encode the request body: {err}"
                )));
                self
            }
        }
    }

    /// A form body (`application/x-www-form-urlencoded`).
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.request.body = encoded.into_bytes();
        self.ensure_content_type("application/x-www-form-urlencoded")
    }

    /// Raw body bytes with a content type.
    pub fn body(mut self, bytes: Vec<u8>, content_type: &str) -> Self {
        self.request.body = bytes;
        self.ensure_content_type(content_type)
    }

    fn ensure_content_type(self, content_type: &str) -> Self {
        let has = self
            .request
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
        if has {
            self
        } else {
            self.header("content-type", content_type)
        }
    }

    /// Draws from `budget`.
    pub fn budget(mut self, budget: &Budget) -> Self {
        self.request.options.budget = Some(budget.clone());
        self
    }

    /// Draws `cost` units from `budget` (a budget counted in cost units, not requests).
    pub fn budget_cost(mut self, budget: &Budget, cost: u32) -> Self {
        self.request.options.budget = Some(budget.clone());
        self.request.options.cost = Some(cost);
        self
    }

    /// Marks a POST that does not change upstream state (a token request, a batch of reads):
    /// `--dry-run` lets it through and the host may retry it after a 5xx.
    pub fn read_only(mut self) -> Self {
        self.request.options.write = Some(false);
        self.request.options.idempotent = Some(true);
        self
    }

    /// Overrides whether the request may be retried after a 5xx.
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.request.options.idempotent = Some(idempotent);
        self
    }

    /// Timeout for one attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.request.options.timeout_ms = u64::try_from(timeout.as_millis()).ok();
        self
    }

    /// Most attempts, first included.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.request.options.max_attempts = Some(attempts.max(1));
        self
    }

    /// The upstream's rate-limit window (see [`RequestOptions::rate_window_ms`]).
    pub fn rate_window(mut self, window: Duration) -> Self {
        self.request.options.rate_window_ms = u64::try_from(window.as_millis()).ok();
        self
    }

    /// The request as built so far.
    pub fn build(self) -> Result<HttpRequest, ConnectorError> {
        match self.error {
            Some(err) => Err(err),
            None => Ok(self.request),
        }
    }

    /// Sends it through the host. `Ok` for any HTTP status: use
    /// [`HttpResponse::error_for_status`] or the connector's own error parsing.
    pub async fn send(self) -> Result<HttpResponse, ConnectorError> {
        let http = self.http.clone();
        let request = self.build()?;
        http.send(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str, headers: &[(&str, &str)]) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
            dry_run: false,
            request_line: "GET https://api.example.com/users".into(),
        }
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        let past = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after(past), Some(Duration::ZERO));
        let future =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let parsed = parse_retry_after(&future).expect("date parses");
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(parse_retry_after("soon"), None);
        // Regression (fuzz/artifacts/sdk_response): an absurd value is a long wait, not a panic.
        assert_eq!(
            parse_retry_after("4444444444444444444444444444444"),
            Some(Duration::MAX)
        );
        assert_eq!(parse_retry_after("1e300"), Some(Duration::MAX));
    }

    #[test]
    fn error_for_status_names_request_status_and_body() {
        let err = response(404, "{\"detail\":\"Resource u1 not found\"}", &[])
            .error_for_status()
            .expect_err("404 is an error");
        assert_eq!(err.kind, ErrorKind::NotFound);
        assert_eq!(err.status, Some(404));
        assert!(
            err.message
                .contains("GET https://api.example.com/users answered 404")
        );
        assert!(err.message.contains("Resource u1 not found"));
        let limited = response(429, "", &[("Retry-After", "3")])
            .error_for_status()
            .expect_err("429 is an error");
        assert_eq!(limited.retry_after, Some(Duration::from_secs(3)));
    }

    #[test]
    fn malformed_json_error_shows_the_body_start() {
        let err = response(200, "<html>oops", &[])
            .json::<serde_json::Value>()
            .expect_err("not JSON");
        assert!(err.message.contains("<html>oops"), "{}", err.message);
        assert_eq!(err.kind, ErrorKind::Internal);
    }

    #[test]
    fn writes_and_idempotency_follow_the_method_unless_overridden() {
        let mut req = HttpRequest {
            method: "POST".into(),
            url: "https://x".into(),
            headers: vec![],
            body: vec![],
            options: RequestOptions::default(),
        };
        assert!(req.is_write());
        assert!(!req.is_idempotent());
        req.options.write = Some(false);
        assert!(!req.is_write());
        req.method = "DELETE".into();
        req.options.write = None;
        assert!(req.is_write() && req.is_idempotent());
    }
}
