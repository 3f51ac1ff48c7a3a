//! The PactSafe error envelope, `{"error":{"message","status","name","code"}}`.
//!
//! Source: reference/rate-limits shows the envelope for 429:
//! `{"error":{"message":"Request limit has been reached for the current rate limit period.",
//! "status":429,"name":"RateLimitExceededError","code":…}}`. The reference pages give the other
//! messages as response descriptions: `400 "Bad request."` (retrieve-user-memberships-for-an-account,
//! list-all-site-memberships), `401 "The requester is unauthorized."` (get_sites) and
//! `404 "Not found."` (retrieve-a-site). We reuse those descriptions as `message`.
//!
//! [UNVERIFIED] The `name` of every error other than 429, and the `code` of every error, were not
//! found in the docs. Names follow the documented `RateLimitExceededError` pattern; codes are
//! snake_case strings. Clients must not depend on either.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// One upstream error, rendered as the documented envelope.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: &'static str,
    name: &'static str,
    code: &'static str,
    retry_after_secs: Option<u64>,
    /// Why the simulator refused; logged, not sent (the documented message is fixed text).
    detail: String,
}

impl ApiError {
    /// 400 "Bad request." (reference/retrieve-user-memberships-for-an-account, `400` response).
    pub(crate) fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "Bad request.",
            "BadRequestError",
            "bad_request",
            detail,
        )
    }

    /// 401 "The requester is unauthorized." (reference/get_sites, `401` response).
    pub(crate) fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "The requester is unauthorized.",
            "UnauthorizedError",
            "unauthorized",
            detail,
        )
    }

    /// 404 "Not found." (reference/retrieve-a-site-1, `404` response).
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "Not found.",
            "NotFoundError",
            "not_found",
            detail,
        )
    }

    /// 429 with `Retry-After` in seconds (reference/rate-limits: "The response header will also
    /// contain a Retry-After response header that will specify the number of seconds until the
    /// rate limit quota is reset").
    pub(crate) fn rate_limited(retry_after_secs: u64) -> Self {
        let mut err = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Request limit has been reached for the current rate limit period.",
            "RateLimitExceededError",
            "rate_limit_exceeded",
            "over the rate limit",
        );
        err.retry_after_secs = Some(retry_after_secs.max(1));
        err
    }

    fn new(
        status: StatusCode,
        message: &'static str,
        name: &'static str,
        code: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            message,
            name,
            code,
            retry_after_secs: None,
            detail: detail.into(),
        }
    }

    /// The HTTP status (used by tests inside the crate).
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        tracing::debug!(status = self.status.as_u16(), detail = %self.detail, "clickwrap sim refused a request");
        let body = json!({
            "error": {
                "message": self.message,
                "status": self.status.as_u16(),
                "name": self.name,
                "code": self.code,
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(secs));
        }
        response
    }
}
