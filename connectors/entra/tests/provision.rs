//! Grants and revokes against sim-graph, each checked in the simulator's state afterwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use common::{Sim, list};
use idhost_connector_sdk::testing::TestServices;
use idhost_connector_sdk::{
    EntitlementRef, ErrorKind, GrantRef, Provisioner, ResourceRef, SourceInfo,
};
use idhost_entra::Entra;
use serde_json::{Value, json};
use sim_graph::SimConfig;

fn ent(id: &str) -> EntitlementRef {
    EntitlementRef::parse(id).expect("entitlement id parses")
}

fn principal(id: &str) -> ResourceRef {
    ResourceRef::parse(id).expect("principal id parses")
}

fn grant_ref(id: &str) -> GrantRef {
    GrantRef::parse(id).expect("grant id parses")
}

async fn setup() -> (Sim, Entra) {
    let sim = Sim::start(SimConfig::default()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    (sim, connector)
}

/// Grants, grants again (already), revokes, revokes again (already), checking `holds` after each.
async fn round_trip(connector: &Entra, entitlement: &str, who: &str, holds: impl Fn() -> bool) {
    assert!(
        !holds(),
        "{who} must not hold {entitlement} before the test"
    );
    let first = connector
        .grant(&ent(entitlement), &principal(who))
        .await
        .expect("grants");
    assert!(!first.already, "first grant changes the tenant");
    assert_eq!(first.grant.id, format!("{entitlement}:{who}"));
    assert!(holds(), "{who} holds {entitlement} after the grant");
    let second = connector
        .grant(&ent(entitlement), &principal(who))
        .await
        .expect("grants again");
    assert!(second.already, "granting what is held is `already`");
    assert!(holds());
    let grant = grant_ref(&format!("{entitlement}:{who}"));
    let revoked = connector.revoke(&grant).await.expect("revokes");
    assert!(!revoked.already, "first revoke changes the tenant");
    assert!(!holds(), "{who} no longer holds {entitlement}");
    let again = connector.revoke(&grant).await.expect("revokes again");
    assert!(again.already, "revoking what is absent is `already`");
}

fn outsider(sim: &Sim, holders: &[String]) -> String {
    sim.sim
        .user_ids()
        .into_iter()
        .find(|u| !holders.contains(u))
        .expect("a user outside the list")
}

#[tokio::test]
async fn group_membership_grant_and_revoke_are_idempotent() {
    let (sim, connector) = setup().await;
    let group = sim.sim.group_ids()[0].clone();
    let user = outsider(&sim, &sim.sim.group_members(&group));
    round_trip(
        &connector,
        &format!("group:{group}:member"),
        &format!("user:{user}"),
        || sim.sim.group_members(&group).contains(&user),
    )
    .await;
    // A nested group as member.
    let child = sim.sim.group_ids()[2].clone();
    round_trip(
        &connector,
        &format!("group:{group}:member"),
        &format!("group:{child}"),
        || sim.sim.group_members(&group).contains(&child),
    )
    .await;
}

#[tokio::test]
async fn group_ownership_grant_and_revoke_are_idempotent() {
    let (sim, connector) = setup().await;
    let group = sim.sim.group_ids()[1].clone();
    let user = outsider(&sim, &sim.sim.group_owners(&group));
    round_trip(
        &connector,
        &format!("group:{group}:owner"),
        &format!("user:{user}"),
        || sim.sim.group_owners(&group).contains(&user),
    )
    .await;
}

fn assigned(sim: &Sim, app: &str, principal: &str, role: &str) -> bool {
    sim.sim.app_role_assignments(app).iter().any(|a: &Value| {
        a["principalId"] == principal
            && a["appRoleId"]
                .as_str()
                .is_some_and(|r| r.eq_ignore_ascii_case(role))
    })
}

#[tokio::test]
async fn app_role_assignment_grant_and_revoke_are_idempotent() {
    let (sim, connector) = setup().await;
    let listed = list(&connector, &["app"]).await.expect("lists apps");
    let app = &listed.resources["app"][0];
    let app_id = app.upstream_id().to_owned();
    let role = app.app.as_ref().expect("app trait").roles[0].clone();
    let user = sim
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !assigned(&sim, &app_id, u, &role.id))
        .expect("an unassigned user");
    round_trip(
        &connector,
        &format!("app:{app_id}:{}", role.value),
        &format!("user:{user}"),
        || assigned(&sim, &app_id, &user, &role.id),
    )
    .await;
    // Default access (`assignment`) to a group.
    let group = sim.sim.group_ids()[4].clone();
    let default = "00000000-0000-0000-0000-000000000000";
    round_trip(
        &connector,
        &format!("app:{app_id}:assignment"),
        &format!("group:{group}"),
        || assigned(&sim, &app_id, &group, default),
    )
    .await;
}

