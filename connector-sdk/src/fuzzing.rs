//! Fuzzing support: the entry points of the SDK's own fuzz targets (`fuzz/fuzz_targets/`), and
//! what the connector crates' entry points share: a host that answers every upstream request
//! from a script made of the fuzzer's bytes, a way to run a connector future without a runtime,
//! and the replay of a stored corpus that `cargo test` runs.
//!
//! Not part of the SDK's API (hidden from its docs; may change in any release).
//!
//! # Scripts
//!
//! A connector's entry point feeds its real code (listing, paging, provisioning, error mapping)
//! with upstream answers taken from the input, one answer per request, in the order the
//! connector sends them:
//!
//! ```text
//! TOKEN users https://graph.microsoft.com/v1.0/users?$skiptoken=x   (optional first line)
//! {"value": [...], "@odata.nextLink": "..."}                           (answer 1: 200, JSON)
//! %%
//! HTTP 429                                                             (answer 2: a status line,
//! retry-after: 3                                                        then headers up to an
//!                                                                       empty line, then body)
//! {"error": {"code": "TooManyRequests"}}
//! ```
//!
//! Answers are separated by a line `%%`. An answer that does not start with `HTTP <status>` is
//! a 200 whose body is the whole answer, so a plain JSON file (an upstream's documented
//! example) is a script of one answer. The optional `TOKEN` line is a page token an entry point
//! may resume a listing from. Once the answers run out (or after [`MAX_REQUESTS`]) a request
//! fails as if the upstream were unreachable, so every listing ends. Token requests (a POST to
//! a URL ending in `/token`) are answered with a fixed access token without using an answer;
//! [`sdk_response`] fuzzes the token answer itself.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use secrecy::SecretString;

use crate::context::{Context, SourceInfo};
use crate::error::ConnectorError;
use crate::http::{HttpRequest, HttpResponse, parse_retry_after, url_with_segments};
use crate::model::{EntitlementRef, GrantRef, ResourceRef};
use crate::oauth::{TokenCache, TokenRequestStyle, TokenSource};
use crate::services::{HostServices, LogRecord};

/// Most requests one scripted host answers; later ones fail.
pub const MAX_REQUESTS: usize = 64;

/// Separates the answers of a script.
const SEPARATOR: &[u8] = b"\n%%\n";

/// A script: an optional page token and the upstream's answers, in order.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// The `TOKEN` line's text, if the script starts with one.
    pub token: Option<String>,
    /// The answers.
    pub answers: Vec<Answer>,
}

/// One scripted upstream answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers (names lowercase).
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Answer {
    /// A 200 with a JSON body.
    pub fn ok(body: &[u8]) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.to_vec(),
        }
    }

    fn parse(part: &[u8]) -> Self {
        let Some(rest) = part.strip_prefix(b"HTTP ") else {
            return Self::ok(part);
        };
        let (status_line, mut rest) = split_line(rest);
        let status = String::from_utf8_lossy(status_line)
            .split_whitespace()
            .next()
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(200);
        let mut headers = Vec::new();
        while !rest.is_empty() {
            let (line, after) = split_line(rest);
            rest = after;
            if line.is_empty() || line == b"\r" {
                break;
            }
            let line = String::from_utf8_lossy(line);
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        Self {
            status,
            headers,
            body: rest.to_vec(),
        }
    }

    /// This answer to `request_line`.
    pub fn to_response(&self, request_line: &str) -> HttpResponse {
        HttpResponse {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.clone(),
            dry_run: false,
            request_line: request_line.to_owned(),
        }
    }
}

fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

impl Script {
    /// Reads a script (see the module docs); any bytes are a script.
    pub fn parse(data: &[u8]) -> Self {
        let mut rest = data;
        let mut token = None;
        if let Some(after) = rest.strip_prefix(b"TOKEN ") {
            let (line, tail) = split_line(after);
            token = Some(String::from_utf8_lossy(line).into_owned());
            rest = tail;
        }
        let mut answers = Vec::new();
        loop {
            match find(rest, SEPARATOR) {
                Some(at) => {
                    answers.push(Answer::parse(&rest[..at]));
                    rest = &rest[at + SEPARATOR.len()..];
                }
                None => {
                    answers.push(Answer::parse(rest));
                    break;
                }
            }
        }
        Self { token, answers }
    }

