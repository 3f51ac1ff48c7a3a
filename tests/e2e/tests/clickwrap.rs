//! Issue 5, the connector side through the host: `idhost sync` with the real Clickwrap plugin
//! against sim-clickwrap, into SQLite, every user's seven Oomnitza fields compared with the
//! simulator's user.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::collections::BTreeSet;

use idhost_e2e::{Scratch, require_plugins, sqlite_sink, toml_str};
use serde_json::json;
use sim_clickwrap::{SimConfig, Simulator};

const SOURCE: &str = "clickwrap";

#[tokio::test(flavor = "multi_thread")]
async fn sync_of_3000_users_carries_the_seven_fields_of_every_user_exactly() {
    require_plugins(&["idhost_clickwrap"]);
    let sim = Simulator::new(SimConfig {
        users: 3000,
        ..SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve sim-clickwrap on loopback");
    let c = sim.config();
    let s = Scratch::new();
    let config = s.config(&format!(
        "[sources.{SOURCE}]\nconnector = \"clickwrap\"\nread_only = true\n\
         [sources.{SOURCE}.settings]\nbase_url = {}\nclient_id = {}\nclient_secret = {}\naccount_id = {}\n{}",
        toml_str(&format!("{}/v1.1", server.url())),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        c.account_id,
        sqlite_sink("idhost.db"),
    ));
    let run = s.sync(&config, &[]).await;
    eprintln!(
        "[e2e] clickwrap 3000 users: exit {:?} in {:.2} s; {} upstream requests",
        run.code,
        run.elapsed.as_secs_f64(),
        sim.faults().log().len()
    );
    run.expect_code(0);
    let row = run.source(SOURCE);
    assert_eq!(row["status"], "succeeded", "{}", run.text());
    assert_eq!(row["counts"]["resources"]["user"], 3000);
    assert_eq!(row["counts"]["resources"]["site"], 1);

    let db = s.db("idhost.db");
    let snap = db.snapshot(SOURCE);
    assert_eq!(snap.resources.get("user"), Some(&3000));
    assert_eq!(snap.resources.get("site"), Some(&1));
    let ids = sim.user_ids();
    let expected_ids: BTreeSet<String> = ids.iter().map(|id| format!("user:{id}")).collect();
    assert_eq!(
        db.resource_ids(SOURCE, "user"),
        expected_ids,
        "exactly the account's users"
    );

    let rows = db.resources(SOURCE, "user");
    let mut verified = 0;
    for id in &ids {
        let upstream = sim.user(*id).expect("a current member");
        let row = &rows[&format!("user:{id}")];
        let email = upstream["email"].as_str().expect("email");
        // Email → login and the one primary email; Name → display name.
        assert_eq!(row.user["login"], email, "{id}");
        assert_eq!(
            row.user["emails"],
            json!([{"address": email, "primary": true}]),
            "{id}"
        );
        assert_eq!(
            row.display_name,
            upstream["name"].as_str().expect("name"),
            "{id}"
        );
        assert_eq!(row.user["locale"], upstream["locale"], "{id}");
        assert_eq!(row.user["time_zone"], upstream["time_zone"], "{id}");
        assert_eq!(row.user["verified"], upstream["verified"], "{id}");
        // Verified Time: present exactly when the user is verified.
        match upstream.get("verified_time") {
            Some(t) => assert_eq!(&row.user["verified_at"], t, "{id}"),
            None => assert!(row.user.get("verified_at").is_none(), "{id}: {}", row.user),
        }
        // User Id: the resource id and the number in the profile.
        assert_eq!(row.profile["user_id"], json!(id), "{id}");
        assert_eq!(row.status, "enabled");
        verified += usize::from(upstream["verified"] == true);
    }
    assert!(
        verified > 0 && verified < ids.len(),
        "both verified and unverified users are checked"
    );

    // One site: owner/admin/member entitlements, every user holds one role, the owner is the
    // account's first user.
    let site = sim.site_ids()[0];
    let entitlements: BTreeSet<String> = ["owner", "admin", "member"]
        .iter()
        .map(|r| format!("site:{site}:{r}"))
        .collect();
    assert_eq!(db.entitlement_ids(SOURCE), entitlements);
    assert_eq!(snap.grants, 3000);
    assert_eq!(
        db.set("SELECT principal FROM grants WHERE source = ?1", [SOURCE]),
        expected_ids,
        "each user holds a role on the site"
    );
    assert_eq!(
        db.strings(
            "SELECT principal FROM grants WHERE source = ?1 AND entitlement LIKE '%:owner'",
            [SOURCE]
        ),
        [format!("user:{}", ids[0])]
    );
    assert_eq!(snap.sync_ids.len(), 1);
}
