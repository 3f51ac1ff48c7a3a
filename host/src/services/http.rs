//! Upstream HTTP for plugins: one reqwest client (rustls), the host's one retry policy
//! ([`crate::retry`], whose module docs give the rules in order), rate budgets, dry-run
//! interception, the plain-http guard and redaction, applied once here for every connector.
//!
//! Budgets are token buckets (governor), or, for budgets a connector marks `windowed`, a
//! sliding window that never admits more than the allowance within one period
//! ([`super::window`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use idhost_connector_sdk::http::{Budget, HttpRequest, HttpResponse};
use idhost_connector_sdk::{ConnectorError, ErrorKind};

use super::window::WindowLimiter;
use crate::metrics::SourceMetrics;
use crate::redact::{Redactor, credential_of};
use crate::retry::{Attempt, Decision, Outcome, RetryPolicy, Stop};

/// Largest response body accepted; beyond it the request fails instead of eating memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Retry and timeout settings.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    /// When and how often to try again, and the most one request may wait in all.
    pub retry: RetryPolicy,
    /// Timeout of one attempt.
    pub timeout: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// One budget's pacing.
#[derive(Debug, Clone)]
enum Limiter {
    Bucket(Arc<DefaultDirectRateLimiter>),
    Window(Arc<WindowLimiter>),
}

impl Limiter {
    async fn acquire(&self, cost: NonZeroU32) {
        match self {
            Limiter::Bucket(limiter) => {
                // A cost above the burst could never be granted: it takes the whole burst.
                if limiter.until_n_ready(cost).await.is_err() {
                    limiter.until_ready().await;
                }
            }
            Limiter::Window(limiter) => limiter.acquire(cost.get()).await,
        }
    }
}

/// Set by `idhost check --offline`: this process sends no HTTP request at all.
static NO_NETWORK: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on every request of every source fails before it is sent (`check --offline`
/// opens connectors, which must not reach their upstream).
pub fn forbid_network() {
    NO_NETWORK.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// A write `--dry-run` intercepted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InterceptedRequest {
    /// Method.
    pub method: String,
    /// URL.
    pub url: String,
    /// Body (redacted).
    pub body: String,
}

/// The HTTP service of one source.
#[derive(Debug)]
pub struct HostHttp {
    client: reqwest::Client,
    policy: HttpPolicy,
    budgets: Mutex<HashMap<String, Limiter>>,
    dry_run: bool,
    allow_insecure_http: bool,
    redactor: Redactor,
    metrics: Arc<SourceMetrics>,
    intercepted: Mutex<Vec<InterceptedRequest>>,
    /// Method and final status of the last write sent (a DELETE answered 404 was already done).
    last_write: Mutex<Option<(String, u16)>>,
}

/// Builds the one shared reqwest client.
pub fn build_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(concat!("idhost/", env!("CARGO_PKG_VERSION")))
        // Never follow a redirect to another origin: a token request must not carry its
        // credentials to a host the config did not name.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt.previous().last().is_some_and(|prev| {
                prev.scheme() == attempt.url().scheme()
                    && prev.host_str() == attempt.url().host_str()
                    && prev.port_or_known_default() == attempt.url().port_or_known_default()
            });
            if same_origin && attempt.previous().len() < 5 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .pool_max_idle_per_host(64)
        .build()
}

/// The error for a redirect the client's policy did not follow (to another origin, or past the
/// fifth hop): it says so and where it pointed (its origin only: a query may hold a token),
/// instead of handing the connector a bodiless 3xx.
fn refused_redirect(response: &reqwest::Response, line: &str) -> Option<ConnectorError> {
    let status = response.status();
    if !status.is_redirection() || status == reqwest::StatusCode::NOT_MODIFIED {
        return None;
    }
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)?
        .to_str()
        .ok()?;
    let target = response.url().join(location).ok()?;
    let origin = format!(
        "{}://{}{}",
        target.scheme(),
        target.host_str().unwrap_or(""),
        target.port().map(|p| format!(":{p}")).unwrap_or_default()
    );
    let here = response.url();
    let same_origin = here.scheme() == target.scheme()
        && here.host_str() == target.host_str()
        && here.port_or_known_default() == target.port_or_known_default();
    let why = if same_origin {
        "more redirects than the 5 idhost follows".to_owned()
    } else {
        format!(
            "a redirect to another origin ({origin}), which idhost does not follow so that credentials never reach a host the config did not name; point the source's URL at {origin} if that is the upstream"
        )
    };
    Some(ConnectorError::new(
        ErrorKind::Internal,
        format!("{line} answered {}: refused {why}", status.as_u16()),
    ))
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

