//! `/scim/v2/Users`: paging, filters, create, replace, patch, delete.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::collections::HashSet;

use axum::http::StatusCode;
use common::*;
use serde_json::{Value, json};
use sim_ironclad::{CUSTOM_SCHEMA_URN as CUSTOM_URN, SimConfig};

fn users(n: usize) -> Harness {
    Harness::new(SimConfig {
        users: n,
        rate_limits: false,
        ..SimConfig::default()
    })
}

#[tokio::test]
async fn paging_by_start_index_visits_every_user_once() {
    let h = users(53);
    let mut seen = Vec::new();
    let mut start = 1;
    loop {
        let page = h
            .scim(
                "GET",
                &format!("/scim/v2/Users?startIndex={start}&count=10"),
                None,
            )
            .await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(page.body["schemas"], json!([LIST_URN]));
        assert_eq!(page.body["totalResults"], 53);
        assert_eq!(page.body["startIndex"], start);
        assert_eq!(page.body["itemsPerPage"], 10);
        let ids = ids(&page.body);
        if ids.is_empty() {
            break;
        }
        seen.extend(ids);
        start += 10;
    }
    assert_eq!(start, 61, "six pages, then an empty one");
    assert_eq!(seen.len(), 53);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 53);
    assert_eq!(seen, h.sim.user_ids(), "ordered by creation");
}

#[tokio::test]
async fn start_index_counts_the_users_that_still_exist() {
    let h = users(10);
    let ids = h.sim.user_ids();
    assert!(h.sim.remove_user(&ids[1]));
    let page = h
        .scim("GET", "/scim/v2/Users?startIndex=2&count=2", None)
        .await;
    assert_eq!(
        common::ids(&page.body),
        vec![ids[2].clone(), ids[3].clone()]
    );
    assert_eq!(page.body["totalResults"], 9);
}

#[tokio::test]
async fn default_page_is_25_and_count_above_1000_is_clamped() {
    let h = users(1200);
    let default = h.scim("GET", "/scim/v2/Users", None).await;
    assert_eq!(default.body["Resources"].as_array().unwrap().len(), 25);
    assert_eq!(default.body["itemsPerPage"], 25);
    let big = h.scim("GET", "/scim/v2/Users?count=5000", None).await;
    assert_eq!(big.status, StatusCode::OK);
    assert_eq!(big.body["Resources"].as_array().unwrap().len(), 1000);
    assert_eq!(big.body["itemsPerPage"], 1000);
    let zero = h.scim("GET", "/scim/v2/Users?count=0", None).await;
    assert_eq!(zero.body["totalResults"], 1200);
    assert_eq!(zero.body["Resources"], json!([]));
}

#[tokio::test]
async fn filter_by_user_name_finds_one_user_ignoring_case() {
    let h = users(30);
    let target = h.sim.user(&h.sim.user_ids()[12]).unwrap();
    let name = target["userName"].as_str().unwrap();
    let filter = format!("userName eq \"{}\"", name.to_uppercase());
    let q: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    let answer = h
        .scim("GET", &format!("/scim/v2/Users?filter={q}"), None)
        .await;
    assert_eq!(answer.body["totalResults"], 1);
    assert_eq!(answer.body["Resources"][0], target);
    let none = h
        .scim(
            "GET",
            "/scim/v2/Users?filter=userName%20eq%20%22nobody%40example.com%22",
            None,
        )
        .await;
    assert_eq!(none.body["totalResults"], 0);
    assert_eq!(none.body["Resources"], json!([]));
}

