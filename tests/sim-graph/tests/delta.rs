//! `users/delta` and `groups/delta` (concepts/delta-query-overview.md, delta-query-groups.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::http::StatusCode;
use common::{Answer, Harness, ORIGIN};
use serde_json::{Value, json};
use sim_graph::SimConfig;

/// Follows a round to its deltaLink; returns the pages and the deltaLink.
async fn round(h: &Harness, start: &str) -> (Vec<Answer>, String) {
    let mut pages = vec![h.get(start).await];
    loop {
        let last = pages.last().unwrap();
        assert_eq!(last.status, StatusCode::OK, "{}", last.text);
        assert!(
            last.next_link().is_none() || last.delta_link().is_none(),
            "a page never has both links"
        );
        if let Some(delta) = last.delta_link() {
            return (pages, delta);
        }
        let next = last.next_link().expect("nextLink or deltaLink");
        pages.push(h.get(&next).await);
        assert!(pages.len() < 5_000);
    }
}

fn values(pages: &[Answer]) -> Vec<Value> {
    pages.iter().flat_map(Answer::values).collect()
}

#[tokio::test]
async fn initial_users_round_pages_through_next_links_to_a_delta_link() {
    let h = Harness::new(SimConfig {
        users: 450,
        ..SimConfig::default()
    })
    .await;
    let (pages, delta) = round(&h, "/v1.0/users/delta?$select=displayName,userType").await;
    assert_eq!(pages.len(), 3);
    assert!(
        pages[0]
            .next_link()
            .unwrap()
            .starts_with(&format!("{ORIGIN}/v1.0/users/delta?$skiptoken="))
    );
    assert!(delta.starts_with(&format!("{ORIGIN}/v1.0/users/delta?$deltatoken=")));
    let all = values(&pages);
    let ids: Vec<&str> = all.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(ids, h.sim.user_ids());
    // $select travels in the skiptoken: later pages keep the selection.
    let last = &pages[2].values()[0];
    let keys: BTreeSet<&str> = last
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["id", "displayName", "userType"]));
    // No change since: the deltaLink answers an empty page and a new deltaLink.
    let (again, _) = round(&h, &delta).await;
    assert_eq!(values(&again), Vec::<Value>::new());
}

#[tokio::test]
async fn delta_after_user_changes_reports_new_and_deleted_users() {
    let h = Harness::small().await;
    let (_, delta) = round(&h, "/v1.0/users/delta?$select=displayName").await;
    let new_id = h.sim.add_user("Nova Newcomer");
    let gone = h.sim.user_ids()[3].clone();
    assert!(h.sim.remove_user(&gone));
    let (pages, next_delta) = round(&h, &delta).await;
    let changes = values(&pages);
    assert_eq!(changes.len(), 2, "{changes:?}");
    let removed = changes.iter().find(|c| c["id"] == gone.as_str()).unwrap();
    assert_eq!(removed["@removed"], json!({ "reason": "changed" }));
    let added = changes.iter().find(|c| c["id"] == new_id.as_str()).unwrap();
    assert_eq!(added["displayName"], "Nova Newcomer");
    let (quiet, _) = round(&h, &next_delta).await;
    assert!(values(&quiet).is_empty());
}

#[tokio::test]
async fn delta_after_member_removal_reports_removed_member() {
    let h = Harness::small().await;
    let (initial, delta) = round(&h, "/v1.0/groups/delta").await;
    let group = h.sim.group_ids()[0].clone();
    let listed = values(&initial);
    let g0 = listed.iter().find(|g| g["id"] == group.as_str()).unwrap();
    let members: Vec<&str> = g0["members@delta"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        members,
        h.sim.group_members(&group),
        "members@delta by default without $select"
    );

    let removed = h.sim.group_members(&group)[0].clone();
    let newcomer = h.sim.add_user("Grace Joiner");
    assert!(h.sim.remove_member(&group, &removed));
    assert!(h.sim.add_member(&group, &newcomer));
    let (pages, _) = round(&h, &delta).await;
    let changed = values(&pages);
    assert_eq!(
        changed.len(),
        1,
        "only the group whose members changed: {changed:?}"
    );
    assert_eq!(changed[0]["id"], group.as_str());
    assert!(
        changed[0]["displayName"].is_string(),
        "same properties as the initial round"
    );
    let refs = changed[0]["members@delta"].as_array().unwrap();
    let gone = refs.iter().find(|r| r["id"] == removed.as_str()).unwrap();
    assert_eq!(gone["@odata.type"], "#microsoft.graph.user");
    assert_eq!(gone["@removed"], json!({ "reason": "deleted" }));
    let joined = refs.iter().find(|r| r["id"] == newcomer.as_str()).unwrap();
    assert!(joined.get("@removed").is_none());
}

