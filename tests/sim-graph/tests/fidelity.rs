//! Behaviours of the real service the simulator reproduces so that a client relying on the
//! wrong thing fails here first (issue 13, points 1–6): service principals missing from v1.0
//! member lists, group kinds Graph refuses writes to, undocumented filters, role assignment
//! listing rules, replication lag, every documented delta-expiry answer, and the throttle scopes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use axum::http::StatusCode;
use common::Harness;
use serde_json::{Value, json};
use sim_graph::SimConfig;

/// 40 groups: every kind appears (security 0, Microsoft 365 1, dynamic 7, distribution 11,
/// on-premises 13, mail-enabled security 19) and some security groups hold service principals.
fn tenant() -> SimConfig {
    SimConfig {
        users: 120,
        managed_identities: 3,
        groups: 40,
        memberships: 1_200,
        apps: 4,
        ..SimConfig::default()
    }
}

fn group_of_kind(h: &Harness, kind: &str) -> String {
    h.sim
        .group_ids()
        .into_iter()
        .find(|g| h.sim.group_kind(g) == Some(kind))
        .unwrap_or_else(|| panic!("the tenant has a {kind} group"))
}

fn ids_of(pages: &[common::Answer]) -> Vec<String> {
    pages.iter().flat_map(common::Answer::ids).collect()
}

async fn add_ref(h: &Harness, group: &str, rel: &str, who: &str) -> common::Answer {
    h.post(
        &format!("/v1.0/groups/{group}/{rel}/$ref"),
        h.object_ref(who),
    )
    .await
}

fn sp_ids(h: &Harness) -> Vec<String> {
    let mut ids = h.sim.app_ids();
    ids.extend(h.sim.managed_identity_ids());
    ids
}

