//! Issue 13 points 1–6 (and issue 15 points 5–6 for Entra) through the real `idhost` binary and
//! the real Entra plugin, against sim-graph built to behave as the documented Graph does:
//! v1.0 member lists without service principals, group kinds Graph refuses writes to, role
//! assignments that need a filter and carry a scope, every 40X delta-expiry answer, throttling.
//! Each test pins one outcome and reads the simulator's request log for what reached Graph.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::path::{Path, PathBuf};

use idhost_e2e::{Scratch, require_plugins, sqlite_sink, toml_str};
use sim_common::{Fault, FaultRule, RunningServer};
use sim_graph::{SimConfig, Simulator};

const SOURCE: &str = "corp";

async fn start(config: SimConfig) -> (Simulator, RunningServer) {
    require_plugins(&["idhost_entra"]);
    let sim = Simulator::new(config);
    let server = sim.serve(0).await.expect("serve sim-graph on loopback");
    (sim, server)
}

fn tenant() -> SimConfig {
    SimConfig {
        users: 120,
        managed_identities: 3,
        groups: 40,
        memberships: 1_200,
        apps: 4,
        roles: 5,
        ..SimConfig::default()
    }
}

/// A provisioning-capable source syncing into `idhost.db`.
fn config(s: &Scratch, sim: &Simulator, server: &RunningServer) -> PathBuf {
    let c = sim.config();
    s.config(&format!(
        "[sources.{SOURCE}]\nconnector = \"entra\"\n\
         [sources.{SOURCE}.settings]\ntenant_id = {}\nclient_id = {}\nclient_secret = {}\n\
         graph_url = {url}\nlogin_url = {url}\n{}",
        toml_str(&c.tenant_id),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        sqlite_sink("idhost.db"),
        url = toml_str(&server.url()),
    ))
}

async fn sync_ok(s: &Scratch, config: &Path) {
    let run = s.sync(config, &[]).await;
    run.expect_code(0);
    assert_eq!(run.source(SOURCE)["status"], "succeeded", "{}", run.text());
}

async fn provision(s: &Scratch, config: &Path, args: &[&str]) -> idhost_e2e::Run {
    let config = config.to_string_lossy().into_owned();
    let mut all = vec!["provision", "-c", config.as_str(), "--source", SOURCE];
    all.extend_from_slice(args);
    s.run(&all).await
}

