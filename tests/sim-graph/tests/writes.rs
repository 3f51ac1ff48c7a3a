//! Provisioning writes: `$ref` members/owners, app role assignments, role assignments.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use axum::http::StatusCode;
use common::Harness;
use serde_json::json;

/// A user who is not a member of `group` (small groups may already hold every user).
fn outsider(h: &Harness, group: &str) -> String {
    let members = h.sim.group_members(group);
    match h.sim.user_ids().into_iter().find(|u| !members.contains(u)) {
        Some(user) => user,
        None => h.sim.add_user("Outside Person"),
    }
}

#[tokio::test]
async fn adding_a_member_is_204_and_shows_in_the_group() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let user = outsider(&h, &group);
    let before = h.sim.counts().memberships;
    let answer = h
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            h.object_ref(&user),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    assert!(answer.text.is_empty());
    assert!(h.sim.group_members(&group).contains(&user));
    assert_eq!(h.sim.counts().memberships, before + 1);
    assert_eq!(answer.header("x-ms-resource-unit"), Some("1"));
}

#[tokio::test]
async fn adding_existing_member_is_400_already_exist() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let member = h.sim.group_members(&group)[0].clone();
    let answer = h
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            h.object_ref(&member),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "Request_BadRequest");
    assert_eq!(
        answer.message(),
        "One or more added object references already exist for the following modified properties: 'members'."
    );
}

#[tokio::test]
async fn adding_a_missing_object_is_404_resource_not_found() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let ghost = "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0";
    let answer = h
        .post(
            &format!("/v1.0/groups/{group}/members/$ref"),
            h.object_ref(ghost),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "Request_ResourceNotFound");
    assert!(answer.message().contains(ghost));
    let answer = h
        .post(
            &format!("/v1.0/groups/{ghost}/members/$ref"),
            h.object_ref(&h.sim.user_ids()[0]),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reference_to_another_graph_root_is_400() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let user = outsider(&h, &group);
    let body =
        json!({ "@odata.id": format!("https://graph.microsoft.com/v1.0/directoryObjects/{user}") });
    let answer = h
        .post(&format!("/v1.0/groups/{group}/members/$ref"), body)
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(!h.sim.group_members(&group).contains(&user));
    let users_form = json!({ "@odata.id": format!("{}/v1.0/users/{user}", common::ORIGIN) });
    let answer = h
        .post(&format!("/v1.0/groups/{group}/members/$ref"), users_form)
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn removing_a_member_is_204_then_404_when_absent() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let member = h.sim.group_members(&group)[0].clone();
    let path = format!("/v1.0/groups/{group}/members/{member}/$ref");
    assert_eq!(h.delete(&path).await.status, StatusCode::NO_CONTENT);
    assert!(!h.sim.group_members(&group).contains(&member));
    let again = h.delete(&path).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(again.code(), "Request_ResourceNotFound");
}

#[tokio::test]
async fn dynamic_group_members_cannot_be_changed_through_graph() {
    let h = Harness::small().await;
    let dynamic = h.sim.group_ids()[7].clone();
    let group = h.get(&format!("/v1.0/groups/{dynamic}")).await;
    assert_eq!(group.body["groupTypes"][0], "DynamicMembership");
    let user = outsider(&h, &dynamic);
    let answer = h
        .post(
            &format!("/v1.0/groups/{dynamic}/members/$ref"),
            h.object_ref(&user),
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.code(), "Authorization_RequestDenied");
}

#[tokio::test]
async fn group_owners_are_added_and_removed_by_ref() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[1].clone();
    let owners = h.sim.group_owners(&group);
    let user = h
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !owners.contains(u))
        .unwrap();
    let add = h
        .post(
            &format!("/v1.0/groups/{group}/owners/$ref"),
            h.object_ref(&user),
        )
        .await;
    assert_eq!(add.status, StatusCode::NO_CONTENT);
    let dup = h
        .post(
            &format!("/v1.0/groups/{group}/owners/$ref"),
            h.object_ref(&user),
        )
        .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert!(dup.message().ends_with("modified properties: 'owners'."));
    let del = h
        .delete(&format!("/v1.0/groups/{group}/owners/{user}/$ref"))
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(h.sim.group_owners(&group), owners);
}

