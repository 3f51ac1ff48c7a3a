//! The simulator's answers have the shapes of the examples in Microsoft's docs
//! (`tests/resources/*.json`, sources in `tests/resources/README.md`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::collections::BTreeSet;

use axum::http::StatusCode;
use common::{Harness, good_form, raw, token_request};
use serde_json::{Value, json};
use sim_graph::SimConfig;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/resources/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn app_role_assignment_answer_matches_the_documented_example() {
    let h = Harness::small().await;
    let app = h.sim.app_ids()[1].clone();
    let group = h.sim.group_ids()[2].clone();
    let body = json!({ "principalId": group, "resourceId": app, "appRoleId": "00000000-0000-0000-0000-000000000000" });
    let created = h
        .post(
            &format!("/v1.0/servicePrincipals/{app}/appRoleAssignedTo"),
            body,
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(
        keys(&created.body),
        keys(&fixture("approleassignment-created.json"))
    );
    assert_eq!(created.body["principalType"], "Group");
}

#[tokio::test]
async fn role_assignments_with_principal_match_the_documented_example() {
    let h = Harness::small().await;
    let doc = fixture("roleassignments-expand-principal.json");
    // The documented example filters on roleDefinitionId, which the directory provider
    // requires (rbacapplication-list-roleassignments.md).
    let ours = h
        .get("/v1.0/roleManagement/directory/roleAssignments?$filter=roleDefinitionId eq '62e90394-69f5-4237-9190-012177145e10'&$expand=principal")
        .await;
    assert_eq!(
        ours.body["@odata.context"]
            .as_str()
            .unwrap()
            .split('#')
            .nth(1),
        doc["@odata.context"].as_str().unwrap().split('#').nth(1)
    );
    let (mine, theirs) = (&ours.values()[0], &doc["value"][0]);
    assert_eq!(keys(mine), keys(theirs));
    let principal = &mine["principal"];
    for key in ["@odata.type", "id", "displayName", "mail"] {
        assert!(principal.get(key).is_some(), "principal lacks {key}");
    }
}

#[tokio::test]
async fn throttled_answer_matches_the_documented_sample() {
    let h = Harness::new(SimConfig {
        users: 10,
        ..SimConfig::default()
    })
    .await;
    let group = h
        .sim
        .group_ids()
        .into_iter()
        .min_by_key(|g| h.sim.group_members(g).len())
        .unwrap();
    let uri = format!("/v1.0/groups/{group}/members");
    let mut answer = h.get(&uri).await;
    while answer.status == StatusCode::OK {
        answer = h.get(&uri).await;
    }
    let doc = fixture("throttled-429.json");
    assert_eq!(keys(&answer.body["error"]), keys(&doc["error"]));
    for key in ["code", "status", "date", "request-id"] {
        assert!(
            answer.body["error"]["innerError"].get(key).is_some(),
            "innerError lacks {key}"
        );
    }
    assert_eq!(answer.body["error"]["innerError"]["status"], "429");
}

#[tokio::test]
async fn group_delta_change_matches_the_documented_example() {
    let h = Harness::small().await;
    let doc = fixture("group-delta-member-removed.json");
    let mut page = h
        .get("/v1.0/groups/delta?$select=displayName,description,members")
        .await;
    while let Some(next) = page.next_link() {
        page = h.get(&next).await;
    }
    let group = h.sim.group_ids()[0].clone();
    let member = h.sim.group_members(&group)[0].clone();
    let joiner = h.sim.add_user("Delta Joiner");
    h.sim.remove_member(&group, &member);
    h.sim.add_member(&group, &joiner);
    let changed = h.get(&page.delta_link().unwrap()).await;
    assert_eq!(keys(&changed.body), keys(&doc));
    let (mine, theirs) = (&changed.values()[0], &doc["value"][0]);
    assert_eq!(keys(mine), keys(theirs));
    let refs = mine["members@delta"].as_array().unwrap();
    let doc_refs = theirs["members@delta"].as_array().unwrap();
    let removed = refs.iter().find(|r| r.get("@removed").is_some()).unwrap();
    let added = refs.iter().find(|r| r.get("@removed").is_none()).unwrap();
    assert_eq!(keys(removed), keys(&doc_refs[0]));
    assert_eq!(keys(added), keys(&doc_refs[1]));
}

#[tokio::test]
async fn default_user_properties_match_the_documented_example() {
    let h = Harness::small().await;
    let ours = h.get("/v1.0/users?$top=1").await;
    let doc = fixture("user-list.json");
    assert_eq!(keys(&ours.values()[0]), keys(&doc["value"][0]));
}

#[tokio::test]
async fn token_answer_matches_the_documented_example() {
    let sim = sim_graph::Simulator::new(SimConfig::default());
    let answer = raw(
        &sim.router(),
        token_request("contoso-tenant", &good_form(sim.config())),
    )
    .await;
    let doc = fixture("token-response.json");
    assert!(keys(&doc).is_subset(&keys(&answer.body)));
}

#[tokio::test]
async fn batch_inner_responses_match_the_documented_example() {
    let h = Harness::small().await;
    let answer = h
        .post("/v1.0/$batch", json!({ "requests": [
            { "id": "1", "method": "GET", "url": "/users?$top=1" },
            { "id": "3", "method": "DELETE", "url": "/groups/6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0/members/x/$ref" },
        ]}))
        .await;
    let doc = fixture("batch-response.json");
    for (mine, theirs) in [("1", 0), ("3", 1)] {
        let ours = answer.body["responses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == mine)
            .unwrap();
        let theirs = &doc["responses"][theirs];
        assert_eq!(keys(ours), keys(theirs));
        assert!(
            ours["headers"]["Content-Type"]
                .as_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert!(ours["headers"]["x-ms-resource-unit"].is_string());
    }
    let failed = answer.body["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "3")
        .unwrap();
    assert_eq!(
        keys(&failed["body"]["error"]["innerError"]),
        keys(&doc["responses"][1]["body"]["error"]["innerError"])
    );
}
