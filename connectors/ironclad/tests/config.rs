//! The example config `config/ironclad.toml` stays valid and documents every setting.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use idhost_connector_sdk::Connector;
use idhost_connector_sdk::testing::{self, TestServices};
use idhost_ironclad::Ironclad;

const EXAMPLE: &str = include_str!("../../../config/ironclad.toml");

#[tokio::test]
async fn example_config_opens_and_mentions_every_setting() {
    let config: toml::Table = toml::from_str(EXAMPLE).expect("the example is valid TOML");
    let source = &config["sources"]["legal"];
    assert_eq!(
        source["connector"].as_str(),
        Some(Ironclad::manifest().name.as_str())
    );
    let settings = serde_json::to_value(&source["settings"]).expect("settings as JSON");
    testing::open::<Ironclad>(settings, TestServices::new())
        .await
        .expect("the example's settings are accepted");
    for key in Ironclad::manifest().config_keys {
        assert!(
            EXAMPLE.contains(&format!("{} = ", key.name)),
            "config/ironclad.toml does not document `{}`",
            key.name
        );
    }
    assert_eq!(config["sinks"]["local"]["type"].as_str(), Some("sqlite"));
}
