//! What a Graph call answers, before it becomes an HTTP response or a `$batch` inner response.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// Content type Graph sends with JSON (concepts/json-batching.md, example response headers).
pub(crate) const JSON_TYPE: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

#[derive(Debug, Clone)]
pub(crate) enum Body {
    Json(Value),
    Text(String),
    Empty,
}

/// Status, headers and body of one Graph answer.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    /// Header names as Graph spells them in `$batch` inner responses (`Retry-After`).
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
}

impl Reply {
    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".to_owned(), JSON_TYPE.to_owned())],
            body: Body::Json(body),
        }
    }

    pub(crate) fn ok(body: Value) -> Self {
        Self::json(StatusCode::OK, body)
    }

    pub(crate) fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    pub(crate) fn text(status: StatusCode, text: String) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".to_owned(), "text/plain".to_owned())],
            body: Body::Text(text),
        }
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Fills `innerError` with the ids of the call it answers (errors.md: `request-id`, `date`;
    /// json-batching.md examples add `client-request-id`).
    pub(crate) fn stamp(mut self, request_id: &str, client_request_id: &str, date: &str) -> Self {
        if let Body::Json(Value::Object(map)) = &mut self.body
            && let Some(Value::Object(error)) = map.get_mut("error")
        {
            let inner = error
                .entry("innerError")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(inner) = inner {
                inner.insert("date".to_owned(), Value::from(date));
                inner.insert("request-id".to_owned(), Value::from(request_id));
                inner.insert(
                    "client-request-id".to_owned(),
                    Value::from(client_request_id),
                );
            }
        }
        self.with_header("request-id", request_id)
            .with_header("client-request-id", client_request_id)
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let bytes = match self.body {
            Body::Json(value) => serde_json::to_vec(&value).unwrap_or_default(),
            Body::Text(text) => text.into_bytes(),
            Body::Empty => Vec::new(),
        };
        let mut response = (self.status, bytes).into_response();
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// A Graph error answer: `{"error":{"code","message","innerError":{…}}}` (concepts/errors.md).
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Reply {
    Reply::json(
        status,
        json!({ "error": { "code": code, "message": message.into() } }),
    )
}

pub(crate) fn bad_request(message: impl Into<String>) -> Reply {
    error(StatusCode::BAD_REQUEST, "Request_BadRequest", message)
}

pub(crate) fn unsupported_query(message: impl Into<String>) -> Reply {
    error(StatusCode::BAD_REQUEST, "Request_UnsupportedQuery", message)
}

/// The message Graph uses for a missing object or reference
/// (`Request_ResourceNotFound`, group-post-members.md: "404 Not Found when the object being
/// added doesn't exist").
pub(crate) fn not_found(id: &str) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "Request_ResourceNotFound",
        format!(
            "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
        ),
    )
}

/// The loud answer for anything this simulator does not implement (STYLE.md item 12).
pub(crate) fn unexpected(method: &str, path: &str) -> Reply {
    Reply::text(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("unexpected {method} {path}"),
    )
}

/// For query options the simulator knows Graph has but does not implement itself.
pub(crate) fn not_implemented(what: &str) -> Reply {
    error(
        StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        format!("sim-graph does not implement {what}"),
    )
}
