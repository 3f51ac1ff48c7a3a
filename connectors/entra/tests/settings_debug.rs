//! `Debug` of the settings struct (what a `{:?}` in a log or a panic would print) never shows
//! the client secret. Issue 8, secrets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use idhost_entra::config::EntraSettings;

#[test]
fn debug_of_settings_redacts_the_client_secret() {
    let settings: EntraSettings = toml::from_str(
        r#"
tenant_id = "contoso-tenant"
client_id = "graph-client"
client_secret = "entra-debug-S3cret-value"
"#,
    )
    .expect("valid settings");
    for shown in [format!("{settings:?}"), format!("{settings:#?}")] {
        assert!(!shown.contains("entra-debug-S3cret-value"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }
}
