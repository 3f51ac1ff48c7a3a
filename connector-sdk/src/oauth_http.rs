//! The `oauth2` crate over the host's HTTP service: its custom async client hook
//! ([`oauth2::AsyncHttpClient`]) implemented by [`OAuthHttp`], so every standard exchange
//! (client credentials, refresh, authorization code + PKCE, device code) goes through the one
//! HTTP stack the host gives a plugin — its retries, rate budgets, redaction and `--dry-run`
//! rules — and no second client enters a plugin.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use crate::error::{ConnectorError, ErrorKind};
use crate::http::{Http, HttpRequest, HttpResponse, RequestOptions};

/// An error of the host's HTTP service, as the `oauth2` crate carries it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OAuthHttpError(pub ConnectorError);

/// The host's HTTP service as an `oauth2` HTTP client. It remembers the status and request
/// line of the last answer, so an OAuth error can name them (the crate's error does not).
pub struct OAuthHttp {
    http: Http,
    last: Mutex<Option<(String, u16)>>,
}

impl std::fmt::Debug for OAuthHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthHttp").finish_non_exhaustive()
    }
}

impl OAuthHttp {
    /// The client over `http`.
    pub fn new(http: Http) -> Self {
        Self {
            http,
            last: Mutex::new(None),
        }
    }

    /// `METHOD url` and status of the last answer, if any.
    pub fn last_answer(&self) -> Option<(String, u16)> {
        self.last.lock().ok().and_then(|l| l.clone())
    }

    async fn send(
        &self,
        request: oauth2::HttpRequest,
    ) -> Result<oauth2::HttpResponse, OAuthHttpError> {
        let (parts, body) = request.into_parts();
        let request = HttpRequest {
            method: parts.method.as_str().to_owned(),
            url: parts.uri.to_string(),
            headers: parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body,
            // A token request changes nothing upstream: `--dry-run` lets it through.
            options: RequestOptions {
                write: Some(false),
                ..RequestOptions::default()
            },
        };
        let answer = self.http.send(request).await.map_err(OAuthHttpError)?;
        if let Ok(mut last) = self.last.lock() {
            *last = Some((answer.request_line.clone(), answer.status));
        }
        // The host retried 429 and 5xx already; what is left is an outage, not an OAuth answer.
        if answer.status == 429 || answer.status >= 500 {
            // Summarised like every token-endpoint answer (DESIGN §7.3): an endpoint that
            // echoes the request would print the client secret.
            return Err(OAuthHttpError(crate::oauth::token_error(&answer)));
        }
        into_oauth2(answer)
    }
}

fn into_oauth2(answer: HttpResponse) -> Result<oauth2::HttpResponse, OAuthHttpError> {
    let mut builder = oauth2::http::Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(answer.body).map_err(|e| {
        OAuthHttpError(ConnectorError::internal(format!(
            "{} answered with a response that cannot be read ({e})",
            answer.request_line
        )))
    })
}

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = OAuthHttpError;
    type Future =
        Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// An `oauth2` token-request error as a connector error naming the endpoint, the status and
/// the OAuth error code with its description (never a credential, never the whole body).
pub(crate) fn token_request_error<T>(
    client: &OAuthHttp,
    token_url: &str,
    err: oauth2::RequestTokenError<OAuthHttpError, oauth2::StandardErrorResponse<T>>,
) -> ConnectorError
where
    T: oauth2::ErrorResponseType + std::fmt::Display + 'static,
{
    let (line, status) = client
        .last_answer()
        .unwrap_or_else(|| (format!("POST {token_url}"), 0));
    match err {
        oauth2::RequestTokenError::ServerResponse(answer) => {
            let detail = crate::oauth::refusal_detail(
                answer.error(),
                answer.error_description().map(String::as_str),
            );
            ConnectorError::new(
                ErrorKind::Unauthenticated,
                format!("{line} answered {status}: the token request was refused ({detail})"),
            )
            .with_status(status)
        }
        oauth2::RequestTokenError::Request(OAuthHttpError(err)) => {
            err.context(format!("requesting an access token from {token_url}"))
        }
        oauth2::RequestTokenError::Parse(err, body) => {
            ConnectorError::new(
                crate::oauth::token_error_kind(status),
                format!(
                    "{line} answered {status} with a body that is not a token answer ({err}; {} bytes, not shown: it may echo the request)",
                    body.len()
                ),
            )
            .with_status(status)
        }
        oauth2::RequestTokenError::Other(message) => ConnectorError::internal(format!(
            "requesting an access token from {token_url}: {message}"
        )),
    }
}
