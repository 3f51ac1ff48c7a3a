//! Which account and sites a source covers: discovered, or named by `account_id` / `site_id`.

use idhost_connector_sdk::{Connector, ErrorKind, PageToken};
use serde_json::json;
use sim_clickwrap::SimConfig;

use crate::common::{Env, list_all};

fn sim(sites: usize) -> SimConfig {
    SimConfig {
        users: 150,
        sites,
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn one_visible_site_is_used_with_its_account() {
    let env = Env::start(sim(1)).await;
    let connector = env
        .open(env.client_settings(json!({})))
        .await
        .expect("opens");
    connector.validate().await.expect("validates");
    let listing = list_all(&connector).await.expect("lists");
    assert_eq!(listing.resources["user"].len(), 150);
    let sites = &listing.resources["site"];
    assert_eq!(sites.len(), 1);
    assert_eq!(sites[0].id, format!("site:{}", env.sim.site_ids()[0]));
    assert_eq!(
        sites[0].profile["account_id"],
        json!(env.sim.config().account_id)
    );
    assert_eq!(
        listing.grants.len(),
        150,
        "every member holds one role on the site"
    );
    assert_eq!(
        env.count("GET", "/v1.1/sites"),
        1 + 2,
        "discovery once, then two roster pages"
    );
}

#[tokio::test]
async fn two_sites_and_no_setting_fail_naming_the_sites_and_the_setting() {
    let env = Env::start(sim(2)).await;
    let connector = env
        .open(env.token_settings(json!({})))
        .await
        .expect("opens offline");
    let err = connector
        .list("user", PageToken::first())
        .await
        .expect_err("ambiguous");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    for site in env.sim.site_ids() {
        assert!(
            err.message.contains(&site.to_string()),
            "site {site} in: {}",
            err.message
        );
    }
    assert!(err.message.contains("`site_id`"), "{}", err.message);
    assert!(
        err.message.contains("`account_id = 1001`"),
        "{}",
        err.message
    );
    let again = connector
        .validate()
        .await
        .expect_err("validate says the same");
    assert_eq!(again.message, err.message);
    assert_eq!(env.member_pages(), 0);
}

#[tokio::test]
async fn site_id_selects_one_site_and_its_accounts_users() {
    let env = Env::start(sim(2)).await;
    let second = env.sim.site_ids()[1];
    let connector = env
        .open(env.token_settings(json!({"site_id": second.to_string()})))
        .await
        .expect("opens");
    let listing = list_all(&connector).await.expect("lists");
    assert_eq!(listing.resources["user"].len(), 150);
    let sites: Vec<&str> = listing.resources["site"]
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(sites, [format!("site:{second}")]);
    assert!(
        listing
            .grants
            .iter()
            .all(|g| g.entitlement.starts_with(&format!("site:{second}:")))
    );
    assert!(
        !listing.grants.is_empty() && listing.grants.len() < 150,
        "a subset is on the second site"
    );
    assert_eq!(
        env.count("GET", "/v1.1/sites"),
        2,
        "GET /sites/{{id}}, then one roster page"
    );
}

#[tokio::test]
async fn account_id_lists_every_site_of_the_account() {
    let env = Env::start(sim(2)).await;
    let connector = env.open_account().await;
    let listing = list_all(&connector).await.expect("lists");
    assert_eq!(listing.resources["site"].len(), 2);
    assert_eq!(listing.entitlements.len(), 6);
}

#[tokio::test]
async fn a_site_of_another_account_is_refused() {
    let env = Env::start(sim(1)).await;
    let site = env.sim.site_ids()[0];
    let connector = env
        .open(env.token_settings(json!({"site_id": site, "account_id": 77})))
        .await
        .expect("opens");
    let err = connector.validate().await.expect_err("mismatch");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(
        err.message
            .contains("belongs to account 1001, not to `account_id` 77"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn an_unknown_site_or_account_is_not_found() {
    let env = Env::start(sim(1)).await;
    let connector = env
        .open(env.token_settings(json!({"site_id": 4242})))
        .await
        .expect("opens");
    let err = connector.validate().await.expect_err("no such site");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        err.message.contains("looking up `site_id` 4242"),
        "{}",
        err.message
    );

    let connector = env
        .open(env.token_settings(json!({"account_id": 4242})))
        .await
        .expect("opens");
    let err = connector
        .list("user", PageToken::first())
        .await
        .expect_err("no such account");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        err.message.contains("listing the users of account 4242"),
        "{}",
        err.message
    );
}
