//! Issue 13 points 11 and 12 against the stricter simulator: an explicit sort, a shifted listing
//! relisted, the static token preferred, and a client-credentials token reused across instances.

use idhost_connector_sdk::testing;
use idhost_connector_sdk::{Connector, PageToken};
use serde_json::json;
use sim_clickwrap::SimConfig;
use sim_common::{FaultAction, FaultRule, Hook};

use crate::common::{Env, user_ids};

fn sim(users: usize) -> SimConfig {
    SimConfig {
        users,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn a_user_changed_between_pages_neither_moves_nor_repeats() {
    // The simulator answers an unsorted request most recently changed first; the connector
    // sends `sort=id`, so a change mid-listing moves nothing.
    let env = Env::start(sim(250)).await;
    let connector = env.open_account().await;
    let first = connector
        .list("user", PageToken::first())
        .await
        .expect("page 1");
    let changed = env.sim.user_ids()[200];
    assert!(
        env.sim
            .set_user_field(changed, "name", json!("Renamed Mid-Listing"))
    );
    let mut ids: Vec<String> = first.items.iter().map(|r| r.id.clone()).collect();
    let mut next = first.next;
    while let Some(token) = next {
        let page = connector
            .list("user", PageToken::from_string(token))
            .await
            .expect("a later page");
        ids.extend(page.items.iter().map(|r| r.id.clone()));
        next = page.next;
    }
    assert_eq!(ids, user_ids(env.sim.user_ids()));
}

#[tokio::test]
async fn a_user_removed_between_pages_relists_and_the_listing_equals_the_account() {
    let env = Env::start(sim(250)).await;
    let victim = env.sim.user_ids()[5];
    let hook_sim = env.sim.clone();
    env.sim.faults().push(
        FaultRule::any(FaultAction::Run(Hook::new(move || {
            hook_sim.remove_user(victim);
        })))
        .on_path("/members")
        .after(1)
        .times(1),
    );
    let connector = env.open_account().await;
    let listing = testing::list_all(&connector).await.expect("lists");
    assert_eq!(listing.relists, 1, "the shifted listing started over once");
    let listed: Vec<String> = listing.resources["user"]
        .iter()
        .map(|r| r.id.clone())
        .collect();
    assert_eq!(listed, user_ids(env.sim.user_ids()), "exactly the account");
    assert!(!listed.contains(&format!("user:{victim}")));
}

#[tokio::test]
async fn a_configured_access_token_is_preferred_and_client_credentials_are_its_fallback() {
    let env = Env::start(sim(120)).await;
    let account = env.sim.config().account_id;
    let both = env.client_settings(json!({
        "account_id": account,
        "access_token": env.sim.config().access_token,
    }));
    let connector = env.open(both).await.expect("opens");
    connector.validate().await.expect("validates");
    assert_eq!(
        testing::list_all(&connector)
            .await
            .expect("lists")
            .resources["user"]
            .len(),
        120
    );
    assert_eq!(
        env.count("POST", "/oauth/token"),
        0,
        "the token endpoint is not called"
    );

    let refused = env.client_settings(json!({
        "account_id": account,
        "access_token": "a-regenerated-token",
    }));
    let connector = env.open(refused).await.expect("opens");
    assert_eq!(
        testing::list_all(&connector)
            .await
            .expect("lists")
            .resources["user"]
            .len(),
        120
    );
    assert_eq!(
        env.count("POST", "/oauth/token"),
        1,
        "one token once the static one was refused"
    );
}

#[tokio::test]
async fn a_fetched_token_is_reused_by_the_next_connector_instance() {
    let env = Env::start(sim(150)).await;
    for _ in 0..3 {
        // Each sync opens a new instance, as `idhost run` does on every schedule tick.
        let connector = env.open_account().await;
        assert_eq!(
            testing::list_all(&connector)
                .await
                .expect("lists")
                .resources["user"]
                .len(),
            150
        );
    }
    assert_eq!(
        env.count("POST", "/oauth/token"),
        1,
        "one token for three syncs"
    );
}