impl HostHttp {
    /// The service for one source.
    pub fn new(
        client: reqwest::Client,
        policy: HttpPolicy,
        dry_run: bool,
        allow_insecure_http: bool,
        redactor: Redactor,
        metrics: Arc<SourceMetrics>,
    ) -> Self {
        Self {
            client,
            policy,
            budgets: Mutex::new(HashMap::new()),
            dry_run,
            allow_insecure_http,
            redactor,
            metrics,
            intercepted: Mutex::new(Vec::new()),
            last_write: Mutex::new(None),
        }
    }

    /// Method and status of the last write this service sent, if any.
    pub fn last_write(&self) -> Option<(String, u16)> {
        self.last_write.lock().ok().and_then(|w| w.clone())
    }

    /// The writes `--dry-run` intercepted, in order.
    pub fn intercepted(&self) -> Vec<InterceptedRequest> {
        self.intercepted
            .lock()
            .map(|i| i.clone())
            .unwrap_or_default()
    }

    fn limiter(&self, budget: &Budget) -> Option<Limiter> {
        let requests = NonZeroU32::new(budget.requests)?;
        let period = Duration::from_millis(budget.period_ms.max(1));
        let mut budgets = self.budgets.lock().ok()?;
        let limiter = budgets.entry(budget.name.clone()).or_insert_with(|| {
            if budget.windowed {
                return Limiter::Window(Arc::new(WindowLimiter::new(requests.get(), period)));
            }
            // Replenish evenly over the period, bursting up to the whole allowance.
            let quota = Quota::with_period(period / requests.get())
                .unwrap_or_else(|| Quota::per_second(requests))
                .allow_burst(requests);
            Limiter::Bucket(Arc::new(RateLimiter::direct(quota)))
        });
        Some(limiter.clone())
    }