    /// The first answer's body as JSON, if it is JSON.
    pub fn first_json(&self) -> Option<serde_json::Value> {
        self.answers
            .first()
            .and_then(|a| serde_json::from_slice(&a.body).ok())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Host services that answer requests from a [`Script`]: no network, no waiting (sleeps end at
/// once), state in memory, logs dropped.
#[derive(Debug)]
pub struct ScriptedHost {
    answers: Vec<Answer>,
    fixed_token: bool,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: usize,
    requests: Vec<String>,
    state: BTreeMap<String, String>,
}

impl ScriptedHost {
    /// A host answering with `script`'s answers, and token requests with a fixed token.
    pub fn new(script: &Script) -> Arc<Self> {
        Self::answering(script.answers.clone(), true)
    }

    /// A host answering with `answers`; with `fixed_token` false, token requests use answers
    /// like any other request.
    pub fn answering(answers: Vec<Answer>, fixed_token: bool) -> Arc<Self> {
        Arc::new(Self {
            answers,
            fixed_token,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// Sets connector state, as a previous sync would have left it.
    pub fn set_state(&self, key: &str, value: &str) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.state.insert(key.to_owned(), value.to_owned());
        }
    }

    /// A connector context over this host.
    pub fn context(self: &Arc<Self>, info: SourceInfo) -> Context {
        Context::new(self.clone(), info)
    }

    /// `METHOD url` of every request answered (token requests included), in order.
    pub fn requests(&self) -> Vec<String> {
        self.inner
            .lock()
            .map(|i| i.requests.clone())
            .unwrap_or_default()
    }

    /// How many scripted answers were used.
    pub fn answers_used(&self) -> usize {
        self.inner.lock().map(|i| i.next).unwrap_or_default()
    }

    fn answer(&self, request: &HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let line = format!("{} {}", request.method, request.url);
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| ConnectorError::internal("the scripted host's lock is poisoned"))?;
        if inner.requests.len() >= MAX_REQUESTS {
            return Err(ConnectorError::unavailable(format!(
                "{line}: the fuzz script allows {MAX_REQUESTS} requests"
            )));
        }
        inner.requests.push(line.clone());
        if self.fixed_token && request.method == "POST" && request.url.ends_with("/token") {
            let body = br#"{"token_type":"Bearer","access_token":"fuzz-token","expires_in":3600}"#;
            return Ok(Answer::ok(body).to_response(&line));
        }
        let Some(answer) = self.answers.get(inner.next) else {
            return Err(ConnectorError::unavailable(format!(
                "{line}: the fuzz script has no more answers"
            )));
        };
        inner.next += 1;
        Ok(answer.to_response(&line))
    }
}

impl HostServices for ScriptedHost {
    fn http(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, ConnectorError>> {
        let answer = self.answer(&request);
        Box::pin(async move { answer })
    }

    fn log(&self, _record: LogRecord) {}

    fn state_get(&self, key: &str) -> Option<String> {
        self.inner.lock().ok()?.state.get(key).cloned()
    }

    fn state_set(&self, key: &str, value: Option<String>) {
        if let Ok(mut inner) = self.inner.lock() {
            match value {
                Some(v) => inner.state.insert(key.to_owned(), v),
                None => inner.state.remove(key),
            };
        }
    }

    fn sleep(&self, _duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Runs a connector future to completion on the calling thread (a scripted host never waits).
pub fn block_on<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

/// Runs `run` on every file of `dir` (a stored fuzz corpus), in name order, and returns how many
/// it ran. A missing or unreadable directory is an error, so a replay test cannot pass on an
/// empty corpus by accident.
pub fn replay_corpus(dir: &Path, mut run: impl FnMut(&[u8])) -> std::io::Result<usize> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.is_file());
    files.sort();
    for file in &files {
        let data = std::fs::read(file)?;
        // Shown by the test harness when `run` panics: which stored input failed.
        eprintln!("replaying {}", file.display());
        run(&data);
    }
    Ok(files.len())
}

/// The replay test of one target: every stored input of `corpus/<target>` runs through `run`
/// (the fuzz target's own entry point), and at least one must exist. Panics, as a test does,
/// on an unreadable or empty corpus and on whatever `run` panics on.
pub fn assert_corpus_runs_clean(corpus: &Path, target: &str, run: impl FnMut(&[u8])) {
    let dir = corpus.join(target);
    let replayed = replay_corpus(&dir, run)
        .unwrap_or_else(|err| panic!("cannot read the corpus {}: {err}", dir.display()));
    assert!(replayed > 0, "no stored inputs in {}", dir.display());
}

/// Target `sdk_response`: the SDK's handling of an upstream answer, which every connector
/// parser receives: JSON decoding (`HttpResponse::json`), status mapping, error construction
/// with a body excerpt, `Retry-After` parsing, and the OAuth token answer (`TokenCache`).
/// Never panics, whatever the bytes.
///
/// Input: two bytes of status, one byte giving the length of the `Retry-After` value, that
/// value, then the body.
pub fn sdk_response(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let status = 100 + u16::from_le_bytes([data[0], data[1]]) % 500;
    let split = usize::from(data[2]).min(data.len() - 3);
    let (header, body) = data[3..].split_at(split);
    let retry = String::from_utf8_lossy(header).into_owned();
    let response = HttpResponse {
        status,
        headers: vec![
            ("retry-after".to_owned(), retry.clone()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ],
        body: body.to_vec(),
        dry_run: false,
        request_line: "GET https://upstream.invalid/v1/users".to_owned(),
    };
    let _ = parse_retry_after(&retry);
    let _ = response.retry_after();
    let _ = response.json::<serde_json::Value>();
    let excerpt = response.body_excerpt(200);
    assert!(excerpt.chars().count() <= 201, "{excerpt:?}");
    let _ = response.error_kind();
    if let Some(kind) = response.error_kind() {
        let _ = response.to_error(kind, "fuzz");
    }
    let _ = response.clone().error_for_status();
    token_answer(&response);
}

/// The same answer to a client-credentials token request, in each request style.
fn token_answer(response: &HttpResponse) {
    let answer = Answer {
        status: response.status,
        headers: response.headers.clone(),
        body: response.body.clone(),
    };
    for style in [TokenRequestStyle::Form, TokenRequestStyle::Json] {
        let host = ScriptedHost::answering(vec![answer.clone()], false);
        let ctx = host.context(SourceInfo::default());
        let cache = TokenCache::new(
            ctx.http().clone(),
            TokenSource::ClientCredentials {
                token_url: "https://upstream.invalid/oauth/token".to_owned(),
                client_id: "fuzz-client".to_owned(),
                client_secret: SecretString::from("fuzz-secret".to_owned()),
                scope: Some("read".to_owned()),
                style,
            },
        );
        if let Err(err) = block_on(cache.token()) {
            // The error names the endpoint, never the credentials.
            assert!(!err.message.contains("fuzz-secret"), "{}", err.message);
        }
    }
}

/// Target `model_refs`: Baton-style id parsing (`ResourceRef`, `EntitlementRef`, `GrantRef`),
/// which provisioning applies to ids typed on the command line: never panics, and a parsed ref
/// names the same id.
pub fn model_refs(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(r) = ResourceRef::parse(text) {
        assert_eq!(r.to_id(), text, "{r:?}");
    }
    let _ = EntitlementRef::parse(text);
    let _ = GrantRef::parse(text);
}

/// Target `id_url`: ids typed on a command line (or decoded from a host's call) parsed the way
/// provisioning parses them and placed in an upstream URL the way connectors place them. A
/// parsed id is never refused by the URL builder; its URL keeps the base's scheme, host and
/// path, gains exactly one path segment per id part, each decoding back to that part, and no
/// query or fragment; and any raw text either is refused or lands as one segment.
pub fn id_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(base) = url::Url::parse("https://na1.ironcladapp.com/scim/v2") else {
        return;
    };
    // Every character of an id belongs to one of its parts, so a separator, whitespace or a
    // control character anywhere (CR/LF that a URL parser would drop) refuses every form.
    if text.contains(['/', '\\']) || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        assert!(
            ResourceRef::try_parse(text).is_err(),
            "{text:?} parsed as a resource id"
        );
        assert!(
            EntitlementRef::try_parse(text).is_err(),
            "{text:?} parsed as an entitlement id"
        );
        assert!(
            GrantRef::try_parse(text).is_err(),
            "{text:?} parsed as a grant id"
        );
    }
    if let Ok(r) = ResourceRef::try_parse(text) {
        assert_lands(&base, &["Users", &r.rtype, &r.id]);
    }
    if let Ok(e) = EntitlementRef::try_parse(text) {
        assert_lands(&base, &[&e.resource.rtype, &e.resource.id, &e.slug]);
    }
    if let Ok(g) = GrantRef::try_parse(text) {
        let e = &g.entitlement;
        assert_lands(
            &base,
            &[
                &e.resource.rtype,
                &e.resource.id,
                &e.slug,
                &g.principal.rtype,
                &g.principal.id,
            ],
        );
    }
    if url_with_segments(&base, &["Groups", text]).is_ok() {
        assert_lands(&base, &["Groups", text]);
    }
}

fn assert_lands(base: &url::Url, parts: &[&str]) {
    let url = match url_with_segments(base, parts) {
        Ok(url) => url,
        Err(err) => panic!("a validated id was refused in a URL: {parts:?}: {err}"),
    };
    assert_eq!(url.scheme(), base.scheme(), "{url}");
    assert_eq!(url.host_str(), base.host_str(), "{url}");
    assert_eq!(url.port(), base.port(), "{url}");
    assert!(url.query().is_none() && url.fragment().is_none(), "{url}");
    let reparsed = url::Url::parse(url.as_str()).map(|u| u.to_string());
    assert_eq!(reparsed.as_deref(), Ok(url.as_str()), "not stable: {url}");
    let base_segments: Vec<&str> = base.path_segments().into_iter().flatten().collect();
    let segments: Vec<&str> = url.path_segments().into_iter().flatten().collect();
    assert_eq!(
        segments.len(),
        base_segments.len() + parts.len(),
        "{parts:?} → {url}"
    );
    assert_eq!(&segments[..base_segments.len()], base_segments.as_slice());
    for (segment, part) in segments[base_segments.len()..].iter().zip(parts) {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
        assert_eq!(&decoded, part, "{url}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_answers_with_status_headers_and_token() {
        let script = Script::parse(
            b"TOKEN users 17\n{\"a\":1}\n%%\nHTTP 429 Too Many\nRetry-After: 3\n\n{\"b\":2}\n%%\n",
        );
        assert_eq!(script.token.as_deref(), Some("users 17"));
        assert_eq!(script.answers.len(), 3);
        assert_eq!(script.answers[0], Answer::ok(b"{\"a\":1}"));
        assert_eq!(script.answers[1].status, 429);
        assert_eq!(
            script.answers[1].headers,
            [("retry-after".to_owned(), "3".to_owned())]
        );
        assert_eq!(script.answers[1].body, b"{\"b\":2}");
        assert_eq!(script.answers[2].body, b"");
        assert_eq!(Script::parse(b"").answers, [Answer::ok(b"")]);
    }

    #[test]
    fn the_scripted_host_answers_in_order_then_fails() {
        let host = ScriptedHost::new(&Script::parse(b"1\n%%\n2"));
        let ctx = host.context(SourceInfo::default());
        let get = |url: &str| block_on(ctx.http().get(url).send());
        assert_eq!(
            get("https://x.invalid/a").map(|r| r.body).ok(),
            Some(b"1".to_vec())
        );
        let token = block_on(ctx.http().post("https://x.invalid/oauth/token").send());
        assert!(token.is_ok_and(|r| r.text().contains("fuzz-token")));
        assert_eq!(
            get("https://x.invalid/b").map(|r| r.body).ok(),
            Some(b"2".to_vec())
        );
        assert!(get("https://x.invalid/c").is_err());
        assert_eq!(host.answers_used(), 2);
        assert_eq!(host.requests().len(), 4);
    }
}