#[tokio::test]
async fn filter_by_email_or_extension_attribute_scans_every_user() {
    let h = users(40);
    let target = h.sim.user(&h.sim.user_ids()[5]).unwrap();
    let email = target["emails"][0]["value"].as_str().unwrap();
    let q: String =
        url::form_urlencoded::byte_serialize(format!("emails.value eq \"{email}\"").as_bytes())
            .collect();
    let answer = h
        .scim("GET", &format!("/scim/v2/Users?filter={q}"), None)
        .await;
    assert_eq!(
        ids(&answer.body),
        vec![target["id"].as_str().unwrap().to_owned()]
    );

    let filter = format!("{ENTERPRISE_URN}:department eq \"Legal\"");
    let q: String = url::form_urlencoded::byte_serialize(filter.as_bytes()).collect();
    let legal = h
        .scim(
            "GET",
            &format!("/scim/v2/Users?filter={q}&count=1000"),
            None,
        )
        .await;
    let expected = h
        .sim
        .user_ids()
        .into_iter()
        .filter(|id| h.sim.user(id).unwrap()[ENTERPRISE_URN]["department"] == "Legal")
        .count();
    assert!(expected > 0);
    assert_eq!(legal.body["totalResults"], expected);
}

#[tokio::test]
async fn filter_on_an_unknown_attribute_is_invalid_filter_in_the_documented_shape() {
    let h = users(5);
    let answer = h
        .scim(
            "GET",
            "/scim/v2/Users?filter=name.lastName%20eq%20%22Doe%22",
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    // UserFilterResponse400, including its `schema` (not `schemas`) key.
    assert_eq!(
        answer.body,
        json!({"schema": [ERROR_URN], "status": "400", "scimType": "invalidFilter",
               "detail": "No matching schema for attribute: name,lastName"})
    );
    let unsupported = h
        .scim("GET", "/scim/v2/Users?filter=userName%20sw%20%22a%22", None)
        .await;
    assert_eq!(unsupported.body["scimType"], "invalidFilter");
}

#[tokio::test]
async fn excluded_attributes_are_dropped_from_every_resource() {
    let h = users(5);
    let q = format!("excludedAttributes=emails,{CUSTOM_URN}:managementLevel,meta");
    let answer = h.scim("GET", &format!("/scim/v2/Users?{q}"), None).await;
    for user in answer.body["Resources"].as_array().unwrap() {
        assert!(user.get("emails").is_none() && user.get("meta").is_none());
        assert!(user[CUSTOM_URN].get("managementLevel").is_none());
        assert!(user[IRONCLAD_URN]["provider"].is_string());
        assert!(user["id"].is_string() && user["userName"].is_string());
    }
}

#[tokio::test]
async fn seeded_users_have_the_documented_shape_and_realistic_values() {
    let h = users(200);
    let ids = h.sim.user_ids();
    let admin = h.sim.user(&ids[0]).unwrap();
    assert_eq!(admin["userName"], ADMIN);
    // The company's custom schema is named when the user carries one of its attributes.
    let mut schemas = vec![USER_URN, ENTERPRISE_URN, IRONCLAD_URN];
    if admin.get(CUSTOM_URN).is_some() {
        schemas.push(CUSTOM_URN);
    }
    assert_eq!(admin["schemas"], json!(schemas));
    assert_eq!(
        admin["emails"],
        json!([{"value": ADMIN, "type": "work", "primary": true}])
    );
    assert_eq!(admin["active"], true);
    assert_eq!(admin["meta"]["resourceType"], "User");
    let id = admin["id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        admin["meta"]["location"],
        format!("https://na1.ironcladapp.com/scim/v2/Users/{id}")
    );
    let created = admin["meta"]["created"].as_str().unwrap();
    assert_eq!(
        (created.len(), &created[10..11], &created[23..]),
        (24, "T", "Z")
    );

    let all: Vec<Value> = ids.iter().map(|id| h.sim.user(id).unwrap()).collect();
    let names: HashSet<&str> = all
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 200);
    let user = &all[17];
    let given = user["name"]["givenName"].as_str().unwrap().to_lowercase();
    let family = user["name"]["familyName"].as_str().unwrap().to_lowercase();
    assert_eq!(user["userName"], format!("{given}.{family}17@example.com"));
    // Custom attribute on some users, not all, in the company's custom schema.
    let with_level = all
        .iter()
        .filter(|u| u[CUSTOM_URN].get("managementLevel").is_some())
        .count();
    assert!(
        all.iter()
            .all(|u| u[IRONCLAD_URN].get("managementLevel").is_none())
    );
    assert!(with_level > 40 && with_level < 160, "{with_level}");
    // Every departmentHead names an existing user of the same department.
    let mut heads = 0;
    for u in &all {
        if let Some(head) = u[IRONCLAD_URN]["departmentHead"].as_str() {
            heads += 1;
            let head = h.sim.user_by_username(head).expect("head exists");
            assert_eq!(
                head[ENTERPRISE_URN]["department"],
                u[ENTERPRISE_URN]["department"]
            );
        }
    }
    assert!(heads > 150);
    let providers: HashSet<&str> = all
        .iter()
        .map(|u| u[IRONCLAD_URN]["provider"].as_str().unwrap())
        .collect();
    assert!(
        providers.contains("saml") && providers.len() >= 3,
        "{providers:?}"
    );
}

