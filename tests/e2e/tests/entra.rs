//! Issue 4 end to end: `idhost sync` with the real Entra plugin against sim-graph, into SQLite.
//!
//! The SQLite snapshot is compared with the tenant exactly, id by id: users and managed
//! identities (`user`), groups, enterprise apps, activated directory roles; the `member`/`owner`
//! entitlements of groups, `assignment`/`<app role value>`/`owner` of apps, `member` of roles;
//! and one grant per group membership, group owner, app role assignment, app owner and
//! directory role assignment. The truth comes from the simulator's inspection API, plus each
//! app's `appRoles` read from the simulator over HTTP (the slug of an assignment's entitlement
//! is its role's `value`), never from what idhost wrote.
//!
//! National cloud selection is unit-tested in the connector. The delta tests need a host that
//! applies incremental pages (issue 6).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use idhost_e2e::{Db, Run, Scratch, http, require_plugins, sqlite_sink, toml_str};
use serde_json::Value;
use sim_common::{Fault, FaultRule, RunningServer};
use sim_graph::{SimConfig, Simulator};

const SOURCE: &str = "corp";
/// The default app role id (approleassignment.md): "Default access", slug `assignment`.
const DEFAULT_APP_ROLE: &str = "00000000-0000-0000-0000-000000000000";

async fn start(config: SimConfig) -> (Simulator, RunningServer) {
    require_plugins(&["idhost_entra"]);
    let sim = Simulator::new(config);
    let server = sim.serve(0).await.expect("serve sim-graph on loopback");
    (sim, server)
}

/// A config syncing the tenant into `idhost.db`; `extra` goes into the settings table.
fn config(s: &Scratch, sim: &Simulator, server: &RunningServer, extra: &str) -> PathBuf {
    let c = sim.config();
    s.config(&format!(
        "[sources.{SOURCE}]\nconnector = \"entra\"\nread_only = true\n\
         [sources.{SOURCE}.settings]\ntenant_id = {}\nclient_id = {}\nclient_secret = {}\n\
         graph_url = {url}\nlogin_url = {url}\n{extra}\n{}",
        toml_str(&c.tenant_id),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        sqlite_sink("idhost.db"),
        url = toml_str(&server.url()),
    ))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Graph access token from the simulator's token endpoint, as `Bearer …`.
async fn bearer(sim: &Simulator, server: &RunningServer) -> String {
    let c = sim.config();
    let url = server.url();
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
        percent_encode(&c.client_id),
        percent_encode(&c.client_secret),
        percent_encode(&format!("{url}/.default"))
    );
    let (status, body) = http(
        "POST",
        &format!("{url}/{}/oauth2/v2.0/token", c.tenant_id),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &form,
    )
    .await;
    assert_eq!(status, 200, "token: {body}");
    let token: Value = serde_json::from_str(&body).expect("token JSON");
    format!(
        "Bearer {}",
        token["access_token"].as_str().expect("access_token")
    )
}

