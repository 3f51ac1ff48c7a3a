//! The seeded company: deterministic, and quick to build and page at benchmark scale.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::*;
use sim_ironclad::{SimConfig, Simulator};

/// Budgets are for optimized builds (the brief: 50,000 users in under a second); an unoptimized
/// test build gets a looser one so the test still catches accidental O(n²) work.
fn budget(optimized: Duration) -> Duration {
    if cfg!(debug_assertions) {
        optimized * 8
    } else {
        optimized
    }
}

#[test]
fn the_same_seed_builds_the_same_company() {
    let config = SimConfig {
        users: 300,
        groups: 20,
        ..SimConfig::default()
    };
    let a = Simulator::new(config.clone());
    let b = Simulator::new(config.clone());
    assert_eq!(a.user_ids(), b.user_ids());
    assert_eq!(a.group_ids(), b.group_ids());
    for id in a.user_ids().iter().step_by(37) {
        assert_eq!(a.user(id), b.user(id));
    }
    for id in a.group_ids() {
        assert_eq!(a.group(&id), b.group(&id));
    }
    let c = Simulator::new(SimConfig {
        seed: config.seed + 1,
        ..config
    });
    assert_ne!(a.user_ids(), c.user_ids());
}

#[test]
fn zero_users_still_has_the_admin_and_members_are_capped() {
    let sim = Simulator::new(SimConfig {
        users: 0,
        groups: 2,
        members_per_group: 10,
        ..SimConfig::default()
    });
    assert_eq!(sim.user_count(), 1);
    assert_eq!(
        sim.user_by_username(ADMIN).unwrap()["title"],
        "IT Administrator"
    );
    assert_eq!(sim.group_members(&sim.group_ids()[0]).len(), 1);
}

#[test]
fn group_names_stay_unique_beyond_the_name_combinations() {
    let sim = Simulator::new(SimConfig {
        users: 10,
        groups: 130,
        members_per_group: 2,
        ..SimConfig::default()
    });
    let names: std::collections::HashSet<String> = sim
        .group_ids()
        .iter()
        .map(|g| {
            sim.group(g).unwrap()["displayName"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names.len(), 130);
    assert!(names.contains("Legal Ops Group 2"));
}

#[tokio::test]
async fn fifty_thousand_users_build_quickly_and_a_page_of_1000_is_served_fast() {
    let started = Instant::now();
    let h = Harness::new(SimConfig {
        users: 50_000,
        groups: 2_000,
        members_per_group: 25,
        rate_limits: false,
        ..SimConfig::default()
    });
    let built = started.elapsed();
    assert_eq!(h.sim.user_count(), 50_000);
    assert_eq!(h.sim.group_count(), 2_000);
    assert!(built < budget(Duration::from_secs(1)), "built in {built:?}");

    let started = Instant::now();
    let page = h
        .scim("GET", "/scim/v2/Users?startIndex=48001&count=1000", None)
        .await;
    let served = started.elapsed();
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.body["Resources"].as_array().unwrap().len(), 1000);
    assert_eq!(ids(&page.body)[0], h.sim.user_ids()[48_000]);
    assert!(
        served < budget(Duration::from_millis(100)),
        "served in {served:?}"
    );

    let name = h.sim.user(&h.sim.user_ids()[49_999]).unwrap()["userName"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let found = h
        .scim(
            "GET",
            &format!("/scim/v2/Users?filter=userName%20eq%20%22{name}%22"),
            None,
        )
        .await;
    assert_eq!(found.body["totalResults"], 1);
    assert!(
        started.elapsed() < budget(Duration::from_millis(10)),
        "indexed lookup"
    );

    let groups = h.scim("GET", "/scim/v2/Groups?count=1000", None).await;
    assert_eq!(groups.body["Resources"].as_array().unwrap().len(), 1000);
}
