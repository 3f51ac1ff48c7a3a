//! Tokens: client credentials, a long-lived access token, renewal after a 401.

use idhost_connector_sdk::{Connector, ErrorKind, PageToken};
use serde_json::json;
use sim_clickwrap::SimConfig;

use crate::common::{Env, users};

fn sim(users: usize) -> SimConfig {
    SimConfig {
        users,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn client_credentials_fetch_one_token_for_the_whole_listing() {
    let env = Env::start(sim(450)).await;
    let connector = env.open_account().await;
    assert_eq!(env.count("POST", "/oauth/token"), 0, "open sends nothing");
    assert_eq!(users(&connector).await.len(), 450);
    assert_eq!(env.count("POST", "/oauth/token"), 1);
    assert_eq!(env.member_pages(), 5);
    assert!(
        env.sim
            .faults()
            .log()
            .records()
            .iter()
            .all(|r| r.status != 401)
    );
}

#[tokio::test]
async fn an_access_token_is_used_as_is() {
    let env = Env::start(sim(120)).await;
    let settings = env.token_settings(json!({"account_id": env.sim.config().account_id}));
    let connector = env.open(settings).await.expect("opens");
    connector.validate().await.expect("validates");
    assert_eq!(users(&connector).await.len(), 120);
    assert_eq!(env.count("POST", "/oauth/token"), 0);
}

#[tokio::test]
async fn an_expired_token_is_refetched_once() {
    let env = Env::start(sim(250)).await;
    let connector = env.open_account().await;
    let first = connector
        .list("user", PageToken::first())
        .await
        .expect("page 1");
    assert_eq!(env.count("POST", "/oauth/token"), 1);

    env.sim.expire_tokens();
    let next = first.next.expect("more pages");
    let second = connector
        .list("user", PageToken::from_string(next))
        .await
        .expect("page 2 after renewing the token");
    assert_eq!(second.items.len(), 100);
    assert_eq!(env.count("POST", "/oauth/token"), 2, "one new token");
    let refused = env
        .sim
        .faults()
        .log()
        .records()
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(refused, 1, "one 401, then the retry succeeded");
    assert_eq!(env.member_pages(), 3);
}

#[tokio::test]
async fn a_refused_access_token_fails_unauthenticated_without_retrying() {
    let env = Env::start(sim(10)).await;
    let settings = json!({
        "access_token": "not-the-token",
        "account_id": env.sim.config().account_id,
        "base_url": format!("{}/v1.1", env.server.url()),
    });
    let connector = env.open(settings).await.expect("opens");
    let err = connector
        .list("user", PageToken::first())
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Unauthenticated);
    assert_eq!(err.status, Some(401));
    assert!(
        err.message.contains("`access_token` was refused"),
        "{}",
        err.message
    );
    assert!(
        !err.message.contains("not-the-token"),
        "no secret in {}",
        err.message
    );
    assert_eq!(env.member_pages(), 1);
}

#[tokio::test]
async fn a_wrong_client_secret_fails_unauthenticated_without_showing_it() {
    let env = Env::start(sim(10)).await;
    let settings = env.client_settings(json!({
        "client_secret": "wrong-secret-value", "account_id": env.sim.config().account_id
    }));
    let connector = env.open(settings).await.expect("opens");
    let err = connector.validate().await.expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Unauthenticated);
    assert!(err.message.contains("/oauth/token"), "{}", err.message);
    assert!(
        !err.message.contains("wrong-secret-value"),
        "{}",
        err.message
    );
    assert_eq!(env.count("GET", "/v1.1"), 0, "no API call without a token");
}
