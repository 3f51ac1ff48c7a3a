//! Latency and scripted faults, applied as one middleware in front of a simulator's routes, plus
//! the request log tests read to count upstream calls.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::stream;

/// What a matching request gets instead of the simulator's answer.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Answer with this status, body and headers (e.g. 429 with or without `Retry-After`).
    Status {
        /// HTTP status.
        status: u16,
        /// Response body (sent as `application/json` unless a `content-type` header is given).
        body: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Start a 200 response and drop the connection mid-body.
    ResetConnection,
    /// 200 with a body that is not JSON.
    MalformedJson,
    /// 200 with the real answer cut in half.
    TruncatedBody,
    /// The real answer followed by this many bytes of JSON whitespace (RFC 8259 §2 allows any
    /// amount between tokens): a valid body of unusual size.
    PaddedBody(usize),
    /// 200 with the real body but `content-type: text/html`.
    WrongContentType,
    /// Wait this long before answering normally.
    Delay(Duration),
    /// Run this (e.g. change the simulator's data) before answering normally: a test's way to
    /// make something happen upstream between two of the client's requests.
    Run(Hook),
}

/// A callback a [`FaultAction::Run`] runs.
#[derive(Clone)]
pub struct Hook(Arc<dyn Fn() + Send + Sync>);

impl Hook {
    /// Wraps `f`.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// One scripted fault: which requests it matches and how many times it fires.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// Only this method, if set.
    pub method: Option<Method>,
    /// Only paths containing this text, if set.
    pub path_contains: Option<String>,
    /// Let this many matching requests through first.
    pub skip: u32,
    /// Fire this many times, then retire (`u32::MAX` for ever).
    pub times: u32,
    /// Fire only before this instant, if set.
    pub until: Option<Instant>,
    /// What to do.
    pub action: FaultAction,
}

impl FaultRule {
    /// A rule matching every request, firing once.
    pub fn any(action: FaultAction) -> Self {
        Self {
            method: None,
            path_contains: None,
            skip: 0,
            times: 1,
            until: None,
            action,
        }
    }

    /// Fires on every matching request during the next `span` (a limit that holds for a
    /// while, whatever the client's retry count).
    pub fn during(mut self, span: Duration) -> Self {
        self.until = Some(Instant::now() + span);
        self.times = u32::MAX;
        self
    }

    /// Restricts the rule to paths containing `fragment`.
    pub fn on_path(mut self, fragment: &str) -> Self {
        self.path_contains = Some(fragment.to_owned());
        self
    }

    /// Restricts the rule to one method.
    pub fn on_method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Lets `n` matching requests through before firing.
    pub fn after(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }

    /// Fires `n` times.
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|frag| path.contains(frag))
            && self.until.is_none_or(|until| Instant::now() < until)
    }
}

/// Shorthand constructors for common faults.
#[derive(Debug)]
pub struct Fault;

impl Fault {
    /// `status` with a JSON `body` and no extra headers.
    pub fn status(status: u16, body: impl Into<String>) -> FaultAction {
        FaultAction::Status {
            status,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// 429 with a `Retry-After: secs` header (or none when `None`).
    pub fn too_many_requests(
        retry_after_secs: Option<u64>,
        body: impl Into<String>,
    ) -> FaultAction {
        FaultAction::Status {
            status: 429,
            body: body.into(),
            headers: retry_after_secs
                .map(|s| vec![("retry-after".to_owned(), s.to_string())])
                .unwrap_or_default(),
        }
    }
}

/// One request as the simulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Raw query string (may be empty).
    pub query: String,
    /// Status the simulator answered.
    pub status: u16,
}

/// The requests a simulator has answered, in order.
#[derive(Debug, Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<RequestRecord>>>);

impl RequestLog {
    fn lock(&self) -> MutexGuard<'_, Vec<RequestRecord>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of requests answered so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no request was answered.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// A copy of every record.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.lock().clone()
    }

    /// Number of requests whose method is `method` and path contains `fragment`.
    pub fn count(&self, method: &str, fragment: &str) -> usize {
        self.lock()
            .iter()
            .filter(|r| r.method == method && r.path.contains(fragment))
            .count()
    }

