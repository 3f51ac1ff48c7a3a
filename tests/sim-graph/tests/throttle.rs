//! Identity-and-access throttling (concepts/throttling-limits.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use axum::http::StatusCode;
use common::Harness;
use sim_graph::SimConfig;

/// The group with the fewest members: cheapest to render, 3 resource units to list.
fn small_group(h: &Harness) -> String {
    h.sim
        .group_ids()
        .into_iter()
        .min_by_key(|g| h.sim.group_members(g).len())
        .unwrap()
}

#[tokio::test]
async fn throttle_answers_429_with_retry_after() {
    // 49 users: an S tenant, 3,500 units per 10 s.
    let h = Harness::new(SimConfig {
        users: 49,
        ..SimConfig::default()
    })
    .await;
    let uri = format!("/v1.0/groups/{}/members", small_group(&h));
    let mut saw_percentage = false;
    let mut answer = h.get(&uri).await;
    let mut sent = 1;
    while answer.status == StatusCode::OK {
        saw_percentage |= answer.header("x-ms-throttle-limit-percentage").is_some();
        assert!(sent < 3_000, "never throttled");
        answer = h.get(&uri).await;
        sent += 1;
    }
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    // 3,500 / 3 = 1,166 requests fit, plus what refilled meanwhile.
    assert!(sent > 1_100, "throttled too early, after {sent}");
    let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "Retry-After {retry}");
    assert_eq!(answer.code(), "TooManyRequests");
    assert_eq!(answer.message(), "Please retry again later.");
    assert_eq!(
        answer.header("x-ms-throttle-scope"),
        Some("Tenant_Application/ReadWrite/graph-client/contoso-tenant")
    );
    assert_eq!(
        answer.header("x-ms-throttle-information"),
        Some("ResourceUnitLimitExceeded")
    );
    assert!(
        saw_percentage,
        "x-ms-throttle-limit-percentage appears past 0.8 of the quota"
    );
}

#[tokio::test]
async fn resource_unit_header_follows_the_documented_costs() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let cost = |a: &common::Answer| a.header("x-ms-resource-unit").map(str::to_owned);
    assert_eq!(cost(&h.get("/v1.0/users").await).as_deref(), Some("2"));
    assert_eq!(
        cost(&h.get("/v1.0/users?$select=id").await).as_deref(),
        Some("1")
    );
    assert_eq!(
        cost(&h.get("/v1.0/users?$select=id&$top=5").await).as_deref(),
        Some("1"),
        "never below 1"
    );
    assert_eq!(
        cost(&h.get(&format!("/v1.0/groups/{group}/members")).await).as_deref(),
        Some("3")
    );
    assert_eq!(
        cost(&h.get(&format!("/v1.0/groups/{group}/members?$top=5")).await).as_deref(),
        Some("2")
    );
    assert_eq!(cost(&h.get("/v1.0/groups").await).as_deref(), Some("1"));
    assert_eq!(
        cost(
            &h.get("/v1.0/roleManagement/directory/roleAssignments?$expand=principal")
                .await
        )
        .as_deref(),
        Some("2")
    );
}

#[tokio::test]
async fn write_quota_answers_429_write_limit_exceeded() {
    // An L tenant (8,000 units) so the 3,000-writes-per-150-s quota is the one that trips.
    let h = Harness::new(SimConfig {
        users: 600,
        groups: 2,
        memberships: 10,
        ..SimConfig::default()
    })
    .await;
    let group = h.sim.group_ids()[0].clone();
    let user = h.sim.add_user("Flip Flop");
    let body = h.object_ref(&user);
    let mut last = None;
    for i in 0..3_200 {
        let answer = if i % 2 == 0 {
            h.post(&format!("/v1.0/groups/{group}/members/$ref"), body.clone())
                .await
        } else {
            h.delete(&format!("/v1.0/groups/{group}/members/{user}/$ref"))
                .await
        };
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            last = Some((i, answer));
            break;
        }
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
    }
    let (i, answer) = last.expect("3,000 writes per 2 min 30 s");
    assert!(i >= 3_000, "throttled after {i} writes");
    assert_eq!(
        answer.header("x-ms-throttle-information"),
        Some("WriteLimitExceeded")
    );
    assert!(answer.header("retry-after").is_some());
}

#[tokio::test]
async fn no_throttle_never_answers_429() {
    let h = Harness::new(SimConfig {
        users: 49,
        throttle: false,
        ..SimConfig::default()
    })
    .await;
    let uri = format!("/v1.0/groups/{}/members", small_group(&h));
    for _ in 0..1_300 {
        assert_eq!(h.get(&uri).await.status, StatusCode::OK);
    }
}
