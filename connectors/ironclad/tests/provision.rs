//! Provisioning against the Ironclad simulator, checking the simulator's state afterwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod common;

use std::sync::Arc;

use common::{DryRunServices, RecordingServices, Upstream, small, small_with_every_scope, source};
use idhost_connector_sdk::prelude::*;
use idhost_connector_sdk::testing::TestServices;
use idhost_ironclad::Ironclad;
use serde_json::{Value, json};
use sim_ironclad::{CUSTOM_SCHEMA_URN, SimConfig};

const IRONCLAD_URN: &str = "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User";
const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn member_of(group: &str) -> EntitlementRef {
    EntitlementRef::parse(&format!("group:{group}:member")).expect("entitlement id")
}

fn user(id: &str) -> ResourceRef {
    ResourceRef {
        rtype: "user".into(),
        id: id.into(),
    }
}

fn grant_ref(group: &str, user_id: &str) -> GrantRef {
    GrantRef::parse(&format!("group:{group}:member:user:{user_id}")).expect("grant id")
}

/// The first group and a user who is not in it.
fn group_and_outsider(up: &Upstream) -> (String, String) {
    let group = up.sim.group_ids()[0].clone();
    let members = up.sim.group_members(&group);
    let outsider = up
        .sim
        .user_ids()
        .into_iter()
        .find(|u| !members.contains(u))
        .expect("someone is outside the group");
    (group, outsider)
}

/// Opens a source asking for every scope, on a simulator registered for them (`small()`'s
/// setup-guide scopes cover neither user updates nor group creation nor custom schemas).
async fn open(up: &Upstream) -> Ironclad {
    up.open(up.settings_with_every_scope())
        .await
        .expect("opens")
}

#[tokio::test]
async fn grant_adds_the_member_and_granting_an_existing_membership_is_already() {
    let up = Upstream::start(small_with_every_scope()).await;
    let connector = open(&up).await;
    let (group, outsider) = group_and_outsider(&up);
    let before = up.sim.group_members(&group);

    let outcome = connector
        .grant(&member_of(&group), &user(&outsider))
        .await
        .expect("grants");
    assert!(!outcome.already);
    assert_eq!(
        outcome.grant.id,
        format!("group:{group}:member:user:{outsider}")
    );
    let after = up.sim.group_members(&group);
    assert!(after.contains(&outsider));
    assert_eq!(after.len(), before.len() + 1, "no other member touched");

    let again = connector
        .grant(&member_of(&group), &user(&outsider))
        .await
        .expect("grants");
    assert!(again.already);
    assert_eq!(up.sim.group_members(&group), after);
    let log = up.sim.faults().log();
    assert_eq!(
        log.count("PATCH", "/scim/v2/Groups/"),
        1,
        "the second grant sends no PATCH"
    );
    assert_eq!(
        log.count("GET", "/scim/v2/Groups/"),
        2,
        "one membership check per grant"
    );
    assert_eq!(
        log.count("PUT", "/scim/v2/Groups/"),
        0,
        "never a read-modify-write"
    );
}

#[tokio::test]
async fn revoke_removes_the_member_and_revoking_a_missing_membership_is_already() {
    let up = Upstream::start(small_with_every_scope()).await;
    let connector = open(&up).await;
    let group = up.sim.group_ids()[1].clone();
    let member = up.sim.group_members(&group)[3].clone();
    let before = up.sim.group_members(&group);

    let outcome = connector
        .revoke(&grant_ref(&group, &member))
        .await
        .expect("revokes");
    assert!(!outcome.already);
    let after = up.sim.group_members(&group);
    assert!(!after.contains(&member));
    assert_eq!(after.len(), before.len() - 1);

    let again = connector
        .revoke(&grant_ref(&group, &member))
        .await
        .expect("revokes");
    assert!(again.already);
    assert_eq!(up.sim.faults().log().count("PATCH", "/scim/v2/Groups/"), 1);
}

#[tokio::test]
async fn revoke_of_a_deleted_user_or_group_is_already_and_grant_on_a_missing_group_is_not_found() {
    let up = Upstream::start(small_with_every_scope()).await;
    let connector = open(&up).await;
    let group = up.sim.group_ids()[0].clone();
    let member = up.sim.group_members(&group)[0].clone();
    assert!(up.sim.remove_user(&member));
    let gone_user = connector
        .revoke(&grant_ref(&group, &member))
        .await
        .expect("revokes");
    assert!(gone_user.already);
    let gone_group = connector
        .revoke(&grant_ref("00000000-0000-4000-8000-000000000000", &member))
        .await
        .expect("revokes");
    assert!(gone_group.already);
    let err = connector
        .grant(
            &member_of("00000000-0000-4000-8000-000000000000"),
            &user(&member),
        )
        .await
        .expect_err("no such group");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(up.sim.faults().log().count("PATCH", "/scim/v2/Groups/"), 0);
}

