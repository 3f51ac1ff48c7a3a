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
async fn authorization_code_the_authorize_endpoint_did_not_issue_is_invalid_grant() {
    // `/oauth/authorize` is simulated now: a code it never issued is refused as the OAuth
    // OpenAPI's 403 says ("an invalid authorization code ... 'invalid_grant'").
    let h = Harness::small();
    let answer = h
        .send(json_post(
            "/oauth/token",
            &json!({"grant_type": "authorization_code", "code": "x", "redirect_uri": "https://a/cb",
                    "client_id": "ironclad-client", "client_secret": "ironclad-secret"}),
        ))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.body["error"], "invalid_grant");
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

/// The consent page approved (`approve=yes`): the code from the redirect's `Location`.
async fn authorize(h: &Harness, challenge: &str) -> String {
    let uri = format!(
        "/oauth/authorize?response_type=code&client_id=ironclad-client\
         &redirect_uri=http%3A%2F%2F127.0.0.1%3A4321%2Fcallback&state=s1\
         &code_challenge={challenge}&code_challenge_method=S256&approve=yes"
    );
    let answer = h.send(Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::FOUND);
    let location = url::Url::parse(answer.header("location").expect("Location")).unwrap();
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "s1", "state comes back as sent");
    pairs["code"].clone()
}

#[tokio::test]
async fn authorization_code_exchange_verifies_pkce_and_codes_are_single_use() {
    let h = Harness::small();
    // A verifier and its S256 challenge, BASE64URL(SHA256(verifier)) (RFC 7636 §4.2),
    // computed outside Rust.
    let verifier = "dBjftJeZ4CVP-mJ92K1ZzwLFFCZHhGC4aHqJ8z9a8l0";
    let challenge = "ZwHnA-BS3RrC4n41MZ9MC5lf2CRk5LZtTto8VMY7B3E";
    let exchange = |code: String, verifier: &'static str| {
        json_post(
            "/oauth/token",
            &json!({"grant_type": "authorization_code", "code": code,
                    "redirect_uri": "http://127.0.0.1:4321/callback", "code_verifier": verifier,
                    "client_id": "ironclad-client", "client_secret": "ironclad-secret"}),
        )
    };
    let code = authorize(&h, challenge).await;
    let wrong = h.send(exchange(code, "not-the-verifier")).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(wrong.body["error"], "invalid_grant");

    let code = authorize(&h, challenge).await;
    let answer = h.send(exchange(code.clone(), verifier)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert!(answer.body["refresh_token"].is_string() && answer.body["access_token"].is_string());
    let again = h.send(exchange(code, verifier)).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "a code is used once");
}

#[tokio::test]
async fn a_denied_consent_redirects_with_access_denied_and_the_state() {
    let h = Harness::small();
    let uri = "/oauth/authorize?response_type=code&client_id=ironclad-client\
               &redirect_uri=http%3A%2F%2F127.0.0.1%3A4321%2Fcallback&state=s2&approve=no";
    let answer = h.send(Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(answer.status, StatusCode::FOUND);
    let location = answer.header("location").expect("Location");
    assert!(
        location.contains("error=access_denied") && location.contains("state=s2"),
        "{location}"
    );
}
