//! Users and sites: counts, the seven Oomnitza fields, changes between syncs, side-loaded grants.

use std::collections::BTreeSet;

use idhost_clickwrap::Clickwrap;
use idhost_connector_sdk::testing::assert_connector_compliance;
use idhost_connector_sdk::{Capability, Connector, Resource};
use serde_json::json;
use sim_clickwrap::SimConfig;

use crate::common::{Env, list_all, user_ids, users};

fn sim(users: usize, sites: usize) -> SimConfig {
    SimConfig {
        users,
        sites,
        ..SimConfig::default()
    }
}

/// The seven fields Oomnitza maps, compared with the simulator's rendering of the user.
fn assert_seven_fields(resource: &Resource, upstream: &serde_json::Value) {
    let user = resource.user.as_ref().expect("user trait");
    let email = upstream["email"].as_str().expect("email");
    assert_eq!(resource.id, format!("user:{}", upstream["id"]), "User Id");
    assert_eq!(
        resource.profile["user_id"], upstream["id"],
        "User Id in profile"
    );
    assert_eq!(user.login.as_deref(), Some(email), "Email as login");
    assert_eq!(user.emails.len(), 1);
    assert_eq!(user.emails[0].address, email, "Email");
    assert!(user.emails[0].primary);
    assert_eq!(json!(resource.display_name), upstream["name"], "Name");
    assert_eq!(json!(user.locale), upstream["locale"], "Locale");
    assert_eq!(json!(user.time_zone), upstream["time_zone"], "Time Zone");
    assert_eq!(json!(user.verified), upstream["verified"], "Verified");
    let verified_time = upstream
        .get("verified_time")
        .cloned()
        .unwrap_or(json!(null));
    assert_eq!(json!(user.verified_at), verified_time, "Verified Time");
    assert_eq!(
        resource.profile["profiles"], upstream["profiles"],
        "profiles kept"
    );
}

#[tokio::test]
async fn passes_the_compliance_harness_with_multi_page_sites() {
    let env = Env::start(sim(450, 3)).await;
    let settings = env.client_settings(json!({
        "account_id": env.sim.config().account_id, "per_page": 40
    }));
    let connector = env.open(settings).await.expect("opens");
    let listing = assert_connector_compliance(&connector).await;
    assert_eq!(listing.resources["user"].len(), 450);
    let sites = &listing.resources["site"];
    let site_ids: Vec<String> = env
        .sim
        .site_ids()
        .iter()
        .map(|id| format!("site:{id}"))
        .collect();
    assert_eq!(
        sites.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        site_ids
    );
    assert_eq!(listing.entitlements.len(), 3 * 3);
    // Every account member is on the primary site; every site has exactly one owner.
    let first = &site_ids[0];
    let on_first = listing
        .grants
        .iter()
        .filter(|g| g.entitlement.starts_with(&format!("{first}:")))
        .count();
    assert_eq!(on_first, 450);
    for site in &site_ids {
        let owners = listing
            .grants
            .iter()
            .filter(|g| g.entitlement == format!("{site}:owner"))
            .count();
        assert_eq!(owners, 1, "{site}");
    }
    let members: BTreeSet<String> = user_ids(env.sim.user_ids()).into_iter().collect();
    assert!(
        listing
            .grants
            .iter()
            .all(|g| members.contains(&g.principal))
    );
}

