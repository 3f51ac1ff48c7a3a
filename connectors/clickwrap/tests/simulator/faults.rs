//! Upstream failures become clean errors of the right kind (TestServices does not retry).

use std::time::Duration;

use idhost_connector_sdk::{Connector, ErrorKind, PageToken};
use sim_clickwrap::SimConfig;
use sim_common::{Fault, FaultRule};

use crate::common::{Env, list_all};

const SERVER_ERROR: &str = r#"{"error":{"message":"Internal error.","status":500,"name":"InternalError","code":"internal"}}"#;
const RATE_LIMITED: &str = r#"{"error":{"message":"Request limit has been reached for the current rate limit period.","status":429,"name":"RateLimitExceededError","code":"rate_limit_exceeded"}}"#;

fn sim() -> SimConfig {
    SimConfig {
        users: 1000,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn a_500_on_page_3_stops_the_listing_as_unavailable() {
    let env = Env::start(sim()).await;
    env.sim.faults().push(
        FaultRule::any(Fault::status(500, SERVER_ERROR))
            .on_path("/members")
            .after(2),
    );
    let connector = env.open_account().await;
    let err = list_all(&connector).await.expect_err("page 3 fails");
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(err.status, Some(500));
    for part in [
        "listing the users of account 1001",
        "GET ",
        "/v1.1/accounts/1001/members",
        "page=3",
        "answered 500",
        "Internal error. (name InternalError, code internal)",
    ] {
        assert!(
            err.message.contains(part),
            "`{part}` missing from: {}",
            err.message
        );
    }
    assert_eq!(env.member_pages(), 3, "no retry inside the connector");
}

#[tokio::test]
async fn a_429_is_rate_limited_with_retry_after() {
    let env = Env::start(sim()).await;
    env.sim
        .faults()
        .push(FaultRule::any(Fault::too_many_requests(Some(17), RATE_LIMITED)).on_path("/members"));
    let connector = env.open_account().await;
    let err = connector
        .list("user", PageToken::first())
        .await
        .expect_err("throttled");
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.retry_after, Some(Duration::from_secs(17)));
    assert_eq!(err.status, Some(429));
    assert!(
        err.message.contains("RateLimitExceededError"),
        "{}",
        err.message
    );
    // The next call (the host's retry) goes through.
    let page = connector
        .list("user", PageToken::first())
        .await
        .expect("recovers");
    assert_eq!(page.items.len(), 100);
}

#[tokio::test]
async fn the_simulators_own_limit_is_reported_as_rate_limited() {
    // 2000 requests a minute per token (reference/rate-limits): the 2001st is refused.
    let env = Env::start(SimConfig {
        users: 5,
        ..SimConfig::default()
    })
    .await;
    let connector = env.open_account().await;
    let mut refused = None;
    for _ in 0..2001 {
        if let Err(e) = connector.list("user", PageToken::first()).await {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("the limit was reached");
    assert_eq!(err.kind, ErrorKind::RateLimited);
    let wait = err.retry_after.expect("Retry-After");
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(60),
        "{wait:?}"
    );
    assert_eq!(env.member_pages(), 2001);
}

#[tokio::test]
async fn a_malformed_answer_is_an_internal_error_naming_the_request() {
    let env = Env::start(sim()).await;
    env.sim
        .faults()
        .push(FaultRule::any(sim_common::FaultAction::MalformedJson).on_path("/members"));
    let connector = env.open_account().await;
    let err = connector
        .list("user", PageToken::first())
        .await
        .expect_err("bad JSON");
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("/members"), "{}", err.message);
}
