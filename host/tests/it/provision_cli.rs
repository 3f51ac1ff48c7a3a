//! `idhost provision` through the real connector plugins against their simulators: changes,
//! idempotent repeats, refusals, dry runs that send nothing, the vault and the audit trail.

use std::process::Output;

use crate::support::{Scratch, count, text};

async fn idhost(s: &Scratch, args: &[&str]) -> Output {
    let mut cmd = crate::support::idhost();
    cmd.args(args).current_dir(s.dir());
    tokio::task::spawn_blocking(move || idhost_e2e::output_within(cmd, idhost_e2e::DEFAULT_TIMEOUT))
        .await
        .expect("join")
}

fn ironclad_config(
    s: &Scratch,
    url: &str,
    sim: &sim_ironclad::Simulator,
    read_only: bool,
) -> String {
    let c = sim.config();
    let path = s.config(&format!(
        r#"
[sources.legal]
connector = "ironclad"
read_only = {read_only}
[sources.legal.settings]
base_url = "{url}"
client_id = "{}"
client_secret = "{}"
as_user_email = "{}"
scopes = {:?}

[sources.clickwrap]
connector = "clickwrap"
[sources.clickwrap.settings]
base_url = "{url}/v1.1"
access_token = "unused-token"
account_id = 1
"#,
        c.client_id,
        c.client_secret,
        c.admin_email,
        // The source asks for what its API application is registered for (DESIGN §7.5).
        c.registered_scopes
    ));
    path.to_string_lossy().into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn ironclad_membership_grant_and_revoke_are_idempotent_dry_run_sends_nothing_and_all_is_audited()
 {
    let sim = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        users: 30,
        groups: 3,
        members_per_group: 5,
        ..sim_ironclad::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve");
    let s = Scratch::new();
    let config = ironclad_config(&s, &server.url(), &sim, false);
    let group = sim.group_ids()[0].clone();
    let outsider = sim
        .user_ids()
        .into_iter()
        .find(|u| !sim.group_members(&group).contains(u))
        .expect("a non-member");
    let entitlement = format!("group:{group}:member");
    let principal = format!("user:{outsider}");

    // Dry run: the membership check reads, the PATCH is shown, nothing is written.
    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "--dry-run",
            "grant",
            "--entitlement",
            &entitlement,
            "--principal",
            &principal,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "would send: PATCH {}/scim/v2/Groups/{group}",
            server.url()
        )),
        "{stdout}"
    );
    let writes: Vec<_> = sim
        .faults()
        .log()
        .writes()
        .into_iter()
        .filter(|w| w.path != "/oauth/token")
        .collect();
    assert!(writes.is_empty(), "dry run wrote: {writes:?}");
    assert!(!sim.group_members(&group).contains(&outsider));

    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "grant",
            "--entitlement",
            &entitlement,
            "--principal",
            &principal,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": changed"),
        "{}",
        text(&out)
    );
    assert!(sim.group_members(&group).contains(&outsider));

    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "--output",
            "json",
            "grant",
            "--entitlement",
            &entitlement,
            "--principal",
            &principal,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json output");
    assert_eq!(doc["result"], "already");
    assert_eq!(doc["detail"]["grant"], format!("{entitlement}:{principal}"));

    let grant = format!("{entitlement}:{principal}");
    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "revoke",
            "--grant",
            &grant,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(!sim.group_members(&group).contains(&outsider));
    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "revoke",
            "--grant",
            &grant,
        ],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": already"),
        "{}",
        text(&out)
    );

    let db = s.db("state.db");
    assert_eq!(
        count(&db, "SELECT count(*) FROM audit WHERE source = 'legal'"),
        5
    );
    let results: Vec<String> = db
        .prepare("SELECT result FROM audit ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        results,
        ["dry_run", "changed", "already", "changed", "already"]
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM audit WHERE dry_run = 1 AND detail LIKE '%would_send%'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ironclad_account_lifecycle_keeps_the_password_in_the_vault_only() {
    // An application registered for user updates too (the setup guide's five do not include
    // `scim.users.updateUsers`, which the update below needs).
    let mut registered = sim_ironclad::SimConfig::default().registered_scopes;
    registered.push("scim.users.updateUsers".to_owned());
    let sim = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        users: 5,
        groups: 1,
        saml: false,
        registered_scopes: registered,
        ..sim_ironclad::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve");
    let s = Scratch::new();
    let config = ironclad_config(&s, &server.url(), &sim, false);
    let out = idhost(
        &s,
        &[
            "--log-level",
            "debug",
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "create-account",
            "--login",
            "new.hire@example.com",
            "--email",
            "new.hire@example.com",
            "--given-name",
            "New",
            "--family-name",
            "Hire",
            "--generate-password",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let user = sim
        .user_by_username("new.hire@example.com")
        .expect("created upstream");
    let id = user["id"].as_str().expect("id").to_owned();
    let vault = std::fs::read_to_string(s.path("idhost-vault.jsonl")).expect("vault written");
    let entry: serde_json::Value =
        serde_json::from_str(vault.lines().next().expect("a line")).expect("json");
    let password = entry["password"].as_str().expect("password").to_owned();
    assert!(password.len() >= 16);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(s.path("idhost-vault.jsonl"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        !text(&out).contains(&password),
        "the password was printed or logged"
    );
    let audit: String = s
        .db("state.db")
        .query_row("SELECT group_concat(detail) FROM audit", [], |r| r.get(0))
        .expect("audit");
    assert!(
        !audit.contains(&password),
        "the password reached the audit trail"
    );

    let resource = format!("user:{id}");
    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "update",
            "--resource",
            &resource,
            "--set",
            "title=Counsel",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sim.user(&id).expect("user")["title"], "Counsel");

    let writes_before = sim.faults().log().writes().len();
    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "update",
            "--resource",
            &resource,
            "--set",
            "userName=other@example.com",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("does not allow changing"),
        "{}",
        text(&out)
    );
    assert_eq!(
        sim.faults().log().writes().len(),
        writes_before,
        "refused before any request"
    );

    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "delete",
            "--resource",
            &resource,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(sim.user(&id).is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_and_sync_only_sources_refuse_without_calling_upstream() {
    let sim = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        users: 5,
        groups: 1,
        ..sim_ironclad::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve");
    let s = Scratch::new();
    let config = ironclad_config(&s, &server.url(), &sim, true);
    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "grant",
            "--entitlement",
            "group:g:member",
            "--principal",
            "user:u",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out)
            .contains("source `legal` is read_only: grant refused before any upstream request"),
        "{}",
        text(&out)
    );
    assert!(
        sim.faults().log().is_empty(),
        "no request at all, not even a token"
    );

    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "clickwrap",
            "grant",
            "--entitlement",
            "site:1:admin",
            "--principal",
            "user:1",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("connector `clickwrap` (source `clickwrap`) does not support grant; it advertises: no provisioning (sync only)"), "{}", text(&out));
    let db = s.db("state.db");
    assert_eq!(
        count(&db, "SELECT count(*) FROM audit WHERE result = 'refused'"),
        2
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_group_membership_through_the_cli() {
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: 20,
        groups: 3,
        memberships: 10,
        apps: 1,
        roles: 1,
        ..sim_graph::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve");
    let c = sim.config().clone();
    let s = Scratch::new();
    let config = s.config(&format!(
        "\n[sources.corp]\nconnector = \"entra\"\n[sources.corp.settings]\ntenant_id = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\ngraph_url = \"{url}\"\nlogin_url = \"{url}\"\n",
        c.tenant_id, c.client_id, c.client_secret, url = server.url()
    ));
    let config = config.to_string_lossy().into_owned();
    let group = sim.group_ids()[0].clone();
    let user = sim
        .user_ids()
        .into_iter()
        .find(|u| !sim.group_members(&group).contains(u))
        .expect("non-member");
    let entitlement = format!("group:{group}:member");
    let principal = format!("user:{user}");
    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "corp",
            "--dry-run",
            "grant",
            "--entitlement",
            &entitlement,
            "--principal",
            &principal,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/members/$ref"),
        "{}",
        text(&out)
    );
    assert!(
        sim.faults()
            .log()
            .writes()
            .iter()
            .all(|w| w.path.ends_with("/$batch") || w.path.contains("oauth2")),
        "dry run wrote: {:?}",
        sim.faults().log().writes()
    );
    assert!(!sim.group_members(&group).contains(&user));
    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "corp",
            "grant",
            "--entitlement",
            &entitlement,
            "--principal",
            &principal,
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(sim.group_members(&group).contains(&user));
    let out = idhost(
        &s,
        &[
            "provision",
            "-c",
            &config,
            "--source",
            "corp",
            "grant",
            "--entitlement",
            &entitlement,
            "--principal",
            &principal,
        ],
    )
    .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": already"),
        "{}",
        text(&out)
    );
}
