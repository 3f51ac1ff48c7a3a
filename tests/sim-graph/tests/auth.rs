//! Token endpoint (client credentials) and bearer checks on Graph calls.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use axum::http::StatusCode;
use common::{Harness, ORIGIN, good_form, raw, token_request};
use sim_graph::{SimConfig, Simulator};

#[tokio::test]
async fn client_credentials_with_origin_default_scope_get_a_bearer_token() {
    let sim = Simulator::new(SimConfig::default());
    let app = sim.router();
    let answer = raw(
        &app,
        token_request("contoso-tenant", &good_form(sim.config())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 3599);
    assert_eq!(answer.body["ext_expires_in"], 3599);
    assert!(answer.body["access_token"].as_str().unwrap().len() > 20);
}

#[tokio::test]
async fn unknown_tenant_is_400_invalid_request_aadsts90002() {
    let sim = Simulator::new(SimConfig::default());
    let answer = raw(
        &sim.router(),
        token_request("fabrikam", &good_form(sim.config())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "invalid_request");
    assert_eq!(answer.body["error_codes"][0], 90002);
    assert!(
        answer.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS90002: Tenant 'fabrikam' not found.")
    );
}

#[tokio::test]
async fn wrong_secret_is_401_invalid_client_aadsts7000215() {
    let sim = Simulator::new(SimConfig::default());
    let form = good_form(sim.config()).replace("graph-secret", "nope");
    let answer = raw(&sim.router(), token_request("contoso-tenant", &form)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["error"], "invalid_client");
    assert_eq!(answer.body["error_codes"][0], 7000215);
}

#[tokio::test]
async fn scope_of_another_graph_root_is_400_invalid_scope() {
    let sim = Simulator::new(SimConfig::default());
    let form = good_form(sim.config()).replace(
        "http%3A%2F%2Fgraph.test%2F.default",
        "https%3A%2F%2Fgraph.microsoft.com%2F.default",
    );
    let answer = raw(&sim.router(), token_request("contoso-tenant", &form)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "invalid_scope");
}

#[tokio::test]
async fn other_grant_types_are_unsupported() {
    let sim = Simulator::new(SimConfig::default());
    let form = good_form(sim.config()).replace("client_credentials", "password");
    let answer = raw(&sim.router(), token_request("contoso-tenant", &form)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn graph_call_without_token_is_401_invalid_authentication_token() {
    let h = Harness::small().await;
    let request = axum::http::Request::builder()
        .uri("/v1.0/users")
        .header("host", common::HOST)
        .body(axum::body::Body::empty())
        .unwrap();
    let answer = raw(&h.app, request).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.code(), "InvalidAuthenticationToken");
    assert_eq!(answer.message(), "Access token is empty.");
    let inner = &answer.body["error"]["innerError"];
    assert_eq!(inner["request-id"].as_str(), answer.header("request-id"));
    assert!(inner["date"].as_str().unwrap().len() == 19);
}

#[tokio::test]
async fn expired_tokens_are_refused_until_a_new_one_is_fetched() {
    let h = Harness::small().await;
    assert_eq!(h.get("/v1.0/users").await.status, StatusCode::OK);
    h.sim.expire_tokens();
    let answer = h.get("/v1.0/users").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.message(),
        "Access token has expired or is not yet valid."
    );
    let fresh = raw(
        &h.app,
        token_request("contoso-tenant", &good_form(h.sim.config())),
    )
    .await;
    assert_eq!(fresh.status, StatusCode::OK);
    let _ = ORIGIN;
}

#[tokio::test]
async fn unsimulated_routes_answer_a_loud_500() {
    let h = Harness::small().await;
    let answer = h.get("/v1.0/groups/x/transitiveMembers/extra").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        answer
            .text
            .starts_with("unexpected GET /v1.0/groups/x/transitiveMembers/extra")
    );
    let answer = h.get("/beta/users").await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.text, "unexpected GET /beta/users");
}
