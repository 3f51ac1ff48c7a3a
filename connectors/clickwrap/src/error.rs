//! Upstream error answers as connector errors.
//!
//! The PactSafe envelope is `{"error": {"message", "status", "name", "code"}}` (the 429 sample of
//! reference/rate-limits; the reference pages give `400 "Bad request."`,
//! `401 "The requester is unauthorized."` and `404 "Not found."` as messages). Bodies that are not
//! that envelope (a proxy's HTML page, an OAuth-style `{"error": "invalid_client"}`) are shown as
//! an excerpt, so the message always says what the upstream answered.

use idhost_connector_sdk::{ConnectorError, ErrorKind, HttpResponse};
use serde_json::Value;

/// A non-2xx answer as an error of the matching kind (401 unauthenticated, 403 permission
/// denied, 404 not found, 429 rate limited with `Retry-After`, 5xx unavailable, other 4xx
/// invalid input), naming the request, the status and the upstream's own words. `hint` adds what
/// the user can do about it.
pub(crate) fn upstream_error(response: &HttpResponse, hint: Option<&str>) -> ConnectorError {
    let kind = response.error_kind().unwrap_or(ErrorKind::Internal);
    let mut detail = describe_body(response);
    if let Some(hint) = hint {
        detail.push_str("; ");
        detail.push_str(hint);
    }
    response.to_error(kind, &detail)
}

fn describe_body(response: &HttpResponse) -> String {
    let parsed: Option<Value> = serde_json::from_slice(&response.body).ok();
    let text = |v: Option<&Value>| -> Option<String> {
        match v? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    };
    match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(Value::Object(err)) => {
            let message = text(err.get("message")).unwrap_or_else(|| "(no message)".to_owned());
            let tags: Vec<String> = [("name", err.get("name")), ("code", err.get("code"))]
                .into_iter()
                .filter_map(|(k, v)| text(v).map(|t| format!("{k} {t}")))
                .collect();
            if tags.is_empty() {
                message
            } else {
                format!("{message} ({})", tags.join(", "))
            }
        }
        Some(Value::String(code)) => {
            match text(parsed.as_ref().and_then(|v| v.get("error_description"))) {
                Some(description) => format!("{code}: {description}"),
                None => code.clone(),
            }
        }
        _ if response.body.is_empty() => "(empty body)".to_owned(),
        _ => response.body_excerpt(300),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn response(status: u16, body: &str, headers: &[(&str, &str)]) -> HttpResponse {
        HttpResponse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.as_bytes().to_vec(),
            dry_run: false,
            request_line: "GET https://api.pactsafe.com/v1.1/accounts/1/members?page=3".to_owned(),
        }
    }

    #[test]
    fn the_documented_envelope_is_parsed_into_the_message() {
        let body = r#"{"error":{"message":"Request limit has been reached for the current rate limit period.","status":429,"name":"RateLimitExceededError","code":42}}"#;
        let err = upstream_error(&response(429, body, &[("retry-after", "9")]), None);
        assert_eq!(err.kind, ErrorKind::RateLimited);
        assert_eq!(err.retry_after, Some(Duration::from_secs(9)));
        assert_eq!(err.status, Some(429));
        assert!(
            err.message
                .contains("GET https://api.pactsafe.com/v1.1/accounts/1/members")
                && err.message.contains("answered 429")
                && err.message.contains("Request limit has been reached")
                && err.message.contains("name RateLimitExceededError, code 42"),
            "{}",
            err.message
        );
    }

    #[test]
    fn other_bodies_are_shown_as_an_excerpt() {
        let err = upstream_error(&response(502, "<html>bad gateway</html>", &[]), None);
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message.contains("<html>bad gateway"), "{}", err.message);
        let err = upstream_error(&response(401, "", &[]), Some("renew the token"));
        assert_eq!(err.kind, ErrorKind::Unauthenticated);
        assert!(
            err.message.ends_with("(empty body); renew the token"),
            "{}",
            err.message
        );
        let oauth = r#"{"error":"invalid_client","error_description":"bad secret"}"#;
        let err = upstream_error(&response(400, oauth, &[]), None);
        assert!(
            err.message.contains("invalid_client: bad secret"),
            "{}",
            err.message
        );
    }
}