#[tokio::test]
async fn create_user_from_the_documented_example_returns_201_with_meta_and_location() {
    let h = users(5);
    let answer = h
        .scim(
            "POST",
            "/scim/v2/Users",
            Some(fixture("create-user.json", &[])),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{:?}", answer.body);
    let user = &answer.body;
    let id = user["id"].as_str().unwrap();
    assert_eq!(
        answer.header("location"),
        Some(format!("https://na1.ironcladapp.com/scim/v2/Users/{id}").as_str())
    );
    assert_eq!(user["userName"], "alex.doe@example.com");
    assert_eq!(
        user["name"],
        json!({"givenName": "Alex", "familyName": "Doe"})
    );
    assert_eq!(
        user["emails"],
        json!([{"value": "alex.doe@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(user[ENTERPRISE_URN], json!({"department": "Legal"}));
    assert_eq!(
        user[IRONCLAD_URN],
        json!({"departmentHead": "jane.doe@test.com", "allowProviderConversion": false, "provider": "saml"})
    );
    assert_eq!(user["meta"]["created"], user["meta"]["lastModified"]);
    assert_eq!(h.sim.user(id).as_ref(), Some(user));
    assert_eq!(h.sim.user_count(), 6);
}

#[tokio::test]
async fn creating_an_existing_user_name_is_409_with_status_only() {
    let h = users(5);
    h.create_user("dup@example.com").await;
    let again = h
        .scim(
            "POST",
            "/scim/v2/Users",
            Some(json!({"schemas": [USER_URN], "userName": "DUP@example.com", "name": {"givenName": "D"}})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body, json!({"schemas": [ERROR_URN], "status": "409"}));
}

#[tokio::test]
async fn without_saml_create_requires_a_password_meeting_the_documented_policy() {
    let h = Harness::new(SimConfig {
        saml: false,
        ..SimConfig::default()
    });
    let body = |password: Option<&str>| {
        let mut b = json!({"schemas": [USER_URN], "userName": "pw@example.com", "name": {"givenName": "P"}});
        if let Some(p) = password {
            b["password"] = json!(p);
        }
        Some(b)
    };
    let missing = h.scim("POST", "/scim/v2/Users", body(None)).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    assert_eq!(missing.body["scimType"], "invalidValue");
    let weak = h
        .scim("POST", "/scim/v2/Users", body(Some("Short1!")))
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(
        weak.body["detail"]
            .as_str()
            .unwrap()
            .contains("16+ characters")
    );
    let strong = h
        .scim("POST", "/scim/v2/Users", body(Some("Sixteen-Chars-Ok-1")))
        .await;
    assert_eq!(strong.status, StatusCode::CREATED);
    assert!(
        strong.body.get("password").is_none(),
        "password is never returned"
    );
    assert_eq!(strong.body[IRONCLAD_URN]["provider"], "local");
}

#[tokio::test]
async fn create_without_required_attributes_is_invalid_value() {
    let h = users(5);
    let answer = h
        .scim(
            "POST",
            "/scim/v2/Users",
            Some(json!({"schemas": [USER_URN], "userName": "n@example.com"})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.body,
        json!({"schemas": [ERROR_URN], "status": "400", "scimType": "invalidValue", "detail": "Missing required attribute: name"})
    );
    let typed = h
        .scim("POST", "/scim/v2/Users", Some(json!({"schemas": [USER_URN], "userName": "n@example.com", "name": {"givenName": 123}})))
        .await;
    assert_eq!(typed.body["detail"], "Invalid value at name.givenName: 123");
    let garbage = h
        .scim("POST", "/scim/v2/Users", Some(json!("not an object")))
        .await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn get_unknown_user_is_404_with_the_documented_detail() {
    let h = users(5);
    let answer = h
        .scim("GET", "/scim/v2/Users/6643ce2e22daa40f80025aee", None)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.body,
        json!({"schemas": [ERROR_URN], "status": "404", "detail": "Resource 6643ce2e22daa40f80025aee not found"})
    );
}

#[tokio::test]
async fn put_replaces_the_user_but_keeps_id_created_and_provider() {
    let h = users(5);
    let id = h.sim.user_ids()[3].clone();
    let before = h.sim.user(&id).unwrap();
    let body = json!({"schemas": [USER_URN], "userName": "renamed@example.com",
                      "name": {"givenName": "Re", "familyName": "Named"},
                      CUSTOM_URN: {"managementLevel": "Director"}});
    let answer = h
        .scim("PUT", &format!("/scim/v2/Users/{id}"), Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let after = h.sim.user(&id).unwrap();
    assert_eq!(answer.body, after);
    assert_eq!(after["userName"], "renamed@example.com");
    assert!(after.get("title").is_none(), "attributes not sent are gone");
    assert!(after.get(ENTERPRISE_URN).is_none());
    assert_eq!(after[CUSTOM_URN]["managementLevel"], "Director");
    assert_eq!(
        after[IRONCLAD_URN]["provider"],
        before[IRONCLAD_URN]["provider"]
    );
    assert_eq!(after["meta"]["created"], before["meta"]["created"]);
    assert_ne!(
        after["meta"]["lastModified"],
        before["meta"]["lastModified"]
    );
    assert!(
        h.sim
            .user_by_username(before["userName"].as_str().unwrap())
            .is_none()
    );
    assert_eq!(h.sim.user_by_username("renamed@example.com"), Some(after));
}

#[tokio::test]
async fn put_to_another_users_name_is_409_and_unknown_id_is_404() {
    let h = users(5);
    let ids = h.sim.user_ids();
    let body = json!({"schemas": [USER_URN], "userName": ADMIN, "name": {"givenName": "A"}});
    let answer = h
        .scim(
            "PUT",
            &format!("/scim/v2/Users/{}", ids[2]),
            Some(body.clone()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let missing = h.scim("PUT", "/scim/v2/Users/nope", Some(body)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn patch_replaces_the_given_name_and_keeps_everything_else() {
    let h = users(5);
    let id = h.sim.user_ids()[2].clone();
    let before = h.sim.user(&id).unwrap();
    let answer = h
        .scim(
            "PATCH",
            &format!("/scim/v2/Users/{id}"),
            Some(fixture("patch-user-given-name.json", &[])),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let after = h.sim.user(&id).unwrap();
    assert_eq!(answer.body, after);
    assert_eq!(after["name"]["givenName"], "Alexandra");
    assert_eq!(after["name"]["familyName"], before["name"]["familyName"]);
    assert_eq!(after["title"], before["title"]);
    assert_eq!(
        after[IRONCLAD_URN]["departmentHead"],
        before[IRONCLAD_URN]["departmentHead"]
    );
}

#[tokio::test]
async fn patch_active_false_removes_the_user() {
    let h = users(20);
    let group = h.sim.group_ids()[0].clone();
    let member = h.sim.group_members(&group)[0].clone();
    let body = patch_op(json!([{"op": "replace", "path": "active", "value": false}]));
    let answer = h
        .scim("PATCH", &format!("/scim/v2/Users/{member}"), Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["active"], false);
    assert_eq!(answer.body["id"], member.as_str());
    let read = h
        .scim("GET", &format!("/scim/v2/Users/{member}"), None)
        .await;
    assert_eq!(read.status, StatusCode::NOT_FOUND);
    assert_eq!(h.sim.user_count(), 19);
    assert!(!h.sim.group_members(&group).contains(&member));
}

#[tokio::test]
async fn patch_with_a_non_boolean_active_or_unknown_attribute_is_refused() {
    let h = users(5);
    let id = h.sim.user_ids()[1].clone();
    let path = format!("/scim/v2/Users/{id}");
    let stringy = h
        .scim(
            "PATCH",
            &path,
            Some(patch_op(
                json!([{"op": "replace", "path": "active", "value": "False"}]),
            )),
        )
        .await;
    assert_eq!(stringy.body["detail"], "Invalid value at active: \"False\"");
    let unknown = h
        .scim(
            "PATCH",
            &path,
            Some(patch_op(
                json!([{"op": "add", "path": "shoeSize", "value": 9}]),
            )),
        )
        .await;
    assert_eq!(unknown.body["scimType"], "invalidPath");
    assert_eq!(
        h.sim.user(&id).unwrap()["active"],
        true,
        "a refused PATCH changes nothing"
    );
}

#[tokio::test]
async fn custom_attributes_round_trip_through_patch() {
    let h = users(5);
    let id = h.sim.user_ids()[1].clone();
    let body = patch_op(json!([
        {"op": "add", "path": format!("{CUSTOM_URN}:managementLevel"), "value": "Vice President"},
        {"op": "replace", "path": format!("{ENTERPRISE_URN}:department"), "value": "Finance"},
    ]));
    let answer = h
        .scim("PATCH", &format!("/scim/v2/Users/{id}"), Some(body))
        .await;
    assert_eq!(answer.body[CUSTOM_URN]["managementLevel"], "Vice President");
    assert_eq!(
        h.sim.user(&id).unwrap()[ENTERPRISE_URN]["department"],
        "Finance"
    );
}

#[tokio::test]
async fn an_attribute_no_schema_defines_is_refused_with_scims_400() {
    // Issue 13 point 9: custom attributes belong to the company's custom schema; Ironclad
    // refuses one its schema does not define, in the Ironclad extension or anywhere else.
    let h = users(5);
    let id = h.sim.user_ids()[1].clone();
    let before = h.sim.user(&id).unwrap();
    let body = patch_op(json!([
        {"op": "add", "path": format!("{IRONCLAD_URN}:managementLevel"), "value": "Director"},
    ]));
    let answer = h
        .scim("PATCH", &format!("/scim/v2/Users/{id}"), Some(body))
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["scimType"], "invalidPath");
    assert_eq!(h.sim.user(&id).unwrap(), before, "nothing changed");
    let create = h
        .scim(
            "POST",
            "/scim/v2/Users",
            Some(json!({"schemas": [USER_URN], "userName": "x@example.com",
                        "name": {"givenName": "X"}, IRONCLAD_URN: {"managementLevel": "Director"}})),
        )
        .await;
    assert_eq!(create.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        create.body["detail"],
        format!("No matching schema for attribute: {IRONCLAD_URN}:managementLevel")
    );
    assert!(h.sim.user_by_username("x@example.com").is_none());
}

#[tokio::test]
async fn delete_user_answers_204_and_removes_it_from_every_group() {
    let h = users(20);
    let group = h.sim.group_ids()[1].clone();
    let member = h.sim.group_members(&group)[0].clone();
    let answer = h
        .scim("DELETE", &format!("/scim/v2/Users/{member}"), None)
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    assert_eq!(answer.body, Value::Null);
    for g in h.sim.group_ids() {
        assert!(!h.sim.group_members(&g).contains(&member));
    }
    let again = h
        .scim("DELETE", &format!("/scim/v2/Users/{member}"), None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn inserted_users_keep_custom_attributes_and_reinsertion_is_idempotent() {
    let h = users(5);
    let user = json!({"userName": "seeded@example.com", "name": {"givenName": "S"},
                      IRONCLAD_URN: {"managementLevel": "Manager", "costCode": "X1"}});
    let id = h.sim.insert_user(user.clone());
    assert_eq!(h.sim.insert_user(user), id);
    let stored = h
        .scim("GET", &format!("/scim/v2/Users/{id}"), None)
        .await
        .body;
    assert_eq!(stored[IRONCLAD_URN]["costCode"], "X1");
    assert_eq!(stored["emails"][0]["value"], "seeded@example.com");
    assert_eq!(h.sim.user_count(), 6);
}
