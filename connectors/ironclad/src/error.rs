//! Ironclad's SCIM error answers, turned into connector errors that name the request, the
//! status, the SCIM error keyword and detail, and Ironclad's request id (for support tickets).

use idhost_connector_sdk::prelude::*;
use serde::Deserialize;
use serde_json::Value;

/// A SCIM error body (RFC 7644 §3.12) as Ironclad sends it:
/// `{"schemas":[".."],"status":"404","detail":"Resource 66.. not found"}`.
// SCIM OpenAPI UserResponse400: `status` is "The HTTP status code expressed as a string";
// UserFilterResponse400 spells the schema key `schema`, so neither key is required here.
// 403 and 409 carry `schemas` and `status` only.
#[derive(Debug, Default, Deserialize)]
struct ScimErrorBody {
    #[serde(default, rename = "scimType")]
    scim_type: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// Turns a non-2xx answer into an error of the right kind.
pub(crate) fn upstream_error(response: &HttpResponse) -> ConnectorError {
    let kind = kind_of(response);
    let body: Option<ScimErrorBody> = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .filter(Value::is_object)
        .and_then(|v| serde_json::from_value(v).ok());
    let mut detail = match &body {
        Some(ScimErrorBody {
            scim_type,
            detail: Some(detail),
        }) => match scim_type {
            Some(t) => format!("{t}: {detail}"),
            None => detail.clone(),
        },
        Some(ScimErrorBody {
            scim_type: Some(t),
            detail: None,
        }) => t.clone(),
        Some(_) => default_detail(response.status).to_owned(),
        None if response.body.is_empty() => default_detail(response.status).to_owned(),
        None => response.body_excerpt(200),
    };
    if let Some(id) = response.header("x-ironclad-requestid") {
        detail.push_str(&format!(" (x-ironclad-requestid {id})"));
    }
    // A 429 carries `Retry-After` only when the upstream sent one: clm-api-rate-limits documents
    // none, and the host then backs off exponentially with jitter.
    response.to_error(kind, &detail)
}

/// The kind of a failed answer. A 400 whose scimType is `uniqueness` is a conflict
/// (RFC 7644 §3.12), whatever status a server picks for it.
fn kind_of(response: &HttpResponse) -> ErrorKind {
    let kind = response.error_kind().unwrap_or(ErrorKind::Internal);
    if kind == ErrorKind::InvalidInput {
        let uniqueness = serde_json::from_slice::<ScimErrorBody>(&response.body)
            .ok()
            .and_then(|b| b.scim_type)
            .is_some_and(|t| t.eq_ignore_ascii_case("uniqueness"));
        if uniqueness {
            return ErrorKind::AlreadyExists;
        }
    }
    kind
}

/// What the status means when Ironclad sends no detail (403 and 409 bodies have none).
fn default_detail(status: u16) -> &'static str {
    match status {
        401 => "the access token was refused",
        403 => {
            "forbidden: the token lacks the scope, or the acting user (x-as-user-email / \
                x-as-user-id) is unknown or lacks the permission"
        }
        404 => "not found",
        409 => "the resource already exists",
        429 => "rate limit reached",
        _ => "no detail given",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("x-ironclad-requestid".into(), "req-1".into())],
            body: body.as_bytes().to_vec(),
            dry_run: false,
            request_line: "GET https://na1.ironcladapp.com/scim/v2/Users?filter=x".into(),
        }
    }

    #[test]
    fn scim_errors_name_request_status_type_detail_and_request_id() {
        let err = upstream_error(&response(
            400,
            r#"{"schema":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"400","scimType":"invalidFilter","detail":"No matching schema for attribute: name,lastName"}"#,
        ));
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert_eq!(
            err.message,
            "GET https://na1.ironcladapp.com/scim/v2/Users?filter=x answered 400: invalidFilter: \
             No matching schema for attribute: name,lastName (x-ironclad-requestid req-1)"
        );
        let err = upstream_error(&response(
            403,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"403"}"#,
        ));
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert!(err.message.contains("x-as-user-email"));
        let err = upstream_error(&response(409, r#"{"status":"409"}"#));
        assert_eq!(err.kind, ErrorKind::AlreadyExists);
        let err = upstream_error(&response(502, "<html>bad gateway</html>"));
        assert_eq!(err.kind, ErrorKind::Unavailable);
        assert!(err.message.contains("<html>bad gateway"));
        let err = upstream_error(&response(429, ""));
        assert_eq!(err.kind, ErrorKind::RateLimited);
        let err = upstream_error(&response(
            400,
            r#"{"status":"400","scimType":"uniqueness","detail":"userName taken"}"#,
        ));
        assert_eq!(err.kind, ErrorKind::AlreadyExists);
    }
}