/// Entitlement slugs of every enterprise app's roles, by app id then role id, as Graph renders
/// the apps: the role's `value`, or its id when the value is empty, holds `:` or is a reserved
/// slug (the connector's documented rule), plus the default role → `assignment`.
async fn app_role_slugs(
    sim: &Simulator,
    server: &RunningServer,
) -> HashMap<String, HashMap<String, String>> {
    let url = server.url();
    let bearer = bearer(sim, server).await;
    let (status, body) = http(
        "GET",
        &format!(
            "{url}/v1.0/servicePrincipals?$filter={}&$select=id,appRoles&$top=999",
            percent_encode("servicePrincipalType eq 'Application'")
        ),
        &[("Authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(status, 200, "service principals: {body}");
    let page: Value = serde_json::from_str(&body).expect("service principals JSON");
    assert!(page.get("@odata.nextLink").is_none(), "one page of apps");
    let mut out = HashMap::new();
    for sp in page["value"].as_array().expect("value") {
        let mut slugs = HashMap::from([(DEFAULT_APP_ROLE.to_owned(), "assignment".to_owned())]);
        for role in sp["appRoles"].as_array().into_iter().flatten() {
            let id = role["id"].as_str().expect("role id").to_ascii_lowercase();
            let slug = match role["value"].as_str() {
                Some(v)
                    if !v.is_empty() && !v.contains(':') && v != "assignment" && v != "owner" =>
                {
                    v.to_owned()
                }
                _ => id.clone(),
            };
            slugs.insert(id, slug);
        }
        out.insert(sp["id"].as_str().expect("sp id").to_owned(), slugs);
    }
    assert_eq!(out.len(), sim.counts().apps);
    out
}

/// What the tenant holds right now, in the model's ids.
#[derive(Debug)]
struct Expected {
    users: BTreeSet<String>,
    groups: BTreeSet<String>,
    apps: BTreeSet<String>,
    roles: BTreeSet<String>,
    entitlements: BTreeSet<String>,
    grants: BTreeSet<String>,
    /// Grant count by kind, before de-duplication.
    memberships: usize,
    owners: usize,
    app_role_assignments: usize,
    app_owners: usize,
    role_assignments: usize,
}

fn expected(sim: &Simulator, slugs: &HashMap<String, HashMap<String, String>>) -> Expected {
    let mut kind: HashMap<String, &str> = HashMap::new();
    for id in sim.user_ids().into_iter().chain(sim.managed_identity_ids()) {
        kind.insert(id, "user");
    }
    for id in sim.group_ids() {
        kind.insert(id, "group");
    }
    for id in sim.app_ids() {
        kind.insert(id, "app");
    }
    let principal = |id: &str| -> String {
        let t = kind
            .get(id)
            .unwrap_or_else(|| panic!("{id} is no listed object"));
        format!("{t}:{id}")
    };
    let mut e = Expected {
        users: sim
            .user_ids()
            .into_iter()
            .chain(sim.managed_identity_ids())
            .map(|id| format!("user:{id}"))
            .collect(),
        groups: sim
            .group_ids()
            .iter()
            .map(|g| format!("group:{g}"))
            .collect(),
        apps: sim.app_ids().iter().map(|a| format!("app:{a}")).collect(),
        roles: sim.role_ids().iter().map(|r| format!("role:{r}")).collect(),
        entitlements: BTreeSet::new(),
        grants: BTreeSet::new(),
        memberships: 0,
        owners: 0,
        app_role_assignments: 0,
        app_owners: 0,
        role_assignments: 0,
    };
    for g in sim.group_ids() {
        e.entitlements.insert(format!("group:{g}:member"));
        e.entitlements.insert(format!("group:{g}:owner"));
        for m in sim.group_members(&g) {
            e.memberships += 1;
            e.grants
                .insert(format!("group:{g}:member:{}", principal(&m)));
        }
        for o in sim.group_owners(&g) {
            e.owners += 1;
            e.grants
                .insert(format!("group:{g}:owner:{}", principal(&o)));
        }
    }
    for a in sim.app_ids() {
        let roles = slugs
            .get(&a)
            .unwrap_or_else(|| panic!("app {a} not served"));
        for slug in roles.values() {
            e.entitlements.insert(format!("app:{a}:{slug}"));
        }
        e.entitlements.insert(format!("app:{a}:owner"));
        for assignment in sim.app_role_assignments(&a) {
            let role = assignment["appRoleId"]
                .as_str()
                .expect("appRoleId")
                .to_ascii_lowercase();
            let slug = roles.get(&role).unwrap_or_else(|| {
                panic!("assignment of a role app {a} does not define: {assignment}")
            });
            let who = assignment["principalId"].as_str().expect("principalId");
            e.app_role_assignments += 1;
            e.grants
                .insert(format!("app:{a}:{slug}:{}", principal(who)));
        }
        for o in sim.app_owners(&a) {
            e.app_owners += 1;
            e.grants.insert(format!("app:{a}:owner:{}", principal(&o)));
        }
    }
    let role_of: HashMap<String, String> = sim
        .role_definition_ids()
        .into_iter()
        .zip(sim.role_ids())
        .collect();
    for r in sim.role_ids() {
        e.entitlements.insert(format!("role:{r}:member"));
    }
    for assignment in sim.role_assignments() {
        let definition = assignment["roleDefinitionId"]
            .as_str()
            .expect("roleDefinitionId");
        let role = role_of
            .get(definition)
            .unwrap_or_else(|| panic!("assignment of a role that is not activated: {assignment}"));
        assert_eq!(
            assignment["directoryScopeId"], "/",
            "tenant-wide assignments only"
        );
        let who = assignment["principalId"].as_str().expect("principalId");
        e.role_assignments += 1;
        e.grants
            .insert(format!("role:{role}:member:{}", principal(who)));
    }
    e
}

/// The SQLite snapshot of `corp` is exactly the tenant, and the counts are those of
/// `sim.counts()`.
fn assert_matches_tenant(db: &Db, sim: &Simulator, e: &Expected) {
    let c = sim.counts();
    let snap = db.snapshot(SOURCE);
    let count = |t: &str| snap.resources.get(t).copied().unwrap_or(0) as usize;
    assert_eq!(
        count("user"),
        c.users + c.managed_identities,
        "users + managed identities"
    );
    assert_eq!(count("group"), c.groups, "groups");
    assert_eq!(count("app"), c.apps, "apps");
    assert_eq!(count("role"), c.roles, "roles");
    assert_eq!(snap.resources.len(), 4, "{:?}", snap.resources);
    assert_eq!(db.resource_ids(SOURCE, "user"), e.users, "user ids");
    assert_eq!(db.resource_ids(SOURCE, "group"), e.groups, "group ids");
    assert_eq!(db.resource_ids(SOURCE, "app"), e.apps, "app ids");
    assert_eq!(db.resource_ids(SOURCE, "role"), e.roles, "role ids");
    assert_eq!(
        db.entitlement_ids(SOURCE),
        e.entitlements,
        "entitlement ids"
    );

    assert_eq!(
        (
            e.memberships,
            e.owners,
            e.app_role_assignments,
            e.app_owners,
            e.role_assignments
        ),
        (
            c.memberships,
            c.owners,
            c.app_role_assignments,
            c.app_owners,
            c.role_assignments
        ),
        "the inspection API agrees with counts()"
    );
    let total =
        c.memberships + c.owners + c.app_role_assignments + c.app_owners + c.role_assignments;
    assert_eq!(
        e.grants.len(),
        total,
        "no two upstream relationships share a grant id"
    );
    assert_eq!(
        snap.grants as usize, total,
        "grants = memberships + owners + app role assignments + app owners + role assignments"
    );
    let by = |sql: &str| db.count(sql, [SOURCE]) as usize;
    assert_eq!(
        by("SELECT count(*) FROM grants WHERE source = ?1 AND entitlement LIKE 'group:%:member'"),
        c.memberships
    );
    assert_eq!(
        by("SELECT count(*) FROM grants WHERE source = ?1 AND entitlement LIKE 'group:%:owner'"),
        c.owners
    );
    assert_eq!(
        by("SELECT count(*) FROM grants WHERE source = ?1 AND entitlement LIKE 'app:%:owner'"),
        c.app_owners
    );
    assert_eq!(
        by(
            "SELECT count(*) FROM grants WHERE source = ?1 AND entitlement LIKE 'app:%' AND entitlement NOT LIKE 'app:%:owner'"
        ),
        c.app_role_assignments
    );
    assert_eq!(
        by("SELECT count(*) FROM grants WHERE source = ?1 AND entitlement LIKE 'role:%:member'"),
        c.role_assignments
    );
    let grants = db.grant_ids(SOURCE);
    if grants != e.grants {
        let missing: Vec<_> = e.grants.difference(&grants).take(10).collect();
        let extra: Vec<_> = grants.difference(&e.grants).take(10).collect();
        panic!(
            "grant ids differ; missing (first 10): {missing:?}; unexpected (first 10): {extra:?}"
        );
    }
    assert_eq!(snap.sync_ids.len(), 1, "one sync wrote the whole snapshot");
}

fn report(test: &str, run: &Run, sim: &Simulator) {
    let row = run
        .summary()
        .into_iter()
        .find(|r| r["source"] == SOURCE)
        .unwrap_or_default();
    eprintln!(
        "[e2e] {test}: exit {:?} in {:.2} s; simulator saw {} requests ({} $batch); host counted {} requests, {} retries",
        run.code,
        run.elapsed.as_secs_f64(),
        sim.faults().log().len(),
        sim.faults().log().count("POST", "/$batch"),
        row["requests"],
        row["retries"],
    );
}

async fn sync_ok(s: &Scratch, config: &Path, test: &str, sim: &Simulator) -> Run {
    let run = s.sync(config, &[]).await;
    report(test, &run, sim);
    run.expect_code(0);
    assert_eq!(run.source(SOURCE)["status"], "succeeded", "{}", run.text());
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn full_sync_of_a_20k_user_tenant_matches_the_simulator_exactly() {
    let built = Instant::now();
    let (sim, server) = start(SimConfig {
        users: 20_000,
        groups: 2_000,
        memberships: 100_000,
        apps: 50,
        roles: 20,
        ..SimConfig::default()
    })
    .await;
    eprintln!(
        "[e2e] 20k tenant built in {:.2} s",
        built.elapsed().as_secs_f64()
    );
    let s = Scratch::new();
    let config = config(&s, &sim, &server, "");
    let run = sync_ok(&s, &config, "entra 20k full sync", &sim).await;
    let requests = sim.faults().log().len();
    let row = run.source(SOURCE);
    let c = sim.counts();
    assert_eq!(c.users, 20_000);
    assert_eq!(c.memberships, 100_000);
    assert_eq!(c.roles, 20);
    assert_eq!(
        row["counts"]["resources"]["user"],
        c.users + c.managed_identities
    );
    assert_eq!(row["counts"]["resources"]["group"], 2_000);
    assert_eq!(row["counts"]["resources"]["app"], 50);
    assert_eq!(row["counts"]["resources"]["role"], 20);
    assert_eq!(
        row["counts"]["grants"],
        c.memberships + c.owners + c.app_role_assignments + c.app_owners + c.role_assignments
    );
    let checked = Instant::now();
    let slugs = app_role_slugs(&sim, &server).await;
    let e = expected(&sim, &slugs);
    assert_matches_tenant(&s.db("idhost.db"), &sim, &e);
    eprintln!(
        "[e2e] 20k tenant: {} grants, {} entitlements; {requests} upstream requests; checked in {:.2} s",
        e.grants.len(),
        e.entitlements.len(),
        checked.elapsed().as_secs_f64()
    );
    // Members and owners travel in $batch requests of 20 reads: 2,000 groups need at least 200.
    assert!(sim.faults().log().count("POST", "/$batch") >= 200);
    assert!(requests < 400, "{requests} requests for a 20k tenant");
}

/// A tenant small enough for every test: 600 users, 150 groups, 3,000 memberships.
fn small() -> SimConfig {
    SimConfig {
        users: 600,
        managed_identities: 3,
        groups: 150,
        memberships: 3_000,
        apps: 8,
        roles: 6,
        ..SimConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_refused_with_429_and_retry_after_finish_with_no_lost_page() {
    // The same tenant twice (same seed): once undisturbed, once with $batch refused.
    let (calm, calm_server) = start(small()).await;
    let (sim, server) = start(small()).await;
    let calm_dir = Scratch::new();
    let calm_config = config(&calm_dir, &calm, &calm_server, "");
    sync_ok(&calm_dir, &calm_config, "entra unthrottled twin", &calm).await;

    let throttled = Fault::too_many_requests(
        Some(1),
        r#"{"error":{"code":"TooManyRequests","message":"Please retry again later.","innerError":{"code":"429"}}}"#,
    );
    // Every third $batch of the first nine is refused once, and one is refused twice in a row.
    sim.faults().push(
        FaultRule::any(throttled.clone())
            .on_path("/$batch")
            .after(2)
            .times(1),
    );
    sim.faults().push(
        FaultRule::any(throttled.clone())
            .on_path("/$batch")
            .after(5)
            .times(1),
    );
    sim.faults().push(
        FaultRule::any(throttled)
            .on_path("/$batch")
            .after(8)
            .times(2),
    );
    let s = Scratch::new();
    let config = config(&s, &sim, &server, "");
    let run = sync_ok(&s, &config, "entra $batch 429 x4", &sim).await;
    let log = sim.faults().log();
    let refused = log
        .records()
        .into_iter()
        .filter(|r| r.status == 429)
        .count();
    assert_eq!(refused, 4, "{:?}", log.records());
    assert_eq!(
        run.source(SOURCE)["retries"],
        4,
        "each refusal retried by the host"
    );
    // Backoff without the header would wait at most 400 ms; Retry-After: 1 waits a second.
    assert!(
        run.elapsed >= Duration::from_secs(1),
        "Retry-After: 1 was honoured: {:?}",
        run.elapsed
    );

    let db = s.db("idhost.db");
    let calm_db = calm_dir.db("idhost.db");
    assert_eq!(
        db.grant_ids(SOURCE),
        calm_db.grant_ids(SOURCE),
        "same grants as the undisturbed run"
    );
    assert_eq!(db.snapshot(SOURCE).grants, calm_db.snapshot(SOURCE).grants);
    assert_eq!(
        log.count("POST", "/$batch"),
        calm.faults().log().count("POST", "/$batch") + 4
    );
    let slugs = app_role_slugs(&sim, &server).await;
    assert_matches_tenant(&db, &sim, &expected(&sim, &slugs));
}

/// Spends the tenant's resource units: `$batch`es of 20 member reads until Graph throttles one.
async fn drain_resource_units(sim: &Simulator, server: &RunningServer) {
    let bearer = bearer(sim, server).await;
    let groups = sim.group_ids();
    let requests: Vec<Value> = (0..20)
        .map(|i| {
            serde_json::json!({
                "id": i.to_string(), "method": "GET",
                "url": format!("/groups/{}/members", groups[i % groups.len()]),
            })
        })
        .collect();
    let body = serde_json::json!({ "requests": requests }).to_string();
    for _ in 0..500 {
        let (status, answer) = http(
            "POST",
            &format!("{}/v1.0/$batch", server.url()),
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
            ],
            &body,
        )
        .await;
        assert_eq!(status, 200, "$batch: {answer}");
        let answer: Value = serde_json::from_str(&answer).expect("$batch JSON");
        let throttled = answer["responses"]
            .as_array()
            .expect("responses")
            .iter()
            .any(|r| r["status"] == 429);
        if throttled {
            return;
        }
    }
    panic!("500 batches of member reads were never throttled");
}

#[tokio::test(flavor = "multi_thread")]
async fn resource_unit_throttle_is_waited_out_with_no_lost_page() {
    // Under 50 users the tenant is "S": 3,500 resource units per 10 s, refilled at 350/s. The
    // test spends them all first, so the sync's member and owner reads (about 900 units) are
    // answered 429 inside their $batch, with their own Retry-After, whatever the machine's
    // speed; the connector waits and reads them again.
    let tenant = || SimConfig {
        users: 40,
        managed_identities: 2,
        groups: 300,
        memberships: 3_000,
        apps: 3,
        roles: 4,
        ..SimConfig::default()
    };
    let (calm, calm_server) = start(SimConfig {
        throttle: false,
        ..tenant()
    })
    .await;
    let (sim, server) = start(tenant()).await;
    let calm_dir = Scratch::new();
    let calm_config = config(&calm_dir, &calm, &calm_server, "");
    sync_ok(&calm_dir, &calm_config, "entra throttle off twin", &calm).await;

    drain_resource_units(&sim, &server).await;
    sim.faults().log().clear();
    let s = Scratch::new();
    let config = config(&s, &sim, &server, "");
    let run = sync_ok(&s, &config, "entra resource-unit throttle", &sim).await;

    let batches = sim.faults().log().count("POST", "/$batch");
    let calm_batches = calm.faults().log().count("POST", "/$batch");
    assert!(
        batches > calm_batches,
        "throttled reads were sent again in later batches ({batches} vs {calm_batches})"
    );
    assert!(
        run.elapsed >= Duration::from_secs(1),
        "the sync waited: {:?}",
        run.elapsed
    );
    let db = s.db("idhost.db");
    assert_eq!(
        db.grant_ids(SOURCE),
        calm_dir.db("idhost.db").grant_ids(SOURCE)
    );
    let slugs = app_role_slugs(&sim, &server).await;
    assert_matches_tenant(&db, &sim, &expected(&sim, &slugs));
}

/// A tenant whose full listing needs many $batch requests (1,000 groups), so a delta round is
/// visibly cheaper.
fn delta_tenant() -> SimConfig {
    SimConfig {
        users: 3_000,
        managed_identities: 2,
        groups: 1_000,
        memberships: 15_000,
        apps: 5,
        roles: 4,
        ..SimConfig::default()
    }
}

/// Adds a user, removes another, adds the new user to one group and takes a member out of
/// another; returns the new user's id.
fn change_tenant(sim: &Simulator) -> String {
    let new_user = sim.add_user("Delta Newcomer");
    let groups = sim.group_ids();
    let gone = sim
        .user_ids()
        .into_iter()
        .find(|u| u != &new_user && sim.group_members(&groups[1]).contains(u))
        .expect("a member user of group 1");
    assert!(sim.remove_user(&gone));
    assert!(sim.add_member(&groups[0], &new_user));
    let users: BTreeSet<String> = sim.user_ids().into_iter().collect();
    let member = sim
        .group_members(&groups[2])
        .into_iter()
        .find(|m| users.contains(m))
        .expect("a user member of group 2");
    assert!(sim.remove_member(&groups[2], &member));
    new_user
}

#[tokio::test(flavor = "multi_thread")]
async fn delta_sync_after_changes_costs_a_fraction_of_the_full_sync() {
    let (sim, server) = start(delta_tenant()).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server, "");
    // Change events of the delta sync go to a JSONL sink beside the snapshot.
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(
        "\n[sinks.events]\ntype = \"jsonl\"\npath = \"events.jsonl\"\nrecords = [\"event\"]\n",
    );
    std::fs::write(&config, text).expect("config");
    sync_ok(&s, &config, "entra delta: first (full) sync", &sim).await;
    let full_requests = sim.faults().log().len();
    let slugs = app_role_slugs(&sim, &server).await;
    assert_matches_tenant(&s.db("idhost.db"), &sim, &expected(&sim, &slugs));
    let groups = sim.group_ids();
    let users_before: BTreeSet<String> = sim.user_ids().into_iter().collect();

    let new_user = change_tenant(&sim);
    let users_after: BTreeSet<String> = sim.user_ids().into_iter().collect();
    let gone: Vec<&String> = users_before.difference(&users_after).collect();
    assert_eq!(gone.len(), 1);
    sim.faults().log().clear();
    let run = s.sync(&config, &[]).await;
    report("entra delta: second (incremental) sync", &run, &sim);
    let delta_requests = sim.faults().log().len();
    run.expect_code(0);
    assert_eq!(run.source(SOURCE)["status"], "succeeded", "{}", run.text());
    let log = sim.faults().log();
    assert!(log.count("GET", "/users/delta") >= 1 && log.count("GET", "/groups/delta") >= 1);
    assert_eq!(
        log.count("GET", "/v1.0/users"),
        log.count("GET", "/users/delta"),
        "no full user listing"
    );
    assert!(
        delta_requests * 5 <= full_requests,
        "the delta sync cost {delta_requests} requests, the full one {full_requests}"
    );
    eprintln!("[e2e] entra delta: full sync {full_requests} requests, delta sync {delta_requests}");
    let slugs = app_role_slugs(&sim, &server).await;
    let db = s.db("idhost.db");
    assert_matches_tenant(&db, &sim, &expected(&sim, &slugs));
    assert!(db.resource(SOURCE, &format!("user:{new_user}")).is_some());

    // The delta produced the right change events.
    let events: Vec<serde_json::Value> = std::fs::read_to_string(s.path("events.jsonl"))
        .expect("events written")
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &serde_json::Value| v["kind"] == "event")
        .collect();
    let has = |event: &str, subject: &str| {
        events
            .iter()
            .any(|e| e["event"] == event && e["subject"] == subject)
    };
    assert!(has("created", &format!("user:{new_user}")), "{events:?}");
    assert!(
        has("deactivated", &format!("user:{}", gone[0])),
        "{events:?}"
    );
    assert!(
        has(
            "grant_added",
            &format!("group:{}:member:user:{new_user}", groups[0])
        ),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e["event"] == "grant_removed"
            && e["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("group:{}:member:", groups[2])))),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["event"] != "created" || e["subject"] == format!("user:{new_user}")),
        "only the new user is created: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_delta_link_falls_back_to_a_full_sync() {
    let (sim, server) = start(delta_tenant()).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server, "");
    sync_ok(&s, &config, "entra expired link: first sync", &sim).await;
    let full_requests = sim.faults().log().len();
    let link_key = "users.delta_link.v1";
    let first_link = s.db("state.db").strings(
        "SELECT value FROM connector_state WHERE source = ?1 AND key = ?2",
        [SOURCE, link_key],
    );
    assert_eq!(
        first_link.len(),
        1,
        "the first sync kept a users delta link"
    );

    sim.expire_delta_links();
    let new_user = change_tenant(&sim);
    sim.faults().log().clear();
    let run = sync_ok(&s, &config, "entra expired link: second sync", &sim).await;
    let log = sim.faults().log();
    let records = log.records();
    // Both stored links were tried and refused (400 syncStateNotFound), then everything was
    // listed in full with fresh links.
    let refused: Vec<_> = records.iter().filter(|r| r.status == 400).collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().any(|r| r.path.ends_with("/users/delta")));
    assert!(refused.iter().any(|r| r.path.ends_with("/groups/delta")));
    assert_eq!(
        records
            .iter()
            .filter(|r| r.query.contains("deltatoken=latest"))
            .count(),
        2,
        "new delta rounds started for users and groups"
    );
    assert!(
        log.count("POST", "/$batch") >= 50,
        "members re-read in full"
    );
    let requests = log.len();
    assert!(
        requests + 5 >= full_requests,
        "a full listing: {requests} vs {full_requests}"
    );
    eprintln!(
        "[e2e] entra expired link: full sync {full_requests} requests, fallback sync {requests}"
    );
    let row = run.source(SOURCE);
    assert_eq!(
        row["counts"]["resources"]["user"],
        sim.counts().users + sim.counts().managed_identities
    );

    let db = s.db("idhost.db");
    let slugs = app_role_slugs(&sim, &server).await;
    assert_matches_tenant(&db, &sim, &expected(&sim, &slugs));
    assert!(db.resource(SOURCE, &format!("user:{new_user}")).is_some());
    let second_link = s.db("state.db").strings(
        "SELECT value FROM connector_state WHERE source = ?1 AND key = ?2",
        [SOURCE, link_key],
    );
    assert_eq!(second_link.len(), 1);
    assert_ne!(
        second_link, first_link,
        "a fresh delta link replaced the expired one"
    );
}
