//! The simulator served on 127.0.0.1 and used the way a connector would: token, then pages.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests reach sinks, databases and simulators the way an outside client would"
)]

use serde_json::Value;
use sim_clickwrap::{SimConfig, Simulator};

#[tokio::test]
async fn client_credentials_then_paging_over_loopback_lists_every_member() {
    let sim = Simulator::new(SimConfig {
        users: 230,
        ..SimConfig::default()
    });
    let server = sim.serve(0).await.expect("bind loopback");
    let base = server.url();
    let http = reqwest::Client::new();

    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "clickwrap-client"),
            ("client_secret", "clickwrap-secret"),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token JSON");
    let access = token["access_token"].as_str().expect("access_token");

    let sites: Value = http
        .get(format!("{base}/v1.1/sites"))
        .bearer_auth(access)
        .send()
        .await
        .expect("sites request")
        .json()
        .await
        .expect("sites JSON");
    let account = sites["data"][0]["account"].as_u64().expect("account id");
    assert_eq!(account, 1001);

    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let response = http
            .get(format!("{base}/v1.1/accounts/{account}/members"))
            .query(&[
                ("page", page.to_string()),
                ("per_page", "100".to_owned()),
                ("sort", "id".to_owned()),
            ])
            .bearer_auth(access)
            .send()
            .await
            .expect("members request");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("members JSON");
        assert_eq!(body["total_count"], 230);
        for user in body["data"].as_array().expect("data") {
            seen.push(user["id"].as_u64().expect("id"));
        }
        if body["has_more"] != true {
            break;
        }
        page += 1;
    }
    assert_eq!(page, 3);
    assert_eq!(seen, sim.user_ids());

    let unauthorized = http
        .get(format!("{base}/v1.1/sites"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("request");
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(sim.faults().log().count("GET", "/members"), 3);
    server.shutdown().await;
}