#[tokio::test]
async fn app_role_assignment_is_201_then_duplicate_is_400_then_delete_is_204() {
    let h = Harness::small().await;
    let app = h.sim.app_ids()[0].clone();
    let sp = h.get(&format!("/v1.0/servicePrincipals/{app}")).await;
    let role = sp.body["appRoles"][0]["id"].as_str().unwrap().to_owned();
    let assigned: Vec<String> = h
        .sim
        .app_role_assignments(&app)
        .iter()
        .map(|a| a["principalId"].as_str().unwrap().to_owned())
        .collect();
    let user = h
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !assigned.contains(u))
        .unwrap();
    let body = json!({ "principalId": user, "resourceId": app, "appRoleId": role });
    let created = h
        .post(
            &format!("/v1.0/servicePrincipals/{app}/appRoleAssignedTo"),
            body.clone(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["principalId"], user.as_str());
    assert_eq!(created.body["principalType"], "User");
    assert_eq!(created.body["appRoleId"], role.as_str());
    assert_eq!(created.body["resourceDisplayName"], "Contoso Expenses");
    let assignment = created.body["id"].as_str().unwrap().to_owned();
    assert!(
        h.sim
            .app_role_assignments(&app)
            .iter()
            .any(|a| a["id"] == assignment.as_str())
    );

    let dup = h
        .post(
            &format!("/v1.0/servicePrincipals/{app}/appRoleAssignedTo"),
            body,
        )
        .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        dup.message(),
        "Permission being assigned already exists on the object."
    );

    let del = h
        .delete(&format!(
            "/v1.0/servicePrincipals/{app}/appRoleAssignedTo/{assignment}"
        ))
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let again = h
        .delete(&format!(
            "/v1.0/servicePrincipals/{app}/appRoleAssignedTo/{assignment}"
        ))
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn app_role_of_another_app_is_refused() {
    let h = Harness::small().await;
    let (a, b) = (h.sim.app_ids()[0].clone(), h.sim.app_ids()[1].clone());
    let other = h.get(&format!("/v1.0/servicePrincipals/{b}")).await;
    let role = other.body["appRoles"][0]["id"].as_str().unwrap().to_owned();
    let body = json!({ "principalId": h.sim.user_ids()[0], "resourceId": a, "appRoleId": role });
    let answer = h
        .post(
            &format!("/v1.0/servicePrincipals/{a}/appRoleAssignedTo"),
            body,
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.message(),
        "Permission being assigned was not found on application."
    );
}

#[tokio::test]
async fn service_principal_owners_by_ref() {
    let h = Harness::small().await;
    let app = h.sim.app_ids()[2].clone();
    let owners = h.sim.app_owners(&app);
    let user = h
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !owners.contains(u))
        .unwrap();
    let add = h
        .post(
            &format!("/v1.0/servicePrincipals/{app}/owners/$ref"),
            h.object_ref(&user),
        )
        .await;
    assert_eq!(add.status, StatusCode::NO_CONTENT);
    assert_eq!(h.sim.app_owners(&app).len(), owners.len() + 1);
    let listed = h
        .get(&format!("/v1.0/servicePrincipals/{app}/owners"))
        .await;
    assert!(listed.ids().contains(&user));
    let del = h
        .delete(&format!("/v1.0/servicePrincipals/{app}/owners/{user}/$ref"))
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(h.sim.app_owners(&app), owners);
}

#[tokio::test]
async fn role_assignment_is_201_duplicate_is_400_conflict_and_delete_is_204() {
    let h = Harness::small().await;
    let definition = h.sim.role_definition_ids()[1].clone();
    let assigned: Vec<String> = h
        .sim
        .role_assignments()
        .iter()
        .filter(|a| a["roleDefinitionId"] == definition.as_str())
        .map(|a| a["principalId"].as_str().unwrap().to_owned())
        .collect();
    let user = h
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !assigned.contains(u))
        .unwrap();
    let before = h.sim.counts().role_assignments;
    let body =
        json!({ "principalId": user, "roleDefinitionId": definition, "directoryScopeId": "/" });
    let created = h
        .post(
            "/v1.0/roleManagement/directory/roleAssignments",
            body.clone(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["roleDefinitionId"], definition.as_str());
    assert_eq!(created.body["directoryScopeId"], "/");
    assert_eq!(h.sim.counts().role_assignments, before + 1);
    let id = created.body["id"].as_str().unwrap().to_owned();

    let dup = h
        .post("/v1.0/roleManagement/directory/roleAssignments", body)
        .await;
    assert_eq!(dup.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        dup.message(),
        "A conflicting object with one or more of the specified property values is present in the directory."
    );

    let role = &h.sim.role_ids()[1];
    let members = h.get(&format!("/v1.0/directoryRoles/{role}/members")).await;
    assert!(
        members.ids().contains(&user),
        "the legacy view shows the new assignment"
    );

    let del = h
        .delete(&format!(
            "/v1.0/roleManagement/directory/roleAssignments/{id}"
        ))
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(h.sim.counts().role_assignments, before);
    assert_eq!(
        h.delete(&format!(
            "/v1.0/roleManagement/directory/roleAssignments/{id}"
        ))
        .await
        .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn unreadable_write_body_is_400() {
    let h = Harness::small().await;
    let group = h.sim.group_ids()[0].clone();
    let answer = h
        .send(
            axum::http::Method::POST,
            &format!("/v1.0/groups/{group}/members/$ref"),
            None,
            &[("content-type", "application/json")],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer
            .message()
            .starts_with("Unable to read JSON request payload.")
    );
}