#[tokio::test]
async fn v1_member_and_owner_lists_leave_out_service_principals_as_documented() {
    let h = Harness::new(tenant()).await;
    let sps = sp_ids(&h);
    let mut with_sp_member = 0;
    let mut with_sp_owner = 0;
    for g in h.sim.group_ids() {
        let truth = h.sim.group_members(&g);
        let listed = ids_of(
            &h.all_pages(&format!("/v1.0/groups/{g}/members?$top=50"))
                .await,
        );
        let expected: Vec<String> = truth.iter().filter(|m| !sps.contains(m)).cloned().collect();
        assert_eq!(listed, expected, "members of {g}");
        with_sp_member += usize::from(truth.len() != expected.len());
        let owners = h.sim.group_owners(&g);
        let listed = h.get(&format!("/v1.0/groups/{g}/owners")).await.ids();
        let expected: Vec<String> = owners
            .iter()
            .filter(|o| !sps.contains(o))
            .cloned()
            .collect();
        assert_eq!(listed, expected, "owners of {g}");
        with_sp_owner += usize::from(owners.len() != expected.len());
    }
    assert!(
        with_sp_member >= 2,
        "apps and managed identities are members"
    );
    assert!(with_sp_owner >= 1, "apps own groups");

    // The same inside $batch, and the service principal side lists them.
    let group = h
        .sim
        .group_ids()
        .into_iter()
        .find(|g| h.sim.group_members(g).iter().any(|m| sps.contains(m)))
        .expect("a group with a service principal member");
    let sp = h
        .sim
        .group_members(&group)
        .into_iter()
        .find(|m| sps.contains(m))
        .expect("its service principal");
    let batch = h
        .post(
            "/v1.0/$batch",
            json!({ "requests": [
                { "id": "1", "method": "GET", "url": format!("/groups/{group}/members?$select=id&$top=999") },
                { "id": "2", "method": "GET", "url": format!("/servicePrincipals/{sp}/memberOf?$select=id") },
            ]}),
        )
        .await;
    let inner = |id: &str| -> Value {
        batch.body["responses"]
            .as_array()
            .and_then(|r| r.iter().find(|x| x["id"] == id).cloned())
            .unwrap_or(Value::Null)
    };
    let (one, two) = (inner("1"), inner("2"));
    let members: Vec<&str> = one["body"]["value"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["id"].as_str())
        .collect();
    assert!(!members.contains(&sp.as_str()), "not in v1.0 members");
    let member_of: Vec<(String, String)> = two["body"]["value"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            (
                v["@odata.type"].as_str().unwrap_or_default().to_owned(),
                v["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        member_of.contains(&("#microsoft.graph.group".to_owned(), group.clone())),
        "memberOf names the group: {member_of:?}"
    );
    // ownedObjects lists the groups a service principal owns.
    let (owned_group, owner) = h
        .sim
        .group_ids()
        .into_iter()
        .find_map(|g| {
            h.sim
                .group_owners(&g)
                .into_iter()
                .find(|o| sps.contains(o))
                .map(|o| (g, o))
        })
        .expect("a group owned by a service principal");
    let owned = h
        .get(&format!("/v1.0/servicePrincipals/{owner}/ownedObjects"))
        .await;
    assert_eq!(owned.status, StatusCode::OK, "{}", owned.text);
    assert!(owned.ids().contains(&owned_group));
}

#[tokio::test]
async fn delta_members_leave_out_service_principals_too() {
    let h = Harness::new(tenant()).await;
    let sps = sp_ids(&h);
    let pages = h
        .all_pages("/v1.0/groups/delta?$select=id,members,owners")
        .await;
    for page in &pages {
        for group in page.values() {
            for key in ["members@delta", "owners@delta"] {
                for m in group[key].as_array().into_iter().flatten() {
                    let id = m["id"].as_str().unwrap_or_default();
                    assert!(!sps.iter().any(|s| s == id), "{key} lists {id}");
                }
            }
        }
    }
}

#[tokio::test]
async fn writes_graph_refuses_by_group_kind_answer_as_graph_does() {
    let h = Harness::new(tenant()).await;
    let user = h.sim.add_user("Kind Tester");
    let app = h.sim.app_ids()[0].clone();
    let security = group_of_kind(&h, "security");
    let m365 = group_of_kind(&h, "microsoft_365");
    // Microsoft 365 groups take users only.
    let answer = add_ref(&h, &m365, "members", &app).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.message().starts_with(
            "Directory object type: ServicePrincipal cannot be added to Unified Groups"
        ),
        "{}",
        answer.text
    );
    let answer = add_ref(&h, &m365, "members", &security).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    let answer = add_ref(&h, &security, "members", &m365).await;
    assert_eq!(
        answer.status,
        StatusCode::BAD_REQUEST,
        "a Microsoft 365 group is a member of no group: {}",
        answer.text
    );
    assert_eq!(
        add_ref(&h, &m365, "members", &user).await.status,
        StatusCode::NO_CONTENT
    );
    // Exchange and on-premises groups: read-only through Graph, members and owners.
    for kind in ["distribution", "mail_enabled_security", "on_premises"] {
        let group = group_of_kind(&h, kind);
        for rel in ["members", "owners"] {
            let answer = add_ref(&h, &group, rel, &user).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{kind} {rel}");
            assert_eq!(
                answer.message(),
                "Unable to update the specified properties for objects that have originated within an external service.",
                "{kind} {rel}"
            );
        }
        assert!(
            h.sim.group_owners(&group).is_empty(),
            "{kind} shows no owners"
        );
    }
    // Dynamic groups: members come from the rule; owners can still change.
    let dynamic = group_of_kind(&h, "dynamic");
    let answer = add_ref(&h, &dynamic, "members", &user).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "Authorization_RequestDenied");
    assert_eq!(
        add_ref(&h, &dynamic, "owners", &user).await.status,
        StatusCode::NO_CONTENT
    );
    // Owners are users or service principals.
    assert_eq!(
        add_ref(&h, &security, "owners", &m365).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        add_ref(&h, &security, "owners", &app).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn app_role_assignments_filter_only_on_documented_properties() {
    let h = Harness::new(tenant()).await;
    let app = h.sim.app_ids()[0].clone();
    let assignment = h.sim.app_role_assignments(&app)[0].clone();
    let principal = assignment["principalId"].as_str().unwrap().to_owned();
    let undocumented = h
        .get(&format!(
            "/v1.0/servicePrincipals/{app}/appRoleAssignedTo?$filter=principalId eq {principal}"
        ))
        .await;
    assert_eq!(undocumented.status, StatusCode::BAD_REQUEST);
    assert_eq!(undocumented.code(), "Request_UnsupportedQuery");
    // The principal side, filtered on resourceId (approleassignment.md: "Supports $filter (eq
    // only)"), holds the assignment.
    let kind = if assignment["principalType"] == "Group" {
        "groups"
    } else {
        "users"
    };
    let granted = h
        .get(&format!(
            "/v1.0/{kind}/{principal}/appRoleAssignments?$filter=resourceId eq {app}"
        ))
        .await;
    assert_eq!(granted.status, StatusCode::OK, "{}", granted.text);
    assert!(
        granted
            .ids()
            .contains(&assignment["id"].as_str().unwrap().to_owned())
    );
    assert!(
        granted
            .values()
            .iter()
            .all(|a| a["resourceId"] == app.as_str())
    );
}

#[tokio::test]
async fn a_user_s_assignments_include_those_of_its_direct_groups() {
    let h = Harness::new(tenant()).await;
    let app = h.sim.app_ids()[1].clone();
    let group = h.sim.group_ids()[0].clone();
    let member = h
        .sim
        .group_members(&group)
        .into_iter()
        .find(|m| h.sim.user_ids().contains(m))
        .expect("a user member");
    let created = h
        .post(
            &format!("/v1.0/servicePrincipals/{app}/appRoleAssignedTo"),
            json!({ "principalId": group, "resourceId": app, "appRoleId": "00000000-0000-0000-0000-000000000000" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let listed = h
        .get(&format!(
            "/v1.0/users/{member}/appRoleAssignments?$filter=resourceId eq {app}"
        ))
        .await;
    let through_group: Vec<Value> = listed
        .values()
        .into_iter()
        .filter(|a| a["principalId"] == group.as_str())
        .collect();
    assert_eq!(through_group.len(), 1, "{}", listed.text);
}

#[tokio::test]
async fn role_assignments_need_a_filter_and_keep_their_scope() {
    let h = Harness::new(tenant()).await;
    let unfiltered = h
        .get("/v1.0/roleManagement/directory/roleAssignments")
        .await;
    assert_eq!(unfiltered.status, StatusCode::BAD_REQUEST);
    let definition = h.sim.role_definition_ids()[1].clone();
    let unit = h.sim.administrative_unit_ids()[0].clone();
    let user = h.sim.user_ids()[7].clone();
    let scoped = h
        .post(
            "/v1.0/roleManagement/directory/roleAssignments",
            json!({ "principalId": user, "roleDefinitionId": definition, "directoryScopeId": format!("/administrativeUnits/{unit}") }),
        )
        .await;
    assert_eq!(scoped.status, StatusCode::CREATED, "{}", scoped.text);
    let bad_scope = h
        .post(
            "/v1.0/roleManagement/directory/roleAssignments",
            json!({ "principalId": user, "roleDefinitionId": definition, "directoryScopeId": "/administrativeUnits/not-a-unit" }),
        )
        .await;
    assert_eq!(bad_scope.status, StatusCode::BAD_REQUEST);
    let listed = h
        .get(&format!(
            "/v1.0/roleManagement/directory/roleAssignments?$filter=principalId eq '{user}'"
        ))
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(listed.values().iter().any(|a| {
        a["roleDefinitionId"] == definition.as_str()
            && a["directoryScopeId"] == format!("/administrativeUnits/{unit}").as_str()
    }));
}

#[tokio::test]
async fn writes_replicate_after_the_configured_number_of_calls() {
    let h = Harness::new(SimConfig {
        replication_lag: 2,
        ..tenant()
    })
    .await;
    let group = h.sim.group_ids()[0].clone();
    let user = h.sim.add_user("Lagging Replica");
    let added = h
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            h.object_ref(&user),
        )
        .await;
    assert_eq!(added.status, StatusCode::NO_CONTENT);
    // The next two calls do not see it: a read leaves it out, a DELETE answers 404.
    let members = h
        .all_pages(&format!("/v1.0/groups/{group}/members?$top=999"))
        .await;
    assert!(!ids_of(&members).contains(&user));
    let early = h
        .delete(&format!("/v1.0/groups/{group}/members/{user}/$ref"))
        .await;
    assert_eq!(early.status, StatusCode::NOT_FOUND);
    assert!(
        h.sim.group_members(&group).contains(&user),
        "still a member"
    );
    let replicated = h
        .delete(&format!("/v1.0/groups/{group}/members/{user}/$ref"))
        .await;
    assert_eq!(replicated.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn every_documented_delta_expiry_answer_is_served() {
    for (status, code) in [
        (400, "syncStateNotFound"),
        (400, "syncStateInvalid"),
        (400, "resyncRequired"),
        (404, "syncStateNotFound"),
        (409, "syncStateInvalid"),
        (410, "resyncRequired"),
    ] {
        let h = Harness::small().await;
        let first = h.all_pages("/v1.0/users/delta?$select=id").await;
        let link = first
            .last()
            .and_then(common::Answer::delta_link)
            .expect("a delta link");
        h.sim.expire_delta_links_with(status, code);
        let answer = h.get(&link).await;
        assert_eq!(answer.status.as_u16(), status, "{code}");
        assert_eq!(answer.code(), code);
        assert_eq!(
            answer.header("location").is_some(),
            status == 410,
            "410 carries Location"
        );
    }
}
