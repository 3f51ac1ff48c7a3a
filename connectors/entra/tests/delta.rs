//! Incremental syncs through Graph delta queries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::collections::BTreeSet;

use common::{Sim, list};
use idhost_connector_sdk::services::HostServices;
use idhost_connector_sdk::testing::TestServices;
use idhost_connector_sdk::{EntitlementRef, GrantRef, Provisioner, ResourceRef, SourceInfo};
use serde_json::json;
use sim_graph::SimConfig;

const USERS_KEY: &str = "users.delta_link.v1";
const GROUPS_KEY: &str = "groups.delta_link.v1";

fn tenant() -> SimConfig {
    SimConfig {
        users: 5_000,
        managed_identities: 3,
        groups: 500,
        memberships: 20_000,
        apps: 3,
        roles: 4,
        ..SimConfig::default()
    }
}

fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

#[tokio::test]
async fn delta_listing_after_changes_yields_exactly_those_upserts_and_removals() {
    let sim = Sim::start(tenant()).await;
    let services = TestServices::new();
    let connector = sim.open(json!({}), services.clone()).await;
    let log = sim.sim.faults().log().clone();

    let full = list(&connector, &["user", "group"])
        .await
        .expect("full listing");
    let full_requests = log.len();
    assert_eq!(full.incremental.get("user"), Some(&false));
    let links = services.state();
    let (users_link, groups_link) = (links[USERS_KEY].clone(), links[GROUPS_KEY].clone());

    // The changes: a new user who joins group 0, a removed user (with memberships and maybe
    // ownerships), a member added to group 3 and one removed from group 1.
    let groups = sim.sim.group_ids();
    let users = sim.sim.user_ids();
    let new_user = sim.sim.add_user("Zoe Newcomer");
    assert!(sim.sim.add_member(&groups[0], &new_user));
    let leaver = sim
        .sim
        .group_members(&groups[2])
        .into_iter()
        .find(|m| users.contains(m))
        .expect("group 2 has a user member");
    let mut expected_removed = set([format!("user:{leaver}")]);
    let mut changed_groups = set([format!("group:{}", groups[0])]);
    for g in &groups {
        for (slug, holders) in [
            ("member", sim.sim.group_members(g)),
            ("owner", sim.sim.group_owners(g)),
        ] {
            if holders.contains(&leaver) {
                expected_removed.insert(format!("group:{g}:{slug}:user:{leaver}"));
                changed_groups.insert(format!("group:{g}"));
            }
        }
    }
    let joiner = users
        .iter()
        .find(|u| **u != leaver && !sim.sim.group_members(&groups[3]).contains(u))
        .expect("a user outside group 3")
        .clone();
    assert!(sim.sim.add_member(&groups[3], &joiner));
    changed_groups.insert(format!("group:{}", groups[3]));
    let dropped = sim
        .sim
        .group_members(&groups[1])
        .into_iter()
        .find(|m| users.contains(m) && *m != leaver)
        .expect("group 1 has another user member");
    assert!(sim.sim.remove_member(&groups[1], &dropped));
    expected_removed.insert(format!("group:{}:member:user:{dropped}", groups[1]));
    changed_groups.insert(format!("group:{}", groups[1]));
    assert!(sim.sim.remove_user(&leaver));

    log.clear();
    let delta = list(&connector, &["user", "group"])
        .await
        .expect("delta listing");
    let delta_requests = log.len();

    assert_eq!(delta.incremental.get("user"), Some(&true));
    assert_eq!(delta.incremental.get("group"), Some(&true));
    let managed = set(sim
        .sim
        .managed_identity_ids()
        .into_iter()
        .map(|id| format!("user:{id}")));
    let people: BTreeSet<String> = delta.ids("user").difference(&managed).cloned().collect();
    assert_eq!(people, set([format!("user:{new_user}")]), "upserted users");
    assert_eq!(delta.ids("group"), changed_groups, "upserted groups");
    assert_eq!(
        delta.grants,
        set([
            format!("group:{}:member:user:{new_user}", groups[0]),
            format!("group:{}:member:user:{joiner}", groups[3]),
        ]),
        "added grants"
    );
    assert_eq!(delta.removed, expected_removed, "removed ids");

    let links = services.state();
    assert_ne!(
        links[USERS_KEY], users_link,
        "a new users delta link is kept"
    );
    assert_ne!(
        links[GROUPS_KEY], groups_link,
        "a new groups delta link is kept"
    );
    println!("full listing: {full_requests} requests; delta listing: {delta_requests} requests");
    assert!(
        delta_requests * 10 <= full_requests,
        "delta ({delta_requests} requests) should cost a small fraction of the full listing ({full_requests})"
    );

    // Nothing changed since: the next round is empty.
    let quiet = list(&connector, &["user", "group"])
        .await
        .expect("quiet listing");
    assert!(quiet.ids("group").is_empty() && quiet.grants.is_empty() && quiet.removed.is_empty());
}

