//! Collection reads: paging, `$select`, `$top`, `$filter`, advanced queries, relationships.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use common::{Harness, ORIGIN};
use sim_graph::SimConfig;

#[tokio::test]
async fn next_link_paging_visits_every_user_once() {
    let h = Harness::new(SimConfig {
        users: 250,
        ..SimConfig::default()
    })
    .await;
    let pages = h
        .all_pages("/v1.0/users?$top=100&$select=id,displayName")
        .await;
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages.iter().map(|p| p.values().len()).collect::<Vec<_>>(),
        vec![100, 100, 50]
    );
    let first_next = pages[0].next_link().unwrap();
    assert!(first_next.starts_with(&format!(
        "{ORIGIN}/v1.0/users?$top=100&$select=id,displayName&$skiptoken="
    )));
    let ids: Vec<String> = pages.iter().flat_map(|p| p.ids()).collect();
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 250);
    assert_eq!(ids, h.sim.user_ids());
    assert!(pages[2].next_link().is_none());
}

#[tokio::test]
async fn default_page_is_100_and_default_properties_are_the_documented_set() {
    let h = Harness::new(SimConfig {
        users: 150,
        ..SimConfig::default()
    })
    .await;
    let page = h.get("/v1.0/users").await;
    assert_eq!(page.values().len(), 100);
    assert_eq!(
        page.body["@odata.context"],
        format!("{ORIGIN}/v1.0/$metadata#users")
    );
    let user = &page.values()[0];
    let mut keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        vec![
            "businessPhones",
            "displayName",
            "givenName",
            "id",
            "jobTitle",
            "mail",
            "mobilePhone",
            "officeLocation",
            "preferredLanguage",
            "surname",
            "userPrincipalName"
        ]
    );
    assert!(
        user.get("signInActivity").is_none(),
        "signInActivity only when selected"
    );
}

#[tokio::test]
async fn select_returns_id_and_the_selected_properties() {
    let h = Harness::small().await;
    let page = h
        .get("/v1.0/users?$select=displayName,accountEnabled,userType,employeeId,signInActivity")
        .await;
    let user = &page.values()[9];
    let keys: Vec<&str> = user
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        vec![
            "id",
            "displayName",
            "accountEnabled",
            "userType",
            "employeeId",
            "signInActivity"
        ]
    );
    assert_eq!(user["userType"], "Guest", "every tenth user is a guest");
    assert!(user["signInActivity"]["lastSignInDateTime"].is_string());
}

#[tokio::test]
async fn top_outside_1_to_999_is_400_invalid_page_size() {
    let h = Harness::small().await;
    let answer = h.get("/v1.0/users?$top=1000").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "Request_UnsupportedQuery");
    assert_eq!(
        answer.message(),
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive."
    );
    assert_eq!(
        h.get("/v1.0/groups?$top=0").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(h.get("/v1.0/users?$top=999").await.status, StatusCode::OK);
}

#[tokio::test]
async fn advanced_operators_need_consistency_level_and_count() {
    let h = Harness::small().await;
    let answer = h.get("/v1.0/users?$filter=accountEnabled ne true").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "Request_UnsupportedQuery");
    assert!(answer.message().starts_with(
        "Operator 'ne' is not supported because the required parameters might be missing."
    ));
    // Header but no $count=true is still refused.
    let answer = h
        .send(
            Method::GET,
            "/v1.0/users?$filter=accountEnabled ne true",
            None,
            &[("ConsistencyLevel", "eventual")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = h
        .send(
            Method::GET,
            "/v1.0/users?$filter=accountEnabled ne true&$count=true",
            None,
            &[("ConsistencyLevel", "eventual")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    // Users 24 and 49 are disabled in a 50-user tenant.
    assert_eq!(answer.body["@odata.count"], 2);
    assert_eq!(answer.values().len(), 2);
}

#[tokio::test]
async fn search_without_consistency_level_is_400_and_count_is_silently_ignored() {
    let h = Harness::small().await;
    let answer = h.get("/v1.0/users?$search=\"displayName:a\"").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.message(),
        "Request with $search query parameter only works through MSGraph with a special request header: 'ConsistencyLevel: eventual'"
    );
    let answer = h.get("/v1.0/users?$count=true").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.get("@odata.count").is_none());
    let answer = h.get("/v1.0/users/$count").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.message(), "$count is not currently supported.");
    let answer = h
        .send(
            Method::GET,
            "/v1.0/users/$count",
            None,
            &[("ConsistencyLevel", "eventual")],
        )
        .await;
    assert_eq!(answer.text, "50");
}

#[tokio::test]
async fn eq_filters_and_startswith_work_without_advanced_parameters() {
    let h = Harness::small().await;
    let guests = h
        .get("/v1.0/users?$filter=userType eq 'Guest'&$select=userType")
        .await;
    assert_eq!(guests.values().len(), 5);
    assert!(guests.values().iter().all(|u| u["userType"] == "Guest"));
    let unified = h
        .get("/v1.0/groups?$filter=groupTypes/any(c:c eq 'Unified')")
        .await;
    assert_eq!(unified.status, StatusCode::OK);
    // Groups 1 and 4 (index % 3 == 1); group 7 is dynamic instead.
    assert_eq!(unified.values().len(), 2);
    assert!(
        unified
            .values()
            .iter()
            .all(|g| g["groupTypes"][0] == "Unified" && g["mailEnabled"] == true)
    );
    let prefix = h
        .get("/v1.0/users?$filter=startswith(displayName,'A')&$select=displayName")
        .await;
    assert_eq!(prefix.status, StatusCode::OK);
    assert!(
        prefix
            .values()
            .iter()
            .all(|u| u["displayName"].as_str().unwrap().starts_with('A'))
    );
    let unknown = h.get("/v1.0/users?$filter=shoeSize eq 3").await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown.message(),
        "Could not find a property named 'shoeSize' on type 'microsoft.graph.user'."
    );
}