#[tokio::test]
async fn app_ownership_grant_and_revoke_are_idempotent() {
    let (sim, connector) = setup().await;
    let app = sim.sim.app_ids()[1].clone();
    let user = outsider(&sim, &sim.sim.app_owners(&app));
    round_trip(
        &connector,
        &format!("app:{app}:owner"),
        &format!("user:{user}"),
        || sim.sim.app_owners(&app).contains(&user),
    )
    .await;
}

#[tokio::test]
async fn directory_role_grant_and_revoke_use_role_assignments_and_are_idempotent() {
    let (sim, connector) = setup().await;
    let role = sim.sim.role_ids()[1].clone();
    let definition = sim.sim.role_definition_ids()[1].clone();
    let holds = |user: &str| {
        sim.sim.role_assignments().iter().any(|a| {
            a["principalId"] == user
                && a["roleDefinitionId"] == definition.as_str()
                && a["directoryScopeId"] == "/"
        })
    };
    let user = sim
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !holds(u))
        .expect("a user without the role");
    round_trip(
        &connector,
        &format!("role:{role}:member"),
        &format!("user:{user}"),
        || holds(&user),
    )
    .await;
    let log = sim.sim.faults().log();
    assert!(log.count("POST", "/roleManagement/directory/roleAssignments") >= 2);
    assert!(log.count("DELETE", "/roleManagement/directory/roleAssignments/") >= 1);
}

#[tokio::test]
async fn read_only_sources_refuse_before_any_request() {
    let sim = Sim::start(SimConfig::default()).await;
    let group = sim.sim.group_ids()[0].clone();
    let user = sim.sim.user_ids()[0].clone();
    let by_setting = sim
        .open(json!({ "read_only": true }), TestServices::new())
        .await;
    let read_only = {
        let mut built = SourceInfo::default();
        built.read_only = true;
        built
    };
    let by_source = sim
        .open_with(json!({}), TestServices::new(), read_only)
        .await;
    for connector in [&by_setting, &by_source] {
        let err = connector
            .grant(
                &ent(&format!("group:{group}:member")),
                &principal(&format!("user:{user}")),
            )
            .await
            .expect_err("refused");
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        let err = connector
            .revoke(&grant_ref(&format!("group:{group}:member:user:{user}")))
            .await
            .expect_err("refused");
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
    }
    assert!(sim.sim.faults().log().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn bad_grants_fail_with_the_right_kind() {
    let (sim, connector) = setup().await;
    let groups = sim.sim.group_ids();
    let user = format!("user:{}", sim.sim.user_ids()[0]);
    // Group 7 is dynamic: Graph refuses member writes.
    let err = connector
        .grant(
            &ent(&format!("group:{}:member", groups[7])),
            &principal(&user),
        )
        .await
        .expect_err("dynamic group");
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err}");
    assert!(err.message.contains("Authorization_RequestDenied"), "{err}");
    let app = sim.sim.app_ids()[0].clone();
    let err = connector
        .grant(&ent(&format!("app:{app}:No.Such.Role")), &principal(&user))
        .await
        .expect_err("unknown role");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert!(
        err.message.contains("assignment"),
        "lists what exists: {err}"
    );
    let err = connector
        .grant(
            &ent(&format!("group:{}:admin", groups[0])),
            &principal(&user),
        )
        .await
        .expect_err("unknown slug");
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    let err = connector
        .grant(
            &ent(&format!("group:{}:owner", groups[0])),
            &principal(&format!("group:{}", groups[1])),
        )
        .await
        .expect_err("groups cannot own groups");
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    let err = connector
        .grant(
            &ent(&format!("group:{}:member", groups[0])),
            &principal("user:6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0"),
        )
        .await
        .expect_err("unknown user");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
}

/// Host services that behave like the host under `--dry-run`: writes are answered 202 with
/// `dry_run: true` and never sent; reads (a `$batch` of GETs included) go through.
struct DryRun(std::sync::Arc<TestServices>);

impl idhost_connector_sdk::services::HostServices for DryRun {
    fn http(
        &self,
        request: idhost_connector_sdk::HttpRequest,
    ) -> futures::future::BoxFuture<
        'static,
        Result<idhost_connector_sdk::HttpResponse, idhost_connector_sdk::ConnectorError>,
    > {
        if request.is_write() {
            let line = format!("{} {}", request.method, request.url);
            return Box::pin(async move {
                Ok(idhost_connector_sdk::HttpResponse {
                    status: 202,
                    headers: Vec::new(),
                    body: Vec::new(),
                    dry_run: true,
                    request_line: line,
                })
            });
        }
        self.0.http(request)
    }
    fn log(&self, record: idhost_connector_sdk::services::LogRecord) {
        self.0.log(record);
    }
    fn state_get(&self, key: &str) -> Option<String> {
        self.0.state_get(key)
    }
    fn state_set(&self, key: &str, value: Option<String>) {
        self.0.state_set(key, value);
    }
    fn sleep(&self, d: std::time::Duration) -> futures::future::BoxFuture<'static, ()> {
        self.0.sleep(d)
    }
}