#[tokio::test]
async fn deleting_a_user_removes_it_from_its_groups_in_group_delta() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let user = h.sim.group_members(&group)[0].clone();
    let (_, delta) = round(&h, "/v1.0/groups/delta?$select=displayName,members").await;
    h.sim.remove_user(&user);
    let changed = values(&round(&h, &delta).await.0);
    let g0 = changed.iter().find(|g| g["id"] == group.as_str()).unwrap();
    let keys: BTreeSet<&str> = g0.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["id", "displayName", "members@delta"]));
    assert_eq!(g0["members@delta"][0]["id"], user.as_str());
    assert_eq!(g0["members@delta"][0]["@removed"]["reason"], "deleted");
    assert!(!h.sim.group_members(&group).contains(&user));
}

#[tokio::test]
async fn membership_changes_are_not_reported_when_members_are_not_selected() {
    let h = Harness::small().await;
    let (_, delta) = round(&h, "/v1.0/groups/delta?$select=displayName").await;
    let group = h.sim.group_ids()[0].clone();
    let member = h.sim.group_members(&group)[0].clone();
    h.sim.remove_member(&group, &member);
    let (pages, _) = round(&h, &delta).await;
    assert!(values(&pages).is_empty());
}

#[tokio::test]
async fn expired_delta_link_is_sync_state_not_found() {
    let h = Harness::small().await;
    let (_, delta) = round(&h, "/v1.0/users/delta").await;
    h.sim.expire_delta_links();
    let answer = h.get(&delta).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "syncStateNotFound");
    // A full resync works and its deltaLink is good again.
    let (_, fresh) = round(&h, "/v1.0/users/delta").await;
    assert_eq!(h.get(&fresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn reset_delta_sync_is_410_gone_with_a_location_to_restart() {
    let h = Harness::small().await;
    let (_, delta) = round(&h, "/v1.0/groups/delta").await;
    h.sim.reset_delta_sync();
    let answer = h.get(&delta).await;
    assert_eq!(answer.status, StatusCode::GONE);
    assert_eq!(answer.code(), "resyncRequired");
    assert_eq!(
        answer.header("location"),
        Some(format!("{ORIGIN}/v1.0/groups/delta?$deltatoken=").as_str())
    );
}

#[tokio::test]
async fn delta_link_older_than_its_ttl_is_sync_state_not_found() {
    let h = Harness::new(SimConfig {
        delta_link_ttl: Duration::from_millis(30),
        ..SimConfig::default()
    })
    .await;
    let (_, delta) = round(&h, "/v1.0/users/delta").await;
    tokio::time::sleep(Duration::from_millis(80)).await;
    let answer = h.get(&delta).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "syncStateNotFound");
}

#[tokio::test]
async fn deltatoken_latest_skips_existing_data_and_tracks_from_now() {
    let h = Harness::small().await;
    let latest = h.get("/v1.0/users/delta?$deltatoken=latest").await;
    assert_eq!(latest.status, StatusCode::OK);
    assert!(latest.values().is_empty());
    let delta = latest.delta_link().unwrap();
    let id = h.sim.add_user("Late Arrival");
    let changes = values(&round(&h, &delta).await.0);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["id"], id.as_str());
}

#[tokio::test]
async fn large_group_is_split_over_pages_and_merges_to_its_members() {
    let h = Harness::new(SimConfig {
        users: 3_000,
        groups: 3,
        memberships: 5_000,
        ..SimConfig::default()
    })
    .await;
    let (pages, _) = round(&h, "/v1.0/groups/delta?$select=displayName,members").await;
    assert!(
        pages.len() > 2,
        "5,000 member references need several pages"
    );
    let mut merged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut appearances: BTreeMap<String, usize> = BTreeMap::new();
    for group in values(&pages) {
        let id = group["id"].as_str().unwrap().to_owned();
        *appearances.entry(id.clone()).or_default() += 1;
        let refs = group["members@delta"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        merged
            .entry(id)
            .or_default()
            .extend(refs.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
    }
    assert!(
        appearances.values().any(|n| *n > 1),
        "a big group appears on several pages"
    );
    for group in h.sim.group_ids() {
        assert_eq!(merged[&group], h.sim.group_members(&group));
    }
}

#[tokio::test]
async fn delta_filter_by_ids_tracks_only_those_objects() {
    let h = Harness::small().await;
    let ids = h.sim.user_ids();
    let uri = format!(
        "/v1.0/users/delta?$filter=id eq '{}' or id eq '{}'",
        ids[1], ids[2]
    );
    let (pages, delta) = round(&h, &uri).await;
    let seen: Vec<String> = values(&pages)
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, vec![ids[1].clone(), ids[2].clone()]);
    h.sim.remove_user(&ids[5]);
    h.sim.remove_user(&ids[2]);
    let changes = values(&round(&h, &delta).await.0);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0]["id"], ids[2].as_str());
}
