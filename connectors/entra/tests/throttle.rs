//! Throttling inside `$batch`: the simulator's resource-unit bucket answers inner 429s with
//! `Retry-After`; the connector re-sends just those reads and loses no page.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use common::{ALL, Sim, assert_matches_counts, list};
use idhost_connector_sdk::ErrorKind;
use idhost_connector_sdk::testing::TestServices;
use serde_json::json;
use sim_graph::SimConfig;

/// A small (S, < 50 users: 3,500 resource units per 10 s) tenant with many groups: reading
/// 1,800 groups' members (2 units each with `$select`) and owners (1 unit) needs ~5,400 units,
/// so the bucket runs dry part-way through and Graph answers inner 429s.
fn throttled(throttle: bool) -> SimConfig {
    SimConfig {
        users: 40,
        managed_identities: 1,
        groups: 1_800,
        memberships: 7_200,
        apps: 2,
        roles: 2,
        throttle,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn throttled_batch_reads_are_retried_after_retry_after_and_no_page_is_lost() {
    // The same tenant unthrottled, for the number of batches a clean run sends.
    let calm = Sim::start(throttled(false)).await;
    let connector = calm
        .open(json!({ "incremental": false }), TestServices::new())
        .await;
    let reference = list(&connector, ALL).await.expect("lists");
    let clean_batches = calm.sim.faults().log().count("POST", "/$batch");

    let sim = Sim::start(throttled(true)).await;
    let connector = sim
        .open(json!({ "incremental": false }), TestServices::new())
        .await;
    let listed = list(&connector, ALL)
        .await
        .expect("lists despite throttling");
    assert_matches_counts(&listed, &sim.sim);
    assert_eq!(
        listed.grants, reference.grants,
        "same grants as the unthrottled run"
    );
    let batches = sim.sim.faults().log().count("POST", "/$batch");
    assert!(
        batches > clean_batches,
        "throttled reads were re-sent: {batches} batches vs {clean_batches} unthrottled"
    );
}

#[tokio::test]
async fn throttling_beyond_the_attempt_budget_fails_as_rate_limited() {
    let sim = Sim::start(throttled(true)).await;
    let connector = sim
        .open(
            json!({ "incremental": false, "batch_retry_attempts": 1 }),
            TestServices::new(),
        )
        .await;
    let err = list(&connector, &["group"]).await.expect_err("gives up");
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert!(err.message.contains("$batch"), "{err}");
    assert!(err.retry_after.is_some(), "carries Graph's Retry-After");
}