#[tokio::test]
async fn service_principals_filter_by_type_and_managed_identities_are_hidden_otherwise() {
    let h = Harness::small().await;
    let all = h.get("/v1.0/servicePrincipals").await;
    assert_eq!(all.ids(), h.sim.app_ids());
    let apps = h
        .get("/v1.0/servicePrincipals?$filter=servicePrincipalType eq 'Application'")
        .await;
    assert_eq!(apps.values().len(), 3);
    let app = &apps.values()[0];
    assert_eq!(app["tags"][0], "WindowsAzureActiveDirectoryIntegratedApp");
    let roles = app["appRoles"].as_array().unwrap();
    assert!((1..=4).contains(&roles.len()));
    assert_eq!(roles[0]["allowedMemberTypes"][0], "User");
    let mis = h
        .get("/v1.0/servicePrincipals?$filter=servicePrincipalType eq 'ManagedIdentity'")
        .await;
    assert_eq!(mis.ids(), h.sim.managed_identity_ids());
    assert_eq!(mis.values()[0]["servicePrincipalType"], "ManagedIdentity");
}

#[tokio::test]
async fn group_members_carry_odata_type_and_include_nested_groups() {
    let h = Harness::new(SimConfig {
        groups: 12,
        memberships: 400,
        ..SimConfig::default()
    })
    .await;
    let group5 = &h.sim.group_ids()[5];
    let pages = h
        .all_pages(&format!("/v1.0/groups/{group5}/members?$top=7"))
        .await;
    let members: Vec<serde_json::Value> = pages.iter().flat_map(|p| p.values()).collect();
    let ids: Vec<String> = members
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, h.sim.group_members(group5));
    let types: HashSet<&str> = members
        .iter()
        .map(|m| m["@odata.type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains("#microsoft.graph.group"),
        "group 5 has nested groups: {types:?}"
    );
    assert!(types.contains("#microsoft.graph.user"));
    let owners = h.get(&format!("/v1.0/groups/{group5}/owners")).await;
    assert_eq!(owners.ids(), h.sim.group_owners(group5));
    assert_eq!(
        h.get("/v1.0/groups/00000000-0000-0000-0000-000000000000/members")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn directory_roles_do_not_page_and_role_assignments_expand_principal() {
    let h = Harness::small().await;
    let roles = h.get("/v1.0/directoryRoles?$top=1").await;
    assert_eq!(roles.values().len(), 4);
    assert!(roles.next_link().is_none());
    assert_eq!(
        roles.values()[0]["roleTemplateId"],
        "62e90394-69f5-4237-9190-012177145e10"
    );
    assert_eq!(roles.ids(), h.sim.role_ids());
    let admin_role = &h.sim.role_ids()[0];
    let members = h
        .get(&format!("/v1.0/directoryRoles/{admin_role}/members"))
        .await;
    assert!(!members.values().is_empty());
    let filtered = h
        .get("/v1.0/roleManagement/directory/roleAssignments?$filter=roleDefinitionId eq '62e90394-69f5-4237-9190-012177145e10'&$expand=principal")
        .await;
    assert_eq!(filtered.status, StatusCode::OK, "{}", filtered.text);
    let assignments = filtered.values();
    assert_eq!(assignments.len(), members.values().len());
    for a in &assignments {
        assert_eq!(
            a["roleDefinitionId"],
            "62e90394-69f5-4237-9190-012177145e10"
        );
        assert_eq!(a["directoryScopeId"], "/");
        assert_eq!(a["principal"]["id"], a["principalId"]);
        assert!(a["principal"]["@odata.type"].is_string());
        assert!(a["id"].as_str().unwrap().ends_with("-1"));
    }
    let definitions = h
        .get("/v1.0/roleManagement/directory/roleDefinitions")
        .await;
    assert!(definitions.values().len() >= 14);
    assert_eq!(definitions.values()[1]["displayName"], "User Administrator");
}

#[tokio::test]
async fn app_role_assigned_to_lists_assignments_with_principal_types() {
    let h = Harness::small().await;
    let app = &h.sim.app_ids()[0];
    let pages = h
        .all_pages(&format!(
            "/v1.0/servicePrincipals/{app}/appRoleAssignedTo?$top=3"
        ))
        .await;
    let all: Vec<serde_json::Value> = pages.iter().flat_map(|p| p.values()).collect();
    assert_eq!(all, h.sim.app_role_assignments(app));
    assert!(all.iter().any(|a| a["principalType"] == "Group"));
    assert!(all.iter().all(|a| a["resourceId"] == app.as_str()));
}

#[tokio::test]
async fn garbage_skiptoken_is_400() {
    let h = Harness::small().await;
    let answer = h.get("/v1.0/users?$skiptoken=not-a-token").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}
