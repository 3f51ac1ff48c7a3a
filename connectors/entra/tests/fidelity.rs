//! Issue 13 points 1–6 (and issue 15 points 5–6 for Entra) against the stricter sim-graph:
//! each test fails on a connector that relies on what the real Graph does not do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::collections::BTreeSet;

use common::{Sim, list};
use idhost_connector_sdk::testing::TestServices;
use idhost_connector_sdk::{EntitlementRef, ErrorKind, GrantRef, Provisioner, ResourceRef};
use serde_json::json;
use sim_graph::SimConfig;

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

// The refs are built field by field, without the SDK's id validation, so the tests reach the
// connector's own defence (a host or a plugin built against an older SDK does not validate).
fn resource_ref(id: &str) -> ResourceRef {
    let (rtype, id) = id.split_once(':').expect("`<type>:<id>`");
    ResourceRef {
        rtype: rtype.to_owned(),
        id: id.to_owned(),
    }
}

fn ent(id: &str) -> EntitlementRef {
    let (resource, slug) = id.rsplit_once(':').expect("`<type>:<id>:<slug>`");
    EntitlementRef {
        resource: resource_ref(resource),
        slug: slug.to_owned(),
    }
}

fn principal(id: &str) -> ResourceRef {
    resource_ref(id)
}

fn grant_ref(id: &str) -> GrantRef {
    let parts: Vec<&str> = id.splitn(5, ':').collect();
    let [rtype, rid, slug, ptype, pid] = parts.as_slice() else {
        panic!("`{id}` is not a grant id");
    };
    GrantRef {
        entitlement: ent(&format!("{rtype}:{rid}:{slug}")),
        principal: resource_ref(&format!("{ptype}:{pid}")),
    }
}

fn group_of_kind(sim: &Sim, kind: &str) -> String {
    sim.sim
        .group_ids()
        .into_iter()
        .find(|g| sim.sim.group_kind(g) == Some(kind))
        .unwrap_or_else(|| panic!("the tenant has a {kind} group"))
}

/// Every group link the tenant holds, as grant ids (apps `app:`, managed identities `user:`).
fn links_of(sim: &Sim) -> BTreeSet<String> {
    let apps = sim.sim.app_ids();
    let name = |id: &str| {
        if apps.iter().any(|a| a == id) {
            format!("app:{id}")
        } else if sim.sim.group_ids().iter().any(|g| g == id) {
            format!("group:{id}")
        } else {
            format!("user:{id}")
        }
    };
    let mut out = BTreeSet::new();
    for g in sim.sim.group_ids() {
        for m in sim.sim.group_members(&g) {
            out.insert(format!("group:{g}:member:{}", name(&m)));
        }
        for o in sim.sim.group_owners(&g) {
            out.insert(format!("group:{g}:owner:{}", name(&o)));
        }
    }
    out
}

// Point 1 --------------------------------------------------------------------------------------

