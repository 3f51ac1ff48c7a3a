//! What every SCIM call must carry, and what every answer carries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;
use sim_common::{Fault, FaultRule};
use sim_ironclad::SimConfig;

#[tokio::test]
async fn scim_call_without_a_bearer_token_is_a_401_scim_error() {
    let h = Harness::small();
    let answer = h
        .send(scim_request(
            "GET",
            "/scim/v2/Users",
            None,
            Some(("x-as-user-email", ADMIN)),
            None,
        ))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.body,
        json!({"schemas": [ERROR_URN], "status": "401", "detail": "invalid authentication token"})
    );
    let unknown = h
        .send(scim_request(
            "GET",
            "/scim/v2/Users",
            Some("forged"),
            Some(("x-as-user-email", ADMIN)),
            None,
        ))
        .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn scim_call_without_as_user_header_is_refused() {
    let h = Harness::small();
    let token = h.access_token().await;
    for actor in [
        None,
        Some(("x-as-user-email", "nobody@example.com")),
        Some(("x-as-user-id", "000000000000000000000000")),
    ] {
        let answer = h
            .send(scim_request(
                "GET",
                "/scim/v2/Users",
                Some(&token),
                actor,
                None,
            ))
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{actor:?}");
        assert_eq!(
            answer.body,
            json!({"schemas": [ERROR_URN], "status": "403"})
        );
        assert_eq!(
            answer.header("content-type"),
            Some("application/json; charset=utf-8")
        );
    }
    assert_eq!(h.sim.faults().log().count("GET", "/scim/v2/Users"), 3);
}

#[tokio::test]
async fn any_existing_user_may_act_by_email_in_any_case_or_by_id() {
    let h = Harness::small();
    let token = h.access_token().await;
    let ids = h.sim.user_ids();
    let someone = h.sim.user(&ids[7]).unwrap();
    let email = someone["userName"].as_str().unwrap().to_uppercase();
    for actor in [
        ("x-as-user-email", email.as_str()),
        ("x-as-user-id", ids[7].as_str()),
    ] {
        let answer = h
            .send(scim_request(
                "GET",
                "/scim/v2/Groups",
                Some(&token),
                Some(actor),
                None,
            ))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{actor:?}");
    }
}

#[tokio::test]
async fn legacy_bearer_token_has_every_scope() {
    let h = Harness::small();
    let created = h.create_user("legacy.made@example.com").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        h.scim("GET", "/scim/v2/Schemas", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.scim("DELETE", &format!("/scim/v2/Users/{id}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn every_answer_carries_an_ironclad_request_id() {
    let h = Harness::small();
    let mut seen = HashSet::new();
    let answers = [
        h.token(None).await,
        h.token(Some("nope")).await,
        h.scim("GET", "/scim/v2/Users", None).await,
        h.scim("GET", "/scim/v2/Users/unknown", None).await,
        h.send(scim_request("GET", "/scim/v2/Users", None, None, None))
            .await,
        h.scim("GET", "/scim/v2/ServiceProviderConfig", None).await,
    ];
    for answer in answers {
        let id = answer
            .header("x-ironclad-requestid")
            .expect("x-ironclad-requestid")
            .to_owned();
        assert!(seen.insert(id), "request ids are unique");
    }
}

#[tokio::test]
async fn undocumented_routes_answer_a_loud_500() {
    let h = Harness::small();
    let spc = h.scim("GET", "/scim/v2/ServiceProviderConfig", None).await;
    assert_eq!(spc.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        spc.body,
        json!("unexpected GET /scim/v2/ServiceProviderConfig")
    );
    let wrong_method = h.scim("POST", "/scim/v2/Users/abc", Some(json!({}))).await;
    assert_eq!(wrong_method.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        wrong_method.body,
        json!("unexpected POST /scim/v2/Users/abc")
    );
}

#[tokio::test]
async fn schemas_lists_the_four_documented_schemas_then_the_companys_custom_one() {
    let h = Harness::small();
    let answer = h.scim("GET", "/scim/v2/Schemas", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    // The four Ironclad documents, then this company's own (Supported-User-Attributes).
    assert_eq!(answer.body["totalResults"], 5);
    let ids = ids(&answer.body);
    assert_eq!(
        ids,
        vec![
            GROUP_URN,
            USER_URN,
            ENTERPRISE_URN,
            IRONCLAD_URN,
            sim_ironclad::CUSTOM_SCHEMA_URN
        ]
    );
    let custom = &answer.body["Resources"][4];
    assert_eq!(custom["attributes"][0]["name"], "managementLevel");
    let one = h
        .scim("GET", &format!("/scim/v2/Schemas/{IRONCLAD_URN}"), None)
        .await;
    assert_eq!(one.body["attributes"][0]["name"], "departmentHead");
    let missing = h.scim("GET", "/scim/v2/Schemas/urn:nope", None).await;
    assert_eq!(missing.body["detail"], "Resource urn:nope not found");
}

#[tokio::test]
async fn scripted_faults_and_configured_latency_apply_in_front_of_every_route() {
    let h = Harness::new(SimConfig {
        latency: Duration::from_millis(60),
        ..SimConfig::default()
    });
    h.sim.faults().push(
        FaultRule::any(Fault::status(503, r#"{"detail":"down"}"#))
            .on_path("/scim/v2/Groups")
            .on_method(Method::GET),
    );
    let started = Instant::now();
    let faulted = h.scim("GET", "/scim/v2/Groups", None).await;
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(faulted.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(faulted.header("x-ironclad-requestid").is_some());
    assert_eq!(
        h.scim("GET", "/scim/v2/Groups", None).await.status,
        StatusCode::OK
    );
    let log = h.sim.faults().log().records();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![503, 200]
    );
}