    /// Sends `request` under the policy. `Ok` for every HTTP status the policy gives up on;
    /// `Err` only for transport failures, refusals before sending, and oversized bodies.
    pub async fn send(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        for (name, value) in &request.headers {
            if name.eq_ignore_ascii_case("authorization")
                && let Some(credential) = credential_of(value)
            {
                self.redactor.add(credential.to_owned());
            }
        }
        let url = url::Url::parse(&request.url).map_err(|e| {
            ConnectorError::invalid_input(format!(
                "{} {} is not a valid URL: {e}",
                request.method,
                self.redactor.redact(&request.url)
            ))
        })?;
        let line = format!("{} {}", request.method, self.redactor.redact(url.as_str()));
        if NO_NETWORK.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ConnectorError::unavailable(format!(
                "{line}: not sent (offline check: no request leaves this process)"
            )));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) || self.allow_insecure_http => {}
            "http" => {
                return Err(ConnectorError::invalid_input(format!(
                    "{line}: refusing plain http:// to a non-loopback host; use https://, or set `allow_insecure_http = true` in the source's settings"
                )));
            }
            other => {
                return Err(ConnectorError::invalid_input(format!(
                    "{line}: unsupported URL scheme `{other}`"
                )));
            }
        }
        if self.dry_run && request.is_write() {
            let body = self
                .redactor
                .redact(&String::from_utf8_lossy(&request.body));
            if let Ok(mut i) = self.intercepted.lock() {
                i.push(InterceptedRequest {
                    method: request.method.clone(),
                    url: self.redactor.redact(url.as_str()),
                    body,
                });
            }
            tracing::info!(request = %line, "dry run: not sent");
            return Ok(HttpResponse {
                status: 202,
                headers: Vec::new(),
                body: Vec::new(),
                dry_run: true,
                request_line: line,
            });
        }
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| ConnectorError::invalid_input(format!("{line}: bad HTTP method")))?;
        let policy = RetryPolicy {
            max_attempts: request
                .options
                .max_attempts
                .unwrap_or(self.policy.retry.max_attempts)
                .max(1),
            ..self.policy.retry.clone()
        };
        let timeout = request
            .options
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.policy.timeout);
        let limiter = request.options.budget.as_ref().and_then(|b| {
            let cost = NonZeroU32::new(request.options.cost.unwrap_or(1).min(b.requests))?;
            Some((self.limiter(b)?, cost))
        });
        let mut attempt = Attempt {
            number: 0,
            waited: Duration::ZERO,
            idempotent: request.is_idempotent(),
            rate_window: request.options.rate_window_ms.map(Duration::from_millis),
        };
        loop {
            attempt.number += 1;
            if let Some((limiter, cost)) = &limiter {
                limiter.acquire(*cost).await;
            }
            let mut builder = self
                .client
                .request(method.clone(), url.clone())
                .timeout(timeout);
            for (k, v) in &request.headers {
                builder = builder.header(k.as_str(), v.as_str());
            }
            if !request.body.is_empty() {
                builder = builder.body(request.body.clone());
            }
            let started = std::time::Instant::now();
            match builder.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    self.metrics.record_request(status, started.elapsed());
                    if request.is_write()
                        && let Ok(mut last) = self.last_write.lock()
                    {
                        *last = Some((request.method.clone(), status));
                    }
                    let outcome = Outcome::from_headers(status, |name| {
                        response.headers().get(name).and_then(|v| v.to_str().ok())
                    });
                    match policy.decide(&attempt, &outcome) {
                        Decision::Retry(wait) => {
                            self.metrics.record_retry();
                            tracing::debug!(request = %line, status, attempt = attempt.number, wait_ms = wait.as_millis() as u64, "retrying");
                            drop(response);
                            tokio::time::sleep(wait).await;
                            attempt.waited += wait;
                        }
                        Decision::Stop(stop) => {
                            if status == 429 || status == 503 {
                                log_stop(&line, status, &stop, &policy);
                            }
                            return self.read(response, line).await;
                        }
                    }
                }
                Err(err) => {
                    self.metrics.record_transport_error();
                    let outcome = Outcome::Transport {
                        connected: !err.is_connect(),
                    };
                    match policy.decide(&attempt, &outcome) {
                        Decision::Retry(wait) => {
                            self.metrics.record_retry();
                            tracing::debug!(request = %line, error = %self.redactor.redact(&err.to_string()), attempt = attempt.number, "retrying after a transport error");
                            tokio::time::sleep(wait).await;
                            attempt.waited += wait;
                        }
                        Decision::Stop(_) => {
                            let what = if err.is_timeout() {
                                format!("timed out after {} ms", timeout.as_millis())
                            } else {
                                error_chain(&err)
                            };
                            return Err(ConnectorError::unavailable(format!(
                                "{line} failed after {} attempt(s): {}",
                                attempt.number,
                                self.redactor.redact(&what)
                            )));
                        }
                    }
                }
            }
        }
    }

    async fn read(
        &self,
        mut response: reqwest::Response,
        line: String,
    ) -> Result<HttpResponse, ConnectorError> {
        let status = response.status().as_u16();
        if let Some(refusal) = refused_redirect(&response, &line) {
            return Err(refusal.with_status(status));
        }
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY_BYTES as u64)
        {
            return Err(ConnectorError::internal(format!(
                "{line} answered {status} with a body over the {MAX_BODY_BYTES}-byte limit"
            )));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY_BYTES {
                        return Err(ConnectorError::internal(format!(
                            "{line} answered {status} with a body over the {MAX_BODY_BYTES}-byte limit"
                        )));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(err) => {
                    self.metrics.record_transport_error();
                    return Err(ConnectorError::new(
                        ErrorKind::Unavailable,
                        format!(
                            "{line} answered {status} but the body broke off: {}",
                            self.redactor.redact(&error_chain(&err))
                        ),
                    )
                    .with_status(status));
                }
            }
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
            dry_run: false,
            request_line: line,
        })
    }
}

/// Says why a throttled request goes back unretried: the connector turns the answer into a
/// `RateLimited` error, and this line tells which bound stopped the waiting.
fn log_stop(line: &str, status: u16, stop: &Stop, policy: &RetryPolicy) {
    match stop {
        Stop::TooLong(wait) => tracing::warn!(
            request = %line, status, wait_secs = wait.as_secs(), max_wait_secs = policy.max_wait.as_secs(),
            "the upstream asked for a longer wait than this source's max_retry_wait_secs allows; not waiting"
        ),
        Stop::Exhausted => {
            tracing::warn!(request = %line, status, "still throttled after every retry the policy allows")
        }
        Stop::NotRetryable => {}
    }
}

/// An error with its causes, `a: b: c`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
