//! Reading many small collections (members of every group on a page, assignments of every app)
//! fast: JSON `$batch` requests of up to 20 reads, a bounded number in flight, every inner
//! `@odata.nextLink` followed, and throttled inner reads retried after their `Retry-After`.
//!
//! Facts from concepts/json-batching.md: at most 20 requests per batch, ids unique within it,
//! responses in any order, the outer answer 200 even when inner requests fail, and each inner
//! request throttled on its own (429 with its own `Retry-After`). Because the host only sees
//! the outer 200, the retry of inner 429/503/504 lives here — bounded, sleeping on the host's
//! timer — while the outer request's own retries stay the host's.
//!
//! With `batch = false` the same scheduler sends one plain GET per read instead (the slow path,
//! kept for comparison and for proxies that refuse `$batch`).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use idhost_connector_sdk::ConnectorError;
use serde_json::{Value, json};

use crate::client::{Graph, read_cost};
use crate::error::{graph_error, inner_error};

/// Most requests Graph accepts in one `$batch`.
pub(crate) const MAX_BATCH: usize = 20;
/// The longest wait honoured for one inner `Retry-After` (the write quota's window is 150 s).
const MAX_WAIT: Duration = Duration::from_secs(150);

/// How reads are sent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadPlan {
    pub(crate) batch: bool,
    pub(crate) concurrency: usize,
    pub(crate) attempts: u32,
}

/// One finished page of one read: which read, its items, and the path of its next page.
struct PageOf {
    read: usize,
    items: Vec<Value>,
    next: Option<String>,
}

/// Reads every collection in `paths` (relative to `/v1.0`, e.g.
/// `/groups/{id}/members?$select=id`) to its last page; the items of `paths[i]` are at `[i]`.
///
/// A collection that answers 404 (the object was deleted after it was listed) reads as empty.
pub(crate) async fn read_all(
    graph: &Graph,
    plan: ReadPlan,
    paths: Vec<String>,
) -> Result<Vec<Vec<Value>>, ConnectorError> {
    let mut out: Vec<Vec<Value>> = vec![Vec::new(); paths.len()];
    let mut queue: VecDeque<(usize, String)> = paths.into_iter().enumerate().collect();
    let mut followed: HashSet<String> = HashSet::new();
    let per_request = if plan.batch { MAX_BATCH } else { 1 };
    let mut in_flight = FuturesUnordered::new();
    loop {
        while in_flight.len() < plan.concurrency.max(1) && !queue.is_empty() {
            let take = per_request.min(queue.len());
            let chunk: Vec<(usize, String)> = queue.drain(..take).collect();
            in_flight.push(run(graph, plan, chunk));
        }
        let Some(done) = in_flight.next().await else {
            break;
        };
        for page in done? {
            if let Some(next) = page.next {
                if !followed.insert(next.clone()) {
                    return Err(ConnectorError::internal(format!(
                        "Graph handed back the same @odata.nextLink twice: {next}"
                    )));
                }
                queue.push_back((page.read, next));
            }
            out[page.read].extend(page.items);
        }
    }
    Ok(out)
}

async fn run(
    graph: &Graph,
    plan: ReadPlan,
    chunk: Vec<(usize, String)>,
) -> Result<Vec<PageOf>, ConnectorError> {
    if plan.batch {
        run_batch(graph, plan.attempts, chunk).await
    } else {
        let mut pages = Vec::with_capacity(chunk.len());
        for (read, path) in chunk {
            pages.push(run_single(graph, read, &path).await?);
        }
        Ok(pages)
    }
}

async fn run_single(graph: &Graph, read: usize, path: &str) -> Result<PageOf, ConnectorError> {
    let response = graph.get(&graph.url(path)).await?;
    if response.status == 404 {
        tracing::debug!(path, "collection is gone (404); reading it as empty");
        return Ok(PageOf {
            read,
            items: Vec::new(),
            next: None,
        });
    }
    if !response.is_success() {
        return Err(graph_error(&response));
    }
    page_of(graph, read, response.json()?)
}

fn page_of(graph: &Graph, read: usize, mut body: Value) -> Result<PageOf, ConnectorError> {
    let next = match graph.next_link(&body)? {
        Some(link) => graph.relative(&link),
        None => None,
    };
    let items = match body.get_mut("value").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    Ok(PageOf { read, items, next })
}