async fn expired_link_falls_back_to_a_full_listing(expire: impl Fn(&sim_graph::Simulator)) {
    let sim = Sim::start(SimConfig {
        users: 400,
        groups: 30,
        memberships: 1_500,
        ..SimConfig::default()
    })
    .await;
    let services = TestServices::new();
    let connector = sim.open(json!({}), services.clone()).await;
    list(&connector, &["user", "group"])
        .await
        .expect("full listing");
    let before = services.state();
    expire(&sim.sim);
    sim.sim.add_user("After Expiry");
    let again = list(&connector, &["user", "group"])
        .await
        .expect("falls back");
    assert_eq!(again.incremental.get("user"), Some(&false));
    assert_eq!(again.incremental.get("group"), Some(&false));
    let c = sim.sim.counts();
    assert_eq!(again.count("user"), c.users + c.managed_identities);
    assert_eq!(again.count("group"), c.groups);
    assert_eq!(again.grants_of("group", "member"), c.memberships);
    let after = services.state();
    assert_ne!(after[USERS_KEY], before[USERS_KEY], "a fresh users link");
    assert_ne!(after[GROUPS_KEY], before[GROUPS_KEY], "a fresh groups link");
    // And the fresh link works.
    sim.sim.add_user("Later Still");
    let next = list(&connector, &["user"])
        .await
        .expect("incremental again");
    assert_eq!(next.incremental.get("user"), Some(&true));
}

#[tokio::test]
async fn expired_delta_link_400_sync_state_not_found_falls_back_to_full_listing() {
    expired_link_falls_back_to_a_full_listing(|s| s.expire_delta_links()).await;
}

#[tokio::test]
async fn expired_delta_link_410_gone_falls_back_to_full_listing() {
    expired_link_falls_back_to_a_full_listing(|s| s.reset_delta_sync()).await;
}

#[tokio::test]
async fn full_sync_requested_by_the_host_ignores_the_delta_link() {
    let sim = Sim::start(SimConfig::default()).await;
    let services = TestServices::new();
    let connector = sim.open(json!({}), services.clone()).await;
    list(&connector, &["user", "group"])
        .await
        .expect("full listing");
    let full = {
        let mut built = SourceInfo::default();
        built.full_sync = true;
        built
    };
    let forced = sim.open_with(json!({}), services.clone(), full).await;
    let listed = list(&forced, &["user", "group"]).await.expect("full again");
    assert_eq!(listed.incremental.get("user"), Some(&false));
    assert_eq!(listed.count("group"), sim.sim.counts().groups);
    let off = sim.open(json!({ "incremental": false }), services).await;
    let listed = list(&off, &["user"]).await.expect("full with delta off");
    assert_eq!(listed.incremental.get("user"), Some(&false));
}

#[tokio::test]
async fn managed_identity_that_disappeared_is_removed_in_an_incremental_sync() {
    let sim = Sim::start(SimConfig::default()).await;
    let services = TestServices::new();
    let connector = sim.open(json!({}), services.clone()).await;
    list(&connector, &["user"]).await.expect("full listing");
    let key = "managed_identities.v1";
    let known = services.state()[key].clone();
    assert_eq!(known.lines().count(), sim.sim.counts().managed_identities);
    services.state_set(key, Some(format!("{known}\ngone-identity")));
    let delta = list(&connector, &["user"]).await.expect("incremental");
    assert_eq!(delta.incremental.get("user"), Some(&true));
    assert_eq!(delta.removed, set(["user:gone-identity".to_owned()]));
}

#[tokio::test]
async fn owner_changes_reach_the_next_incremental_sync() {
    let sim = Sim::start(SimConfig::default()).await;
    let services = TestServices::new();
    let connector = sim.open(json!({}), services.clone()).await;
    list(&connector, &["group"]).await.expect("full listing");
    let group = sim.sim.group_ids()[0].clone();
    let user = sim
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !sim.sim.group_owners(&group).contains(u))
        .expect("a non-owner");
    let ent = EntitlementRef::parse(&format!("group:{group}:owner")).expect("parses");
    let principal = ResourceRef::parse(&format!("user:{user}")).expect("parses");
    connector.grant(&ent, &principal).await.expect("grants");
    let delta = list(&connector, &["group"]).await.expect("incremental");
    let grant = format!("group:{group}:owner:user:{user}");
    assert_eq!(delta.grants, set([grant.clone()]));
    let revoke = GrantRef::parse(&grant).expect("parses");
    connector.revoke(&revoke).await.expect("revokes");
    let delta = list(&connector, &["group"]).await.expect("incremental");
    assert_eq!(delta.removed, set([grant]));
}
