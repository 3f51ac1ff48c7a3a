//! Issue 3 end to end: `idhost sync` with the real Ironclad plugin against sim-ironclad, into
//! SQLite — a 5,000-user company with exact counts and a spot-checked user, and the upstream
//! misbehaving mid-sync (expired token, 429 without Retry-After, a 500 burst, a malformed page).
//!
//! (A read-only source refusing `idhost provision … grant` before any request is covered by
//! host/tests/it/provision_cli.rs.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::collections::BTreeSet;
use std::time::Duration;

use idhost_e2e::{Db, Scratch, require_plugins, sqlite_sink, toml_str};
use serde_json::Value;
use sim_common::{Fault, FaultAction, FaultRule, RunningServer};
use sim_ironclad::{SimConfig, Simulator};

const SOURCE: &str = "legal";
const SCIM_ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The company of issue 3: 5,000 users, 200 groups of 25.
fn company() -> SimConfig {
    SimConfig {
        users: 5000,
        groups: 200,
        members_per_group: 25,
        ..SimConfig::default()
    }
}

async fn start(config: SimConfig) -> (Simulator, RunningServer) {
    require_plugins(&["idhost_ironclad"]);
    let sim = Simulator::new(config);
    let server = sim.serve(0).await.expect("serve sim-ironclad on loopback");
    (sim, server)
}

/// A config syncing the simulator (client credentials, acting as its admin) into `idhost.db`.
/// These rows pin what happens to one page (its retries, its token refresh, its error text),
/// so the pages are read one after another (`pages_at_once = 1`) and users before groups
/// (`types_at_once = 1`); pages and types read at once are pinned in ironclad_fidelity.rs.
fn config(s: &Scratch, sim: &Simulator, server: &RunningServer) -> std::path::PathBuf {
    let c = sim.config();
    s.config(&format!(
        "[sources.{SOURCE}]\nconnector = \"ironclad\"\nread_only = true\ntypes_at_once = 1\n\
         [sources.{SOURCE}.settings]\nbase_url = {}\nclient_id = {}\nclient_secret = {}\nas_user_email = {}\npages_at_once = 1\n{}",
        toml_str(&server.url()),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        toml_str(&c.admin_email),
        sqlite_sink("idhost.db"),
    ))
}

/// Every `group:<g>:member:user:<u>` grant the simulator's groups hold right now.
fn expected_grants(sim: &Simulator) -> BTreeSet<String> {
    sim.group_ids()
        .iter()
        .flat_map(|g| {
            sim.group_members(g)
                .into_iter()
                .map(move |u| format!("group:{g}:member:user:{u}"))
        })
        .collect()
}

/// The SQLite snapshot is exactly the simulator's company: users, groups, one `member`
/// entitlement per group, one grant per member.
fn assert_snapshot_matches(db: &Db, sim: &Simulator) {
    let users: BTreeSet<String> = sim.user_ids().iter().map(|u| format!("user:{u}")).collect();
    let groups: BTreeSet<String> = sim
        .group_ids()
        .iter()
        .map(|g| format!("group:{g}"))
        .collect();
    let snap = db.snapshot(SOURCE);
    assert_eq!(
        snap.resources.get("user").copied(),
        Some(sim.user_count() as i64)
    );
    assert_eq!(
        snap.resources.get("group").copied(),
        Some(sim.group_count() as i64)
    );
    assert_eq!(
        snap.resources.len(),
        2,
        "only users and groups: {:?}",
        snap.resources
    );
    assert_eq!(db.resource_ids(SOURCE, "user"), users, "user ids");
    assert_eq!(db.resource_ids(SOURCE, "group"), groups, "group ids");
    let entitlements: BTreeSet<String> = groups.iter().map(|g| format!("{g}:member")).collect();
    assert_eq!(
        db.entitlement_ids(SOURCE),
        entitlements,
        "one member entitlement per group"
    );
    let members: usize = sim
        .group_ids()
        .iter()
        .map(|g| sim.group_members(g).len())
        .sum();
    assert_eq!(
        snap.grants, members as i64,
        "grants = sum of group members upstream"
    );
    assert_eq!(db.grant_ids(SOURCE), expected_grants(sim), "grant ids");
    assert_eq!(snap.sync_ids.len(), 1, "one sync wrote the whole snapshot");
}

