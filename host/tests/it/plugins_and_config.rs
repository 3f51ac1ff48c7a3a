//! Issue 2: plugin loading (good, wrong interface version, not a plugin) and config errors
//! with their locations, through the real binary.

use crate::support::{Scratch, idhost, plugin_dir, text};

fn lib_name(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

#[test]
fn plugins_lists_the_fixture_and_explains_rejected_files() {
    let mut cmd = idhost();
    cmd.args([
        "plugins",
        "--json",
        "--plugin-dir",
        plugin_dir().to_str().unwrap(),
    ]);
    let out = idhost_e2e::output_within(cmd, idhost_e2e::DEFAULT_TIMEOUT);
    assert!(out.status.success(), "{}", text(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let fixture = doc["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["name"] == "fixture")
        .expect("fixture listed");
    assert_eq!(fixture["interface_version"], 1);
    assert_eq!(
        fixture["resource_types"],
        serde_json::json!(["user", "group", "role"])
    );
    assert!(
        fixture["capabilities"]
            .as_array()
            .expect("caps")
            .contains(&"grant".into())
    );
    let errors = doc["errors"].as_array().expect("errors").clone();
    let bad = errors
        .iter()
        .filter_map(|e| e.as_str())
        .find(|e| e.contains(&lib_name("fixture_bad_abi")))
        .unwrap_or_else(|| panic!("bad-abi fixture rejected: {errors:?}"));
    assert!(
        bad.contains("interface version 999, this host speaks 1")
            && bad.contains("rebuild the plugin"),
        "{bad}"
    );
}

#[test]
fn a_shared_library_without_a_root_module_is_rejected_without_a_crash() {
    let s = Scratch::new();
    let dir = s.path("plugins");
    std::fs::create_dir_all(&dir).expect("dir");
    let libz = [
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib64/libz.so.1",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists());
    let Some(libz) = libz else {
        eprintln!("SKIPPED: no libz.so.1 on this machine to stand in for a foreign shared library");
        return;
    };
    std::fs::copy(libz, dir.join("libz.so")).expect("copy");
    std::fs::write(dir.join("libgarbage.so"), b"not an ELF file").expect("write");
    std::fs::copy(
        plugin_dir().join(lib_name("fixture_connector")),
        dir.join(lib_name("fixture_connector")),
    )
    .expect("copy fixture");
    let mut cmd = idhost();
    cmd.args(["plugins", "--plugin-dir", dir.to_str().unwrap()]);
    let out = idhost_e2e::output_within(cmd, idhost_e2e::DEFAULT_TIMEOUT);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("fixture"),
        "the good plugin still loads: {all}"
    );
    assert!(
        all.contains("libz.so: not an idhost connector plugin"),
        "{all}"
    );
    assert!(
        all.contains("libgarbage.so: not an idhost connector plugin"),
        "{all}"
    );
}

#[test]
fn a_typo_in_a_settings_key_is_reported_at_its_line_by_the_plugin() {
    let s = Scratch::new();
    let config = s.config(
        "\n[sources.dir]\nconnector = \"fixture\"\n[sources.dir.settings]\nusers = 3\ngrups = 2\n",
    );
    let out = s.output(&["sync", "-c", config.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("idhost.toml:8:1: invalid settings for source `dir`: unknown field `grups`"),
        "{all}"
    );
}

#[test]
fn a_typo_in_a_host_key_fails_before_any_plugin_loads() {
    let s = Scratch::new();
    let config = s.config("\n[sources.dir]\nconector = \"fixture\"\n");
    let out = s.output(&["check", "-c", config.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("idhost.toml:5:1: unknown field `conector`"),
        "{all}"
    );
}

#[test]
fn a_missing_variable_is_reported_at_its_reference() {
    let s = Scratch::new();
    let config = s.config("\n[sources.dir]\nconnector = \"fixture\"\n[sources.dir.settings]\ntoken = \"${IDHOST_TEST_SURELY_UNSET}\"\n");
    let out = s.output(&["check", "-c", config.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains(
            "idhost.toml:7:10: environment variable `IDHOST_TEST_SURELY_UNSET` is not set"
        ),
        "{all}"
    );
}

#[test]
fn an_unknown_connector_is_reported_at_its_name_with_the_available_ones() {
    let s = Scratch::new();
    let config = s.config("\n[sources.dir]\nconnector = \"fixtur\"\n");
    let out = s.output(&["check", "-c", config.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(3), "{all}");
    assert!(
        all.contains("idhost.toml:5:13: source `dir`: no plugin provides connector `fixtur`"),
        "{all}"
    );
    assert!(
        all.contains("available: ") && all.contains("fixture"),
        "{all}"
    );
}

#[test]
fn check_opens_and_validates_each_source() {
    let s = Scratch::new();
    let config = s.config(
        "\n[sources.good]\nconnector = \"fixture\"\n\n[sources.bad]\nconnector = \"fixture\"\n[sources.bad.settings]\nfail_on = \"validate\"\nfail_kind = \"unauthenticated\"\n",
    );
    let out = s.output(&["check", "-c", config.to_str().unwrap()]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("✓ good (fixture): connection and permissions OK"),
        "{all}"
    );
    assert!(
        all.contains("✗ bad (fixture):") && all.contains("(unauthenticated)"),
        "{all}"
    );
}

#[test]
fn plugin_logs_reach_the_host_with_secrets_redacted() {
    let s = Scratch::new();
    let config = s.config(
        "\n[sources.dir]\nconnector = \"fixture\"\n[sources.dir.settings]\ntoken = \"${IDHOST_TEST_TOKEN}\"\n[sinks.db]\ntype = \"sqlite\"\npath = \"out.db\"\n",
    );
    let mut cmd = crate::support::idhost();
    cmd.args([
        "--log-level",
        "debug",
        "--log-format",
        "json",
        "sync",
        "-c",
        config.to_str().unwrap(),
    ])
    .env("IDHOST_TEST_TOKEN", "sk-live-0123456789")
    .current_dir(s.dir());
    let out = idhost_e2e::output_within(cmd, idhost_e2e::DEFAULT_TIMEOUT);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        !all.contains("sk-live-0123456789"),
        "the token leaked: {all}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let opened = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "fixture opened with a token")
        .unwrap_or_else(|| panic!("the plugin's debug event reached the host log: {stderr}"));
    assert_eq!(opened["level"], "DEBUG");
    assert_eq!(opened["fields"]["source"], "dir");
    assert!(
        opened["fields"]["fields"]
            .as_str()
            .unwrap_or_default()
            .contains("[REDACTED]"),
        "{opened}"
    );
}
