//! Graph error answers (`{"error": {"code", "message", "innerError"}}`, concepts/errors.md) as
//! connector errors that name the request, the status and Graph's code and message.

use std::time::Duration;

use idhost_connector_sdk::{ConnectorError, ErrorKind, HttpResponse};
use serde_json::Value;

/// The parts of a Graph error body the connector acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GraphError {
    /// `error.code`, e.g. `Request_ResourceNotFound`, `syncStateNotFound`.
    pub(crate) code: String,
    /// `error.message`.
    pub(crate) message: String,
    /// `error.innerError["request-id"]`, for support cases.
    pub(crate) request_id: Option<String>,
}

impl GraphError {
    /// Reads a Graph error body; anything else becomes an empty code and an excerpt.
    pub(crate) fn parse(body: &Value) -> Self {
        let error = &body["error"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let inner = if error["innerError"].is_object() {
            &error["innerError"]
        } else {
            &error["innererror"]
        };
        Self {
            code: text(&error["code"]),
            message: text(&error["message"]),
            request_id: inner["request-id"].as_str().map(str::to_owned),
        }
    }

    pub(crate) fn from_response(response: &HttpResponse) -> Self {
        match serde_json::from_slice::<Value>(&response.body) {
            Ok(body) if body["error"].is_object() => Self::parse(&body),
            _ => Self {
                message: response.body_excerpt(300),
                ..Self::default()
            },
        }
    }

    /// `code: message (request-id …)`.
    pub(crate) fn detail(&self) -> String {
        let mut out = match (self.code.is_empty(), self.message.is_empty()) {
            (false, false) => format!("{}: {}", self.code, self.message),
            (false, true) => self.code.clone(),
            _ => self.message.clone(),
        };
        if let Some(id) = &self.request_id {
            out.push_str(&format!(" (request-id {id})"));
        }
        out
    }

    /// Whether a write was refused because what it adds is already there: group-post-members.md
    /// answers 400 "One or more added object references already exist for the following
    /// modified properties: 'members'"; an app role assignment that exists answers 400
    /// "Permission being assigned already exists on the object"; a directory role assignment
    /// answers 400/409 "A conflicting object with one or more of the specified property values
    /// is present in the directory" (RoleAssignmentExists).
    pub(crate) fn is_already_exists(&self, status: u16) -> bool {
        let message = self.message.to_ascii_lowercase();
        status == 409
            || (status == 400
                && (message.contains("already exist")
                    || message.contains("conflicting object")
                    || self.code.eq_ignore_ascii_case("RoleAssignmentExists")))
    }

    /// Whether a delta or next link can no longer be used and a full sync must start over.
    ///
    /// delta-query-overview.md documents two shapes: "Synchronization reset" answers `410 Gone`
    /// (with a `Location` holding a fresh initial request), and "Token duration" says an expired
    /// token gets "a 40X-series error with error codes such as `syncStateNotFound`" — any 4xx,
    /// so the status alone cannot decide. errors.md names the codes: `syncStateNotFound`,
    /// `syncStateInvalid`, `resyncRequired`. 401, 403 and 429 are about the token, permissions
    /// and throttling, never the link, whatever code they carry.
    pub(crate) fn is_expired_delta(&self, status: u16) -> bool {
        if status == 410 {
            return true;
        }
        (400..500).contains(&status)
            && !matches!(status, 401 | 403 | 429)
            && ["syncStateNotFound", "syncStateInvalid", "resyncRequired"]
                .iter()
                .any(|c| self.code.eq_ignore_ascii_case(c))
    }

    /// `x-ms-throttle-scope` and `x-ms-throttle-information` of a throttled answer, for the
    /// error message: which limit was hit (throttling-limits.md, "Throttled responses").
    pub(crate) fn throttle_detail(headers: &[(String, String)]) -> Option<String> {
        let find = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        match (
            find("x-ms-throttle-scope"),
            find("x-ms-throttle-information"),
        ) {
            (None, None) => None,
            (scope, info) => Some(format!(
                "throttle scope {}, reason {}",
                scope.unwrap_or("(not given)"),
                info.unwrap_or("(not given)")
            )),
        }
    }
}

/// The connector error for a non-2xx Graph answer; a throttled one also names the limit.
pub(crate) fn graph_error(response: &HttpResponse) -> ConnectorError {
    let parsed = GraphError::from_response(response);
    let kind = ErrorKind::from_status(response.status).unwrap_or(ErrorKind::Internal);
    let mut detail = parsed.detail();
    if response.status == 429
        && let Some(throttle) = GraphError::throttle_detail(&response.headers)
    {
        detail.push_str(&format!(" ({throttle})"));
    }
    response.to_error(kind, &detail)
}

/// The connector error for a failed read inside a `$batch` (whose outer answer was 200);
/// `headers` are the inner response's.
pub(crate) fn inner_error(
    url: &str,
    status: u16,
    body: &Value,
    headers: &[(String, String)],
    retry_after: Option<Duration>,
) -> ConnectorError {
    let parsed = GraphError::parse(body);
    let kind = ErrorKind::from_status(status).unwrap_or(ErrorKind::Internal);
    let throttle = GraphError::throttle_detail(headers)
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    let mut err = ConnectorError::new(
        kind,
        format!(
            "GET {url} (inside $batch) answered {status}: {}{throttle}",
            parsed.detail()
        ),
    )
    .with_status(status);
    if kind == ErrorKind::RateLimited {
        err.retry_after = retry_after;
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: body.as_bytes().to_vec(),
            dry_run: false,
            request_line: "POST https://graph.microsoft.com/v1.0/groups/g1/members/$ref".into(),
        }
    }

    #[test]
    fn graph_error_body_becomes_the_message() {
        let err = graph_error(&response(
            403,
            r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation.","innerError":{"date":"2024-01-01T00:00:00","request-id":"r-1"}}}"#,
        ));
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert_eq!(err.status, Some(403));
        assert!(err.message.contains("/groups/g1/members/$ref answered 403"));
        assert!(
            err.message
                .contains("Authorization_RequestDenied: Insufficient privileges")
        );
        assert!(err.message.contains("request-id r-1"));
    }

    #[test]
    fn already_exists_and_expired_delta_are_recognised() {
        let member = GraphError::from_response(&response(
            400,
            r#"{"error":{"code":"Request_BadRequest","message":"One or more added object references already exist for the following modified properties: 'members'."}}"#,
        ));
        assert!(member.is_already_exists(400));
        assert!(!member.is_expired_delta(400));
        let expired = GraphError::from_response(&response(
            400,
            r#"{"error":{"code":"syncStateNotFound","message":"The sync state cannot be found."}}"#,
        ));
        assert!(expired.is_expired_delta(400));
        assert!(GraphError::default().is_expired_delta(410));
        // "a 40X-series error": any 4xx with a resync code, but never 401/403/429.
        for status in [404, 409, 412] {
            assert!(expired.is_expired_delta(status), "{status}");
        }
        for status in [401, 403, 429, 500] {
            assert!(!expired.is_expired_delta(status), "{status}");
        }
        assert!(!GraphError::default().is_expired_delta(400));
        let plain = GraphError::from_response(&response(502, "<html>bad gateway</html>"));
        assert!(plain.detail().contains("bad gateway"));
    }
}
