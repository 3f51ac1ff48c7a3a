//! Listing users and groups against the Ironclad simulator.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::collections::{BTreeSet, HashMap};

use common::{Upstream, small};
use idhost_connector_sdk::prelude::*;
use idhost_connector_sdk::testing::{self, TestServices};
use idhost_ironclad::Ironclad;
use serde_json::{Value, json};
use sim_common::{FaultAction, FaultRule};
use sim_ironclad::{CUSTOM_SCHEMA_URN, SimConfig};

const IRONCLAD_URN: &str = "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User";

#[tokio::test]
async fn passes_the_sdk_compliance_harness() {
    let up = Upstream::start(small()).await;
    let connector = up
        .open(up.settings_with(json!({"page_size": 7})))
        .await
        .expect("opens");
    let listing = testing::assert_connector_compliance(&connector).await;
    assert_eq!(listing.resources["user"].len(), 50);
    assert_eq!(listing.resources["group"].len(), 5);
}

#[tokio::test]
async fn lists_5000_users_and_200_groups_with_exact_counts_and_extension_attributes() {
    let up = Upstream::start(SimConfig {
        users: 5000,
        groups: 200,
        members_per_group: 25,
        ..SimConfig::default()
    })
    .await;
    let connector = up.open(up.settings()).await.expect("opens");
    let listing = testing::list_all(&connector).await.expect("lists");

    let users = &listing.resources["user"];
    let groups = &listing.resources["group"];
    assert_eq!(users.len(), 5000);
    assert_eq!(groups.len(), 200);
    assert_eq!(listing.entitlements.len(), 200);
    assert_eq!(listing.grants.len(), 200 * 25);
    let ids: BTreeSet<&str> = users.iter().map(|u| u.upstream_id()).collect();
    assert_eq!(ids.len(), 5000, "no user listed twice");
    assert_eq!(ids, up.sim.user_ids().iter().map(String::as_str).collect());
    // 6 user pages (1000 new, then 999 new each: every later page starts at the previous
    // page's last user, to notice a listing that shifted) + 1 group page + 1 token request.
    assert_eq!(up.sim.faults().log().count("GET", "/scim/v2/Users"), 6);
    assert_eq!(up.sim.faults().log().count("GET", "/scim/v2/Groups"), 1);
    assert_eq!(up.sim.faults().log().count("POST", "/oauth/token"), 1);

    // Every group's grants are exactly its members upstream.
    for group in groups {
        let expected: BTreeSet<String> = up
            .sim
            .group_members(group.upstream_id())
            .into_iter()
            .map(|m| format!("user:{m}"))
            .collect();
        let listed: BTreeSet<String> = listing
            .grants
            .iter()
            .filter(|g| g.entitlement == format!("{}:member", group.id))
            .map(|g| g.principal.clone())
            .collect();
        assert_eq!(listed, expected, "members of {}", group.id);
        let trait_ = group.group.as_ref().expect("group trait");
        assert_eq!(trait_.kind, "scim");
        assert_eq!(trait_.member_count, Some(25));
    }

    // Spot-check a user whose custom schema carries the company's managementLevel.
    let upstream: Value = up
        .sim
        .user_ids()
        .iter()
        .skip(1)
        .filter_map(|id| up.sim.user(id))
        .find(|u| {
            u[CUSTOM_SCHEMA_URN].get("managementLevel").is_some()
                && u[IRONCLAD_URN].get("departmentHead").is_some()
        })
        .expect("the dataset has a user with managementLevel and a department head");
    let by_id: HashMap<&str, &Resource> = users.iter().map(|u| (u.upstream_id(), u)).collect();
    let user = by_id[upstream["id"].as_str().expect("id")];
    let t = user.user.as_ref().expect("user trait");
    assert_eq!(t.login.as_deref(), upstream["userName"].as_str());
    assert_eq!(t.primary_email(), upstream["emails"][0]["value"].as_str());
    assert_eq!(
        t.given_name.as_deref(),
        upstream["name"]["givenName"].as_str()
    );
    assert_eq!(
        t.family_name.as_deref(),
        upstream["name"]["familyName"].as_str()
    );
    assert_eq!(t.title.as_deref(), upstream["title"].as_str());
    let enterprise = &upstream["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    assert_eq!(t.department.as_deref(), enterprise["department"].as_str());
    assert_eq!(
        t.manager.as_deref(),
        upstream[IRONCLAD_URN]["departmentHead"].as_str()
    );
    assert_eq!(t.account_type, AccountType::Human);
    assert_eq!(user.status, Status::Enabled);
    for (attr, value) in upstream[IRONCLAD_URN]
        .as_object()
        .expect("extension object")
    {
        assert_eq!(&user.profile[attr], value, "profile.{attr}");
    }
    for (attr, value) in enterprise.as_object().expect("enterprise object") {
        assert_eq!(&user.profile[attr], value, "profile.{attr}");
    }
    for (attr, value) in upstream[CUSTOM_SCHEMA_URN]
        .as_object()
        .expect("custom object")
    {
        assert_eq!(&user.profile[attr], value, "profile.{attr}");
    }
    assert!(user.profile["managementLevel"].is_string());
    assert_eq!(user.profile["meta"], upstream["meta"]);
}

#[tokio::test]
async fn unknown_extension_attributes_survive_into_the_profile() {
    let up = Upstream::start(small()).await;
    let id = up.sim.insert_user(json!({
        "userName": "custom.attrs@example.com",
        "name": {"givenName": "Custom", "familyName": "Attrs", "middleName": "Q"},
        "nickName": "CA",
        IRONCLAD_URN: {"managementLevel": "Director", "costCode": "CC-7", "clearance": {"level": 3}},
        "urn:ietf:params:scim:schemas:extension:acme:2.0:User": {"badge": "B-7", "nickName": "clash"}
    }));
    let connector = up.open(up.settings()).await.expect("opens");
    let listing = testing::list_all(&connector).await.expect("lists");
    let user = listing.resources["user"]
        .iter()
        .find(|u| u.upstream_id() == id)
        .expect("inserted user listed");
    let p = &user.profile;
    assert_eq!(p["managementLevel"], "Director");
    assert_eq!(p["costCode"], "CC-7");
    assert_eq!(p["clearance"], json!({"level": 3}));
    assert_eq!(p["badge"], "B-7");
    assert_eq!(p["nickName"], "CA");
    assert_eq!(p["acme:nickName"], "clash");
    assert_eq!(p["name"], json!({"middleName": "Q"}));
    assert_eq!(p["provider"], "saml");
}

#[tokio::test]
async fn token_expiring_mid_listing_is_refreshed_once_and_the_listing_continues() {
    let up = Upstream::start(SimConfig {
        users: 2500,
        groups: 1,
        ..SimConfig::default()
    })
    .await;
    // One page per call, so the refresh happens between two known requests.
    let connector = up
        .open(up.settings_with(json!({"pages_at_once": 1})))
        .await
        .expect("opens");
    let first = connector
        .list("user", PageToken::first())
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 1000);
    up.sim.expire_tokens();
    let second = connector
        .list(
            "user",
            PageToken::from_string(first.next.clone().expect("more")),
        )
        .await
        .expect("page 2 after a refresh");
    // Page 2 starts at page 1's last user (the overlap), which it drops: 999 new.
    assert_eq!(second.items.len(), 999);
    let third = connector
        .list(
            "user",
            PageToken::from_string(second.next.clone().expect("more")),
        )
        .await
        .expect("page 3");
    assert_eq!(third.items.len(), 501);
    assert_eq!(third.next, None);
    let log = up.sim.faults().log();
    assert_eq!(log.count("POST", "/oauth/token"), 2, "one refresh");
    assert_eq!(up.answered(401), 1, "one refused request");
    assert_eq!(
        log.count("GET", "/scim/v2/Users"),
        4,
        "page 2 sent twice, the others once"
    );
}