fn group_of_kind(sim: &Simulator, kind: &str) -> String {
    sim.group_ids()
        .into_iter()
        .find(|g| sim.group_kind(g) == Some(kind))
        .unwrap_or_else(|| panic!("the tenant has a {kind} group"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_holds_the_group_links_of_service_principals() {
    let (sim, server) = start(tenant()).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    sync_ok(&s, &config).await;
    let db = s.db("idhost.db");
    let grants = db.grant_ids(SOURCE);
    let apps = sim.app_ids();
    let mis = sim.managed_identity_ids();
    let mut expected = 0;
    for g in sim.group_ids() {
        for (slug, holders) in [
            ("member", sim.group_members(&g)),
            ("owner", sim.group_owners(&g)),
        ] {
            for h in holders {
                let principal = if apps.contains(&h) {
                    format!("app:{h}")
                } else if mis.contains(&h) {
                    format!("user:{h}")
                } else {
                    continue;
                };
                expected += 1;
                let grant = format!("group:{g}:{slug}:{principal}");
                assert!(grants.contains(&grant), "{grant} is in the sink");
            }
        }
    }
    assert!(expected >= 3, "the tenant has service principal links");
    let c = sim.counts();
    let by = |sql: &str| db.count(sql, [SOURCE]) as usize;
    assert_eq!(
        by("SELECT count(*) FROM grants WHERE source = ?1 AND entitlement LIKE 'group:%:member'"),
        c.memberships
    );
    assert_eq!(
        by("SELECT count(*) FROM grants WHERE source = ?1 AND entitlement LIKE 'group:%:owner'"),
        c.owners
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grant_the_synced_entitlement_does_not_take_is_refused_before_any_request() {
    let (sim, server) = start(tenant()).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    sync_ok(&s, &config).await;
    let m365 = group_of_kind(&sim, "microsoft_365");
    let app = sim.app_ids()[0].clone();
    for dry_run in [false, true] {
        sim.faults().log().clear();
        let entitlement = format!("group:{m365}:member");
        let principal = format!("app:{app}");
        let mut args = vec![];
        if dry_run {
            args.push("--dry-run");
        }
        args.extend([
            "grant",
            "--entitlement",
            &entitlement,
            "--principal",
            &principal,
        ]);
        let run = provision(&s, &config, &args).await;
        run.expect_code(1);
        let text = run.text();
        assert!(text.contains("before any upstream request"), "{text}");
        assert!(text.contains("`user` only"), "{text}");
        assert!(
            text.contains("microsoft_365"),
            "names the group kind: {text}"
        );
        assert!(
            sim.faults().log().is_empty(),
            "no request at all (dry run {dry_run}): {:?}",
            sim.faults().log().records()
        );
        assert!(!sim.group_members(&m365).contains(&app));
    }
    // A distribution group takes nobody.
    let distribution = group_of_kind(&sim, "distribution");
    let user = sim.user_ids()[3].clone();
    sim.faults().log().clear();
    let run = provision(
        &s,
        &config,
        &[
            "grant",
            "--entitlement",
            &format!("group:{distribution}:member"),
            "--principal",
            &format!("user:{user}"),
        ],
    )
    .await;
    run.expect_code(1);
    assert!(run.text().contains("no principal type"), "{}", run.text());
    assert!(run.text().contains("distribution"), "{}", run.text());
    assert!(sim.faults().log().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dot_dot_as_a_group_id_never_reaches_graph() {
    let (sim, server) = start(tenant()).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    let user = format!("user:{}", sim.user_ids()[0]);
    let run = provision(
        &s,
        &config,
        &[
            "grant",
            "--entitlement",
            "group:..:member",
            "--principal",
            &user,
        ],
    )
    .await;
    // DESIGN §7.3: an unusable id is a usage error (exit 2), refused before any plugin loads.
    run.expect_code(2);
    assert!(run.text().contains("`..`"), "names the id: {}", run.text());
    let reached: Vec<_> = sim
        .faults()
        .log()
        .records()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1.0"))
        .collect();
    assert!(reached.is_empty(), "no Graph request: {reached:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_role_revoke_finds_the_assignment_without_an_undocumented_filter() {
    let (sim, server) = start(tenant()).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    let app = sim.app_ids()[1].clone();
    let user = sim.add_user("Assigned Then Revoked");
    let entitlement = format!("app:{app}:assignment");
    provision(
        &s,
        &config,
        &[
            "grant",
            "--entitlement",
            &entitlement,
            "--principal",
            &format!("user:{user}"),
        ],
    )
    .await
    .expect_code(0);
    let run = provision(
        &s,
        &config,
        &["revoke", "--grant", &format!("{entitlement}:user:{user}")],
    )
    .await;
    run.expect_code(0);
    assert!(run.stdout.contains(": changed"), "{}", run.text());
    assert!(
        !sim.app_role_assignments(&app)
            .iter()
            .any(|a| a["principalId"] == user.as_str())
    );
    assert!(
        !sim.faults()
            .log()
            .records()
            .iter()
            .any(|r| r.query.contains("principalId%20eq")),
        "{:?}",
        sim.faults().log().records()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delta_link_answered_404_sync_state_not_found_falls_back_to_a_full_sync() {
    let (sim, server) = start(tenant()).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    sync_ok(&s, &config).await;
    sim.expire_delta_links_with(404, "syncStateNotFound");
    let newcomer = sim.add_user("After Expiry");
    sync_ok(&s, &config).await;
    let db = s.db("idhost.db");
    assert!(
        db.resource_ids(SOURCE, "user")
            .contains(&format!("user:{newcomer}"))
    );
    let c = sim.counts();
    assert_eq!(
        db.resource_ids(SOURCE, "user").len(),
        c.users + c.managed_identities
    );
    assert_eq!(db.resource_ids(SOURCE, "group").len(), c.groups);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scoped_directory_role_is_its_own_grant_in_sync_and_provisioning() {
    let (sim, server) = start(tenant()).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    let role = sim.role_ids()[2].clone();
    let definition = sim.role_definition_ids()[2].clone();
    let unit = sim.administrative_unit_ids()[1].clone();
    let user = sim.user_ids()[20].clone();
    let entitlement = format!("role:{role}:member.administrativeUnits.{unit}");
    provision(
        &s,
        &config,
        &[
            "grant",
            "--entitlement",
            &entitlement,
            "--principal",
            &format!("user:{user}"),
        ],
    )
    .await
    .expect_code(0);
    assert!(sim.role_assignments().iter().any(|a| {
        a["principalId"] == user.as_str()
            && a["roleDefinitionId"] == definition.as_str()
            && a["directoryScopeId"] == format!("/administrativeUnits/{unit}").as_str()
    }));
    sync_ok(&s, &config).await;
    let db = s.db("idhost.db");
    assert!(db.entitlement_ids(SOURCE).contains(&entitlement));
    assert!(
        db.grant_ids(SOURCE)
            .contains(&format!("{entitlement}:user:{user}"))
    );
    assert!(
        !db.grant_ids(SOURCE)
            .contains(&format!("role:{role}:member:user:{user}")),
        "not a tenant-wide grant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_reads_are_retried_after_retry_after_and_an_exhausted_write_quota_names_its_scope()
 {
    let (sim, server) = start(SimConfig {
        limits: sim_graph::Limits {
            tenant_app_writes: 1.0,
            ..sim_graph::Limits::default()
        },
        ..tenant()
    })
    .await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server);
    // The host waits at most `max_retry_wait_secs` per request (default 300 s); 10 s here, so
    // the write quota below is exhausted within the test's time.
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replacen(
        "connector = \"entra\"\n",
        "connector = \"entra\"\nmax_retry_wait_secs = 10\n",
        1,
    );
    std::fs::write(&config, text).expect("config");
    // One 429 with Retry-After on the group listing and one 503 on a $batch: the sync waits
    // and completes.
    sim.faults().push(
        FaultRule::any(Fault::too_many_requests(
            Some(1),
            r#"{"error":{"code":"TooManyRequests","message":"Please retry again later."}}"#,
        ))
        .on_path("/v1.0/groups"),
    );
    sim.faults().push(
        FaultRule::any(sim_common::FaultAction::Status {
            status: 503,
            body: r#"{"error":{"code":"serviceNotAvailable","message":"Service unavailable"}}"#
                .to_owned(),
            headers: vec![("retry-after".to_owned(), "1".to_owned())],
        })
        .on_path("/$batch"),
    );
    sync_ok(&s, &config).await;
    let log = sim.faults().log();
    assert!(log.records().iter().any(|r| r.status == 429));
    assert!(log.records().iter().any(|r| r.status == 503));
    // The write quota (1 per 150 s here) answers Retry-After: 150, beyond the 10 s the host waits:
    // the second grant fails as rate limited, naming the limit.
    let group = sim.group_ids()[0].clone();
    let first = sim.add_user("Quota One");
    let second = sim.add_user("Quota Two");
    let grant = |who: String| {
        let entitlement = format!("group:{group}:member");
        let principal = format!("user:{who}");
        let s = &s;
        let config = config.clone();
        async move {
            provision(
                s,
                &config,
                &[
                    "grant",
                    "--entitlement",
                    &entitlement,
                    "--principal",
                    &principal,
                ],
            )
            .await
        }
    };
    grant(first).await.expect_code(0);
    let run = grant(second).await;
    run.expect_code(1);
    assert!(
        run.text().contains("Tenant_Application/Write")
            && run.text().contains("WriteLimitExceeded"),
        "{}",
        run.text()
    );
}