#[tokio::test]
async fn lists_3000_users_with_the_seven_oomnitza_fields() {
    let env = Env::start(sim(3000, 1)).await;
    let connector = env.open_account().await;
    env.sim.faults().log().clear();
    let listed = users(&connector).await;
    assert_eq!(listed.len(), 3000);
    assert_eq!(env.sim.user_count(), 3000);
    let ids: Vec<String> = listed.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids, user_ids(env.sim.user_ids()));

    // 3,000 users at 100 a page: 30 member pages, each sorted by id explicitly (the default
    // order is not documented) and counted (a changed total_count means the listing shifted).
    let member_pages: Vec<_> = env
        .sim
        .faults()
        .log()
        .records()
        .into_iter()
        .filter(|r| r.path.ends_with("/members"))
        .collect();
    assert_eq!(member_pages.len(), 30);
    assert!(
        member_pages
            .iter()
            .all(|r| r.query.contains("sort=id") && !r.query.contains("no_count"))
    );
    // The whole sync: 1 token, 30 member pages, 1 GET /sites, 30 roster pages of the one site.
    assert_eq!(env.count("POST", "/oauth/token"), 1);
    assert_eq!(env.count("GET", "/memberships"), 30);
    assert_eq!(env.sim.faults().log().len(), 1 + 30 + 1 + 30);

    let spot = env.sim.user_ids()[1234];
    let upstream = env.sim.user(spot).expect("user exists");
    let resource = listed
        .iter()
        .find(|r| r.id == format!("user:{spot}"))
        .expect("listed");
    assert_seven_fields(resource, &upstream);

    let unverified = listed
        .iter()
        .find(|r| r.user.as_ref().and_then(|u| u.verified) == Some(false))
        .expect("the dataset has unverified users");
    let id: u64 = unverified.id["user:".len()..].parse().expect("numeric id");
    assert_seven_fields(unverified, &env.sim.user(id).expect("user exists"));
    assert_eq!(
        unverified.user.as_ref().and_then(|u| u.verified_at.clone()),
        None
    );
}

#[tokio::test]
async fn a_second_listing_shows_exactly_the_removed_and_added_users() {
    let env = Env::start(sim(3000, 1)).await;
    let connector = env.open_account().await;
    let before: BTreeSet<String> = users(&connector).await.into_iter().map(|r| r.id).collect();

    let all = env.sim.user_ids();
    let removed: Vec<u64> = (0..10).map(|k| all[k * 297 + 5]).collect();
    for id in &removed {
        assert!(env.sim.remove_user(*id));
    }
    let added: Vec<u64> = (0..5)
        .map(|k| {
            env.sim.add_user(
                &format!("new.hire{k}@example.com"),
                &format!("New Hire {k}"),
            )
        })
        .collect();

    let after: BTreeSet<String> = users(&connector).await.into_iter().map(|r| r.id).collect();
    assert_eq!(after.len(), 3000 - 10 + 5);
    let gone: BTreeSet<String> = before.difference(&after).cloned().collect();
    let new: BTreeSet<String> = after.difference(&before).cloned().collect();
    assert_eq!(gone, user_ids(removed).into_iter().collect());
    assert_eq!(new, user_ids(added).into_iter().collect());
}

#[tokio::test]
async fn restored_users_come_back_with_the_same_id_and_fields() {
    let env = Env::start(sim(300, 1)).await;
    let connector = env.open_account().await;
    let before = users(&connector).await;
    let chosen: Vec<u64> = env
        .sim
        .user_ids()
        .into_iter()
        .skip(10)
        .step_by(97)
        .take(3)
        .collect();
    for id in &chosen {
        assert!(env.sim.remove_user(*id));
    }
    let during = users(&connector).await;
    assert_eq!(during.len(), 297);
    let chosen_ids = user_ids(chosen.clone());
    assert!(during.iter().all(|r| !chosen_ids.contains(&r.id)));

    for id in &chosen {
        assert!(env.sim.restore_user(*id));
    }
    let after = users(&connector).await;
    assert_eq!(after, before, "same ids, same fields, same order");

    // Their site role comes back too.
    let listing = list_all(&connector).await.expect("lists");
    for id in chosen_ids {
        assert!(
            listing.grants.iter().any(|g| g.principal == id),
            "{id} has a site role"
        );
    }
}

#[tokio::test]
async fn the_manifest_declares_sites_and_no_provisioning() {
    let manifest = Clickwrap::manifest();
    assert_eq!(manifest.name, "clickwrap");
    let types: Vec<&str> = manifest
        .resource_types
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(types, ["user", "site"]);
    assert!(manifest.capabilities.is_empty());
    assert!(!manifest.can(Capability::Grant));
    let secrets: Vec<&str> = manifest.secret_keys().collect();
    assert_eq!(secrets, ["client_secret", "access_token"]);
}