#[tokio::test]
async fn service_principal_members_and_owners_arrive_although_v1_lists_leave_them_out() {
    let sim = Sim::start(tenant()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    let listed = list(&connector, &["user", "group"]).await.expect("lists");
    let group_links: BTreeSet<String> = listed
        .grants
        .iter()
        .filter(|g| g.starts_with("group:"))
        .cloned()
        .collect();
    let expected = links_of(&sim);
    assert_eq!(group_links, expected, "every membership and ownership");
    let by_app = |slug: &str| {
        expected
            .iter()
            .filter(|g| g.contains(&format!(":{slug}:app:")))
            .count()
    };
    assert!(
        by_app("member") > 0 && by_app("owner") > 0,
        "the tenant has app links"
    );
    let mi = sim.sim.managed_identity_ids();
    assert!(
        listed
            .grants
            .iter()
            .any(|g| mi.iter().any(|m| g.ends_with(&format!(":member:user:{m}")))),
        "a managed identity's membership arrives as a user principal"
    );
    // Read from the service principals' side, which v1.0 documents without the known issue.
    let log = sim.sim.faults().log();
    assert!(log.records().iter().any(|r| r.path.contains("/$batch")));
}

#[tokio::test]
async fn service_principal_links_that_change_arrive_in_an_incremental_sync() {
    let sim = Sim::start(tenant()).await;
    let services = TestServices::new();
    let connector = sim.open(json!({}), services.clone()).await;
    list(&connector, &["user", "group"])
        .await
        .expect("first, full listing");
    let app = sim.sim.app_ids()[2].clone();
    let joined = sim
        .sim
        .group_ids()
        .into_iter()
        .find(|g| {
            sim.sim.group_kind(g) == Some("security") && !sim.sim.group_members(g).contains(&app)
        })
        .expect("a security group without the app");
    assert!(sim.sim.add_member(&joined, &app));
    let (left, leaver) = sim
        .sim
        .group_ids()
        .into_iter()
        .find_map(|g| {
            sim.sim
                .group_members(&g)
                .into_iter()
                .find(|m| sim.sim.app_ids().contains(m) && *m != app)
                .map(|m| (g, m))
        })
        .expect("an app member elsewhere");
    assert!(sim.sim.remove_member(&left, &leaver));
    let delta = list(&connector, &["user", "group"])
        .await
        .expect("incremental listing");
    assert_eq!(delta.incremental.get("group"), Some(&true));
    assert!(
        delta
            .grants
            .contains(&format!("group:{joined}:member:app:{app}")),
        "added: {:?}",
        delta.grants
    );
    assert!(
        delta
            .removed
            .contains(&format!("group:{left}:member:app:{leaver}")),
        "removed: {:?}",
        delta.removed
    );
}

// Point 2 --------------------------------------------------------------------------------------

#[tokio::test]
async fn group_entitlements_say_what_each_kind_is_grantable_to() {
    let sim = Sim::start(tenant()).await;
    let connector = sim
        .open(json!({ "incremental": false }), TestServices::new())
        .await;
    let mut token = idhost_connector_sdk::PageToken::first();
    let mut ents = Vec::new();
    loop {
        let page = idhost_connector_sdk::Connector::list(&connector, "group", token)
            .await
            .expect("lists groups");
        ents.extend(page.entitlements);
        match page.next {
            Some(next) => token = idhost_connector_sdk::PageToken::from_string(next),
            None => break,
        }
    }
    let grantable = |group: &str, slug: &str| -> Vec<String> {
        ents.iter()
            .find(|e| e.id == format!("group:{group}:{slug}"))
            .map(|e| e.grantable_to.clone())
            .unwrap_or_else(|| panic!("group:{group}:{slug} listed"))
    };
    let g = |kind| group_of_kind(&sim, kind);
    assert_eq!(
        grantable(&g("security"), "member"),
        ["user", "group", "app"]
    );
    assert_eq!(grantable(&g("microsoft_365"), "member"), ["user"]);
    assert_eq!(grantable(&g("microsoft_365"), "owner"), ["user", "app"]);
    assert!(grantable(&g("dynamic"), "member").is_empty());
    assert_eq!(grantable(&g("dynamic"), "owner"), ["user", "app"]);
    for kind in ["distribution", "mail_enabled_security", "on_premises"] {
        assert!(grantable(&g(kind), "member").is_empty(), "{kind}");
        assert!(grantable(&g(kind), "owner").is_empty(), "{kind}");
    }
}

#[tokio::test]
async fn grants_graph_would_refuse_are_refused_before_any_write_naming_the_kind() {
    let sim = Sim::start(tenant()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    let app = format!("app:{}", sim.sim.app_ids()[0]);
    let mi = format!("user:{}", sim.sim.managed_identity_ids()[0]);
    let user = format!("user:{}", sim.sim.add_user("Refused Person"));
    let m365 = group_of_kind(&sim, "microsoft_365");
    let security = group_of_kind(&sim, "security");
    let cases = [
        (
            format!("group:{m365}:member"),
            app.clone(),
            ErrorKind::InvalidInput,
            "Microsoft 365 group",
        ),
        (
            format!("group:{m365}:member"),
            mi.clone(),
            ErrorKind::InvalidInput,
            "managed identity",
        ),
        (
            format!("group:{m365}:member"),
            format!("group:{security}"),
            ErrorKind::InvalidInput,
            "Microsoft 365 group",
        ),
        (
            format!("group:{security}:member"),
            format!("group:{m365}"),
            ErrorKind::InvalidInput,
            "cannot be a member",
        ),
        (
            format!("group:{}:member", group_of_kind(&sim, "distribution")),
            user.clone(),
            ErrorKind::PermissionDenied,
            "distribution group",
        ),
        (
            format!(
                "group:{}:owner",
                group_of_kind(&sim, "mail_enabled_security")
            ),
            user.clone(),
            ErrorKind::PermissionDenied,
            "mail-enabled security group",
        ),
        (
            format!("group:{}:member", group_of_kind(&sim, "on_premises")),
            user.clone(),
            ErrorKind::PermissionDenied,
            "on-premises",
        ),
        (
            format!("group:{}:member", group_of_kind(&sim, "dynamic")),
            user.clone(),
            ErrorKind::PermissionDenied,
            "dynamic",
        ),
    ];
    for (entitlement, who, kind, says) in cases {
        sim.sim.faults().log().clear();
        let err = connector
            .grant(&ent(&entitlement), &principal(&who))
            .await
            .expect_err("refused");
        assert_eq!(err.kind, kind, "{entitlement} → {who}: {err}");
        assert!(err.message.contains(says), "{entitlement} → {who}: {err}");
        assert!(err.message.contains("before any write"), "{err}");
        let writes: Vec<_> = sim
            .sim
            .faults()
            .log()
            .writes()
            .into_iter()
            .filter(|r| !r.path.ends_with("/token") && !r.path.ends_with("/$batch"))
            .collect();
        assert!(writes.is_empty(), "{entitlement} → {who}: sent {writes:?}");
    }
    // What Graph takes still goes through.
    let ok = connector
        .grant(&ent(&format!("group:{m365}:member")), &principal(&user))
        .await
        .expect("a user joins a Microsoft 365 group");
    assert!(!ok.already);
}

// Point 3 --------------------------------------------------------------------------------------

fn lagging() -> SimConfig {
    SimConfig {
        replication_lag: 2,
        ..tenant()
    }
}

#[tokio::test]
async fn app_role_revoke_right_after_the_grant_is_not_already_revoked() {
    let sim = Sim::start(lagging()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    let app = sim.sim.app_ids()[1].clone();
    let user = sim.sim.add_user("Just Assigned");
    let entitlement = format!("app:{app}:assignment");
    let granted = connector
        .grant(&ent(&entitlement), &principal(&format!("user:{user}")))
        .await
        .expect("grants");
    assert!(!granted.already);
    let revoked = connector
        .revoke(&grant_ref(&format!("{entitlement}:user:{user}")))
        .await
        .expect("revokes");
    assert!(!revoked.already, "the assignment existed; a replica lagged");
    assert!(
        !sim.sim
            .app_role_assignments(&app)
            .iter()
            .any(|a| a["principalId"] == user.as_str()),
        "the assignment is gone"
    );
    // Found without the undocumented `$filter=principalId eq …` on appRoleAssignedTo.
    let log = sim.sim.faults().log();
    assert!(
        !log.records()
            .iter()
            .any(|r| r.path.contains("appRoleAssignedTo") && r.query.contains("principalId%20eq")),
        "{:?}",
        log.records()
    );
}

#[tokio::test]
async fn group_member_revoke_right_after_the_grant_is_not_already_revoked() {
    let sim = Sim::start(lagging()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    let group = sim.sim.group_ids()[0].clone();
    let user = sim.sim.add_user("Just Joined");
    let entitlement = format!("group:{group}:member");
    connector
        .grant(&ent(&entitlement), &principal(&format!("user:{user}")))
        .await
        .expect("grants");
    let revoked = connector
        .revoke(&grant_ref(&format!("{entitlement}:user:{user}")))
        .await
        .expect("revokes");
    assert!(!revoked.already, "the membership existed; a replica lagged");
    assert!(!sim.sim.group_members(&group).contains(&user));
    // Another instance did not create it: its 404 is "absent".
    let other = sim.open(json!({}), TestServices::new()).await;
    let again = other
        .revoke(&grant_ref(&format!("{entitlement}:user:{user}")))
        .await
        .expect("revokes again");
    assert!(again.already);
}

// Point 4 --------------------------------------------------------------------------------------

#[tokio::test]
async fn every_documented_delta_expiry_answer_falls_back_to_a_full_listing() {
    for (status, code) in [
        (400, "syncStateNotFound"),
        (400, "syncStateInvalid"),
        (400, "resyncRequired"),
        (404, "syncStateNotFound"),
        (409, "syncStateInvalid"),
        (410, "resyncRequired"),
    ] {
        let sim = Sim::start(SimConfig::default()).await;
        let services = TestServices::new();
        let connector = sim.open(json!({}), services.clone()).await;
        list(&connector, &["user", "group"])
            .await
            .expect("first listing");
        sim.sim.expire_delta_links_with(status, code);
        let again = list(&connector, &["user", "group"])
            .await
            .unwrap_or_else(|e| panic!("{status} {code} must fall back, got {e}"));
        assert_eq!(
            again.incremental.get("user"),
            Some(&false),
            "{status} {code}"
        );
        assert_eq!(
            again.incremental.get("group"),
            Some(&false),
            "{status} {code}"
        );
        let c = sim.sim.counts();
        assert_eq!(again.count("user"), c.users + c.managed_identities);
        assert_eq!(again.count("group"), c.groups);
    }
}

// Point 5 --------------------------------------------------------------------------------------

#[tokio::test]
async fn scoped_role_assignments_are_distinct_grants_and_round_trip() {
    let sim = Sim::start(tenant()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    let (role, definition) = (
        sim.sim.role_ids()[2].clone(),
        sim.sim.role_definition_ids()[2].clone(),
    );
    let unit = sim.sim.administrative_unit_ids()[0].clone();
    let user = sim.sim.user_ids()[11].clone();
    assert!(
        sim.sim
            .assign_role(&user, &definition, &format!("/administrativeUnits/{unit}"))
    );
    let listed = list(&connector, &["role"]).await.expect("lists roles");
    let scoped_ent = format!("role:{role}:member.administrativeUnits.{unit}");
    assert!(
        listed.entitlements.contains(&scoped_ent),
        "{:?}",
        listed.entitlements
    );
    assert!(listed.grants.contains(&format!("{scoped_ent}:user:{user}")));
    assert_eq!(
        listed.grants_of("role", "member"),
        sim.sim
            .role_assignments()
            .iter()
            .filter(|a| a["directoryScopeId"] == "/")
            .count(),
        "tenant-wide grants stay `member`"
    );
    // Revoking the tenant-wide grant leaves the scoped one, and the other way round.
    let other = sim.sim.user_ids()[12].clone();
    let tenant_wide = format!("role:{role}:member");
    connector
        .grant(&ent(&tenant_wide), &principal(&format!("user:{other}")))
        .await
        .expect("grants tenant-wide");
    connector
        .grant(&ent(&scoped_ent), &principal(&format!("user:{other}")))
        .await
        .expect("grants scoped");
    let scoped_of_other = |sim: &Sim| {
        sim.sim.role_assignments().iter().any(|a| {
            a["principalId"] == other.as_str()
                && a["directoryScopeId"] == format!("/administrativeUnits/{unit}").as_str()
        })
    };
    connector
        .revoke(&grant_ref(&format!("{tenant_wide}:user:{other}")))
        .await
        .expect("revokes tenant-wide");
    assert!(scoped_of_other(&sim), "the scoped assignment stays");
    let revoked = connector
        .revoke(&grant_ref(&format!("{scoped_ent}:user:{other}")))
        .await
        .expect("revokes scoped");
    assert!(!revoked.already);
    assert!(!scoped_of_other(&sim));
}

#[tokio::test]
async fn a_crafted_principal_id_never_reaches_a_role_assignment_filter() {
    let sim = Sim::start(tenant()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    let role = sim.sim.role_ids()[1].clone();
    let crafted = format!("role:{role}:member:user:x' or principalId ne 'y");
    let err = connector
        .revoke(&grant_ref(&crafted))
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::InvalidInput, "{err}");
    assert!(
        !sim.sim
            .faults()
            .log()
            .records()
            .iter()
            .any(|r| r.path.contains("roleAssignments")),
        "no role assignment request was made"
    );
    assert!(
        !sim.sim.role_assignments().is_empty(),
        "nothing was deleted"
    );
}

// Issue 15 point 5 -----------------------------------------------------------------------------

#[tokio::test]
async fn dot_dot_and_other_unsafe_ids_never_reach_a_url() {
    let sim = Sim::start(tenant()).await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    let user = format!("user:{}", sim.sim.user_ids()[0]);
    let group = sim.sim.group_ids()[0].clone();
    for (entitlement, who) in [
        ("group:..:member".to_owned(), user.clone()),
        ("group:.:member".to_owned(), user.clone()),
        (format!("group:{group}:member"), "user:..".to_owned()),
        (format!("group:{group}:member"), "user:a/b".to_owned()),
        ("app:..:owner".to_owned(), user.clone()),
        ("role:..:member".to_owned(), user.clone()),
    ] {
        let err = connector
            .grant(&ent(&entitlement), &principal(&who))
            .await
            .expect_err("refused");
        assert_eq!(
            err.kind,
            ErrorKind::InvalidInput,
            "{entitlement} {who}: {err}"
        );
    }
    for grant in [
        "group:..:member:user:6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0".to_owned(),
        format!("group:{group}:owner:user:.."),
        format!("app:{}:assignment:user:..", sim.sim.app_ids()[0]),
    ] {
        let err = connector
            .revoke(&grant_ref(&grant))
            .await
            .expect_err("refused");
        assert_eq!(err.kind, ErrorKind::InvalidInput, "{grant}: {err}");
    }
    let sent: Vec<_> = sim
        .sim
        .faults()
        .log()
        .records()
        .into_iter()
        .filter(|r| !r.path.ends_with("/token"))
        .collect();
    assert!(sent.is_empty(), "nothing reached Graph: {sent:?}");
}

// Point 6 --------------------------------------------------------------------------------------

#[tokio::test]
async fn an_exhausted_write_quota_fails_naming_the_throttle_scope() {
    let sim = Sim::start(SimConfig {
        limits: sim_graph::Limits {
            tenant_app_writes: 1.0,
            ..sim_graph::Limits::default()
        },
        ..tenant()
    })
    .await;
    let connector = sim.open(json!({}), TestServices::new()).await;
    let group = sim.sim.group_ids()[0].clone();
    let first = sim.sim.add_user("First Writer");
    let second = sim.sim.add_user("Second Writer");
    connector
        .grant(
            &ent(&format!("group:{group}:member")),
            &principal(&format!("user:{first}")),
        )
        .await
        .expect("the one write the quota allows");
    let err = connector
        .grant(
            &ent(&format!("group:{group}:member")),
            &principal(&format!("user:{second}")),
        )
        .await
        .expect_err("throttled");
    assert_eq!(err.kind, ErrorKind::RateLimited, "{err}");
    assert!(err.retry_after.is_some(), "{err}");
    assert!(
        err.message.contains("Tenant_Application/Write")
            && err.message.contains("WriteLimitExceeded"),
        "names the limit: {err}"
    );
}