#[tokio::test]
async fn malformed_json_page_is_a_clean_internal_error_naming_the_request() {
    let up = Upstream::start(SimConfig {
        users: 1500,
        groups: 1,
        ..SimConfig::default()
    })
    .await;
    up.sim.faults().push(
        FaultRule::any(FaultAction::MalformedJson)
            .on_path("/scim/v2/Users")
            .after(1),
    );
    let connector = up.open(up.settings()).await.expect("opens");
    let err = testing::list_all(&connector)
        .await
        .expect_err("page 2 is garbage");
    assert_eq!(err.kind, ErrorKind::Internal);
    let wanted = format!(
        "GET {}/scim/v2/Users?startIndex=1000&count=1000",
        up.server.url()
    );
    assert!(err.message.contains(&wanted), "{}", err.message);
    assert!(
        err.message.contains("not the expected JSON"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn a_page_that_does_not_advance_is_an_error_not_a_loop() {
    let up = Upstream::start(small()).await;
    let stuck = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 50, "startIndex": 1, "itemsPerPage": 10,
        "Resources": [{"id": "u1", "userName": "a@example.com"}]
    });
    up.sim.faults().push(
        FaultRule::any(sim_common::Fault::status(200, stuck.to_string()))
            .on_path("/scim/v2/Users")
            .after(1),
    );
    let connector = up
        .open(up.settings_with(json!({"page_size": 10})))
        .await
        .expect("opens");
    let err = testing::list_all(&connector)
        .await
        .expect_err("stuck paging");
    assert_eq!(err.kind, ErrorKind::Internal);
    assert!(err.message.contains("does not advance"), "{}", err.message);
}

#[tokio::test]
async fn static_bearer_token_sends_the_actor_and_a_refused_one_is_unauthenticated_without_retry() {
    let up = Upstream::start(small()).await;
    let settings = json!({
        "base_url": up.server.url(),
        "bearer_token": up.sim.config().bearer_token,
        "as_user_email": up.sim.config().admin_email,
    });
    let connector = up.open(settings).await.expect("opens");
    let page = connector
        .list("group", PageToken::first())
        .await
        .expect("lists");
    assert_eq!(page.items.len(), 5);
    assert_eq!(up.sim.faults().log().count("POST", "/oauth/token"), 0);
    up.sim.revoke_tokens();
    up.sim.faults().log().clear();
    let err = connector
        .list("user", PageToken::first())
        .await
        .expect_err("revoked");
    assert_eq!(err.kind, ErrorKind::Unauthenticated);
    assert!(err.message.contains("bearer_token"), "{}", err.message);
    assert_eq!(
        up.sim.faults().log().len(),
        1,
        "no retry with the same token"
    );
}

#[tokio::test]
async fn refresh_token_grant_obtains_access_tokens() {
    let up = Upstream::start(small()).await;
    up.sim.set_issue_refresh_tokens(true);
    // Obtain a refresh token the way an operator would, once.
    let services = TestServices::new();
    let ctx = Context::new(services, common::source(false, false));
    let c = up.sim.config();
    let answer: Value = ctx
        .http()
        .post(format!("{}/oauth/token", up.server.url()))
        .json(
            &json!({"grant_type": "client_credentials", "client_id": c.client_id,
                      "client_secret": c.client_secret}),
        )
        .send()
        .await
        .expect("token answer")
        .json()
        .expect("json");
    let refresh = answer["refresh_token"]
        .as_str()
        .expect("refresh token issued");
    let connector = up
        .open(up.settings_with(json!({"refresh_token": refresh})))
        .await
        .expect("opens");
    let page = connector
        .list("user", PageToken::first())
        .await
        .expect("lists");
    assert_eq!(page.items.len(), 50);
    assert_eq!(up.sim.faults().log().count("POST", "/oauth/token"), 2);
}

#[tokio::test]
async fn unknown_acting_user_is_permission_denied_naming_the_header() {
    let up = Upstream::start(small()).await;
    let connector = up
        .open(up.settings_with(json!({"as_user_email": "nobody@example.com"})))
        .await
        .expect("opens");
    let err = connector
        .list("user", PageToken::first())
        .await
        .expect_err("403");
    assert_eq!(err.kind, ErrorKind::PermissionDenied);
    assert!(err.message.contains("x-as-user-email"), "{}", err.message);
    assert!(
        err.message.contains("x-ironclad-requestid"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn validate_checks_both_read_scopes() {
    let up = Upstream::start(small()).await;
    let connector = up.open(up.settings()).await.expect("opens");
    connector.validate().await.expect("valid");
    let users_only = up
        .open(up.settings_with(json!({"scopes": "scim.users.readUsers"})))
        .await
        .expect("opens");
    let err = users_only.validate().await.expect_err("no group scope");
    assert_eq!(err.kind, ErrorKind::PermissionDenied);
    assert!(err.message.contains("/scim/v2/Groups"), "{}", err.message);
}

#[tokio::test]
async fn bad_settings_fail_open_naming_the_key() {
    let up = Upstream::start(small()).await;
    let err = up
        .open(up.settings_with(json!({"base_url": null, "environment": "us2"})))
        .await
        .err()
        .expect("invalid environment");
    assert_eq!(
        err.message,
        "environment must be one of `na1`, `eu1`, `demo`; got `us2`"
    );
    assert!(up.sim.faults().log().is_empty(), "open sends nothing");
}

/// Measures the requests of a 50,000-user / 2,000-group listing (run with `--ignored`).
#[tokio::test]
#[ignore = "large dataset; run to measure request counts"]
async fn request_count_for_50k_users_and_2k_groups() {
    let up = Upstream::start(SimConfig {
        users: 50_000,
        groups: 2_000,
        members_per_group: 25,
        ..SimConfig::default()
    })
    .await;
    let connector: Ironclad = up.open(up.settings()).await.expect("opens");
    let started = std::time::Instant::now();
    let listing = testing::list_all(&connector).await.expect("lists");
    let elapsed = started.elapsed();
    assert_eq!(listing.resources["user"].len(), 50_000);
    assert_eq!(listing.resources["group"].len(), 2_000);
    assert_eq!(listing.grants.len(), 50_000);
    let log = up.sim.faults().log();
    let (users, groups, tokens) = (
        log.count("GET", "/scim/v2/Users"),
        log.count("GET", "/scim/v2/Groups"),
        log.count("POST", "/oauth/token"),
    );
    println!(
        "50k users / 2k groups: {} requests ({users} user pages, {groups} group pages, {tokens} token) in {elapsed:?}",
        log.len()
    );
    assert_eq!((users, groups, tokens), (50, 2, 1));
}

/// Every page of `rtype` from the first, in order, with each page's relist reason if any.
async fn pages_of(connector: &Ironclad, rtype: &str) -> Vec<Page<Resource>> {
    let mut pages = Vec::new();
    let mut token = PageToken::first();
    for _ in 0..1000 {
        let page = connector.list(rtype, token).await.expect("a page");
        let next = page.next.clone();
        let shifted = page.relist.is_some();
        pages.push(page);
        match next {
            Some(next) if !shifted => token = PageToken::from_string(next),
            _ => return pages,
        }
    }
    panic!("the listing of `{rtype}` did not end within 1000 pages");
}

#[tokio::test]
async fn later_pages_are_fetched_at_once_within_pages_at_once_and_come_back_in_order() {
    let up = Upstream::start(SimConfig {
        users: 1200,
        groups: 3,
        members_per_group: 5,
        // Each request is held a while, so requests sent together overlap at the simulator.
        latency: std::time::Duration::from_millis(30),
        ..SimConfig::default()
    })
    .await;
    let connector = up
        .open(up.settings_with(json!({"page_size": 100, "pages_at_once": 3})))
        .await
        .expect("opens");
    let pages = pages_of(&connector, "user").await;
    assert!(pages.iter().all(|p| p.relist.is_none()));
    let listed: Vec<String> = pages
        .iter()
        .flat_map(|p| p.items.iter().map(|u| u.upstream_id().to_owned()))
        .collect();
    assert_eq!(
        listed,
        up.sim.user_ids(),
        "every user once, in the upstream's index order"
    );
    // The first page alone (it gives totalResults), then three SCIM pages requested together:
    // 100 new users on the first, 99 on each later one (one of overlap) = 1 + ⌈1100 / 99⌉ = 13
    // requests; the host still gets them one SCIM page at a time (the rest read ahead).
    assert_eq!(up.sim.faults().log().count("GET", "/scim/v2/Users"), 13);
    assert_eq!(pages.len(), 13);
    assert!(pages.iter().all(|p| p.items.len() <= 100));
    let most = up.sim.max_in_flight("Users");
    assert!(
        (2..=3).contains(&most),
        "at most pages_at_once requests in flight, and more than one: {most}"
    );
}

#[tokio::test]
async fn pages_at_once_of_one_pages_one_request_at_a_time() {
    let up = Upstream::start(SimConfig {
        users: 500,
        groups: 3,
        members_per_group: 5,
        latency: std::time::Duration::from_millis(10),
        ..SimConfig::default()
    })
    .await;
    let connector = up
        .open(up.settings_with(json!({"page_size": 100, "pages_at_once": 1})))
        .await
        .expect("opens");
    let pages = pages_of(&connector, "user").await;
    let listed: usize = pages.iter().map(|p| p.items.len()).sum();
    assert_eq!(listed, 500);
    assert_eq!(up.sim.max_in_flight("Users"), 1);
}

#[tokio::test]
async fn a_deletion_while_pages_are_fetched_at_once_asks_for_a_relist() {
    let up = Upstream::start(SimConfig {
        users: 1000,
        groups: 3,
        members_per_group: 5,
        ..SimConfig::default()
    })
    .await;
    let connector = up
        .open(up.settings_with(json!({"page_size": 100, "pages_at_once": 4})))
        .await
        .expect("opens");
    let first = connector
        .list("user", PageToken::first())
        .await
        .expect("first page");
    assert_eq!(first.items.len(), 100);
    // A user of the first page goes away before the next pages are read: every later user
    // moves down one index.
    assert!(up.sim.remove_user(first.items[10].upstream_id()));
    let next = connector
        .list(
            "user",
            PageToken::from_string(first.next.clone().expect("more pages")),
        )
        .await
        .expect("an answer");
    let reason = next
        .relist
        .expect("the shifted listing is to be listed again");
    assert!(
        reason.contains("totalResults fell from 1000 to 999"),
        "{reason}"
    );
    assert!(next.items.is_empty());
}

#[tokio::test]
async fn a_deletion_between_two_pages_fetched_at_once_is_seen_by_the_overlap() {
    // The total cannot show it when a user is added and another removed: the overlap does.
    let up = Upstream::start(SimConfig {
        users: 1000,
        groups: 3,
        members_per_group: 5,
        ..SimConfig::default()
    })
    .await;
    let connector = up
        .open(up.settings_with(json!({"page_size": 100, "pages_at_once": 4})))
        .await
        .expect("opens");
    let first = connector
        .list("user", PageToken::first())
        .await
        .expect("first page");
    assert!(up.sim.remove_user(first.items[50].upstream_id()));
    up.sim
        .insert_user(json!({"userName": "added.later@example.com", "active": true}));
    let next = connector
        .list(
            "user",
            PageToken::from_string(first.next.clone().expect("more pages")),
        )
        .await
        .expect("an answer");
    let reason = next
        .relist
        .expect("the shifted listing is to be listed again");
    assert!(reason.contains("startIndex 100 held"), "{reason}");
}

#[test]
fn page_tokens_of_an_earlier_version_still_resume() {
    // Checked through the public surface: a bare startIndex and `<startIndex>:<id>` are
    // accepted as tokens (the listing goes on one page at a time until it learns the total).
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let up = Upstream::start(SimConfig {
            users: 300,
            groups: 3,
            members_per_group: 5,
            ..SimConfig::default()
        })
        .await;
        let connector = up
            .open(up.settings_with(json!({"page_size": 100})))
            .await
            .expect("opens");
        let page = connector
            .list("user", PageToken::from_string("101".to_owned()))
            .await
            .expect("a bare startIndex");
        assert_eq!(page.items.len(), 100);
        let next = page.next.expect("more");
        assert!(
            next.contains('/'),
            "the next token carries the total: {next}"
        );
    });
}