#[tokio::test]
async fn grant_to_an_unknown_user_fails_with_the_upstream_detail() {
    let up = Upstream::start(small_with_every_scope()).await;
    let connector = open(&up).await;
    let group = up.sim.group_ids()[0].clone();
    let err = connector
        .grant(&member_of(&group), &user("ffffffffffffffffffffffff"))
        .await
        .expect_err("unknown user");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("PATCH"), "{}", err.message);
    assert!(err.message.contains("invalidValue"), "{}", err.message);
}

#[tokio::test]
async fn grant_of_anything_but_group_membership_is_refused_before_any_request() {
    let up = Upstream::start(small_with_every_scope()).await;
    let connector = open(&up).await;
    let group = up.sim.group_ids()[0].clone();
    let owner = EntitlementRef::parse(&format!("group:{group}:owner")).expect("id");
    let err = connector
        .grant(&owner, &user("u1"))
        .await
        .expect_err("not membership");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    let as_group = ResourceRef::parse(&format!("group:{group}")).expect("id");
    let err = connector
        .grant(&member_of(&group), &as_group)
        .await
        .expect_err("not a user");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(up.sim.faults().log().is_empty());
}

#[tokio::test]
async fn create_account_with_a_generated_password_meets_the_policy_of_a_company_without_saml() {
    let up = Upstream::start(SimConfig {
        saml: false,
        ..small_with_every_scope()
    })
    .await;
    let connector = open(&up).await;
    let mut profile = Profile::new();
    profile.insert("title".into(), json!("Counsel"));
    profile.insert("department".into(), json!("Legal"));
    profile.insert("managementLevel".into(), json!("Manager"));
    let info = {
        let mut built = AccountInfo::default();
        built.login = "new.counsel@example.com".into();
        built.email = Some("new.counsel@example.com".into());
        built.given_name = Some("New".into());
        built.family_name = Some("Counsel".into());
        built.display_name = None;
        built.profile = profile;
        built
    };
    // Without SAML the upstream wants a password: asking for none fails with a hint.
    let err = connector
        .create_account(info.clone(), CredentialOptions::default())
        .await
        .expect_err("password required");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    assert!(err.message.contains("generated"), "{}", err.message);

    let created = connector
        .create_account(info.clone(), {
            let mut built = CredentialOptions::default();
            built.generate_password = true;
            built
        })
        .await
        .expect("creates");
    let password = created.password.as_ref().expect("password handed back");
    let p = password.expose_secret();
    assert!(p.len() >= 16 && p.chars().any(|c| c.is_ascii_punctuation()));
    let stored = up
        .sim
        .user_by_username("new.counsel@example.com")
        .expect("exists upstream");
    assert_eq!(
        created.resource.id,
        format!("user:{}", stored["id"].as_str().expect("id"))
    );
    assert_eq!(stored["title"], "Counsel");
    assert_eq!(stored["name"]["givenName"], "New");
    assert_eq!(stored[ENTERPRISE_URN]["department"], "Legal");
    // A company-defined attribute lands in the company's custom schema (found via /Schemas).
    assert_eq!(stored[CUSTOM_SCHEMA_URN]["managementLevel"], "Manager");
    assert!(stored[IRONCLAD_URN].get("managementLevel").is_none());
    assert_eq!(created.resource.profile["managementLevel"], "Manager");
    assert!(
        !stored.to_string().contains(p),
        "the password is never stored or echoed"
    );

    let err = connector
        .create_account(info, {
            let mut built = CredentialOptions::default();
            built.generate_password = true;
            built
        })
        .await
        .expect_err("exists");
    assert_eq!(err.kind, ErrorKind::AlreadyExists);
    assert!(
        err.message.contains("new.counsel@example.com"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn update_replaces_attributes_with_scim_paths() {
    let up = Upstream::start(small_with_every_scope()).await;
    let connector = open(&up).await;
    let id = up.sim.user_ids()[5].clone();
    let mut set = Profile::new();
    set.insert("title".into(), json!("Senior Counsel"));
    set.insert("given_name".into(), json!("Renamed"));
    set.insert("department".into(), json!("Procurement"));
    set.insert("manager".into(), json!("it-admin@example.com"));
    set.insert("managementLevel".into(), json!("Vice President"));
    set.insert("nickName".into(), Value::Null);
    connector
        .update(&user(&id), {
            let mut built = Changes::default();
            built.set = set;
            built
        })
        .await
        .expect("updates");
    let stored = up.sim.user(&id).expect("still there");
    assert_eq!(stored["title"], "Senior Counsel");
    assert_eq!(stored["name"]["givenName"], "Renamed");
    assert_eq!(stored[ENTERPRISE_URN]["department"], "Procurement");
    assert_eq!(
        stored[IRONCLAD_URN]["departmentHead"],
        "it-admin@example.com"
    );
    assert_eq!(
        stored[CUSTOM_SCHEMA_URN]["managementLevel"],
        "Vice President"
    );
    assert_eq!(
        up.sim.faults().log().count("PATCH", "/scim/v2/Users/"),
        1,
        "one PATCH for all"
    );
    assert_eq!(
        up.sim.faults().log().count("GET", "/scim/v2/Schemas"),
        1,
        "the custom schema is discovered once"
    );
}

#[tokio::test]
async fn update_of_user_name_or_email_is_refused_before_any_request() {
    let up = Upstream::start(small_with_every_scope()).await;
    let connector = open(&up).await;
    let id = up.sim.user_ids()[5].clone();
    let before = up.sim.user(&id);
    for field in ["login", "userName", "email", "emails"] {
        let mut set = Profile::new();
        set.insert("title".into(), json!("Changed"));
        set.insert(field.into(), json!("someone.else@example.com"));
        let err = connector
            .update(&user(&id), {
                let mut built = Changes::default();
                built.set = set;
                built
            })
            .await
            .expect_err(field);
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        assert!(
            err.message
                .contains("Ironclad does not allow changing a user's userName or email"),
            "{field}: {}",
            err.message
        );
    }
    assert!(up.sim.faults().log().is_empty(), "nothing was sent");
    assert_eq!(up.sim.user(&id), before, "not even the title changed");
}

#[tokio::test]
async fn update_of_an_unknown_user_is_not_found() {
    let up = Upstream::start(small_with_every_scope()).await;
    let connector = open(&up).await;
    let mut set = Profile::new();
    set.insert("title".into(), json!("X"));
    let err = connector
        .update(&user("ffffffffffffffffffffffff"), {
            let mut built = Changes::default();
            built.set = set;
            built
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("not found"), "{}", err.message);
}

#[tokio::test]
async fn delete_removes_the_user_and_deleting_an_absent_user_succeeds() {
    let up = Upstream::start(small_with_every_scope()).await;
    let connector = open(&up).await;
    let group = up.sim.group_ids()[0].clone();
    let id = up.sim.group_members(&group)[0].clone();
    connector.delete(&user(&id)).await.expect("deletes");
    assert!(up.sim.user(&id).is_none());
    assert!(!up.sim.group_members(&group).contains(&id));
    connector
        .delete(&user(&id))
        .await
        .expect("already absent is fine");
    assert_eq!(up.sim.faults().log().count("DELETE", "/scim/v2/Users/"), 2);
    let as_group = ResourceRef::parse(&format!("group:{group}")).expect("id");
    let err = connector
        .delete(&as_group)
        .await
        .expect_err("groups are not deleted");
    assert_eq!(err.kind, ErrorKind::Unsupported);
    assert_eq!(up.sim.group_count(), 5);
}

#[tokio::test]
async fn create_group_posts_it_and_a_duplicate_name_already_exists() {
    let up = Upstream::start(small_with_every_scope()).await;
    let connector = open(&up).await;
    let mut profile = Profile::new();
    profile.insert("externalId".into(), json!("ext-42"));
    let spec = {
        let mut built = ResourceSpec::default();
        built.display_name = "Contract Approvers EMEA".into();
        built.profile = profile;
        built
    };
    let group = connector
        .create_resource("group", spec.clone())
        .await
        .expect("creates");
    let stored = up.sim.group(group.upstream_id()).expect("exists upstream");
    assert_eq!(stored["displayName"], "Contract Approvers EMEA");
    assert_eq!(stored["externalId"], "ext-42");
    assert_eq!(group.group.as_ref().and_then(|g| g.member_count), Some(0));
    let err = connector
        .create_resource("group", spec)
        .await
        .expect_err("duplicate");
    assert_eq!(err.kind, ErrorKind::AlreadyExists);
    let err = connector
        .create_resource("role", ResourceSpec::default())
        .await
        .expect_err("roles");
    assert_eq!(err.kind, ErrorKind::Unsupported);
}

#[tokio::test]
async fn read_only_source_refuses_every_write_without_calling_upstream() {
    let up = Upstream::start(small_with_every_scope()).await;
    let (group, outsider) = group_and_outsider(&up);
    for (settings, info) in [
        (up.settings(), source(true, false)),
        (
            up.settings_with(json!({"read_only": true})),
            source(false, false),
        ),
    ] {
        let connector = up
            .open_as(settings, TestServices::new(), info)
            .await
            .expect("opens");
        let err = connector
            .grant(&member_of(&group), &user(&outsider))
            .await
            .expect_err("ro");
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert!(err.message.contains("read-only"), "{}", err.message);
        let err = connector
            .revoke(&grant_ref(&group, &outsider))
            .await
            .expect_err("ro");
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        let err = connector.delete(&user(&outsider)).await.expect_err("ro");
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        let err = connector
            .update(&user(&outsider), Changes::default())
            .await
            .expect_err("ro");
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        let info = {
            let mut built = AccountInfo::default();
            built.login = "x@example.com".into();
            built
        };
        let err = connector
            .create_account(info, CredentialOptions::default())
            .await
            .expect_err("ro");
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        let err = connector
            .create_resource("group", ResourceSpec::default())
            .await
            .expect_err("ro");
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
    }
    assert!(
        up.sim.faults().log().is_empty(),
        "no request at all, not even a token"
    );
    assert!(!up.sim.group_members(&group).contains(&outsider));
}

#[tokio::test]
async fn token_requests_ask_for_read_scopes_only_on_a_read_only_source() {
    let up = Upstream::start(small()).await;
    for (read_only, wanted) in [
        (true, "scim.users.readUsers scim.groups.readGroups"),
        // DESIGN §7.5: exactly the five the setup guide registers.
        (
            false,
            "scim.users.readUsers scim.groups.readGroups scim.groups.updateGroups \
             scim.users.createUsers scim.users.deleteUsers",
        ),
    ] {
        let services = RecordingServices::new();
        let connector = up
            .open_as(up.settings(), services.clone(), source(read_only, false))
            .await
            .expect("opens");
        connector
            .list("user", PageToken::first())
            .await
            .expect("reads");
        let token = services.sent_to("/oauth/token");
        assert_eq!(token.len(), 1);
        let body: Value = serde_json::from_slice(&token[0].body).expect("a JSON token request");
        assert_eq!(body["grant_type"], "client_credentials");
        assert_eq!(body["scope"], wanted);
        let scim = services.sent_to("/scim/v2/Users");
        let actor = scim[0]
            .headers
            .iter()
            .find(|(k, _)| k == "x-as-user-email")
            .map(|(_, v)| v.as_str());
        assert_eq!(actor, Some("it-admin@example.com"));
    }
}

#[tokio::test]
async fn dry_run_returns_plausible_outcomes_and_sends_no_write() {
    let up = Upstream::start(small_with_every_scope()).await;
    let services: Arc<DryRunServices> = Arc::new(DryRunServices(TestServices::new()));
    let connector = up
        .open_as(
            up.settings_with_every_scope(),
            services,
            source(false, true),
        )
        .await
        .expect("opens");
    let (group, outsider) = group_and_outsider(&up);
    let member = up.sim.group_members(&group)[0].clone();

    let g = connector
        .grant(&member_of(&group), &user(&outsider))
        .await
        .expect("grant");
    assert!(!g.already, "would add");
    let g = connector
        .grant(&member_of(&group), &user(&member))
        .await
        .expect("grant");
    assert!(
        g.already,
        "the membership check is a read and still tells the truth"
    );
    let r = connector
        .revoke(&grant_ref(&group, &member))
        .await
        .expect("revoke");
    assert!(!r.already, "would remove");
    let created = connector
        .create_account(
            {
                let mut built = AccountInfo::default();
                built.login = "dry.run@example.com".into();
                built.given_name = Some("Dry".into());
                built.family_name = Some("Run".into());
                built
            },
            {
                let mut built = CredentialOptions::default();
                built.generate_password = true;
                built
            },
        )
        .await
        .expect("create");
    assert_eq!(created.resource.id, "user:dry-run");
    assert_eq!(created.resource.display_name, "Dry Run");
    assert!(
        created.password.is_none(),
        "no credential for an account that was not created"
    );
    let group_created = connector
        .create_resource("group", {
            let mut built = ResourceSpec::default();
            built.display_name = "Planned".into();
            built.profile = Profile::new();
            built
        })
        .await
        .expect("create group");
    assert_eq!(group_created.id, "group:dry-run");
    let mut set = Profile::new();
    set.insert("title".into(), json!("Would change"));
    connector
        .update(&user(&member), {
            let mut built = Changes::default();
            built.set = set;
            built
        })
        .await
        .expect("update");
    connector.delete(&user(&member)).await.expect("delete");

    let writes: Vec<_> = up
        .sim
        .faults()
        .log()
        .writes()
        .into_iter()
        .filter(|r| r.path != "/oauth/token")
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert!(up.sim.user(&member).is_some());
    assert!(up.sim.group_members(&group).contains(&member));
    assert!(!up.sim.group_members(&group).contains(&outsider));
    assert!(up.sim.user_by_username("dry.run@example.com").is_none());
}
