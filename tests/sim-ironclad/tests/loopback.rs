//! End to end over real loopback HTTP, the way a connector talks to Ironclad.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests reach sinks, databases and simulators the way an outside client would"
)]

use serde_json::{Value, json};
use sim_ironclad::{SimConfig, Simulator};

#[tokio::test]
async fn a_client_syncs_and_provisions_over_loopback() {
    let sim = Simulator::new(SimConfig {
        users: 1_500,
        groups: 8,
        ..SimConfig::default()
    });
    let server = sim.serve(0).await.expect("bind loopback");
    let base = server.url();
    assert!(base.starts_with("http://127.0.0.1:"));
    let http = reqwest::Client::new();

    // Token with HTTP Basic client authentication and an OAuth form body.
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .basic_auth("ironclad-client", Some("ironclad-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "scope",
                "scim.users.readUsers scim.groups.readGroups scim.groups.updateGroups",
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = token["access_token"].as_str().unwrap().to_owned();
    let scim = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}/scim/v2{path}"))
            .bearer_auth(&bearer)
            .header("x-as-user-email", "it-admin@example.com")
    };

    // Full sync in pages of 1000.
    let mut synced = Vec::new();
    let mut start = 1;
    loop {
        let response = scim(
            reqwest::Method::GET,
            &format!("/Users?startIndex={start}&count=1000"),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().contains_key("x-ironclad-requestid"));
        let page: Value = response.json().await.unwrap();
        let resources = page["Resources"].as_array().unwrap();
        if resources.is_empty() {
            break;
        }
        synced.extend(
            resources
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        start += 1000;
    }
    assert_eq!(synced, sim.user_ids());

    // Grant: add a user to a group.
    let group = sim.group_ids()[0].clone();
    let outsider = sim
        .user_ids()
        .into_iter()
        .find(|u| !sim.group_members(&group).contains(u))
        .unwrap();
    let response = scim(reqwest::Method::PATCH, &format!("/Groups/{group}"))
        .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "add", "path": "members", "value": [{"value": outsider}]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(sim.group_members(&group).contains(&outsider));

    // The token's scopes do not include user creation.
    let response = scim(reqwest::Method::POST, "/Users")
        .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "n@example.com", "name": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    let log = sim.faults().log();
    assert_eq!(log.count("POST", "/oauth/token"), 1);
    assert_eq!(log.count("GET", "/scim/v2/Users"), 3);
    assert_eq!(log.writes().len(), 3);
    server.shutdown().await;
}
