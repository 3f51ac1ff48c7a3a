//! `config/clickwrap.toml` is a complete, valid example that documents every setting.

use idhost_clickwrap::Clickwrap;
use idhost_connector_sdk::Connector;
use idhost_connector_sdk::testing::{self, TestServices};

const EXAMPLE: &str = include_str!("../../../../config/clickwrap.toml");

fn example() -> toml::Table {
    match EXAMPLE.parse::<toml::Table>() {
        Ok(t) => t,
        Err(e) => panic!("config/clickwrap.toml does not parse: {e}"),
    }
}

#[tokio::test]
async fn the_example_settings_open_the_connector() {
    let config = example();
    let settings = &config["sources"]["clickwrap"]["settings"];
    let json = serde_json::to_value(settings).expect("TOML converts to JSON");
    let connector = testing::open::<Clickwrap>(json, TestServices::new()).await;
    assert!(connector.is_ok(), "{:?}", connector.err());
    assert_eq!(
        config["sources"]["clickwrap"]["connector"].as_str(),
        Some("clickwrap")
    );
}

#[test]
fn the_example_has_a_sqlite_sink_fed_by_the_source() {
    let config = example();
    let sink = &config["sinks"]["local"];
    assert_eq!(sink["type"].as_str(), Some("sqlite"));
    let inputs = sink["inputs"].as_array().expect("inputs");
    assert!(inputs.iter().any(|i| i.as_str() == Some("clickwrap")));
}

#[test]
fn the_example_documents_every_setting() {
    for key in Clickwrap::manifest().config_keys {
        assert!(
            EXAMPLE.contains(&format!("{} = ", key.name)),
            "config/clickwrap.toml does not show `{}`",
            key.name
        );
    }
}
