//! `Debug` of the settings struct (what a `{:?}` in a log or a panic would print) never shows
//! the client secret, the static bearer token or the refresh token. Issue 8, secrets.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use idhost_ironclad::IroncladSettings;

#[test]
fn debug_of_settings_redacts_every_secret() {
    let settings: IroncladSettings = toml::from_str(
        r#"
client_id = "ironclad-client"
client_secret = "ironclad-debug-S3cret"
bearer_token = "ironclad-debug-B3arer"
refresh_token = "ironclad-debug-R3fresh"
"#,
    )
    .expect("settings deserialize (validation happens in open)");
    for shown in [format!("{settings:?}"), format!("{settings:#?}")] {
        assert!(!shown.contains("ironclad-debug-"), "{shown}");
        assert_eq!(shown.matches("REDACTED").count(), 3, "{shown}");
    }
}
