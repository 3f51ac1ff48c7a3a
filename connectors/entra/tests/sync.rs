//! Full listings against sim-graph: compliance, exact counts, toggles, paging of large groups.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::time::{Duration, Instant};

use common::{ALL, Sim, assert_matches_counts, list};
use idhost_connector_sdk::testing::{TestServices, assert_connector_compliance};
use idhost_connector_sdk::{AccountType, Connector, ErrorKind, SourceInfo, Status};
use idhost_entra::Entra;
use serde_json::json;
use sim_graph::SimConfig;

fn small() -> SimConfig {
    SimConfig {
        users: 300,
        managed_identities: 3,
        groups: 40,
        memberships: 2_000,
        apps: 5,
        roles: 6,
        ..SimConfig::default()
    }
}

/// The harness lists twice and expects the same result, so it runs on complete listings: with
/// delta off, and with delta on but the host asking for full syncs. (With delta on, a second
/// listing through the same state is incremental by design; delta.rs tests that.)
#[tokio::test]
async fn connector_passes_the_compliance_harness() {
    let sim = Sim::start(small()).await;
    let connector = sim
        .open(json!({ "incremental": false }), TestServices::new())
        .await;
    let listing = assert_connector_compliance(&connector).await;
    assert!(listing.grants.len() > 2_000);
    let full = {
        let mut built = SourceInfo::default();
        built.full_sync = true;
        built
    };
    let connector = sim.open_with(json!({}), TestServices::new(), full).await;
    assert_connector_compliance(&connector).await;
    assert!(Entra::manifest().can(idhost_connector_sdk::Capability::Incremental));
}

