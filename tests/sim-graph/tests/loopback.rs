//! End to end over 127.0.0.1 with reqwest, and the large-tenant budget.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests reach sinks, databases and simulators the way an outside client would"
)]

use std::time::Instant;

use serde_json::{Value, json};
use sim_graph::{SimConfig, Simulator};

#[tokio::test]
async fn connector_flow_over_loopback_uses_absolute_links_back_to_the_simulator() {
    let sim = Simulator::new(SimConfig {
        users: 2_500,
        ..SimConfig::default()
    });
    let server = sim.serve(0).await.unwrap();
    let base = server.url();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/contoso-tenant/oauth2/v2.0/token"))
        .form(&[
            ("client_id", "graph-client"),
            ("client_secret", "graph-secret"),
            ("scope", &format!("{base}/.default")),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());

    let mut url = format!("{base}/v1.0/users?$top=999&$select=id,userPrincipalName");
    let mut ids = Vec::new();
    loop {
        let page: Value = http
            .get(&url)
            .header("authorization", &bearer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.extend(
            page["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        match page["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&format!("{base}/v1.0/users?")), "{next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(ids, sim.user_ids());
    assert_eq!(sim.faults().log().count("GET", "/v1.0/users"), 3);

    let group = sim.group_ids()[0].clone();
    let batch: Value = http
        .post(format!("{base}/v1.0/$batch"))
        .header("authorization", &bearer)
        .json(&json!({ "requests": [
            { "id": "m", "method": "GET", "url": format!("/groups/{group}/members?$top=999&$select=id") },
            { "id": "o", "method": "GET", "url": format!("/groups/{group}/owners") },
        ]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let responses = batch["responses"].as_array().unwrap();
    let members = responses.iter().find(|r| r["id"] == "m").unwrap();
    let listed: Vec<&str> = members["body"]["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, sim.group_members(&group));
    server.shutdown().await;
}

#[tokio::test]
async fn large_tenant_builds_in_seconds_and_serves_999_user_pages_fast() {
    let started = Instant::now();
    let sim = Simulator::new(SimConfig {
        users: 100_000,
        groups: 10_000,
        memberships: 1_000_000,
        apps: 50,
        managed_identities: 20,
        throttle: false,
        ..SimConfig::default()
    });
    let built = started.elapsed();
    let counts = sim.counts();
    assert_eq!(counts.users, 100_000);
    assert_eq!(counts.groups, 10_000);
    assert_eq!(counts.memberships, 1_000_000);
    assert_eq!(counts.apps, 50);
    assert_eq!(counts.managed_identities, 20);
    // Generous for unoptimised test builds on a shared two-core machine.
    assert!(built.as_secs() < 20, "building took {built:?}");

    let server = sim.serve(0).await.unwrap();
    let base = server.url();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/contoso-tenant/oauth2/v2.0/token"))
        .form(&[
            ("client_id", "graph-client"),
            ("client_secret", "graph-secret"),
            ("scope", &format!("{base}/.default")),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let page_started = Instant::now();
    let page: Value = http
        .get(format!(
            "{base}/v1.0/users?$top=999&$skiptoken={}",
            "cDF8NTAwMDA"
        ))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page_time = page_started.elapsed();
    assert_eq!(page["value"].as_array().unwrap().len(), 999);
    assert!(
        page_time.as_millis() < 2_000,
        "a 999-user page took {page_time:?}"
    );
    eprintln!("built 100k/10k/1M in {built:?}; 999-user page in {page_time:?}");
    server.shutdown().await;
}
