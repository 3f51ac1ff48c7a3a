//! The retry policy against an upstream that limits per window without `Retry-After`
//! (Ironclad's documented behaviour, issue 13 point 8): the request's rate window keeps the host
//! backing off past its usual attempts, the maximum wait per request bounds it, and a budget
//! counted per window never sends more than its allowance within one window.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::any;
use idhost::metrics::SourceMetrics;
use idhost::redact::Redactor;
use idhost::retry::RetryPolicy;
use idhost::services::http::{HostHttp, HttpPolicy, build_client};
use idhost_connector_sdk::HttpRequest;
use idhost_connector_sdk::http::{Budget, RequestOptions};
use sim_common::{Fault, FaultRule, Faults, fault_layer};

async fn server(faults: &Faults) -> sim_common::RunningServer {
    let app = Router::new()
        .route("/{*path}", any(|| async { "{\"ok\":true}" }))
        .layer(axum::middleware::from_fn_with_state(
            faults.clone(),
            fault_layer,
        ));
    sim_common::serve(app, 0).await.expect("serve")
}

fn http(max_wait: Duration) -> (HostHttp, Arc<SourceMetrics>) {
    let metrics = Arc::new(SourceMetrics::default());
    let policy = HttpPolicy {
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(5),
            max_wait,
        },
        timeout: Duration::from_secs(2),
    };
    let http = HostHttp::new(
        build_client().expect("client"),
        policy,
        false,
        false,
        Redactor::default(),
        metrics.clone(),
    );
    (http, metrics)
}

fn get(url: String, window: Option<Duration>) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url,
        headers: vec![],
        body: vec![],
        options: RequestOptions {
            rate_window_ms: window.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
            ..RequestOptions::default()
        },
    }
}

#[tokio::test]
async fn a_429_without_retry_after_is_waited_out_past_max_attempts_when_the_request_names_its_window()
 {
    let faults = Faults::new();
    // Eight refusals: twice what max_attempts (4) allows, well inside a 60 s window.
    faults.push(FaultRule::any(Fault::too_many_requests(None, "{}")).times(8));
    let srv = server(&faults).await;
    let (http, metrics) = http(Duration::from_secs(300));
    let res = http
        .send(get(
            format!("{}/Users", srv.url()),
            Some(Duration::from_secs(60)),
        ))
        .await
        .expect("an answer");
    assert_eq!(res.status, 200, "the limit lifted within the window");
    assert_eq!(faults.log().len(), 9);
    assert_eq!(metrics.retries(), 8);
}

#[tokio::test]
async fn the_maximum_wait_per_request_bounds_waiting_out_a_window() {
    let faults = Faults::new();
    faults.push(FaultRule::any(Fault::too_many_requests(None, "{}")).times(u32::MAX));
    let srv = server(&faults).await;
    let (http, _) = http(Duration::from_millis(300));
    let res = http
        .send(get(
            format!("{}/Users", srv.url()),
            Some(Duration::from_secs(60)),
        ))
        .await
        .expect("an answer");
    assert_eq!(
        res.status, 429,
        "handed back once the next wait would pass 300 ms"
    );
    let sent = faults.log().len();
    assert!(
        (2..64).contains(&sent),
        "waited within the bound, then stopped: {sent} attempts"
    );
}

#[tokio::test]
async fn a_windowed_budget_never_sends_more_than_its_allowance_within_one_window() {
    let faults = Faults::new();
    let srv = server(&faults).await;
    let (http, _) = http(Duration::from_secs(300));
    let budget = Budget::per_window("per-second", 3, Duration::from_secs(1));
    let started = Instant::now();
    let mut sent_at = Vec::new();
    for _ in 0..5 {
        let mut request = get(format!("{}/Users", srv.url()), None);
        request.options.budget = Some(budget.clone());
        http.send(request).await.expect("sent");
        sent_at.push(started.elapsed());
    }
    assert_eq!(faults.log().len(), 5);
    // The fourth and fifth waited for the first and second to leave the window: a token bucket
    // bursting 3 would have sent all five within the first second.
    assert!(
        sent_at[3] >= Duration::from_millis(990),
        "fourth request after {:?}",
        sent_at[3]
    );
    assert!(sent_at[4] >= Duration::from_millis(990), "{sent_at:?}");
}
