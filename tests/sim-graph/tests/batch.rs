//! `POST /v1.0/$batch` (concepts/json-batching.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use axum::http::StatusCode;
use common::Harness;
use serde_json::{Value, json};
use sim_graph::SimConfig;

fn response<'a>(answer: &'a common::Answer, id: &str) -> &'a Value {
    answer.body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no response {id}: {}", answer.text))
}

fn order(answer: &common::Answer) -> Vec<String> {
    answer.body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn batch_with_21_requests_is_rejected() {
    let h = Harness::small().await;
    let requests: Vec<Value> = (1..=21)
        .map(|i| json!({ "id": i.to_string(), "method": "GET", "url": "/users?$top=1" }))
        .collect();
    let answer = h
        .post("/v1.0/$batch", json!({ "requests": requests }))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "BadRequest");
    let ok = h
        .post("/v1.0/$batch", json!({ "requests": requests[..20] }))
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.body["responses"].as_array().unwrap().len(), 20);
}

#[tokio::test]
async fn duplicate_ids_fail_the_whole_batch_case_insensitively() {
    let h = Harness::small().await;
    let body = json!({ "requests": [
        { "id": "a", "method": "GET", "url": "/users" },
        { "id": "A", "method": "GET", "url": "/groups" },
    ]});
    let answer = h.post("/v1.0/$batch", body).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let malformed = h.post("/v1.0/$batch", json!({ "nope": [] })).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn batch_responses_arrive_out_of_order_and_dependent_of_failed_is_424() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let member = h.sim.group_members(&group)[0].clone();
    let body = json!({ "requests": [
        { "id": "1", "method": "GET", "url": "/users?$top=2&$select=id" },
        { "id": "2", "method": "POST", "url": format!("/groups/{group}/members/$ref"),
          "headers": { "Content-Type": "application/json" },
          "body": { "@odata.id": format!("{}/v1.0/directoryObjects/{member}", common::ORIGIN) } },
        { "id": "3", "method": "GET", "url": "/groups?$top=1", "dependsOn": ["2"] },
        { "id": "4", "method": "GET", "url": "groups?$top=1", "dependsOn": ["1"] },
        { "id": "5", "method": "DELETE", "url": format!("/groups/{group}/members/{member}/$ref"), "dependsOn": ["3"] },
    ]});
    let answer = h.post("/v1.0/$batch", body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let ids = order(&answer);
    assert_eq!(ids.len(), 5);
    assert_ne!(
        ids,
        vec!["1", "2", "3", "4", "5"],
        "responses are not in request order"
    );

    let first = response(&answer, "1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["body"]["value"].as_array().unwrap().len(), 2);
    assert!(
        first["body"]["@odata.nextLink"]
            .as_str()
            .unwrap()
            .starts_with(common::ORIGIN)
    );
    assert!(
        first["headers"]["Content-Type"]
            .as_str()
            .unwrap()
            .starts_with("application/json")
    );

    let already = response(&answer, "2");
    assert_eq!(already["status"], 400);
    assert_eq!(already["body"]["error"]["code"], "Request_BadRequest");
    assert_eq!(response(&answer, "3")["status"], 424);
    assert_eq!(
        response(&answer, "5")["status"],
        424,
        "a chain behind a failure fails too"
    );
    assert_eq!(
        response(&answer, "4")["status"],
        200,
        "leading slash is optional"
    );
    assert!(
        h.sim.group_members(&group).contains(&member),
        "the dependent DELETE never ran"
    );
}

#[tokio::test]
async fn inner_body_without_content_type_is_400_for_that_request() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let user = h.sim.add_user("Batch Person");
    let body = json!({ "requests": [
        { "id": "w", "method": "POST", "url": format!("/groups/{group}/members/$ref"),
          "body": { "@odata.id": format!("{}/v1.0/directoryObjects/{user}", common::ORIGIN) } },
        { "id": "r", "method": "GET", "url": "/users?$top=1" },
    ]});
    let answer = h.post("/v1.0/$batch", body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(response(&answer, "w")["status"], 400);
    assert_eq!(response(&answer, "r")["status"], 200);
    assert!(!h.sim.group_members(&group).contains(&user));
}

#[tokio::test]
async fn inner_writes_apply_and_answer_204_without_body() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let user = h.sim.add_user("Batch Person");
    let body = json!({ "requests": [
        { "id": "w", "method": "POST", "url": format!("/groups/{group}/members/$ref"),
          "headers": { "content-type": "application/json" },
          "body": { "@odata.id": format!("{}/v1.0/directoryObjects/{user}", common::ORIGIN) } },
    ]});
    let answer = h.post("/v1.0/$batch", body).await;
    let inner = response(&answer, "w");
    assert_eq!(inner["status"], 204);
    assert!(inner.get("body").is_none());
    assert!(h.sim.group_members(&group).contains(&user));
}

#[tokio::test]
async fn each_inner_request_is_throttled_and_429_carries_retry_after() {
    // 49 users: an S tenant, 3,500 resource units per 10 s; GET groups/{id}/members costs 3.
    let h = Harness::new(SimConfig {
        users: 49,
        ..SimConfig::default()
    })
    .await;
    // The smallest group renders fastest, so consumption outpaces the 350 units/s refill even
    // in a debug build on a busy machine.
    let group = h
        .sim
        .group_ids()
        .into_iter()
        .min_by_key(|g| h.sim.group_members(g).len())
        .unwrap();
    let requests: Vec<Value> = (0..20)
        .map(|i| json!({ "id": format!("m{i}"), "method": "GET", "url": format!("/groups/{group}/members") }))
        .collect();
    let mut throttled = None;
    for _ in 0..200 {
        let answer = h
            .post("/v1.0/$batch", json!({ "requests": requests }))
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        let found = answer.body["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["status"] == 429)
            .cloned();
        if let Some(r) = found {
            throttled = Some(r);
            break;
        }
    }
    let inner = throttled.expect("3,500 units at 60 per batch: throttled after about 59 batches");
    let retry: u64 = inner["headers"]["Retry-After"]
        .as_str()
        .unwrap_or_else(|| panic!("{inner}"))
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry));
    assert_eq!(inner["body"]["error"]["code"], "TooManyRequests");
    assert_eq!(
        inner["headers"]["x-ms-throttle-information"],
        "ResourceUnitLimitExceeded"
    );
}

#[tokio::test]
async fn batch_of_relative_urls_only() {
    let h = Harness::small().await;
    let body = json!({ "requests": [
        { "id": "1", "method": "GET", "url": "https://graph.microsoft.com/v1.0/users" },
    ]});
    let answer = h.post("/v1.0/$batch", body).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(response(&answer, "1")["status"], 400);
}