#[tokio::test]
async fn full_listing_matches_the_tenant_exactly() {
    let sim = Sim::start(small()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    let listed = list(&connector, ALL).await.expect("lists");
    assert_matches_counts(&listed, &sim.sim);
    assert!(
        listed.incremental.values().all(|i| !i),
        "a first sync is complete"
    );

    // Traits: a guest and a disabled user, a managed identity, a dynamic group, app roles.
    let users = &listed.resources["user"];
    let human = users
        .iter()
        .find(|u| {
            u.user
                .as_ref()
                .is_some_and(|t| t.account_type == AccountType::Human)
        })
        .expect("people");
    let t = human.user.as_ref().expect("trait");
    assert!(t.login.as_deref().is_some_and(|l| l.contains('@')));
    assert!(t.emails.first().is_some_and(|e| e.primary));
    assert!(t.given_name.is_some() && t.department.is_some() && t.title.is_some());
    assert!(
        users.iter().any(|u| u.status == Status::Disabled),
        "accountEnabled=false maps to disabled"
    );
    let services: Vec<_> = users
        .iter()
        .filter(|u| {
            u.user
                .as_ref()
                .is_some_and(|t| t.account_type == AccountType::Service)
        })
        .collect();
    assert_eq!(services.len(), 3, "managed identities are service users");
    let groups = &listed.resources["group"];
    assert!(
        groups
            .iter()
            .any(|g| g.group.as_ref().is_some_and(|t| t.dynamic))
    );
    for kind in ["security", "microsoft_365"] {
        assert!(
            groups
                .iter()
                .any(|g| g.group.as_ref().is_some_and(|t| t.kind == kind)),
            "{kind}"
        );
    }
    for app in &listed.resources["app"] {
        let roles = &app.app.as_ref().expect("app trait").roles;
        assert!(!roles.is_empty());
        for role in roles {
            assert!(
                listed
                    .entitlements
                    .contains(&format!("{}:{}", app.id, role.value))
            );
        }
        assert!(
            listed
                .entitlements
                .contains(&format!("{}:assignment", app.id))
        );
        assert!(listed.entitlements.contains(&format!("{}:owner", app.id)));
    }
    for role in &listed.resources["role"] {
        assert!(
            role.role
                .as_ref()
                .and_then(|r| r.template_id.as_ref())
                .is_some()
        );
    }
    // Nested groups and managed identities appear as principals of the type they are listed as.
    assert!(listed.grants.iter().any(|g| g.contains(":member:group:")));
    let mi = &sim.sim.managed_identity_ids();
    assert!(
        listed.grants.iter().any(|g| mi
            .iter()
            .any(|id| g.ends_with(&format!(":member:user:{id}")))),
        "a managed identity member is a user principal"
    );
    assert!(
        listed
            .grants
            .iter()
            .any(|g| g.starts_with("role:") && g.contains(":member:app:"))
    );
}

#[tokio::test]
async fn large_groups_are_read_to_their_last_page_in_batches_and_one_by_one() {
    let sim = Sim::start(small()).await;
    // 25 per page: the big groups need several inner pages each.
    for batch in [true, false] {
        let connector = sim
            .open(
                json!({ "page_size": 25, "batch": batch, "incremental": false }),
                TestServices::new(),
            )
            .await;
        let listed = list(&connector, ALL).await.expect("lists");
        assert_matches_counts(&listed, &sim.sim);
    }
    let log = sim.sim.faults().log();
    assert!(log.count("POST", "/$batch") > 0);
    assert!(
        log.count("GET", "/members") > 0,
        "batch = false reads members one GET at a time"
    );
}

#[tokio::test]
async fn toggles_leave_out_managed_identities_on_prem_groups_and_unassigned_apps() {
    let sim = Sim::start(small()).await;
    let connector = sim
        .open(
            json!({
                "include_managed_identities": false,
                "skip_on_prem_groups": true,
                "skip_unassigned_apps": true,
            }),
            TestServices::new(),
        )
        .await;
    let listed = list(&connector, ALL).await.expect("lists");
    let c = sim.sim.counts();
    assert_eq!(listed.count("user"), c.users);
    // Every twentieth group from index 13 is on-premises synced.
    let on_prem = (0..c.groups).filter(|g| g % 20 == 13).count();
    assert!(on_prem > 0);
    assert_eq!(listed.count("group"), c.groups - on_prem);
    let mi = sim.sim.managed_identity_ids();
    assert!(
        !listed
            .grants
            .iter()
            .any(|g| mi.iter().any(|id| g.ends_with(id.as_str())))
    );
    // Every simulated app has assignments, so none is skipped.
    assert_eq!(listed.count("app"), c.apps);
}

#[tokio::test]
async fn token_is_refreshed_after_401_once() {
    let sim = Sim::start(small()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    connector.validate().await.expect("validates");
    sim.sim.expire_tokens();
    let listed = list(&connector, &["role"])
        .await
        .expect("lists after a new token");
    assert_eq!(listed.count("role"), sim.sim.counts().roles);
    let tokens = sim.sim.faults().log().count("POST", "/oauth2/v2.0/token");
    assert_eq!(tokens, 2, "one token, then one more after the 401");
}

#[tokio::test]
async fn wrong_secret_fails_as_unauthenticated_without_leaking_it() {
    let sim = Sim::start(small()).await;
    let connector = sim
        .open(
            json!({ "client_secret": "not-the-secret" }),
            TestServices::new(),
        )
        .await;
    let err = connector.validate().await.expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Unauthenticated);
    assert!(!err.message.contains("not-the-secret"), "{err}");
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused_naming_the_key() {
    let services = TestServices::new();
    let result = idhost_connector_sdk::testing::open::<Entra>(
        json!({
            "tenant_id": "t", "client_id": "c", "client_secret": "s",
            "graph_url": "http://graph.example.com", "login_url": "https://login.example.com"
        }),
        services,
    )
    .await;
    let err = result.err().expect("refused");
    assert!(err.message.contains("graph_url"), "{err}");
}

fn big() -> SimConfig {
    SimConfig {
        users: 20_000,
        managed_identities: 10,
        groups: 2_000,
        memberships: 100_000,
        apps: 50,
        roles: 20,
        ..SimConfig::default()
    }
}

/// The tenant: 20k users, 2k groups, 100k memberships, 50 apps, 20 roles (about 3 s in
/// a debug build, so it always runs).
#[tokio::test]
async fn full_listing_of_a_20k_tenant_is_exact() {
    let sim = Sim::start(big()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    let started = Instant::now();
    let listed = list(&connector, ALL).await.expect("lists");
    let took = started.elapsed();
    assert_matches_counts(&listed, &sim.sim);
    println!(
        "20k tenant: {} requests, {} pages, {} grants, {took:?}",
        sim.requests(),
        listed.pages,
        listed.grants.len()
    );
}

/// Request counts and wall time at 20 ms injected latency: `$batch` with 4 in flight vs one
/// GET per member/owner/assignment list, in sequence.
#[tokio::test]
#[ignore = "benchmark; run with --ignored --nocapture"]
async fn batching_vs_sequential_paging_at_20ms_latency() {
    let mut report = Vec::new();
    for (label, settings) in [
        (
            "$batch, concurrency 4",
            json!({ "batch": true, "concurrency": 4 }),
        ),
        (
            "$batch, concurrency 1",
            json!({ "batch": true, "concurrency": 1 }),
        ),
        (
            "sequential GETs",
            json!({ "batch": false, "concurrency": 1 }),
        ),
    ] {
        let sim = Sim::start(SimConfig {
            latency: Duration::from_millis(20),
            ..big()
        })
        .await;
        let connector = sim.open(settings, TestServices::new()).await;
        let started = Instant::now();
        let listed = list(&connector, ALL).await.expect("lists");
        let took = started.elapsed();
        assert_matches_counts(&listed, &sim.sim);
        let log = sim.sim.faults().log();
        report.push(format!(
            "{label:>22}: {:>5} requests ({:>4} $batch, {:>5} GET), {:>6.1} s",
            log.len(),
            log.count("POST", "/$batch"),
            log.count("GET", "/v1.0/"),
            took.as_secs_f64()
        ));
    }
    for line in report {
        println!("{line}");
    }
}
