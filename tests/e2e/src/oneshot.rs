//! Driving a simulator's router in process, without a socket (axum's `examples/testing`): one
//! request through `tower::ServiceExt::oneshot`, the answer read whole. Every simulator's own
//! tests use this one harness.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

/// One answer of a router.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// The body as JSON: `Null` when it is empty or not JSON (see [`Answer::text`]).
    pub body: Value,
    /// The body as text.
    pub text: String,
}

impl Answer {
    /// Header `name` as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON, or (when it is not JSON) as a JSON string of its text; `Null` when
    /// empty.
    pub fn json_or_text(&self) -> Value {
        match &self.body {
            Value::Null if !self.text.is_empty() => Value::String(self.text.clone()),
            body => body.clone(),
        }
    }
}

/// Sends `request` through `router` and reads the whole answer.
pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = match router.clone().oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .unwrap_or_else(|e| panic!("reading the answer body: {e}"))
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
        text,
    }
}
