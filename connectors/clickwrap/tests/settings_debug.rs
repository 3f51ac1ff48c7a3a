//! `Debug` of the settings struct (what a `{:?}` in a log or a panic would print) never shows
//! the client secret or the long-lived access token. Issue 8, secrets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use idhost_clickwrap::ClickwrapSettings;

#[test]
fn debug_of_settings_redacts_every_secret() {
    let settings: ClickwrapSettings = toml::from_str(
        r#"
client_id = "clickwrap-client"
client_secret = "clickwrap-debug-S3cret"
access_token = "clickwrap-debug-T0ken"
account_id = 1001
"#,
    )
    .expect("settings deserialize (validation happens in open)");
    for shown in [format!("{settings:?}"), format!("{settings:#?}")] {
        assert!(!shown.contains("clickwrap-debug-"), "{shown}");
        assert_eq!(shown.matches("REDACTED").count(), 2, "{shown}");
    }
}
