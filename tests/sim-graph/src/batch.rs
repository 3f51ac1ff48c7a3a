//! `POST /v1.0/$batch` (concepts/json-batching.md).
//!
//! - At most 20 requests; ids must be unique (case-insensitively: "Not case-sensitive. Must be
//!   unique in the batch, otherwise, the batch request fails with a 400 error code").
//! - A malformed batch is 400; a parseable one is 200 whatever its requests answered.
//! - "Individual responses might appear in a different order than the requests": the simulator
//!   always shuffles (deterministically), so clients must correlate by `id`.
//! - `dependsOn` orders execution; "If an individual request fails, any request that depends
//!   on that request fails with status code 424 (Failed Dependency)".
//! - "Requests in a batch are evaluated individually against the applicable throttling limits
//!   and if any request exceeds the limits, it fails with a status of 429", with `Retry-After`
//!   in the inner response headers (throttling.md, "Throttling and batching").

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::ids::mix;
use crate::query::{Headers, Query};
use crate::reply::{Body, Reply, error};
use crate::routes::{self, BodyIn, Call};
use crate::state::Shared;

/// json-batching.md, "Batch size limitations".
pub(crate) const MAX_REQUESTS: usize = 20;

struct Inner {
    id: String,
    method: Option<Method>,
    url: String,
    headers: Headers,
    body: Option<Value>,
    depends_on: Vec<String>,
}

fn malformed(message: impl Into<String>) -> Reply {
    error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

fn parse(body: &[u8]) -> Result<Vec<Inner>, Reply> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| malformed("Invalid batch payload format."))?;
    let requests = value
        .get("requests")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("Invalid batch payload format."))?;
    if requests.len() > MAX_REQUESTS {
        return Err(malformed(format!(
            "Number of requests in the batch ({}) exceeds the limit of {MAX_REQUESTS}.",
            requests.len()
        )));
    }
    let mut inner = Vec::with_capacity(requests.len());
    for request in requests {
        let text = |key: &str| request.get(key).and_then(Value::as_str);
        let (Some(id), Some(method), Some(url)) = (text("id"), text("method"), text("url")) else {
            return Err(malformed(
                "Invalid batch payload format: every request needs string 'id', 'method' and 'url'.",
            ));
        };
        let headers = match request.get("headers") {
            None | Some(Value::Null) => Headers::default(),
            Some(Value::Object(map)) => Headers(
                map.iter()
                    .map(|(k, v)| {
                        let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                        (k.to_ascii_lowercase(), v)
                    })
                    .collect(),
            ),
            Some(_) => {
                return Err(malformed(
                    "Invalid batch payload format: 'headers' must be an object.",
                ));
            }
        };
        let depends_on = match request.get("dependsOn") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|d| d.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    malformed("Invalid batch payload format: 'dependsOn' must list ids.")
                })?,
            Some(_) => {
                return Err(malformed(
                    "Invalid batch payload format: 'dependsOn' must be an array.",
                ));
            }
        };
        inner.push(Inner {
            id: id.to_owned(),
            method: Method::from_bytes(method.to_ascii_uppercase().as_bytes()).ok(),
            url: url.to_owned(),
            headers,
            body: request.get("body").filter(|b| !b.is_null()).cloned(),
            depends_on,
        });
    }
    for (i, a) in inner.iter().enumerate() {
        if inner[..i].iter().any(|b| b.id.eq_ignore_ascii_case(&a.id)) {
            return Err(malformed(format!(
                "Batch request ids must be unique; '{}' is used more than once.",
                a.id
            )));
        }
        for dep in &a.depends_on {
            if !inner.iter().any(|b| b.id.eq_ignore_ascii_case(dep)) {
                return Err(malformed(format!(
                    "Request '{}' depends on '{dep}', which is not in the batch.",
                    a.id
                )));
            }
        }
    }
    Ok(inner)
}