/// One `$batch` of up to 20 reads, re-sending only the throttled ones until all answered or
/// `attempts` are spent.
async fn run_batch(
    graph: &Graph,
    attempts: u32,
    chunk: Vec<(usize, String)>,
) -> Result<Vec<PageOf>, ConnectorError> {
    let mut pending = chunk;
    let mut pages = Vec::with_capacity(pending.len());
    let mut attempt = 1;
    loop {
        let answers = send_batch(graph, &pending).await?;
        let mut throttled = Vec::new();
        let mut wait = Duration::ZERO;
        let mut last_error = None;
        for (slot, (read, path)) in pending.into_iter().enumerate() {
            let Some(answer) = answers.get(slot).and_then(Option::as_ref) else {
                return Err(ConnectorError::internal(format!(
                    "$batch answered without a response for request id {} ({path})",
                    slot + 1
                )));
            };
            let status = answer.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
            let body = answer.get("body").cloned().unwrap_or(Value::Null);
            match status {
                200..=299 => pages.push(page_of(graph, read, body)?),
                404 => {
                    tracing::debug!(
                        path,
                        "collection is gone (404 in $batch); reading it as empty"
                    );
                    pages.push(PageOf {
                        read,
                        items: Vec::new(),
                        next: None,
                    });
                }
                429 | 503 | 504 => {
                    let after = retry_after(answer).unwrap_or_else(|| backoff(attempt));
                    wait = wait.max(after.min(MAX_WAIT));
                    last_error = Some(inner_error(
                        &path,
                        status,
                        &body,
                        &inner_headers(answer),
                        Some(after),
                    ));
                    throttled.push((read, path));
                }
                _ => {
                    return Err(inner_error(
                        &path,
                        status,
                        &body,
                        &inner_headers(answer),
                        None,
                    ));
                }
            }
        }
        if throttled.is_empty() {
            return Ok(pages);
        }
        if attempt >= attempts {
            let err = last_error.unwrap_or_else(|| ConnectorError::rate_limited("throttled", None));
            return Err(err.context(format!(
                "{} reads inside $batch were still throttled after {attempts} attempts",
                throttled.len()
            )));
        }
        tracing::info!(
            throttled = throttled.len(),
            wait_ms = wait.as_millis() as u64,
            attempt,
            "Graph throttled reads inside $batch; retrying them after Retry-After"
        );
        graph.ctx.sleep(wait).await;
        attempt += 1;
        pending = throttled;
    }
}

/// Sends one `$batch`; the inner responses come back ordered as `reads` (Graph answers in any
/// order, matched by id; a missing id is `None`).
async fn send_batch(
    graph: &Graph,
    reads: &[(usize, String)],
) -> Result<Vec<Option<Value>>, ConnectorError> {
    let requests: Vec<Value> = reads
        .iter()
        .enumerate()
        .map(|(slot, (_, path))| json!({ "id": (slot + 1).to_string(), "method": "GET", "url": path }))
        .collect();
    let body = json!({ "requests": requests });
    let cost = reads.iter().map(|(_, path)| read_cost(path)).sum::<u32>();
    let url = graph.url("/$batch");
    let response = graph
        .send(|| {
            graph
                .ctx
                .http()
                .post(&url)
                .header("accept", "application/json")
                .json(&body)
                // A batch of reads changes nothing: --dry-run lets it through, and the host
                // repeats it after a 503/504 as it would a GET (throttling.md lists both beside
                // 429, with Retry-After).
                .read_only()
                // Graph charges every inner read on its own.
                .budget_cost(graph.units_budget(), cost)
        })
        .await?;
    if !response.is_success() {
        return Err(graph_error(&response));
    }
    let mut parsed: Value = response.json()?;
    let mut answers: Vec<Option<Value>> = vec![None; reads.len()];
    let items = match parsed.get_mut("responses").map(Value::take) {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(ConnectorError::internal(format!(
                "{} answered without a `responses` array: {}",
                response.request_line,
                response.body_excerpt(200)
            )));
        }
    };
    for item in items {
        let slot = item
            .get("id")
            .and_then(|id| match id {
                Value::String(s) => s.parse::<usize>().ok(),
                other => other.as_u64().map(|n| n as usize),
            })
            .and_then(|n| n.checked_sub(1));
        if let Some(slot) = slot.filter(|s| *s < answers.len()) {
            answers[slot] = Some(item);
        }
    }
    Ok(answers)
}

/// The headers of an inner response as name/value pairs.
fn inner_headers(answer: &Value) -> Vec<(String, String)> {
    answer
        .get("headers")
        .and_then(Value::as_object)
        .map(|h| {
            h.iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
                    (k.clone(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `Retry-After` of an inner response (`headers` is a JSON object; names in any case).
fn retry_after(answer: &Value) -> Option<Duration> {
    let headers = answer.get("headers")?.as_object()?;
    let value = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))?
        .1;
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    idhost_connector_sdk::http::parse_retry_after(&text)
}

/// Wait when Graph gave no `Retry-After`: 1, 2, 4 … 32 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_retry_after_is_read_from_the_headers_object() {
        let answer = json!({"id": "3", "status": 429, "headers": {"Retry-After": "7"}});
        assert_eq!(retry_after(&answer), Some(Duration::from_secs(7)));
        let numeric = json!({"headers": {"retry-after": 2}});
        assert_eq!(retry_after(&numeric), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(&json!({"headers": {}})), None);
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), Duration::from_secs(32));
    }
}
