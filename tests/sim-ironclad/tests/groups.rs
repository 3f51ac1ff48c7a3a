//! `/scim/v2/Groups`: listing, create, membership PATCH, replace, delete.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use sim_ironclad::SimConfig;

fn company() -> Harness {
    Harness::new(SimConfig {
        users: 40,
        groups: 12,
        members_per_group: 6,
        rate_limits: false,
        ..SimConfig::default()
    })
}

fn member_values(group: &Value) -> Vec<String> {
    group["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn groups_list_their_members_as_documented() {
    let h = company();
    let answer = h.scim("GET", "/scim/v2/Groups?count=100", None).await;
    assert_eq!(answer.body["totalResults"], 12);
    let groups = answer.body["Resources"].as_array().unwrap();
    assert_eq!(ids(&answer.body), h.sim.group_ids());
    let first = &groups[0];
    assert_eq!(first["schemas"], json!([GROUP_URN]));
    assert_eq!(first["displayName"], "Legal Ops Group");
    assert_eq!(first["externalId"], "100");
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        id.len(),
        36,
        "group ids are UUIDs like the documented example"
    );
    assert_eq!(
        first["meta"],
        json!({"resourceType": "Group", "location": format!("https://na1.ironcladapp.com/scim/v2/Groups/{id}")})
    );
    for group in groups {
        let members = group["members"].as_array().unwrap();
        assert_eq!(members.len(), 6);
        for m in members {
            assert_eq!(m["type"], "User");
            assert!(h.sim.user(m["value"].as_str().unwrap()).is_some());
        }
    }
}

#[tokio::test]
async fn excluding_members_drops_the_member_list() {
    let h = company();
    let answer = h
        .scim("GET", "/scim/v2/Groups?excludedAttributes=members", None)
        .await;
    for group in answer.body["Resources"].as_array().unwrap() {
        assert!(group.get("members").is_none());
        assert!(group["displayName"].is_string());
    }
    let id = &h.sim.group_ids()[0];
    let one = h
        .scim(
            "GET",
            &format!("/scim/v2/Groups/{id}?excludedAttributes=members,externalId"),
            None,
        )
        .await;
    assert!(one.body.get("members").is_none() && one.body.get("externalId").is_none());
}

#[tokio::test]
async fn filter_by_display_name_or_member_finds_groups() {
    let h = company();
    let answer = h
        .scim(
            "GET",
            "/scim/v2/Groups?filter=displayName%20eq%20%22legal%20ops%20group%22",
            None,
        )
        .await;
    assert_eq!(answer.body["totalResults"], 1);
    assert_eq!(
        answer.body["Resources"][0]["displayName"],
        "Legal Ops Group"
    );
    let member = h.sim.group_members(&h.sim.group_ids()[3])[0].clone();
    let by_member = h
        .scim(
            "GET",
            &format!("/scim/v2/Groups?filter=members.value%20eq%20%22{member}%22"),
            None,
        )
        .await;
    let expected: Vec<String> = h
        .sim
        .group_ids()
        .into_iter()
        .filter(|g| h.sim.group_members(g).contains(&member))
        .collect();
    assert_eq!(ids(&by_member.body), expected);
    let bad = h
        .scim(
            "GET",
            "/scim/v2/Groups?filter=legalName%20eq%20%22x%22",
            None,
        )
        .await;
    assert_eq!(
        bad.body["detail"],
        "No matching schema for attribute: legalName"
    );
}

#[tokio::test]
async fn create_group_is_201_and_a_duplicate_display_name_is_409() {
    let h = Harness::new(SimConfig {
        groups: 0,
        ..SimConfig::default()
    });
    let user = h.sim.user_ids()[4].clone();
    let body = fixture("create-group.json", &[("USER_ID", &user)]);
    let answer = h.scim("POST", "/scim/v2/Groups", Some(body.clone())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    let id = answer.body["id"].as_str().unwrap();
    assert_eq!(
        answer.header("location"),
        Some(format!("https://na1.ironcladapp.com/scim/v2/Groups/{id}").as_str())
    );
    assert_eq!(
        answer.body["members"],
        json!([{"type": "User", "value": user}])
    );
    assert_eq!(answer.body["externalId"], "123");
    assert_eq!(h.sim.group(id), Some(answer.body.clone()));
    let mut shouted = body;
    shouted["displayName"] = json!("LEGAL OPS GROUP");
    let again = h.scim("POST", "/scim/v2/Groups", Some(shouted)).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body, json!({"schemas": [ERROR_URN], "status": "409"}));
}

#[tokio::test]
async fn create_group_with_an_unknown_member_or_no_name_is_invalid_value() {
    let h = company();
    let unknown = h
        .scim("POST", "/scim/v2/Groups", Some(json!({"schemas": [GROUP_URN], "displayName": "X", "members": [{"value": "ghost"}]})))
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown.body["detail"],
        "Invalid value at members: \"ghost\""
    );
    let numeric = h
        .scim(
            "POST",
            "/scim/v2/Groups",
            Some(json!({"schemas": [GROUP_URN], "displayName": 123})),
        )
        .await;
    assert_eq!(numeric.body["detail"], "Invalid value at displayName: 123");
    assert_eq!(h.sim.group_count(), 12);
}

