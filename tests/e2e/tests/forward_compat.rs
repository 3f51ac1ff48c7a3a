//! Issue 14 point 8, through the real binary: a plugin built against a newer 1.x SDK
//! (tests/fixture-future: a capability, a status, an account type and a purpose this host does
//! not know) loads, syncs, and the unknown values are reported (a warning and counts in the
//! sync summary) and kept as sent, never fatal.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use idhost_e2e::{Scratch, require_plugins};
use serde_json::{Value, json};

const SINK: &str = "\n[sinks.db]\ntype = \"sqlite\"\npath = \"idhost.db\"\ninputs = [\"*\"]\nrecords = [\"resource\", \"entitlement\", \"grant\", \"event\", \"sync_run\"]\n";

#[tokio::test]
async fn a_plugin_from_a_newer_sdk_loads_syncs_and_its_unknown_values_are_reported() {
    require_plugins(&["fixture_future"]);
    let s = Scratch::new();
    let config = s.config(&format!(
        "[sources.later]\nconnector = \"fixture_future\"\n[sources.later.settings]\nusers = 10\n{SINK}"
    ));

    // It loads: listed with the capability this host does not know, named as sent.
    let dir = idhost_e2e::bin_dir().to_string_lossy().into_owned();
    let plugins = s.run(&["plugins", "--plugin-dir", &dir, "--json"]).await;
    plugins.expect_code(0);
    let doc: Value = serde_json::from_str(&plugins.stdout).expect("plugins json");
    let future = doc["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["name"] == "fixture_future")
        .unwrap_or_else(|| panic!("the future plugin is listed\n{}", plugins.text()))
        .clone();
    assert_eq!(future["capabilities"], json!(["update", "teleport"]));

    // It syncs; what this host does not know is counted and warned about.
    let run = s.sync(&config, &[]).await;
    run.expect_code(0);
    let row = run.source("later");
    assert_eq!(row["status"], "succeeded", "{}", run.text());
    assert_eq!(
        row["counts"]["unknown"],
        json!({
            "account_type:robot": 2,
            "capability:teleport": 1,
            "purpose:delegation": 1,
            "status:suspended": 4,
        }),
        "{}",
        run.text()
    );
    assert_eq!(row["counts"]["resources"], json!({"user": 10, "group": 1}));
    assert!(
        run.stderr
            .contains("the plugin sent values this host does not know"),
        "{}",
        run.text()
    );

    // The values are kept as they were sent.
    let db = s.db("idhost.db");
    assert_eq!(
        db.strings(
            "SELECT id FROM resources WHERE source = 'later' AND status = 'suspended' ORDER BY id",
            []
        ),
        vec!["user:f0", "user:f3", "user:f6", "user:f9"]
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM entitlements WHERE source = 'later' AND purpose = 'delegation'",
            []
        ),
        1
    );
    drop(db);

    // A second sync of the same data sees no change: unknown values compare as sent.
    let again = s.sync(&config, &[]).await;
    again.expect_code(0);
    assert_eq!(
        again.source("later")["changes"],
        json!({}),
        "{}",
        again.text()
    );
}