fn report(test: &str, run: &idhost_e2e::Run, sim: &Simulator) {
    eprintln!(
        "[e2e] {test}: exit {:?} in {:.2} s; upstream requests {}",
        run.code,
        run.elapsed.as_secs_f64(),
        sim.faults().log().len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn full_sync_of_5000_users_and_200_groups_lands_in_sqlite_with_exact_counts() {
    let (sim, server) = start(company()).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    let run = s.sync(&config, &[]).await;
    report("ironclad full sync", &run, &sim);
    run.expect_code(0);
    let row = run.source(SOURCE);
    assert_eq!(row["status"], "succeeded", "{}", run.text());
    assert_eq!(row["counts"]["resources"]["user"], 5000);
    assert_eq!(row["counts"]["resources"]["group"], 200);
    assert_eq!(row["counts"]["entitlements"], 200);
    assert_eq!(row["counts"]["grants"], 200 * 25);

    let db = s.db("idhost.db");
    assert_snapshot_matches(&db, &sim);
    assert_eq!(
        db.count("SELECT count(*) FROM _staging_grants", []),
        0,
        "staging cleared"
    );
    let runs = db.sync_runs(SOURCE);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "succeeded");
    assert_eq!(runs[0].sync_id, row["sync_id"].as_str().expect("sync_id"));

    // Page size 1000 (the documented maximum): 6 user pages (1000 new, then 999 new each,
    // every page after the first starting at the previous page's last user so a listing that
    // shifted is noticed, issue 13 point 11), 1 group page, 1 token.
    let log = sim.faults().log();
    assert_eq!(log.count("GET", "/scim/v2/Users"), 6);
    assert_eq!(log.count("GET", "/scim/v2/Groups"), 1);
    assert_eq!(log.count("POST", "/oauth/token"), 1);
    assert_eq!(log.len(), 8, "{:?}", log.records());
    assert_eq!(row["requests"], 8);

    // Spot check: a department member whose custom `managementLevel` is set.
    let upstream: Value = sim
        .user_ids()
        .iter()
        .skip(1)
        .filter_map(|id| sim.user(id))
        .find(|u| {
            let ext = &u["urn:ietf:params:scim:schemas:extension:ironclad:2.0:User"];
            u[sim_ironclad::CUSTOM_SCHEMA_URN]["managementLevel"].is_string()
                && ext["departmentHead"].is_string()
        })
        .expect("a user with a managementLevel and a department head");
    let id = upstream["id"].as_str().expect("id");
    let row = db
        .resource(SOURCE, &format!("user:{id}"))
        .expect("the user is in SQLite");
    let enterprise = &upstream["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
    let ironclad = &upstream["urn:ietf:params:scim:schemas:extension:ironclad:2.0:User"];
    let (given, family) = (
        &upstream["name"]["givenName"],
        &upstream["name"]["familyName"],
    );
    assert_eq!(row.rtype, "user");
    assert_eq!(row.status, "enabled");
    assert_eq!(
        row.display_name,
        format!(
            "{} {}",
            given.as_str().expect("given"),
            family.as_str().expect("family")
        )
    );
    let user = &row.user;
    assert_eq!(user["login"], upstream["userName"]);
    assert_eq!(
        user["emails"],
        serde_json::json!([{"address": upstream["emails"][0]["value"], "primary": true}])
    );
    assert_eq!(&user["given_name"], given);
    assert_eq!(&user["family_name"], family);
    assert_eq!(user["title"], upstream["title"]);
    assert_eq!(user["department"], enterprise["department"]);
    assert_eq!(user["employee_id"], enterprise["employeeNumber"]);
    assert_eq!(user["manager"], ironclad["departmentHead"]);
    assert_eq!(user["account_type"], "human");
    // Extension attributes, the company's custom one included, are in the profile under their
    // own names.
    let profile = &row.profile;
    assert_eq!(
        profile["managementLevel"],
        upstream[sim_ironclad::CUSTOM_SCHEMA_URN]["managementLevel"]
    );
    assert_eq!(profile["provider"], ironclad["provider"]);
    assert_eq!(
        profile["allowProviderConversion"],
        ironclad["allowProviderConversion"]
    );
    assert_eq!(profile["departmentHead"], ironclad["departmentHead"]);
    assert_eq!(profile["department"], enterprise["department"]);
    assert_eq!(profile["employeeNumber"], enterprise["employeeNumber"]);
    assert_eq!(profile["meta"]["created"], upstream["meta"]["created"]);
    assert!(profile.get("userName").is_none() && profile.get("schemas").is_none());

    let group_id = &sim.group_ids()[0];
    let group = db
        .resource(SOURCE, &format!("group:{group_id}"))
        .expect("group");
    let upstream_group = sim.group(group_id).expect("group upstream");
    assert_eq!(
        group.display_name,
        upstream_group["displayName"].as_str().expect("name")
    );
    assert_eq!(group.group["kind"], "scim");
    assert_eq!(group.group["member_count"], 25);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_expiring_after_the_first_user_page_is_refreshed_and_the_sync_is_complete() {
    let (sim, server) = start(company()).await;
    // Hold the second user page long enough for the token to expire under it.
    sim.faults().push(
        FaultRule::any(FaultAction::Delay(Duration::from_millis(400)))
            .on_path("/scim/v2/Users")
            .after(1)
            .times(1),
    );
    let expirer = {
        let sim = sim.clone();
        tokio::spawn(async move {
            // The log records a request when its answer is ready, before the client reads
            // it: once page 1 is logged, page 2 is not yet past the token check.
            while sim.faults().log().count("GET", "/scim/v2/Users") < 1 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            sim.expire_tokens();
        })
    };
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    let run = s.sync(&config, &[]).await;
    report("ironclad token expiry", &run, &sim);
    expirer.await.expect("expirer task");
    run.expect_code(0);
    assert_eq!(run.source(SOURCE)["status"], "succeeded");

    let records = sim.faults().log().records();
    let unauthorized: Vec<_> = records.iter().filter(|r| r.status == 401).collect();
    assert_eq!(
        unauthorized.len(),
        1,
        "page 2 met the expired token once: {records:?}"
    );
    assert_eq!(unauthorized[0].path, "/scim/v2/Users");
    assert!(
        unauthorized[0].query.contains("startIndex=1000"),
        "{:?}",
        unauthorized[0]
    );
    assert_eq!(
        sim.faults().log().count("POST", "/oauth/token"),
        2,
        "one new token"
    );
    assert_eq!(
        sim.faults().log().count("GET", "/scim/v2/Users"),
        7,
        "6 pages + 1 resend"
    );
    assert_snapshot_matches(&s.db("idhost.db"), &sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_429_without_retry_after_is_retried_with_backoff() {
    let (sim, server) = start(company()).await;
    sim.faults().push(
        FaultRule::any(Fault::too_many_requests(
            None,
            format!(
                r#"{{"schemas":["{SCIM_ERROR}"],"status":"429","detail":"Too many requests"}}"#
            ),
        ))
        .on_path("/scim/v2/Users")
        .after(1)
        .times(3),
    );
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    let run = s.sync(&config, &[]).await;
    report("ironclad 429 x3", &run, &sim);
    run.expect_code(0);
    let row = run.source(SOURCE);
    assert_eq!(row["status"], "succeeded");
    let log = sim.faults().log();
    let throttled: Vec<_> = log
        .records()
        .into_iter()
        .filter(|r| r.status == 429)
        .collect();
    assert_eq!(throttled.len(), 3, "{throttled:?}");
    assert!(
        throttled
            .iter()
            .all(|r| r.query.contains("startIndex=1000"))
    );
    assert_eq!(log.count("GET", "/scim/v2/Users"), 6 + 3);
    assert_eq!(row["retries"], 3, "the host retried each 429");
    assert_snapshot_matches(&s.db("idhost.db"), &sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn burst_of_three_500s_on_a_user_page_is_retried() {
    let (sim, server) = start(company()).await;
    sim.faults().push(
        FaultRule::any(Fault::status(
            500,
            format!(r#"{{"schemas":["{SCIM_ERROR}"],"status":"500","detail":"Internal error"}}"#),
        ))
        .on_path("/scim/v2/Users")
        .after(2)
        .times(3),
    );
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    let run = s.sync(&config, &[]).await;
    report("ironclad 500 x3", &run, &sim);
    run.expect_code(0);
    let row = run.source(SOURCE);
    assert_eq!(row["status"], "succeeded");
    let log = sim.faults().log();
    let failed: Vec<_> = log
        .records()
        .into_iter()
        .filter(|r| r.status == 500)
        .collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(failed.iter().all(|r| r.query.contains("startIndex=1999")));
    assert_eq!(row["retries"], 3);
    assert_snapshot_matches(&s.db("idhost.db"), &sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_user_page_fails_the_source_cleanly_and_keeps_the_previous_snapshot() {
    let (sim, server) = start(company()).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    let good = s.sync(&config, &[]).await;
    good.expect_code(0);
    let good_id = good.source(SOURCE)["sync_id"]
        .as_str()
        .expect("sync_id")
        .to_owned();
    let before = s.db("idhost.db").snapshot(SOURCE);
    assert_eq!(before.sync_ids, BTreeSet::from([good_id.clone()]));

    // The 3rd user page of the next sync is not JSON, however often it is asked for.
    sim.faults().log().clear();
    sim.faults().push(
        FaultRule::any(FaultAction::MalformedJson)
            .on_path("/scim/v2/Users")
            .after(2)
            .times(u32::MAX),
    );
    let bad = s.sync(&config, &[]).await;
    report("ironclad malformed page", &bad, &sim);
    bad.expect_code(1);
    let row = bad.source(SOURCE);
    assert_eq!(row["status"], "failed");
    let error = row["error"].as_str().expect("an error message");
    let request = format!("GET {}/scim/v2/Users?startIndex=1999", server.url());
    for needle in [request.as_str(), "`user`", "not the expected JSON"] {
        assert!(
            error.contains(needle),
            "error should name the request ({needle}): {error}"
        );
    }
    assert!(
        !error.contains(&sim.config().client_secret),
        "no secret in: {error}"
    );
    // Nothing past the bad page was asked for, and the page was not retried as if transient.
    assert_eq!(sim.faults().log().count("GET", "/scim/v2/Users"), 3);
    assert_eq!(sim.faults().log().count("GET", "/scim/v2/Groups"), 0);

    let db = s.db("idhost.db");
    assert_eq!(
        db.snapshot(SOURCE),
        before,
        "the previous snapshot is intact"
    );
    assert_snapshot_matches(&db, &sim);
    assert_eq!(
        db.count("SELECT count(*) FROM _staging_resources", []),
        0,
        "staging dropped"
    );
    let runs = db.sync_runs(SOURCE);
    let statuses: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["succeeded", "failed"]);
    assert_eq!(runs[0].sync_id, good_id);
    assert_eq!(runs[1].error.as_deref(), Some(error));
    drop(db);

    // Once the upstream answers properly again, the next sync completes the snapshot exactly.
    sim.faults().clear();
    sim.faults().log().clear();
    let again = s.sync(&config, &[]).await;
    report("ironclad sync after the malformed page", &again, &sim);
    again.expect_code(0);
    assert_eq!(again.source(SOURCE)["status"], "succeeded");
    let db = s.db("idhost.db");
    assert_snapshot_matches(&db, &sim);
    assert_ne!(
        db.snapshot(SOURCE).sync_ids,
        before.sync_ids,
        "a new snapshot"
    );
}