fn run_one(shared: &Shared, origin: &str, request: &Inner, request_id: &str) -> Reply {
    let stamp = |reply: Reply| {
        let client = request
            .headers
            .get("client-request-id")
            .unwrap_or(request_id)
            .to_owned();
        reply.stamp(request_id, &client, &shared.date())
    };
    let Some(method) = &request.method else {
        return stamp(error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("Invalid method '{}'.", request.url),
        ));
    };
    if request.url.starts_with("http://") || request.url.starts_with("https://") {
        // "url: Required. The relative resource URL for the individual request."
        return stamp(error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid request URL: batch request URLs must be relative, like '/users'.",
        ));
    }
    if request.body.is_some() && request.headers.get("content-type").is_none() {
        // "When a body is included with the request, the headers object must contain a value
        // for Content-Type." [UNVERIFIED: whether Graph fails the request or the whole batch.]
        return stamp(error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!(
                "Write request id : {} does not contain Content-Type header or body.",
                request.id
            ),
        ));
    }
    let (path, query) = request.url.split_once('?').unwrap_or((&request.url, ""));
    let path = format!("/{}", path.trim_start_matches('/'));
    let path = path
        .strip_prefix("/v1.0")
        .map_or(path.clone(), |p| p.to_owned());
    let body = match &request.body {
        Some(v) => BodyIn::Json(v.clone()),
        None => BodyIn::None,
    };
    let call = Call {
        method,
        path: &path,
        query: Query::parse(query),
        headers: &request.headers,
        body: &body,
        origin,
    };
    if routes::target(&path) == Some(routes::Target::Batch) {
        return stamp(error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "A batch request cannot contain another batch request.",
        ));
    }
    stamp(routes::handle(shared, &call))
}

fn inner_response(id: &str, reply: Reply) -> Value {
    let mut headers = Map::new();
    for (k, v) in &reply.headers {
        if !k.eq_ignore_ascii_case("request-id") && !k.eq_ignore_ascii_case("client-request-id") {
            headers.insert(k.clone(), Value::from(v.as_str()));
        }
    }
    let mut map = Map::new();
    map.insert("id".to_owned(), Value::from(id));
    map.insert("status".to_owned(), Value::from(reply.status.as_u16()));
    map.insert("headers".to_owned(), Value::Object(headers));
    match reply.body {
        Body::Json(v) => {
            map.insert("body".to_owned(), v);
        }
        Body::Text(t) => {
            map.insert("body".to_owned(), Value::from(t));
        }
        Body::Empty => {}
    }
    Value::Object(map)
}

/// Answers a `$batch` request (already authenticated).
pub(crate) fn run(shared: &Shared, origin: &str, body: &[u8]) -> Reply {
    let requests = match parse(body) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let n = requests.len();
    let mut status: Vec<Option<StatusCode>> = vec![None; n];
    let mut answers: Vec<Option<Value>> = vec![None; n];
    // Execute in dependency order; a pass that makes no progress means a cycle.
    while status.iter().any(Option::is_none) {
        let mut progressed = false;
        for i in 0..n {
            if status[i].is_some() {
                continue;
            }
            let deps: Vec<Option<StatusCode>> = requests[i]
                .depends_on
                .iter()
                .map(|d| {
                    requests
                        .iter()
                        .position(|r| r.id.eq_ignore_ascii_case(d))
                        .and_then(|j| status[j])
                })
                .collect();
            if deps.iter().any(Option::is_none) {
                continue;
            }
            let request_id = shared.request_id();
            let failed_dep = deps
                .iter()
                .flatten()
                .any(|s| s.is_client_error() || s.is_server_error());
            let reply = if failed_dep {
                error(
                    StatusCode::FAILED_DEPENDENCY,
                    "FailedDependency",
                    format!(
                        "Request '{}' depends on a request that failed.",
                        requests[i].id
                    ),
                )
                .stamp(&request_id, &request_id, &shared.date())
            } else {
                run_one(shared, origin, &requests[i], &request_id)
            };
            status[i] = Some(reply.status);
            answers[i] = Some(inner_response(&requests[i].id, reply));
            progressed = true;
        }
        if !progressed {
            return malformed("Invalid batch payload format: 'dependsOn' forms a cycle.");
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    let salt = mix(shared.config.seed ^ shared.next_counter().rotate_left(32));
    order.sort_by_key(|i| mix(salt ^ *i as u64));
    if n > 1 && order.iter().enumerate().all(|(k, i)| k == *i) {
        order.rotate_left(1);
    }
    let responses: Vec<Value> = order
        .into_iter()
        .filter_map(|i| answers[i].take())
        .collect();
    Reply::ok(json!({ "responses": responses }))
}