    /// Requests whose method is not GET (what a dry run must never send).
    pub fn writes(&self) -> Vec<RequestRecord> {
        self.lock()
            .iter()
            .filter(|r| r.method != "GET" && r.method != "HEAD")
            .cloned()
            .collect()
    }

    /// Forgets every record.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn push(&self, record: RequestRecord) {
        self.lock().push(record);
    }
}

#[derive(Debug, Default)]
struct FaultState {
    latency: Duration,
    rules: Vec<(FaultRule, u32)>,
}

/// Shared, mutable fault configuration of one simulator. Clone it freely: all clones are one.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
    log: RequestLog,
}

impl Faults {
    /// No latency, no faults.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds this latency to every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Appends a scripted fault.
    pub fn push(&self, rule: FaultRule) {
        self.lock().rules.push((rule, 0));
    }

    /// Removes every scripted fault (latency stays).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// The request log.
    pub fn log(&self) -> &RequestLog {
        &self.log
    }

    fn take_action(&self, method: &Method, path: &str) -> (Duration, Option<FaultAction>) {
        let mut state = self.lock();
        let latency = state.latency;
        for (rule, seen) in state.rules.iter_mut() {
            if !rule.matches(method, path) {
                continue;
            }
            *seen = seen.saturating_add(1);
            if *seen > rule.skip && *seen - rule.skip <= rule.times {
                return (latency, Some(rule.action.clone()));
            }
        }
        (latency, None)
    }
}

/// Middleware applying `Faults` to every request; install it with
/// `router.layer(axum::middleware::from_fn_with_state(faults.clone(), fault_layer))`.
pub async fn fault_layer(State(faults): State<Faults>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let (latency, action) = faults.take_action(&method, &path);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let response = match action {
        None => next.run(request).await,
        Some(FaultAction::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(request).await
        }
        Some(FaultAction::Run(hook)) => {
            (hook.0)();
            next.run(request).await
        }
        Some(FaultAction::Status {
            status,
            body,
            headers,
        }) => status_response(status, body, &headers),
        Some(FaultAction::ResetConnection) => {
            let chunks: Vec<Result<&'static [u8], std::io::Error>> = vec![
                Ok(b"{\"partial\": ".as_slice()),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "simulated connection reset",
                )),
            ];
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Body::from_stream(stream::iter(chunks)))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
        Some(FaultAction::MalformedJson) => {
            status_response(200, "{\"Resources\": [ {\"id\": ".to_owned(), &[])
        }
        Some(FaultAction::TruncatedBody) => {
            let real = next.run(request).await;
            let (parts, body) = real.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let cut = bytes.slice(..bytes.len() / 2);
            let mut parts = parts;
            parts.headers.remove("content-length");
            Response::from_parts(parts, Body::from(cut))
        }
        Some(FaultAction::PaddedBody(extra)) => {
            let real = next.run(request).await;
            let (mut parts, body) = real.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .unwrap_or_default();
            let mut padded = bytes.to_vec();
            padded.resize(padded.len() + extra, b' ');
            parts.headers.remove("content-length");
            Response::from_parts(parts, Body::from(padded))
        }
        Some(FaultAction::WrongContentType) => {
            let mut real = next.run(request).await;
            real.headers_mut()
                .insert("content-type", HeaderValue::from_static("text/html"));
            real
        }
    };
    faults.log.push(RequestRecord {
        method: method.to_string(),
        path,
        query,
        status: response.status().as_u16(),
    });
    response
}

fn status_response(status: u16, body: String, headers: &[(String, String)]) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, body).into_response();
    let has_type = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if !has_type {
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
    }
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_fires_after_skip_for_times_then_retires() {
        let faults = Faults::new();
        faults.push(
            FaultRule::any(Fault::status(500, "{}"))
                .on_path("/Users")
                .after(1)
                .times(2),
        );
        let hits: Vec<bool> = (0..5)
            .map(|_| {
                faults
                    .take_action(&Method::GET, "/scim/v2/Users")
                    .1
                    .is_some()
            })
            .collect();
        assert_eq!(hits, vec![false, true, true, false, false]);
        assert!(
            faults.take_action(&Method::GET, "/Groups").1.is_none(),
            "other paths are untouched"
        );
    }
}
