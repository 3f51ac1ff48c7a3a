//! Behaviour of the simulated Clickwrap REST API, driven through `Router::oneshot`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use sim_clickwrap::{SimConfig, Simulator};
use sim_common::{Fault, FaultRule};

const TOKEN: &str = "clickwrap-static-token";

fn sim(users: usize) -> Simulator {
    Simulator::new(SimConfig {
        users,
        ..SimConfig::default()
    })
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(router: &Router, request: Request<Body>) -> Reply {
    let answer = idhost_e2e::oneshot::send(router, request).await;
    Reply {
        status: answer.status,
        body: answer.json_or_text(),
        headers: answer.headers,
    }
}

async fn get(router: &Router, uri: &str, token: Option<&str>) -> Reply {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    send(router, req.body(Body::empty()).unwrap()).await
}

async fn get_ok(router: &Router, uri: &str) -> Value {
    let reply = get(router, uri, Some(TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
    reply.body
}

async fn post_token(router: &Router, content_type: &str, body: &str) -> Reply {
    let req = Request::post("/oauth/token")
        .header("content-type", content_type)
        .body(Body::from(body.to_owned()))
        .unwrap();
    send(router, req).await
}

fn ids(page: &Value) -> Vec<u64> {
    page["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|u| u["id"].as_u64().expect("integer id"))
        .collect()
}

fn membership_user_ids(page: &Value) -> Vec<u64> {
    page["data"]
        .as_array()
        .expect("data array")
        .iter()
        .map(|m| m["user"]["id"].as_u64().expect("user id"))
        .collect()
}

async fn all_members(router: &Router, per_page: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    for page in 1.. {
        let body = get_ok(
            router,
            &format!("/v1.1/accounts/1001/members?sort=id&page={page}&per_page={per_page}"),
        )
        .await;
        seen.extend(ids(&body));
        if body["has_more"] == json!(false) {
            break;
        }
    }
    seen
}

async fn all_memberships(router: &Router, site: u64) -> Vec<Value> {
    let mut seen = Vec::new();
    for page in 1.. {
        let body = get_ok(
            router,
            &format!("/v1.1/sites/{site}/memberships?page={page}&per_page=100"),
        )
        .await;
        seen.extend(body["data"].as_array().expect("data").iter().cloned());
        if body["has_more"] == json!(false) {
            break;
        }
    }
    seen
}

fn assert_error(reply: &Reply, status: u16, message: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.body);
    let err = &reply.body["error"];
    assert_eq!(err["status"], json!(status));
    assert_eq!(err["message"], json!(message));
    assert!(
        err["name"].is_string() && err.get("code").is_some(),
        "{err}"
    );
}

#[tokio::test]
async fn members_paging_visits_every_user_once_with_has_more() {
    let sim = sim(137);
    let router = sim.router();
    let mut seen = Vec::new();
    let mut pages = 0;
    for page in 1.. {
        let body = get_ok(
            &router,
            &format!("/v1.1/accounts/1001/members?sort=id&page={page}&per_page=25"),
        )
        .await;
        pages += 1;
        assert_eq!(body["page"], json!(page));
        assert_eq!(body["per_page"], json!(25));
        assert_eq!(body["total_count"], json!(137));
        let expected_count = if page < 6 { 25 } else { 12 };
        assert_eq!(body["count"], json!(expected_count));
        assert_eq!(body["has_more"], json!(page < 6));
        seen.extend(ids(&body));
        if body["has_more"] == json!(false) {
            break;
        }
    }
    assert_eq!(pages, 6);
    assert_eq!(seen, sim.user_ids(), "every user once, in id order");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 137);
}

#[tokio::test]
async fn default_page_is_first_25_and_per_page_over_100_is_clamped() {
    let router = sim(250).router();
    let body = get_ok(&router, "/v1.1/accounts/1001/members").await;
    assert_eq!(
        (body["page"].clone(), body["per_page"].clone()),
        (json!(1), json!(25))
    );
    assert_eq!(ids(&body).len(), 25);

    let body = get_ok(&router, "/v1.1/accounts/1001/members?sort=id&per_page=1000").await;
    assert_eq!(body["per_page"], json!(100));
    assert_eq!(body["count"], json!(100));
    assert_eq!(body["has_more"], json!(true));
    assert_eq!(all_members(&router, 1000).await.len(), 250);
}

#[tokio::test]
async fn page_past_the_end_is_empty_without_more() {
    let router = sim(30).router();
    let body = get_ok(
        &router,
        "/v1.1/accounts/1001/members?sort=id&page=9&per_page=25",
    )
    .await;
    assert_eq!(body["count"], json!(0));
    assert_eq!(body["total_count"], json!(30));
    assert_eq!(body["has_more"], json!(false));
    assert_eq!(body["data"], json!([]));
}

#[tokio::test]
async fn malformed_paging_is_400_with_envelope() {
    let router = sim(5).router();
    for q in ["page=0", "per_page=abc", "lean=perhaps", "filter=nonsense"] {
        let reply = get(
            &router,
            &format!("/v1.1/accounts/1001/members?sort=id&{q}"),
            Some(TOKEN),
        )
        .await;
        assert_error(&reply, 400, "Bad request.");
    }
}

#[tokio::test]
async fn members_are_flat_user_objects_of_the_documented_shape() {
    let sim = sim(60);
    let body = get_ok(
        &sim.router(),
        "/v1.1/accounts/1001/members?sort=id&per_page=100",
    )
    .await;
    let users = body["data"].as_array().unwrap();
    for u in users {
        let email = u["email"].as_str().unwrap();
        assert!(email.contains('@'), "{email}");
        assert!(u["name"].as_str().unwrap().contains(' '));
        assert!(u["locale"].as_str().unwrap().contains('-'));
        assert!(!u["time_zone"].as_str().unwrap().is_empty());
        let profile = &u["profiles"][0];
        assert_eq!(profile["provider"], json!("local"));
        assert_eq!(profile["id"], json!(email));
        assert_eq!(profile["displayName"], u["name"]);
        assert_eq!(profile["emails"], json!([email]));
        assert!(profile["photos"].is_array());
        assert!(profile["created_time"].as_str().unwrap().ends_with('Z'));
        match u["verified"] {
            Value::Bool(true) => assert!(u["verified_time"].as_str().unwrap().ends_with('Z')),
            Value::Bool(false) => assert!(u.get("verified_time").is_none()),
            ref other => panic!("verified is {other}"),
        }
        assert_eq!(Some(u.clone()), sim.user(u["id"].as_u64().unwrap()));
    }
    let verified = users
        .iter()
        .filter(|u| u["verified"] == json!(true))
        .count();
    assert!(verified > 30 && verified < 60, "{verified} of 60 verified");
    let zones: HashSet<&str> = users
        .iter()
        .map(|u| u["time_zone"].as_str().unwrap())
        .collect();
    assert!(zones.iter().any(|z| z.contains('/')) && zones.iter().any(|z| !z.contains('/')));
    let locales: HashSet<&str> = users
        .iter()
        .map(|u| u["locale"].as_str().unwrap())
        .collect();
    assert!(locales.len() >= 4, "{locales:?}");
}

#[tokio::test]
async fn same_seed_serves_the_same_users() {
    let a = get_ok(
        &sim(50).router(),
        "/v1.1/accounts/1001/members?sort=id&per_page=50",
    )
    .await;
    let b = get_ok(
        &sim(50).router(),
        "/v1.1/accounts/1001/members?sort=id&per_page=50",
    )
    .await;
    assert_eq!(a, b);
}

#[tokio::test]
async fn sites_list_has_the_documented_fields() {
    let sim = Simulator::new(SimConfig {
        sites: 2,
        ..SimConfig::default()
    });
    let router = sim.router();
    let body = get_ok(&router, "/v1.1/sites").await;
    assert_eq!(body["total_count"], json!(2));
    let sites = body["data"].as_array().unwrap();
    assert_eq!(ids(&body), sim.site_ids());
    for s in sites {
        assert_eq!(s["account"], json!(1001));
        assert_eq!(s["access_id"].as_str().unwrap().len(), 36);
        for field in ["name", "key", "locale", "time_zone", "verified_time"] {
            assert!(s[field].is_string(), "{field}");
        }
        for field in ["verified", "deleted", "disabled", "sandbox", "primary"] {
            assert!(s[field].is_boolean(), "{field}");
        }
    }
    assert_eq!(sites[0]["primary"], json!(true));
    assert_eq!(sites[1]["sandbox"], json!(true));

    let one = get_ok(&router, &format!("/v1.1/sites/{}", sim.site_ids()[0])).await;
    assert_eq!(one["data"], sites[0]);
}

#[tokio::test]
async fn memberships_carry_roles_and_the_embedded_user() {
    let sim = sim(120);
    let router = sim.router();
    let site = sim.site_ids()[0];
    let memberships = all_memberships(&router, site).await;
    assert_eq!(memberships.len(), 120, "every member is on the first site");
    let roles: Vec<&str> = memberships
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles.iter().filter(|r| **r == "owner").count(), 1);
    let admins = roles.iter().filter(|r| **r == "admin").count();
    assert!((1..=15).contains(&admins), "{admins} admins");
    assert!(
        roles
            .iter()
            .all(|r| ["owner", "admin", "member"].contains(r))
    );
    for m in &memberships {
        assert_eq!(m["account"], json!(1001));
        assert_eq!(m["site"], json!(site));
        let id = m["id"].as_str().unwrap();
        assert!(
            id.len() == 24 && id.chars().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
        assert!(["site", "account"].contains(&m["membership_type"].as_str().unwrap()));
        let uid = m["user"]["id"].as_u64().unwrap();
        assert_eq!(Some(m["user"].clone()), sim.user(uid));
    }
}

#[tokio::test]
async fn later_sites_hold_a_subset_of_members() {
    let sim = Simulator::new(SimConfig {
        sites: 3,
        users: 200,
        ..SimConfig::default()
    });
    let router = sim.router();
    let all: HashSet<u64> = sim.user_ids().into_iter().collect();
    for &site in &sim.site_ids()[1..] {
        let ms = all_memberships(&router, site).await;
        assert!(ms.len() > 20 && ms.len() < 200, "{} members", ms.len());
        assert!(
            ms.iter()
                .all(|m| all.contains(&m["user"]["id"].as_u64().unwrap()))
        );
        assert_eq!(ms.iter().filter(|m| m["role"] == json!("owner")).count(), 1);
    }
}

#[tokio::test]
async fn unknown_account_or_site_is_404_with_envelope() {
    let router = sim(5).router();
    for uri in [
        "/v1.1/accounts/999/members",
        "/v1.1/accounts/abc/members",
        "/v1.1/sites/424242/memberships",
        "/v1.1/sites/424242",
    ] {
        assert_error(&get(&router, uri, Some(TOKEN)).await, 404, "Not found.");
    }
}

#[tokio::test]
async fn missing_or_unknown_bearer_is_401_with_envelope() {
    let router = sim(5).router();
    let reply = get(&router, "/v1.1/sites", None).await;
    assert_error(&reply, 401, "The requester is unauthorized.");
    let reply = get(&router, "/v1.1/accounts/1001/members", Some("not-a-token")).await;
    assert_error(&reply, 401, "The requester is unauthorized.");
    let basic = Request::get("/v1.1/sites")
        .header(
            "authorization",
            "Basic Y2xpY2t3cmFwLWNsaWVudDpjbGlja3dyYXAtc2VjcmV0",
        )
        .body(Body::empty())
        .unwrap();
    assert_error(
        &send(&router, basic).await,
        401,
        "The requester is unauthorized.",
    );
}

#[tokio::test]
async fn client_credentials_token_unlocks_the_api() {
    let router = sim(5).router();
    let form =
        "grant_type=client_credentials&client_id=clickwrap-client&client_secret=clickwrap-secret";
    let reply = post_token(&router, "application/x-www-form-urlencoded", form).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["token_type"], json!("Bearer"));
    assert_eq!(reply.body["expires_in"], json!(3600));
    let token = reply.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(token, TOKEN);
    assert_eq!(
        get(&router, "/v1.1/sites", Some(&token)).await.status,
        StatusCode::OK
    );

    let json_body = r#"{"client_id":"clickwrap-client","client_secret":"clickwrap-secret"}"#;
    let reply = post_token(&router, "application/json", json_body).await;
    assert_eq!(reply.status, StatusCode::OK, "JSON body without grant_type");
    let second = reply.body["access_token"].as_str().unwrap();
    assert_ne!(second, token, "each call issues a new token");
    assert_eq!(
        get(&router, "/v1.1/sites", Some(&token)).await.status,
        StatusCode::OK,
        "earlier tokens stay valid"
    );

    let basic = Request::post("/oauth/token")
        .header(
            "authorization",
            "Basic Y2xpY2t3cmFwLWNsaWVudDpjbGlja3dyYXAtc2VjcmV0",
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    assert_eq!(
        send(&router, basic).await.status,
        StatusCode::OK,
        "HTTP Basic client auth"
    );
}

#[tokio::test]
async fn wrong_client_secret_is_401() {
    let router = sim(5).router();
    let reply = post_token(
        &router,
        "application/x-www-form-urlencoded",
        "grant_type=client_credentials&client_id=clickwrap-client&client_secret=nope",
    )
    .await;
    assert_error(&reply, 401, "The requester is unauthorized.");
    assert!(reply.body.get("access_token").is_none());

    let reply = post_token(
        &router,
        "application/json",
        r#"{"client_id":"someone-else","client_secret":"clickwrap-secret"}"#,
    )
    .await;
    assert_error(&reply, 401, "The requester is unauthorized.");
}

#[tokio::test]
async fn token_request_without_credentials_or_with_other_grant_is_400() {
    let router = sim(5).router();
    let reply = post_token(
        &router,
        "application/x-www-form-urlencoded",
        "grant_type=client_credentials",
    )
    .await;
    assert_error(&reply, 400, "Bad request.");
    let reply = post_token(
        &router,
        "application/x-www-form-urlencoded",
        "grant_type=password&client_id=clickwrap-client&client_secret=clickwrap-secret",
    )
    .await;
    assert_error(&reply, 400, "Bad request.");
    let reply = post_token(&router, "application/json", "{not json").await;
    assert_error(&reply, 400, "Bad request.");
}

#[tokio::test]
async fn expired_tokens_are_401_but_the_static_token_still_works() {
    let sim = sim(5);
    let router = sim.router();
    let reply = post_token(
        &router,
        "application/json",
        r#"{"grant_type":"client_credentials","client_id":"clickwrap-client","client_secret":"clickwrap-secret"}"#,
    )
    .await;
    let token = reply.body["access_token"].as_str().unwrap().to_owned();
    sim.expire_tokens();
    let reply = get(&router, "/v1.1/sites", Some(&token)).await;
    assert_error(&reply, 401, "The requester is unauthorized.");
    assert_eq!(
        get(&router, "/v1.1/sites", Some(TOKEN)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let router = sim(3).router();
    for i in 0..2000 {
        let reply = get(&router, "/v1.1/sites", Some(TOKEN)).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {i} is within 2000/min"
        );
    }
    let reply = get(&router, "/v1.1/sites", Some(TOKEN)).await;
    assert_eq!(
        reply.body,
        json!({"error": {
            "message": "Request limit has been reached for the current rate limit period.",
            "status": 429,
            "name": "RateLimitExceededError",
            "code": "rate_limit_exceeded",
        }})
    );
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After {retry_after}");

    // The limit is per API token: a freshly issued token has its own quota.
    let fresh = post_token(
        &router,
        "application/x-www-form-urlencoded",
        "client_id=clickwrap-client&client_secret=clickwrap-secret",
    )
    .await;
    let token = fresh.body["access_token"].as_str().unwrap();
    assert_eq!(
        get(&router, "/v1.1/sites", Some(token)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn unauthenticated_requests_are_limited_to_60_per_minute() {
    let router = sim(3).router();
    for _ in 0..60 {
        assert_eq!(
            get(&router, "/v1.1/sites", None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let reply = get(&router, "/v1.1/sites", None).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(reply.headers.contains_key("retry-after"));
    assert_eq!(
        get(&router, "/v1.1/sites", Some(TOKEN)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn rate_limits_can_be_turned_off() {
    let router = Simulator::new(SimConfig {
        users: 3,
        rate_limits: false,
        ..SimConfig::default()
    })
    .router();
    for _ in 0..2100 {
        assert_eq!(
            get(&router, "/v1.1/sites", Some(TOKEN)).await.status,
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn removed_user_disappears_from_members_and_memberships() {
    let sim = Simulator::new(SimConfig {
        sites: 2,
        users: 80,
        ..SimConfig::default()
    });
    let router = sim.router();
    // A user on both sites.
    let second = sim.site_ids()[1];
    let on_second = all_memberships(&router, second).await;
    let victim = on_second
        .iter()
        .map(|m| m["user"]["id"].as_u64().unwrap())
        .find(|&id| id != sim.user_ids()[0])
        .unwrap();

    assert!(sim.remove_user(victim));
    assert!(!sim.remove_user(victim), "second removal is a no-op");
    assert_eq!(sim.user_count(), 79);
    assert_eq!(sim.user(victim), None);
    let members = all_members(&router, 25).await;
    assert_eq!(members.len(), 79);
    assert!(!members.contains(&victim));
    for site in sim.site_ids() {
        let ms = all_memberships(&router, site).await;
        assert!(
            ms.iter().all(|m| m["user"]["id"] != json!(victim)),
            "site {site}"
        );
    }
    let body = get_ok(&router, "/v1.1/accounts/1001/members").await;
    assert_eq!(body["total_count"], json!(79));
}

#[tokio::test]
async fn restore_user_brings_back_same_fields() {
    let sim = Simulator::new(SimConfig {
        sites: 2,
        users: 50,
        ..SimConfig::default()
    });
    let router = sim.router();
    let id = sim.user_ids()[7];
    let before_user = sim.user(id).unwrap();
    let before_memberships: Vec<Vec<Value>> = {
        let mut all = Vec::new();
        for site in sim.site_ids() {
            let ms = all_memberships(&router, site).await;
            all.push(
                ms.into_iter()
                    .filter(|m| m["user"]["id"] == json!(id))
                    .collect(),
            );
        }
        all
    };

    assert!(sim.remove_user(id));
    assert!(sim.restore_user(id));
    assert!(!sim.restore_user(id), "restoring an active user is a no-op");

    assert_eq!(sim.user(id), Some(before_user.clone()));
    assert_eq!(sim.user_count(), 50);
    let members = all_members(&router, 100).await;
    assert_eq!(members, sim.user_ids(), "back in id order");
    let listed = get_ok(
        &router,
        &format!("/v1.1/accounts/1001/members?sort=id&filter=id=={id}"),
    )
    .await;
    assert_eq!(listed["data"], json!([before_user]));
    for (site, before) in sim.site_ids().into_iter().zip(before_memberships) {
        let ms = all_memberships(&router, site).await;
        let after: Vec<Value> = ms
            .into_iter()
            .filter(|m| m["user"]["id"] == json!(id))
            .collect();
        assert_eq!(after, before, "same membership on site {site}");
    }
}

#[tokio::test]
async fn added_user_is_a_member_of_the_account_and_first_site() {
    let sim = Simulator::new(SimConfig {
        sites: 2,
        users: 10,
        ..SimConfig::default()
    });
    let router = sim.router();
    let id = sim.add_user("new.hire@acme.example.com", "New Hire");
    assert!(id > *sim.user_ids()[..10].iter().max().unwrap());
    assert_eq!(sim.user_count(), 11);
    let user = sim.user(id).unwrap();
    assert_eq!(user["email"], json!("new.hire@acme.example.com"));
    assert_eq!(user["name"], json!("New Hire"));

    let members = all_members(&router, 25).await;
    assert_eq!(members.last(), Some(&id));
    let first = all_memberships(&router, sim.site_ids()[0]).await;
    let m = first.iter().find(|m| m["user"]["id"] == json!(id)).unwrap();
    assert_eq!(m["role"], json!("member"));
    assert_eq!(m["membership_type"], json!("site"));
    let second = all_memberships(&router, sim.site_ids()[1]).await;
    assert!(second.iter().all(|m| m["user"]["id"] != json!(id)));

    assert_eq!(
        sim.add_user("NEW.HIRE@acme.example.com", "Again"),
        id,
        "same login"
    );
    assert_eq!(sim.user_count(), 11);
}

#[tokio::test]
async fn set_user_field_changes_what_the_api_returns() {
    let sim = sim(10);
    let router = sim.router();
    let id = sim.user_ids()[3];
    assert!(sim.set_user_field(id, "name", json!("Renamed Person")));
    assert!(sim.set_user_field(id, "locale", json!("fr-FR")));
    assert!(sim.set_user_field(id, "verified", json!(false)));
    assert!(sim.set_user_field(id, "verified_time", Value::Null));
    assert!(!sim.set_user_field(id, "id", json!(5)));
    assert!(
        !sim.set_user_field(id, "verified", json!("yes")),
        "type must match"
    );
    assert!(!sim.set_user_field(999_999_999, "name", json!("x")));
    let taken = sim.user(sim.user_ids()[0]).unwrap()["email"].clone();
    assert!(
        !sim.set_user_field(id, "email", taken),
        "emails stay unique"
    );

    let body = get_ok(
        &router,
        &format!("/v1.1/accounts/1001/members?sort=id&filter=id=={id}"),
    )
    .await;
    let user = &body["data"][0];
    assert_eq!(user["name"], json!("Renamed Person"));
    assert_eq!(user["profiles"][0]["displayName"], json!("Renamed Person"));
    assert_eq!(user["locale"], json!("fr-FR"));
    assert_eq!(user["verified"], json!(false));
    assert!(user.get("verified_time").is_none());
}

#[tokio::test]
async fn filter_by_email_finds_exactly_that_user() {
    let sim = sim(300);
    let router = sim.router();
    let id = sim.user_ids()[150];
    let email = sim.user(id).unwrap()["email"].as_str().unwrap().to_owned();

    let body = get_ok(
        &router,
        &format!("/v1.1/accounts/1001/members?sort=id&filter=email=={email}"),
    )
    .await;
    assert_eq!(ids(&body), vec![id]);
    assert_eq!(body["total_count"], json!(1));
    assert_eq!(body["has_more"], json!(false));

    let site = sim.site_ids()[0];
    let body = get_ok(
        &router,
        &format!("/v1.1/sites/{site}/memberships?filter=user.email=={email}"),
    )
    .await;
    assert_eq!(membership_user_ids(&body), vec![id]);

    let body = get_ok(
        &router,
        "/v1.1/accounts/1001/members?sort=id&filter=email==nobody@nowhere.example",
    )
    .await;
    assert_eq!(
        (body["count"].clone(), body["total_count"].clone()),
        (json!(0), json!(0))
    );
}

#[tokio::test]
async fn filter_combines_clauses_with_and() {
    let sim = sim(200);
    let router = sim.router();
    let body = get_ok(
        &router,
        "/v1.1/accounts/1001/members?sort=id&filter=verified==false%20and%20locale==en-US&per_page=100",
    )
    .await;
    let expected: Vec<u64> = sim
        .user_ids()
        .into_iter()
        .filter(|&id| {
            let u = sim.user(id).unwrap();
            u["verified"] == json!(false) && u["locale"] == json!("en-US")
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(ids(&body), expected);
    assert_eq!(body["total_count"], json!(expected.len()));

    let site = sim.site_ids()[0];
    let admins = get_ok(
        &router,
        &format!("/v1.1/sites/{site}/memberships?filter=role==admin"),
    )
    .await;
    let data = admins["data"].as_array().unwrap();
    assert!(!data.is_empty() && data.iter().all(|m| m["role"] == json!("admin")));
}

#[tokio::test]
async fn no_count_omits_total_count_but_keeps_has_more() {
    let router = sim(40).router();
    let body = get_ok(
        &router,
        "/v1.1/accounts/1001/members?sort=id&no_count=true&lean=true",
    )
    .await;
    assert!(body.get("total_count").is_none(), "{body}");
    assert_eq!(body["count"], json!(25));
    assert_eq!(body["has_more"], json!(true));
    let body = get_ok(
        &router,
        "/v1.1/accounts/1001/members?sort=id&no_count=true&page=2",
    )
    .await;
    assert_eq!(body["count"], json!(15));
    assert_eq!(body["has_more"], json!(false));
}

#[tokio::test]
async fn fields_and_sort_shape_the_member_list() {
    let sim = sim(60);
    let router = sim.router();
    let body = get_ok(
        &router,
        "/v1.1/accounts/1001/members?sort=id&fields=email,locale&per_page=3",
    )
    .await;
    for u in body["data"].as_array().unwrap() {
        let keys: Vec<&str> = u.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["id", "email", "locale"]);
    }

    let body = get_ok(&router, "/v1.1/accounts/1001/members?sort=-id&per_page=5").await;
    let mut newest: Vec<u64> = sim.user_ids().into_iter().rev().take(5).collect();
    assert_eq!(ids(&body), newest);
    let body = get_ok(
        &router,
        "/v1.1/accounts/1001/members?sort=-id&page=12&per_page=5",
    )
    .await;
    newest = sim.user_ids().into_iter().take(5).rev().collect();
    assert_eq!(ids(&body), newest, "last page of descending order");

    let mut all = Vec::new();
    for page in 1..=3 {
        let body = get_ok(
            &router,
            &format!("/v1.1/accounts/1001/members?sort=name&per_page=25&page={page}"),
        )
        .await;
        all.extend(body["data"].as_array().unwrap().iter().cloned());
    }
    assert_eq!(all.len(), 60);
    let names: Vec<&str> = all.iter().map(|u| u["name"].as_str().unwrap()).collect();
    assert!(names.windows(2).all(|w| w[0] <= w[1]), "sorted by name");
}

#[tokio::test]
async fn unknown_route_answers_a_loud_500() {
    let router = sim(3).router();
    let reply = get(&router, "/v1.1/accounts/1001/users", Some(TOKEN)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        reply.body,
        json!("unexpected GET /v1.1/accounts/1001/users")
    );
}

#[tokio::test]
async fn scripted_faults_and_request_log_apply() {
    let sim = sim(3);
    let router = sim.router();
    sim.faults().push(
        FaultRule::any(Fault::too_many_requests(
            Some(2),
            r#"{"error":{"status":429}}"#,
        ))
        .on_path("/members"),
    );
    let reply = get(&router, "/v1.1/accounts/1001/members", Some(TOKEN)).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply.headers["retry-after"], "2");
    let reply = get(&router, "/v1.1/accounts/1001/members", Some(TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        sim.faults().log().count(Method::GET.as_str(), "/members"),
        2
    );
}

#[tokio::test]
async fn configured_latency_delays_answers() {
    let sim = Simulator::new(SimConfig {
        users: 3,
        latency: Duration::from_millis(60),
        ..SimConfig::default()
    });
    let started = Instant::now();
    get_ok(&sim.router(), "/v1.1/sites").await;
    assert!(started.elapsed() >= Duration::from_millis(60));
}

#[tokio::test]
async fn twenty_thousand_users_build_fast_and_any_page_is_fast() {
    let started = Instant::now();
    let sim = sim(20_000);
    let built = started.elapsed();
    // Unoptimized test builds are several times slower than release; the budget is for both.
    assert!(built < Duration::from_secs(1), "built in {built:?}");
    assert_eq!(sim.user_count(), 20_000);

    let router = sim.router();
    let started = Instant::now();
    for page in [1, 100, 200] {
        let body = get_ok(
            &router,
            &format!("/v1.1/accounts/1001/members?sort=id&page={page}&per_page=100"),
        )
        .await;
        assert_eq!(body["count"], json!(100));
        assert_eq!(body["has_more"], json!(page < 200));
        assert_eq!(ids(&body)[0], sim.user_ids()[(page - 1) * 100]);
    }
    let site = sim.site_ids()[0];
    get_ok(
        &router,
        &format!("/v1.1/sites/{site}/memberships?page=150&per_page=100"),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(500),
        "4 pages in {elapsed:?}"
    );
}

/// Every key of `doc` exists in `ours` with the same JSON type, recursively (arrays by their
/// first item). Keys we add beyond the docs are allowed; missing or retyped ones are not.
fn assert_same_shape(doc: &Value, ours: &Value, path: &str) {
    match (doc, ours) {
        (Value::Object(d), Value::Object(o)) => {
            for (k, dv) in d {
                let ov = o
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing in {ours}"));
                assert_same_shape(dv, ov, &format!("{path}.{k}"));
            }
        }
        (Value::Array(d), Value::Array(o)) => {
            if let (Some(dv), Some(ov)) = (d.first(), o.first()) {
                assert_same_shape(dv, ov, &format!("{path}[0]"));
            }
        }
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        _ => panic!("{path}: doc has {doc}, simulator has {ours}"),
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/resources/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("fixture JSON")
}

#[tokio::test]
async fn objects_have_the_shape_of_the_doc_examples() {
    let sim = sim(30);
    let router = sim.router();
    // The owner is verified in seed 1 and every user has a profile; pick a verified user with a
    // photo so optional parts are present for the comparison.
    let members = get_ok(&router, "/v1.1/accounts/1001/members?sort=id&per_page=30").await;
    let full = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["verified"] == json!(true) && u["profiles"][0]["photos"][0].is_string())
        .expect("a verified user with a photo");
    assert_same_shape(&fixture("user.json"), full, "user");
    let mut envelope = members.clone();
    envelope["data"] = json!([]);
    assert_same_shape(&fixture("pagination.json"), &envelope, "envelope");

    let site = sim.site_ids()[0];
    let filter = format!("user.id=={}", full["id"]);
    let ms = get_ok(
        &router,
        &format!("/v1.1/sites/{site}/memberships?filter={filter}"),
    )
    .await;
    assert_same_shape(&fixture("membership.json"), &ms["data"][0], "membership");
}

#[tokio::test]
async fn an_unsorted_member_listing_follows_the_most_recent_change_not_the_id() {
    // The default order is not documented (reference/retrieve-user-memberships-for-an-account-1
    // only offers `sort`): the simulator's moves as users change, so clients must send `sort`.
    let sim = sim(30);
    let changed = sim.user_ids()[20];
    assert!(sim.set_user_field(changed, "name", serde_json::json!("Changed Just Now")));
    let body = get_ok(&sim.router(), "/v1.1/accounts/1001/members?per_page=5").await;
    assert_eq!(body["data"][0]["id"], serde_json::json!(changed));
    let sorted = get_ok(
        &sim.router(),
        "/v1.1/accounts/1001/members?sort=id&per_page=5",
    )
    .await;
    assert_eq!(
        sorted["data"][0]["id"],
        serde_json::json!(sim.user_ids()[0])
    );
}