#[tokio::test]
async fn patch_adds_and_removes_members_in_one_request() {
    let h = company();
    let group = h.sim.group_ids()[2].clone();
    let before = h.sim.group_members(&group);
    let outsider = h
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !before.contains(u))
        .unwrap();
    let body = fixture(
        "patch-group-members.json",
        &[("ADD_ID", &outsider), ("REMOVE_ID", &before[0])],
    );
    let answer = h
        .scim("PATCH", &format!("/scim/v2/Groups/{group}"), Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let mut expected = before[1..].to_vec();
    expected.push(outsider);
    assert_eq!(member_values(&answer.body), expected);
    assert_eq!(h.sim.group_members(&group), expected);
}

#[tokio::test]
async fn adding_an_existing_member_is_a_successful_no_op() {
    let h = company();
    let group = h.sim.group_ids()[0].clone();
    let before = h.sim.group_members(&group);
    let body = patch_op(json!([{"op": "add", "path": "members", "value": [{"value": before[1]}]}]));
    let answer = h
        .scim("PATCH", &format!("/scim/v2/Groups/{group}"), Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(h.sim.group_members(&group), before);
}

#[tokio::test]
async fn revoke_of_absent_member_is_success() {
    let h = company();
    let group = h.sim.group_ids()[0].clone();
    let before = h.sim.group_members(&group);
    let outsider = h
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !before.contains(u))
        .unwrap();
    let body =
        patch_op(json!([{"op": "remove", "path": "members", "value": [{"value": outsider}]}]));
    let answer = h
        .scim("PATCH", &format!("/scim/v2/Groups/{group}"), Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(h.sim.group_members(&group), before);
}

#[tokio::test]
async fn remove_by_value_filter_and_remove_all_members_are_accepted() {
    let h = company();
    let group = h.sim.group_ids()[5].clone();
    let before = h.sim.group_members(&group);
    let path = format!("members[value eq \"{}\"]", before[2]);
    let answer = h
        .scim(
            "PATCH",
            &format!("/scim/v2/Groups/{group}"),
            Some(patch_op(json!([{"op": "remove", "path": path}]))),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(h.sim.group_members(&group).len(), 5);
    h.scim(
        "PATCH",
        &format!("/scim/v2/Groups/{group}"),
        Some(patch_op(json!([{"op": "remove", "path": "members"}]))),
    )
    .await;
    assert!(h.sim.group_members(&group).is_empty());
}

#[tokio::test]
async fn patch_replace_or_other_paths_are_refused_and_change_nothing() {
    let h = company();
    let group = h.sim.group_ids()[1].clone();
    let before = h.sim.group(&group);
    let newcomer = h.sim.user_ids()[0].clone();
    let replace = patch_op(json!([
        {"op": "add", "path": "members", "value": [{"value": newcomer}]},
        {"op": "replace", "path": "displayName", "value": "Renamed"},
    ]));
    let answer = h
        .scim("PATCH", &format!("/scim/v2/Groups/{group}"), Some(replace))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let ghost = patch_op(json!([{"op": "add", "path": "members", "value": [{"value": "ghost"}]}]));
    assert_eq!(
        h.scim("PATCH", &format!("/scim/v2/Groups/{group}"), Some(ghost))
            .await
            .body["scimType"],
        "invalidValue"
    );
    assert_eq!(h.sim.group(&group), before);
    let missing = h
        .scim(
            "PATCH",
            "/scim/v2/Groups/nope",
            Some(patch_op(json!([{"op": "remove", "path": "members"}]))),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn put_replaces_name_and_members() {
    let h = company();
    let group = h.sim.group_ids()[4].clone();
    let user = h.sim.user_ids()[9].clone();
    let body =
        json!({"schemas": [GROUP_URN], "displayName": "Deal Desk", "members": [{"value": user}]});
    let answer = h
        .scim("PUT", &format!("/scim/v2/Groups/{group}"), Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["displayName"], "Deal Desk");
    assert!(answer.body.get("externalId").is_none());
    assert_eq!(h.sim.group_members(&group), vec![user]);
    let found = h
        .scim(
            "GET",
            "/scim/v2/Groups?filter=displayName%20eq%20%22Deal%20Desk%22",
            None,
        )
        .await;
    assert_eq!(ids(&found.body), vec![group]);
    let clash = json!({"schemas": [GROUP_URN], "displayName": "Legal Ops Group"});
    let answer = h
        .scim(
            "PUT",
            &format!("/scim/v2/Groups/{}", h.sim.group_ids()[5]),
            Some(clash),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn delete_group_is_204_then_404() {
    let h = company();
    let group = h.sim.group_ids()[0].clone();
    assert_eq!(
        h.scim("DELETE", &format!("/scim/v2/Groups/{group}"), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(h.sim.group_count(), 11);
    let again = h
        .scim("GET", &format!("/scim/v2/Groups/{group}"), None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.body["detail"], format!("Resource {group} not found"));
}
