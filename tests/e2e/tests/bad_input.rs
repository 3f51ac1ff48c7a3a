//! Issue 15, the bad-input matrix (README "Bad-input matrix"; DESIGN §7.3): every input an
//! attacker or a mistake can hand idhost — a plugin directory or file others can write, a
//! damaged or duplicate plugin, an id that is a path step or holds a separator or a control
//! character, an OData literal, an unwritable audit trail, a secret in any encoding, garbage
//! URLs, hostile upstream data — through the real binary with the real plugins and simulators.
//! Each test pins one refusal: the exit code, that the message names the input, and that
//! nothing reached the upstream (the simulator's request log) or changed on disk.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "the tests read and damage the databases idhost wrote the way an outside client would"
)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use idhost_e2e::{Run, Scratch, plugin_path, require_plugins, sqlite_sink, toml_str};

fn lib(stem: &str) -> String {
    format!(
        "{}{stem}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

/// A plugin directory of the test's own (0755) holding copies (0755) of `plugins`.
fn plugin_dir_with(s: &Scratch, plugins: &[&str]) -> PathBuf {
    require_plugins(plugins);
    let dir = s.path("plugins");
    std::fs::create_dir_all(&dir).expect("plugin dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for name in plugins {
        let to = dir.join(lib(name));
        std::fs::copy(plugin_path(name), &to).expect("copy plugin");
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    dir
}

/// `idhost.toml` with `plugin_dir = dir`, a state database and `body`.
fn config_in(s: &Scratch, dir: &Path, body: &str) -> String {
    let path = s.path("idhost.toml");
    std::fs::write(
        &path,
        format!(
            "plugin_dir = {}\nstate_path = \"state.db\"\n{body}",
            toml_str(&dir.to_string_lossy())
        ),
    )
    .expect("config");
    path.to_string_lossy().into_owned()
}

fn fixture_source() -> String {
    format!(
        "[sources.f]\nconnector = \"fixture\"\n{}",
        sqlite_sink("out.db")
    )
}

/// No record reached the sink (a failed source may leave its `sync_runs` row, never data).
fn nothing_synced(s: &Scratch) {
    if s.path("out.db").exists() {
        assert_eq!(
            s.db("out.db").count("SELECT count(*) FROM resources", []),
            0,
            "records were written"
        );
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

// ---- plugins ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_directory_others_can_write_is_refused() {
    let s = Scratch::new();
    let dir = plugin_dir_with(&s, &["fixture_connector"]);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let config = config_in(&s, &dir, &fixture_source());
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(3);
    let text = run.text();
    assert!(
        text.contains(&dir.display().to_string()) && text.contains("mode 0777"),
        "names the directory and its mode: {text}"
    );
    nothing_synced(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_file_group_can_write_is_refused() {
    let s = Scratch::new();
    let dir = plugin_dir_with(&s, &["fixture_connector"]);
    let file = dir.join(lib("fixture_connector"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o775)).expect("chmod");
    let config = config_in(&s, &dir, &fixture_source());
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(3);
    let text = run.text();
    assert!(
        text.contains(&file.display().to_string()) && text.contains("mode 0775"),
        "names the file and its mode: {text}"
    );
    nothing_synced(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_file_of_another_owner_is_refused() {
    let s = Scratch::new();
    let dir = plugin_dir_with(&s, &["fixture_connector"]);
    let file = dir.join(lib("fixture_connector"));
    if std::os::unix::fs::chown(&file, Some(65534), None).is_err() {
        eprintln!("SKIPPED: cannot give the plugin file to uid 65534 (not root)");
        return;
    }
    let config = config_in(&s, &dir, &fixture_source());
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(3);
    let text = run.text();
    assert!(
        text.contains(&file.display().to_string()) && text.contains("owned by uid 65534"),
        "names the file and its owner: {text}"
    );
    nothing_synced(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_symlinked_plugin_is_judged_by_the_file_it_points_to() {
    let s = Scratch::new();
    let dir = plugin_dir_with(&s, &[]);
    let elsewhere = s.path("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    let target = elsewhere.join(lib("fixture_connector"));
    std::fs::copy(plugin_path("fixture_connector"), &target).expect("copy");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let link = dir.join(lib("fixture_connector"));
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    assert_eq!(
        mode_of(&dir),
        0o755,
        "the directory itself is fine; only the target is not"
    );
    let config = config_in(&s, &dir, &fixture_source());
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(3);
    let text = run.text();
    assert!(
        text.contains(&link.display().to_string())
            && text.contains("a symlink to")
            && text.contains("mode 0666"),
        "names the link, its target's mode: {text}"
    );
    nothing_synced(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_whose_sha256_differs_from_the_pin_is_refused() {
    let s = Scratch::new();
    let dir = plugin_dir_with(&s, &["fixture_connector"]);
    let pin = "0".repeat(64);
    let config = config_in(
        &s,
        &dir,
        &format!(
            "[sources.f]\nconnector = \"fixture\"\nplugin_sha256 = \"{pin}\"\n{}",
            sqlite_sink("out.db")
        ),
    );
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(3);
    let text = run.text();
    assert!(
        text.contains(&lib("fixture_connector"))
            && text.contains(&format!("plugin_sha256 = \"{pin}\"")),
        "names the file and the pin: {text}"
    );
    nothing_synced(&s);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_matching_its_pin_loads() {
    let s = Scratch::new();
    let dir = plugin_dir_with(&s, &["fixture_connector"]);
    let bytes = std::fs::read(dir.join(lib("fixture_connector"))).expect("read");
    let pin = sha256_hex(&bytes);
    let config = config_in(
        &s,
        &dir,
        &format!(
            "[sources.f]\nconnector = \"fixture\"\nplugin_sha256 = \"{}\"\n{}",
            pin.to_uppercase(),
            sqlite_sink("out.db")
        ),
    );
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(0);
}

fn sha256_hex(bytes: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().expect("stdin").write_all(bytes)?;
            child.wait_with_output()
        })
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_plugins_with_one_connector_name_are_both_refused() {
    let s = Scratch::new();
    let dir = plugin_dir_with(&s, &["fixture_connector"]);
    let second = dir.join(lib("idhost_fixture"));
    std::fs::copy(dir.join(lib("fixture_connector")), &second).expect("copy");
    let config = config_in(&s, &dir, &fixture_source());
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(3);
    let text = run.text();
    assert!(
        text.contains(&lib("fixture_connector"))
            && text.contains(&lib("idhost_fixture"))
            && text.contains("neither was loaded"),
        "names both files: {text}"
    );
    nothing_synced(&s);
}

/// The first MiB of the Entra plugin: its headers promise sections past the end.
fn truncated_entra(dir: &Path) -> PathBuf {
    require_plugins(&["idhost_entra"]);
    let bytes = std::fs::read(plugin_path("idhost_entra")).expect("read");
    let cut = dir.join(lib("idhost_entra"));
    std::fs::write(&cut, &bytes[..bytes.len().min(1 << 20)]).expect("write");
    std::fs::set_permissions(&cut, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    cut
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_plugin_no_source_uses_leaves_the_sync_alone() {
    let s = Scratch::new();
    let dir = plugin_dir_with(&s, &["fixture_connector"]);
    truncated_entra(&dir);
    let config = config_in(&s, &dir, &fixture_source());
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(0);
    assert_eq!(
        s.db("out.db")
            .count("SELECT count(*) FROM resources WHERE source = 'f'", []),
        12,
        "{}",
        run.text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_plugin_is_listed_by_name_and_kills_nothing() {
    let s = Scratch::new();
    let dir = plugin_dir_with(&s, &["fixture_connector"]);
    let cut = truncated_entra(&dir);
    let run = s
        .run(&["plugins", "--plugin-dir", &dir.to_string_lossy()])
        .await;
    // A signal would leave no exit code.
    run.expect_code(0);
    let text = run.text();
    assert!(
        text.contains(&format!(
            "{}: not an idhost connector plugin",
            cut.display()
        )) && text.contains("cut short"),
        "names the damaged file: {text}"
    );
    assert!(
        text.contains("fixture"),
        "the good plugin is listed: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_plugin_a_source_uses_fails_with_exit_3() {
    let s = Scratch::new();
    let dir = plugin_dir_with(&s, &[]);
    let cut = truncated_entra(&dir);
    let config = config_in(
        &s,
        &dir,
        &format!(
            "[sources.corp]\nconnector = \"entra\"\n[sources.corp.settings]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = \"s\"\n{}",
            sqlite_sink("out.db")
        ),
    );
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(3);
    let text = run.text();
    assert!(
        text.contains(&cut.display().to_string()) && text.contains("cut short"),
        "names the damaged file: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_no_source_names_is_never_loaded() {
    let s = Scratch::new();
    // The bad-ABI fixture is refused when it is loaded, and says so at debug level.
    let dir = plugin_dir_with(&s, &["fixture_connector", "fixture_bad_abi"]);
    let config = config_in(&s, &dir, &fixture_source());
    let run = s
        .run(&["--log-level", "debug", "sync", "-c", &config])
        .await;
    run.expect_code(0);
    assert!(
        !run.text().contains(&lib("fixture_bad_abi")),
        "the unused plugin was opened: {}",
        run.text()
    );
    // `idhost plugins` opens every file: the same file is reported there.
    let listing = s
        .run(&["plugins", "--plugin-dir", &dir.to_string_lossy()])
        .await;
    listing.expect_code(0);
    assert!(
        listing.text().contains(&lib("fixture_bad_abi")),
        "{}",
        listing.text()
    );
}

// ---- ids --------------------------------------------------------------------------------

async fn ironclad() -> (sim_ironclad::Simulator, sim_common::RunningServer) {
    require_plugins(&["idhost_ironclad"]);
    let sim = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        users: 5,
        groups: 2,
        members_per_group: 2,
        ..sim_ironclad::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve");
    (sim, server)
}

fn ironclad_config(s: &Scratch, sim: &sim_ironclad::Simulator, url: &str) -> String {
    let c = sim.config();
    s.config(&format!(
        "[sources.legal]\nconnector = \"ironclad\"\n[sources.legal.settings]\nbase_url = {}\nclient_id = {}\nclient_secret = {}\nas_user_email = {}\nscopes = {:?}\n{}",
        toml_str(url),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        toml_str(&c.admin_email),
        c.registered_scopes,
        sqlite_sink("out.db")
    ))
    .to_string_lossy()
    .into_owned()
}

/// Runs `provision --source <source> ARGS`; asserts exit 2, that the message names `shown`
/// (the id as the message escapes it) and `flag`, and that nothing was sent or written.
async fn refused_id(
    s: &Scratch,
    config: &str,
    source: &str,
    args: &[&str],
    flag: &str,
    shown: &str,
    log: &sim_common::RequestLog,
) {
    let mut all = vec!["provision", "-c", config, "--source", source];
    all.extend_from_slice(args);
    let run: Run = s.run(&all).await;
    assert_eq!(run.code, Some(2), "{args:?}: {}", run.text());
    assert!(
        run.stderr.contains(flag) && run.stderr.contains(shown),
        "{args:?}: the message names {flag} and `{shown}`: {}",
        run.stderr
    );
    assert!(
        log.is_empty(),
        "{args:?}: requests reached the upstream: {:?}",
        log.records()
    );
    assert!(
        !s.path("state.db").exists(),
        "{args:?}: the state database was touched"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_ids_are_refused_with_exit_2_before_any_request() {
    let (sim, server) = ironclad().await;
    let s = Scratch::new();
    let config = ironclad_config(&s, &sim, &server.url());
    let group = sim.group_ids()[0].clone();
    let user = sim.user_ids()[0].clone();
    let ent = format!("group:{group}:member");
    let usr = format!("user:{user}");
    let cases: Vec<(Vec<String>, &str, String)> = vec![
        (
            vec!["delete".into(), "--resource".into(), "user:..".into()],
            "--resource",
            "user:..".into(),
        ),
        (
            vec!["delete".into(), "--resource".into(), "user:.".into()],
            "--resource",
            "user:.".into(),
        ),
        (
            vec!["delete".into(), "--resource".into(), "user:".into()],
            "--resource",
            "is empty".into(),
        ),
        (
            vec!["delete".into(), "--resource".into(), "user:a/b".into()],
            "--resource",
            "user:a/b".into(),
        ),
        (
            vec!["delete".into(), "--resource".into(), "user:a\\b".into()],
            "--resource",
            "path separator".into(),
        ),
        (
            vec!["delete".into(), "--resource".into(), "user:a b".into()],
            "--resource",
            "holds whitespace".into(),
        ),
        (
            vec!["delete".into(), "--resource".into(), format!("{usr}\r\n")],
            "--resource",
            "\\r\\n".into(),
        ),
        (
            vec![
                "delete".into(),
                "--resource".into(),
                "user:a\u{1b}[2Jb".into(),
            ],
            "--resource",
            "\\u{1b}".into(),
        ),
        (
            vec![
                "update".into(),
                "--resource".into(),
                "user:..".into(),
                "--set".into(),
                "title=x".into(),
            ],
            "--resource",
            "user:..".into(),
        ),
        (
            vec![
                "grant".into(),
                "--entitlement".into(),
                "group:..:member".into(),
                "--principal".into(),
                usr.clone(),
            ],
            "--entitlement",
            "group:..:member".into(),
        ),
        (
            vec![
                "grant".into(),
                "--entitlement".into(),
                ent.clone(),
                "--principal".into(),
                "user:..".into(),
            ],
            "--principal",
            "user:..".into(),
        ),
        (
            vec![
                "grant".into(),
                "--entitlement".into(),
                format!("group:{group}:.."),
                "--principal".into(),
                usr.clone(),
            ],
            "--entitlement",
            "slug `..`".into(),
        ),
        (
            vec!["revoke".into(), "--grant".into(), format!("{ent}:user:..")],
            "--grant",
            "principal id `..`".into(),
        ),
        (
            vec![
                "revoke".into(),
                "--grant".into(),
                format!("group:..:member:{usr}"),
            ],
            "--grant",
            "id part `..`".into(),
        ),
        (
            vec![
                "revoke".into(),
                "--grant".into(),
                format!("{ent}:user:{user}\n"),
            ],
            "--grant",
            "\\n".into(),
        ),
    ];
    for (args, flag, shown) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        refused_id(&s, &config, "legal", &args, flag, shown, sim.faults().log()).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_path_step_ids_are_refused_before_any_request() {
    require_plugins(&["idhost_entra"]);
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: 5,
        groups: 2,
        memberships: 2,
        apps: 1,
        roles: 1,
        ..sim_graph::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve");
    let s = Scratch::new();
    let config = entra_config(&s, &sim, &server.url(), None);
    let user = sim.user_ids()[0].clone();
    for (args, flag, shown) in [
        (
            vec![
                "grant",
                "--entitlement",
                "group:..:member",
                "--principal",
                &format!("user:{user}"),
            ],
            "--entitlement",
            "group:..:member",
        ),
        (
            vec!["revoke", "--grant", "group:..:member:user:.."],
            "--grant",
            "group:..:member:user:..",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
        refused_id(&s, &config, "corp", &args, flag, shown, sim.faults().log()).await;
    }
}

fn entra_config(
    s: &Scratch,
    sim: &sim_graph::Simulator,
    url: &str,
    secret: Option<&str>,
) -> String {
    let c = sim.config();
    s.config(&format!(
        "[sources.corp]\nconnector = \"entra\"\n[sources.corp.settings]\ntenant_id = {}\nclient_id = {}\nclient_secret = {}\ngraph_url = {url}\nlogin_url = {url}\n{}",
        toml_str(&c.tenant_id),
        toml_str(&c.client_id),
        toml_str(secret.unwrap_or(&c.client_secret)),
        sqlite_sink("out.db"),
        url = toml_str(url),
    ))
    .to_string_lossy()
    .into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_odata_literal_in_a_directory_role_revoke_cannot_rewrite_the_filter() {
    require_plugins(&["idhost_entra"]);
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: 5,
        groups: 2,
        memberships: 2,
        apps: 1,
        roles: 1,
        ..sim_graph::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve");
    let s = Scratch::new();
    let config = entra_config(&s, &sim, &server.url(), None);
    let role = sim.role_ids()[0].clone();
    // No whitespace, no separator: a usable id part for the host, a filter rewrite for OData.
    let grant = format!("role:{role}:member:user:x'or'principalId'ne'y");
    let run = s
        .run(&[
            "provision",
            "-c",
            &config,
            "--source",
            "corp",
            "revoke",
            "--grant",
            &grant,
        ])
        .await;
    run.expect_code(1);
    assert!(
        run.text().contains(
            "principal id `x\\'or\\'principalId\\'ne\\'y` is not a Microsoft Entra object id"
        ),
        "{}",
        run.text()
    );
    let log = sim.faults().log();
    assert_eq!(
        log.count("GET", "roleAssignments")
            + log
                .writes()
                .iter()
                .filter(|r| !r.path.contains("token"))
                .count(),
        0,
        "no assignment was listed or deleted: {:?}",
        log.records()
    );
}

// ---- audit first ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn an_audit_trail_that_cannot_be_written_stops_the_change_before_it_is_sent() {
    let (sim, server) = ironclad().await;
    let s = Scratch::new();
    let config = ironclad_config(&s, &sim, &server.url());
    let group = sim.group_ids()[0].clone();
    let outsider = sim
        .user_ids()
        .into_iter()
        .find(|u| !sim.group_members(&group).contains(u))
        .expect("a non-member");
    // The audit table exists but refuses every row (a read-only audit trail; root ignores file
    // modes, so a trigger stands in for them).
    {
        let db = rusqlite::Connection::open(s.path("state.db")).expect("open");
        db.execute_batch(
            "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
                 source TEXT NOT NULL, operation TEXT NOT NULL, target TEXT NOT NULL,
                 dry_run INTEGER NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL);
             CREATE TRIGGER audit_is_read_only BEFORE INSERT ON audit
                 BEGIN SELECT RAISE(ABORT, 'the audit trail is read-only'); END;",
        )
        .expect("schema");
    }
    let run = s
        .run(&[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "grant",
            "--entitlement",
            &format!("group:{group}:member"),
            "--principal",
            &format!("user:{outsider}"),
        ])
        .await;
    run.expect_code(1);
    assert!(
        run.stderr.contains("audit") && run.stderr.contains("nothing was sent upstream"),
        "{}",
        run.text()
    );
    assert!(
        sim.faults()
            .log()
            .writes()
            .iter()
            .all(|r| r.path.contains("token")),
        "a write reached the upstream: {:?}",
        sim.faults().log().records()
    );
    assert!(!sim.group_members(&group).contains(&outsider));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delete_of_a_missing_user_is_audited_as_already() {
    let (sim, server) = ironclad().await;
    let s = Scratch::new();
    let config = ironclad_config(&s, &sim, &server.url());
    let ghost = "6500000000000000deadbeef";
    assert!(sim.user(ghost).is_none());
    let run = s
        .run(&[
            "provision",
            "-c",
            &config,
            "--source",
            "legal",
            "delete",
            "--resource",
            &format!("user:{ghost}"),
        ])
        .await;
    run.expect_code(0);
    let db = s.db("state.db");
    let rows = db.count("SELECT count(*) FROM audit", []);
    assert_eq!(rows, 1, "one row per attempt: {}", run.text());
    assert_eq!(
        db.count("SELECT count(*) FROM audit WHERE result = 'already'", []),
        1,
        "a delete of a missing user is `already`, not `changed`: {}",
        run.text()
    );
}

// ---- secrets ----------------------------------------------------------------------------

/// Every form `secret` takes in text.
fn forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap();
    let json = json.trim_matches('"').to_owned();
    let mut pct = String::new();
    let mut form = String::new();
    for b in secret.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            pct.push(b as char);
            form.push(b as char);
        } else if b == b' ' {
            pct.push_str("%20");
            form.push('+');
        } else {
            pct.push_str(&format!("%{b:02X}"));
            form.push_str(&format!("%{b:02X}"));
        }
    }
    vec![secret.to_owned(), json, pct, form]
}

fn assert_no_form(secret: &str, text: &str, what: &str) {
    for form in forms(secret) {
        assert!(
            !text.contains(&form),
            "{what} holds the secret as `{form}`: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_endpoint_echoing_the_secret_leaks_it_in_no_form() {
    require_plugins(&["idhost_entra"]);
    let secret = "Zq8~Q\"x/y z+w_Secret.value";
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: 3,
        groups: 1,
        memberships: 1,
        ..sim_graph::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve");
    let echoed = forms(secret);
    // A hostile or broken token endpoint that echoes the request: the form-encoded body as
    // text, the JSON-escaped value in an OAuth error description.
    sim.faults().push(
        sim_common::FaultRule::any(sim_common::Fault::status(
            400,
            format!(
                "{{\"error\":\"invalid_client\",\"error_description\":\"client_secret={} was {} ({})\"}}",
                echoed[3], echoed[1], echoed[2]
            ),
        ))
        .on_path("oauth2/v2.0/token")
        .times(u32::MAX),
    );
    let s = Scratch::new();
    let config = entra_config(&s, &sim, &server.url(), Some(secret));
    let run = s
        .run(&["--log-level", "debug", "sync", "-c", &config])
        .await;
    run.expect_code(1);
    assert!(run.stderr.contains("invalid_client"), "{}", run.text());
    assert_no_form(secret, &run.text(), "stdout/stderr");
    let db = s.db("out.db");
    let errors = db.count(
        "SELECT count(*) FROM sync_runs WHERE error LIKE '%invalid_client%'",
        [],
    );
    assert_eq!(errors, 1, "the error is stored, redacted");
    let conn = rusqlite::Connection::open(s.path("out.db")).expect("open");
    let stored: String = conn
        .query_row("SELECT group_concat(error) FROM sync_runs", [], |r| {
            r.get(0)
        })
        .expect("errors");
    assert_no_form(secret, &stored, "sync_runs.error");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_non_oauth_token_error_body_is_summarised_not_echoed() {
    require_plugins(&["idhost_entra"]);
    let secret = "Ab1~plain-text-echo-secret";
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: 3,
        groups: 1,
        memberships: 1,
        ..sim_graph::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve");
    sim.faults().push(
        sim_common::FaultRule::any(sim_common::Fault::status(
            500,
            "upstream said: grant_type=client_credentials&client_secret=Ab1%7Eplain-text-echo-secret&marker-of-the-body".to_owned(),
        ))
        .on_path("oauth2/v2.0/token")
        .times(u32::MAX),
    );
    let s = Scratch::new();
    let config = entra_config(&s, &sim, &server.url(), Some(secret));
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(1);
    assert!(
        !run.text().contains("marker-of-the-body"),
        "the body was echoed: {}",
        run.text()
    );
    assert!(
        run.text().contains("no OAuth error code in the answer"),
        "{}",
        run.text()
    );
    assert_no_form(secret, &run.text(), "stdout/stderr");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_notify_value_from_a_secret_is_redacted_in_its_error() {
    require_plugins(&["fixture_connector"]);
    let s = Scratch::new();
    let config = s.config(
        "[sources.f]\nconnector = \"fixture\"\n[notify.mail]\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = 2525\nfrom = \"${IDHOST_TEST_SMTP_PASSWORD}\"\nto = [\"ops@example.com\"]\n",
    );
    let secret = "hunter2 s3cret~pass";
    let mut cmd = s.command(&["check", "-c", &config.to_string_lossy(), "--offline"]);
    cmd.env("IDHOST_TEST_SMTP_PASSWORD", secret);
    let out = idhost_e2e::output_within(cmd, idhost_e2e::DEFAULT_TIMEOUT);
    let text = idhost_e2e::text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("from") && text.contains("[REDACTED]"),
        "{text}"
    );
    assert_no_form(secret, &text, "check's output");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_typed_as_a_number_is_not_echoed_by_the_settings_error() {
    require_plugins(&["idhost_ironclad"]);
    let s = Scratch::new();
    let config = s.config(
        "[sources.legal]\nconnector = \"ironclad\"\n[sources.legal.settings]\nbase_url = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret = 918273645546372819\nas_user_email = \"a@example.com\"\n",
    );
    let run = s.run(&["check", "-c", &config.to_string_lossy()]).await;
    assert_ne!(run.code, Some(0), "{}", run.text());
    assert!(run.text().contains("client_secret"), "{}", run.text());
    assert!(!run.text().contains("918273645546372819"), "{}", run.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secret_inside_base_url_is_redacted_raw_and_encoded() {
    require_plugins(&["idhost_ironclad"]);
    let s = Scratch::new();
    let secret = "p@ss word~/very-secret";
    let config = s.config(
        "[sources.legal]\nconnector = \"ironclad\"\n[sources.legal.settings]\nbase_url = \"http://ironclad.example.com/${IDHOST_TEST_SECRET}\"\nclient_id = \"c\"\nclient_secret = \"${IDHOST_TEST_SECRET}\"\nas_user_email = \"a@example.com\"\n",
    );
    let mut cmd = s.command(&["check", "-c", &config.to_string_lossy()]);
    cmd.env("IDHOST_TEST_SECRET", secret);
    let out = idhost_e2e::output_within(cmd, idhost_e2e::DEFAULT_TIMEOUT);
    let text = idhost_e2e::text(&out);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("base_url"), "{text}");
    assert_no_form(secret, &text, "check's output");
    // The URL parser's own encoding of it.
    assert!(!text.contains("p@ss%20word"), "{text}");
}

// ---- URLs -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn garbage_sink_urls_are_refused_by_check_naming_the_key() {
    require_plugins(&["fixture_connector"]);
    for (kind, url, said) in [
        (
            "postgres",
            "not a url at all",
            "is not a PostgreSQL connection URL",
        ),
        (
            "postgres",
            "postgres://u@db.example.com/db?sslmode=sometimes",
            "sslmode `sometimes`",
        ),
        (
            "webhook",
            "htp:/nowhere",
            "is not an http:// or https:// URL",
        ),
        ("webhook", "::::", "is not a URL"),
        (
            "nats",
            "http://127.0.0.1:4222",
            "is not a NATS server address",
        ),
        ("nats", "nats://", "is not a NATS server address"),
    ] {
        let s = Scratch::new();
        let config = s.config(&format!(
            "[sources.f]\nconnector = \"fixture\"\n[sinks.out]\ntype = \"{kind}\"\nurl = {}\n",
            toml_str(url)
        ));
        let run = s
            .run(&["check", "-c", &config.to_string_lossy(), "--offline"])
            .await;
        assert_eq!(run.code, Some(2), "{kind} {url}: {}", run.text());
        assert!(
            run.stderr.contains("sink `out`: `url`") && run.stderr.contains(said),
            "{kind} {url}: {}",
            run.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_cross_origin_redirect_says_so() {
    require_plugins(&["idhost_ironclad"]);
    let (sim, server) = ironclad().await;
    sim.faults().push(
        sim_common::FaultRule::any(sim_common::FaultAction::Status {
            status: 301,
            body: String::new(),
            headers: vec![(
                "location".to_owned(),
                "http://127.0.0.2:9/scim/v2/Users".to_owned(),
            )],
        })
        .on_path("/scim/v2/Users"),
    );
    let s = Scratch::new();
    let config = ironclad_config(&s, &sim, &server.url());
    let run = s.run(&["sync", "-c", &config]).await;
    run.expect_code(1);
    assert!(
        run.text()
            .contains("answered 301: refused a redirect to another origin (http://127.0.0.2:9)"),
        "{}",
        run.text()
    );
    assert!(!run.text().contains("no detail given"), "{}", run.text());
}

// ---- hostile upstream data --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn upstream_formulas_and_terminal_escapes_are_neutralised_on_output() {
    let (sim, server) = ironclad().await;
    let formula = "=HYPERLINK(\"http://evil.example/\",\"x\")";
    let escape = "Eve\u{1b}[2J\u{1b}[31mred\r\nforged line";
    sim.insert_user(serde_json::json!({
        "userName": "formula@example.com",
        "displayName": formula,
        "name": {"givenName": "F", "familyName": "X"},
        "active": true,
    }));
    sim.insert_user(serde_json::json!({
        "userName": "escape@example.com",
        "displayName": escape,
        "name": {"givenName": "E", "familyName": "Y"},
        "active": true,
    }));
    let s = Scratch::new();
    let config = ironclad_config(&s, &sim, &server.url());
    s.run(&["sync", "-c", &config]).await.expect_code(0);
    let csv = s
        .run(&[
            "query",
            "-c",
            &config,
            "resources",
            "--type",
            "user",
            "-o",
            "csv",
        ])
        .await;
    csv.expect_code(0);
    let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
    let names: Vec<String> = reader
        .records()
        .map(|r| {
            r.expect("record")
                .iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
                .join("\u{0}")
        })
        .collect();
    assert!(
        names
            .iter()
            .any(|r| r.split('\u{0}').any(|cell| cell == format!("'{formula}"))),
        "the formula cell has a leading quote: {}",
        csv.stdout
    );
    assert!(
        names.iter().all(|r| r
            .split('\u{0}')
            .all(|cell| !cell.starts_with(['=', '+', '-', '@', '\t', '\r']))),
        "{}",
        csv.stdout
    );
    let table = s
        .run(&["query", "-c", &config, "resources", "--type", "user"])
        .await;
    table.expect_code(0);
    assert!(
        !table.stdout.contains('\u{1b}'),
        "an escape reached the terminal: {:?}",
        table.stdout
    );
    assert!(table.stdout.contains("Eve\\u{1b}[2J"), "{}", table.stdout);
    assert!(
        !table.stdout.contains("\r\nforged line"),
        "{:?}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn files_idhost_creates_are_0600() {
    require_plugins(&["fixture_connector"]);
    let s = Scratch::new();
    let config = s.config(&format!(
        "[sources.f]\nconnector = \"fixture\"\n{}\n[sinks.lines]\ntype = \"jsonl\"\npath = \"out.jsonl\"\n",
        sqlite_sink("out.db")
    ));
    s.sync(&config, &[]).await.expect_code(0);
    for file in ["state.db", "out.db", "out.jsonl"] {
        assert_eq!(mode_of(&s.path(file)), 0o600, "{file}");
    }
}
