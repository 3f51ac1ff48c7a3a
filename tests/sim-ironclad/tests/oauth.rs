//! `POST /oauth/token` and what its tokens may do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use common::*;
use serde_json::json;
use sim_ironclad::SimConfig;

#[tokio::test]
async fn client_credentials_with_a_json_body_returns_the_documented_fields() {
    let h = Harness::small();
    let answer = h.token(None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 3600);
    let token = answer.body["access_token"].as_str().unwrap();
    assert!(token.len() >= 24);
    // "Will include the token scope if scope was requested"; no refresh token is documented.
    assert!(answer.body.get("scope").is_none());
    assert!(answer.body.get("refresh_token").is_none());
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let users = h.scim_as(token, "GET", "/scim/v2/Users", None).await;
    assert_eq!(users.status, StatusCode::OK);
}

#[tokio::test]
async fn basic_auth_with_a_form_body_is_accepted() {
    let h = Harness::small();
    let basic = base64::engine::general_purpose::STANDARD.encode("ironclad-client:ironclad-secret");
    let request = Request::builder()
        .method("POST")
        .uri("/oauth/token")
        .header("authorization", format!("Basic {basic}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(
            "grant_type=client_credentials&scope=scim.users.readUsers+scim.groups.readGroups",
        ))
        .unwrap();
    let answer = h.send(request).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(
        answer.body["scope"],
        "scim.users.readUsers scim.groups.readGroups"
    );
}

#[tokio::test]
async fn token_with_wrong_secret_is_invalid_client() {
    let h = Harness::small();
    let answer = h
        .send(json_post(
            "/oauth/token",
            &json!({"grant_type": "client_credentials", "client_id": "ironclad-client", "client_secret": "nope"}),
        ))
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.body,
        json!({"error": "invalid_client", "error_description": "invalid client"})
    );
    let no_credentials = h
        .send(json_post(
            "/oauth/token",
            &json!({"grant_type": "client_credentials"}),
        ))
        .await;
    assert_eq!(no_credentials.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_or_missing_grant_type_is_invalid_request() {
    let h = Harness::small();
    for body in [
        json!({"grant_type": "password", "client_id": "ironclad-client", "client_secret": "ironclad-secret"}),
        json!({"client_id": "ironclad-client", "client_secret": "ironclad-secret"}),
    ] {
        let answer = h.send(json_post("/oauth/token", &body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(answer.body["error"], "invalid_request");
        assert!(answer.body["error_description"].is_string());
    }
}

#[tokio::test]
async fn authorization_code_grant_is_unauthorized_client_for_this_client() {
    let h = Harness::small();
    let answer = h
        .send(json_post(
            "/oauth/token",
            &json!({"grant_type": "authorization_code", "code": "x", "redirect_uri": "https://a/cb",
                    "client_id": "ironclad-client", "client_secret": "ironclad-secret"}),
        ))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.body["error"], "unauthorized_client");
}

#[tokio::test]
async fn scope_outside_the_registered_scim_scopes_is_invalid_scope() {
    let h = Harness::small();
    let answer = h
        .token(Some("scim.users.readUsers public.records.readRecords"))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "invalid_scope");
    assert!(
        answer.body["error_description"]
            .as_str()
            .unwrap()
            .contains("public.records.readRecords")
    );
}

#[tokio::test]
async fn granted_scopes_limit_what_a_token_may_do() {
    let h = Harness::small();
    let answer = h.token(Some("scim.users.readUsers")).await;
    assert_eq!(answer.body["scope"], "scim.users.readUsers");
    let token = answer.body["access_token"].as_str().unwrap();
    assert_eq!(
        h.scim_as(token, "GET", "/scim/v2/Users", None).await.status,
        StatusCode::OK
    );
    let create = h
        .scim_as(
            token,
            "POST",
            "/scim/v2/Users",
            Some(json!({"schemas": [USER_URN], "userName": "x@example.com", "name": {}})),
        )
        .await;
    assert_eq!(create.status, StatusCode::FORBIDDEN);
    // ForbiddenResponse403 documents `schemas` and `status` only.
    assert_eq!(
        create.body,
        json!({"schemas": [ERROR_URN], "status": "403"})
    );
    assert_eq!(
        h.scim_as(token, "GET", "/scim/v2/Groups", None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(h.sim.user_by_username("x@example.com"), None);
}

#[tokio::test]
async fn refresh_token_grant_recovers_from_expired_access_tokens() {
    let h = Harness::small();
    h.sim.set_issue_refresh_tokens(true);
    let first = h
        .token(Some("scim.users.readUsers scim.groups.readGroups"))
        .await;
    let refresh = first.body["refresh_token"].as_str().unwrap().to_owned();
    let old = first.body["access_token"].as_str().unwrap().to_owned();

    h.sim.expire_tokens();
    let refused = h.scim_as(&old, "GET", "/scim/v2/Users", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.body,
        json!({"schemas": [ERROR_URN], "status": "401", "detail": "token has expired"})
    );

    let refreshed = h
        .send(json_post(
            "/oauth/token",
            &json!({"grant_type": "refresh_token", "refresh_token": refresh, "scope": "scim.users.readUsers",
                    "client_id": "ironclad-client", "client_secret": "ironclad-secret"}),
        ))
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{:?}", refreshed.body);
    assert_eq!(refreshed.body["refresh_token"], refresh.as_str());
    assert_eq!(refreshed.body["scope"], "scim.users.readUsers");
    let new = refreshed.body["access_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        h.scim_as(new, "GET", "/scim/v2/Users", None).await.status,
        StatusCode::OK
    );

    let wider = json!({"grant_type": "refresh_token", "refresh_token": refresh, "scope": "scim.users.deleteUsers",
                       "client_id": "ironclad-client", "client_secret": "ironclad-secret"});
    assert_eq!(
        h.send(json_post("/oauth/token", &wider)).await.body["error"],
        "invalid_scope"
    );
    let bogus = json!({"grant_type": "refresh_token", "refresh_token": "nope",
                       "client_id": "ironclad-client", "client_secret": "ironclad-secret"});
    let answer = h.send(json_post("/oauth/token", &bogus)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.body["error"], "invalid_grant");
}

#[tokio::test]
async fn access_tokens_expire_after_the_configured_ttl() {
    let h = Harness::new(SimConfig {
        token_ttl: Duration::from_millis(150),
        ..SimConfig::default()
    });
    let token = h.access_token().await;
    assert_eq!(
        h.scim_as(&token, "GET", "/scim/v2/Users", None)
            .await
            .status,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let answer = h.scim_as(&token, "GET", "/scim/v2/Users", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["detail"], "token has expired");
}

#[tokio::test]
async fn revoked_credentials_are_refused_until_restored() {
    let h = Harness::small();
    let token = h.access_token().await;
    h.sim.revoke_tokens();
    let answer = h.scim_as(&token, "GET", "/scim/v2/Users", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["detail"], "token has been revoked");
    assert_eq!(
        h.scim("GET", "/scim/v2/Users", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let refused = h.token(None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.body["error"], "invalid_client");

    h.sim.restore_credentials();
    let fresh = h.access_token().await;
    assert_eq!(
        h.scim_as(&fresh, "GET", "/scim/v2/Users", None)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        h.scim("GET", "/scim/v2/Users", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.scim_as(&token, "GET", "/scim/v2/Users", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}