#[tokio::test]
async fn dry_run_sends_no_write_but_still_lists_through_batch() {
    use idhost_connector_sdk::Connector;
    let sim = Sim::start(SimConfig::default()).await;
    let services = std::sync::Arc::new(DryRun(TestServices::new()));
    let settings: idhost_entra::config::EntraSettings =
        serde_json::from_value(sim.settings(json!({}))).expect("settings");
    let info = {
        let mut built = SourceInfo::default();
        built.dry_run = true;
        built
    };
    let connector = Entra::open(settings, idhost_connector_sdk::Context::new(services, info))
        .await
        .expect("opens");
    let listed = list(&connector, &["group", "app"])
        .await
        .expect("lists under dry run");
    assert_eq!(
        listed.grants_of("group", "member"),
        sim.sim.counts().memberships
    );
    let group = sim.sim.group_ids()[0].clone();
    let user = outsider(&sim, &sim.sim.group_members(&group));
    let outcome = connector
        .grant(
            &ent(&format!("group:{group}:member")),
            &principal(&format!("user:{user}")),
        )
        .await
        .expect("a dry-run grant succeeds");
    assert!(!outcome.already);
    let app = &listed.resources["app"][0];
    let assignment = sim.sim.app_role_assignments(app.upstream_id())[0].clone();
    let role = app
        .app
        .as_ref()
        .expect("app trait")
        .roles
        .iter()
        .find(|r| assignment["appRoleId"] == r.id.as_str())
        .expect("the assigned role")
        .value
        .clone();
    let kind = if assignment["principalType"] == "Group" {
        "group"
    } else {
        "user"
    };
    let revoked = format!(
        "{}:{role}:{kind}:{}",
        app.id,
        assignment["principalId"].as_str().expect("principal")
    );
    let outcome = connector
        .revoke(&grant_ref(&revoked))
        .await
        .expect("a dry-run revoke succeeds");
    assert!(
        !outcome.already,
        "the assignment was found, its DELETE intercepted"
    );
    assert!(
        sim.sim
            .app_role_assignments(app.upstream_id())
            .contains(&assignment),
        "the assignment is still there"
    );
    assert!(
        !sim.sim.group_members(&group).contains(&user),
        "nothing changed"
    );
    let writes: Vec<_> = sim
        .sim
        .faults()
        .log()
        .writes()
        .into_iter()
        .filter(|r| !r.path.ends_with("/token") && !r.path.ends_with("/$batch"))
        .collect();
    assert!(writes.is_empty(), "no write reached Graph: {writes:?}");
}
