//! The documented per-account limits (developer.ironcladapp.com/reference/clm-api-rate-limits).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use sim_ironclad::SimConfig;

fn rename(i: usize) -> Option<serde_json::Value> {
    Some(patch_op(
        json!([{"op": "replace", "path": "title", "value": format!("Title {i}")}]),
    ))
}

#[tokio::test]
async fn users_patch_rate_limit_answers_429_without_retry_after() {
    let h = Harness::new(SimConfig {
        users: 60,
        ..SimConfig::default()
    });
    let ids = h.sim.user_ids();
    // PATCH and DELETE share 50 per minute.
    for i in 0..40 {
        let answer = h
            .scim("PATCH", &format!("/scim/v2/Users/{}", ids[1]), rename(i))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "patch {i}");
    }
    for id in &ids[10..20] {
        assert_eq!(
            h.scim("DELETE", &format!("/scim/v2/Users/{id}"), None)
                .await
                .status,
            StatusCode::NO_CONTENT
        );
    }
    let limited = h
        .scim("PATCH", &format!("/scim/v2/Users/{}", ids[1]), rename(99))
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_none());
    assert_eq!(limited.body["status"], "429");
    assert!(limited.header("x-ironclad-requestid").is_some());
    assert_eq!(
        h.sim.user(&ids[1]).unwrap()["title"],
        "Title 39",
        "a limited PATCH changes nothing"
    );
    let delete = h
        .scim("DELETE", &format!("/scim/v2/Users/{}", ids[30]), None)
        .await;
    assert_eq!(delete.status, StatusCode::TOO_MANY_REQUESTS);
    // GET/PUT/POST users and groups have their own windows.
    assert_eq!(
        h.scim("GET", &format!("/scim/v2/Users/{}", ids[1]), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.scim("GET", "/scim/v2/Groups", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn users_reads_are_limited_to_600_per_minute_and_groups_separately() {
    let h = Harness::small();
    for i in 0..600 {
        let answer = h.scim("GET", "/scim/v2/Users?count=1", None).await;
        assert_eq!(answer.status, StatusCode::OK, "request {i}");
    }
    let limited = h.scim("POST", "/scim/v2/Users", Some(json!({}))).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "POST shares the GET/PUT/POST window"
    );
    assert_eq!(
        h.scim("GET", "/scim/v2/Groups", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.scim("GET", "/scim/v2/Schemas", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unauthenticated_requests_do_not_spend_the_account_limit() {
    let h = Harness::small();
    let id = h.sim.user_ids()[1].clone();
    for _ in 0..60 {
        let anonymous = h
            .send(scim_request(
                "PATCH",
                &format!("/scim/v2/Users/{id}"),
                None,
                None,
                rename(0),
            ))
            .await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        h.scim("PATCH", &format!("/scim/v2/Users/{id}"), rename(1))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_rate_limits_nothing_answers_429() {
    let h = Harness::new(SimConfig {
        rate_limits: false,
        ..SimConfig::default()
    });
    let id = h.sim.user_ids()[1].clone();
    for i in 0..120 {
        assert_eq!(
            h.scim("PATCH", &format!("/scim/v2/Users/{id}"), rename(i))
                .await
                .status,
            StatusCode::OK
        );
    }
}
