//! The example config `config/entra.toml` stays valid and documents every setting, and the
//! manifest lists every setting the connector accepts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use idhost_connector_sdk::Connector;
use idhost_connector_sdk::testing::{self, TestServices};
use idhost_entra::Entra;
use idhost_entra::config::EntraSettings;

const EXAMPLE: &str = include_str!("../../../config/entra.toml");

#[tokio::test]
async fn example_config_opens_and_mentions_every_setting() {
    let config: toml::Table = toml::from_str(EXAMPLE).expect("the example is valid TOML");
    let source = &config["sources"]["corp"];
    assert_eq!(
        source["connector"].as_str(),
        Some(Entra::manifest().name.as_str())
    );
    let settings = serde_json::to_value(&source["settings"]).expect("settings as JSON");
    testing::open::<Entra>(settings, TestServices::new())
        .await
        .expect("the example's settings are accepted");
    for key in Entra::manifest().config_keys {
        assert!(
            EXAMPLE.contains(&format!("{} = ", key.name)),
            "config/entra.toml does not document `{}`",
            key.name
        );
    }
    assert_eq!(config["sinks"]["local"]["type"].as_str(), Some("sqlite"));
}

/// serde names every accepted field when it refuses an unknown one; each must be a manifest
/// config key (so the host knows it, and redacts the secret ones).
#[test]
fn manifest_lists_every_setting_and_marks_the_secret() {
    let err = serde_json::from_value::<EntraSettings>(serde_json::json!({ "__probe": 1 }))
        .expect_err("unknown field refused")
        .to_string();
    let expected = err
        .split("expected one of")
        .nth(1)
        .expect("serde lists the fields");
    let fields: Vec<&str> = expected
        .split(',')
        .map(|f| f.trim().trim_matches('`'))
        .filter(|f| !f.is_empty())
        .collect();
    let keys = Entra::manifest().config_keys;
    for field in &fields {
        assert!(
            keys.iter().any(|k| k.name == *field),
            "`{field}` is not in the manifest"
        );
    }
    assert_eq!(keys.len(), fields.len(), "manifest keys: {keys:?}");
    let manifest = Entra::manifest();
    let secrets: Vec<&str> = manifest.secret_keys().collect();
    assert_eq!(secrets, ["client_secret", "client_certificate"]);
}
