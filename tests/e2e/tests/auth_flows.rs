//! Issue 17 (authentication) and the vault half of issue 15, through the real `idhost` binary,
//! the real plugins and the simulators:
//!
//! - the vault (DESIGN §7.3): a symlink, a directory, a FIFO, a file of another owner or of
//!   another mode is refused (exit 2, the message naming the path and what is wrong) before the
//!   account is created — the simulator's request log holds no write; with
//!   `vault_age_recipients` the generated password is written age-encrypted (ASCII armour) and
//!   decrypts with the age identity;
//! - Entra certificate credentials (DESIGN §7.4): the happy path (sync and `check`, which shows
//!   the certificate's subject, thumbprint and expiry), a certificate expiring within 30 days
//!   (warned), an expired one (refused before any request), one the app registration does not
//!   know (AADSTS700027), and a replayed assertion (refused by the token endpoint; idhost
//!   itself signs a fresh one per token request).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use idhost_e2e::{Scratch, require_plugins, sqlite_sink, toml_str};
use sim_common::RunningServer;

// ---------------------------------------------------------------------------------------------
// The vault

async fn ironclad() -> (sim_ironclad::Simulator, RunningServer) {
    require_plugins(&["idhost_ironclad"]);
    let sim = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        users: 5,
        groups: 1,
        saml: false,
        ..sim_ironclad::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve sim-ironclad");
    (sim, server)
}

fn ironclad_config(s: &Scratch, sim: &sim_ironclad::Simulator, url: &str, top: &str) -> PathBuf {
    let c = sim.config();
    s.config(&format!(
        "{top}\n[sources.legal]\nconnector = \"ironclad\"\n[sources.legal.settings]\n\
         base_url = {}\nclient_id = {}\nclient_secret = {}\nas_user_email = {}\nscopes = {:?}\n",
        toml_str(url),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        toml_str(&c.admin_email),
        c.registered_scopes,
    ))
}

async fn create_account(s: &Scratch, config: &Path, vault: Option<&Path>) -> idhost_e2e::Run {
    let config = config.to_string_lossy().into_owned();
    let mut args = vec!["provision", "-c", &config, "--source", "legal"];
    let vault_text;
    if let Some(vault) = vault {
        vault_text = vault.to_string_lossy().into_owned();
        args.extend(["--vault", &vault_text]);
    }
    args.extend([
        "create-account",
        "--login",
        "new.hire@example.com",
        "--email",
        "new.hire@example.com",
        "--given-name",
        "New",
        "--family-name",
        "Hire",
        "--generate-password",
    ]);
    s.run(&args).await
}

/// The refusal every bad vault gets: exit 2, the path and `problem` named, no upstream write,
/// no account.
async fn assert_vault_refused(vault: &Path, problem: &str, s: &Scratch) {
    let (sim, server) = ironclad().await;
    let config = ironclad_config(s, &sim, &server.url(), "");
    let run = create_account(s, &config, Some(vault)).await;
    run.expect_code(2);
    let text = run.text();
    assert!(
        text.contains(&vault.display().to_string()) && text.contains(problem),
        "the message names the vault and `{problem}`\n{text}"
    );
    assert_eq!(
        sim.faults().log().writes(),
        Vec::new(),
        "nothing was written upstream\n{text}"
    );
    assert!(sim.user_by_username("new.hire@example.com").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_symlink_is_refused_before_the_account_is_created() {
    let s = Scratch::new();
    let victim = s.path("victim.txt");
    std::fs::write(&victim, "keep me\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let vault = s.path("vault.jsonl");
    std::os::unix::fs::symlink(&victim, &vault).unwrap();
    assert_vault_refused(&vault, "is a symbolic link", &s).await;
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    let mode = std::fs::metadata(&victim).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "the link's target was not touched");
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_directory_is_refused_before_the_account_is_created() {
    let s = Scratch::new();
    let vault = s.path("vaultdir");
    std::fs::create_dir(&vault).unwrap();
    assert_vault_refused(&vault, "is a directory", &s).await;
    assert_eq!(std::fs::read_dir(&vault).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_fifo_is_refused_before_the_account_is_created_and_nothing_hangs() {
    let s = Scratch::new();
    let vault = s.path("vault.fifo");
    rustix_mkfifo(&vault);
    assert_vault_refused(&vault, "is a FIFO", &s).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_of_another_owner_is_refused_before_the_account_is_created() {
    if !is_root() {
        eprintln!("[e2e] skipped: giving a file to another user needs root");
        return;
    }
    let s = Scratch::new();
    let vault = s.path("vault.jsonl");
    std::fs::write(&vault, "").unwrap();
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o600)).unwrap();
    // 65534: `nobody` on Debian.
    std::os::unix::fs::chown(&vault, Some(65534), Some(65534)).unwrap();
    assert_vault_refused(&vault, "belongs to uid 65534", &s).await;
    assert_eq!(std::fs::read_to_string(&vault).unwrap(), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_of_another_mode_is_refused_before_the_account_is_created() {
    let s = Scratch::new();
    let vault = s.path("vault.jsonl");
    std::fs::write(&vault, "").unwrap();
    std::fs::set_permissions(&vault, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_vault_refused(&vault, "has mode 0644", &s).await;
    assert_eq!(std::fs::read_to_string(&vault).unwrap(), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn vault_age_recipients_encrypt_the_password_and_the_age_identity_decrypts_it() {
    let (sim, server) = ironclad().await;
    let s = Scratch::new();
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let config = ironclad_config(
        &s,
        &sim,
        &server.url(),
        &format!("vault_age_recipients = [{}]", toml_str(&recipient)),
    );
    let run = create_account(&s, &config, None).await;
    run.expect_code(0);
    assert!(sim.user_by_username("new.hire@example.com").is_some());
    let vault = s.path("idhost-vault.jsonl");
    let mode = std::fs::metadata(&vault).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&vault).unwrap();
    let entry: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(
        entry.get("password").is_none(),
        "no clear password: {entry}"
    );
    assert_eq!(entry["kind"], "password");
    assert_eq!(entry["login"], "new.hire@example.com");
    let armoured = entry["age"].as_str().expect("an age entry");
    assert!(armoured.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    // What `jq -r .age idhost-vault.jsonl | age -d -i key.txt` does.
    let decryptor =
        age::Decryptor::new(age::armor::ArmoredReader::new(armoured.as_bytes())).unwrap();
    let mut reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .unwrap();
    let mut password = String::new();
    reader.read_to_string(&mut password).unwrap();
    assert!(password.len() >= 16, "a generated password");
    assert!(!run.text().contains(&password), "the password was printed");
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn rustix_mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

// ---------------------------------------------------------------------------------------------
// Entra certificate credentials

const APP_KEY: &str = include_str!("../fixtures/entra-app-key.pem");
const OTHER_KEY: &str = include_str!("../fixtures/entra-other-key.pem");

/// A self-signed certificate of `key` valid from `from_days` to `to_days` (from now), as PEM.
fn certificate(key: &str, from_days: i64, to_days: i64) -> String {
    let key_pair = rcgen::KeyPair::from_pem_and_sign_algo(key, &rcgen::PKCS_RSA_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["idhost-e2e.example".to_owned()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "idhost e2e app");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from_days);
    params.not_after = now + time::Duration::days(to_days);
    params.self_signed(&key_pair).unwrap().pem()
}

async fn graph(registered: Option<String>) -> (sim_graph::Simulator, RunningServer) {
    require_plugins(&["idhost_entra"]);
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: 20,
        groups: 3,
        memberships: 30,
        client_certificate: registered,
        ..sim_graph::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve sim-graph");
    (sim, server)
}

/// A config whose Entra source signs in with the PEM in `entra.pem` (0600), read through
/// `${file:…}`.
fn entra_config(s: &Scratch, sim: &sim_graph::Simulator, url: &str, pem: &str) -> PathBuf {
    let file = s.path("entra.pem");
    std::fs::write(&file, pem).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = sim.config();
    s.config(&format!(
        "[sources.corp]\nconnector = \"entra\"\nread_only = true\n[sources.corp.settings]\n\
         tenant_id = {}\nclient_id = {}\nclient_certificate = {}\ngraph_url = {url}\n\
         login_url = {url}\n{}",
        toml_str(&c.tenant_id),
        toml_str(&c.client_id),
        toml_str(&format!("${{file:{}}}", file.display())),
        sqlite_sink("idhost.db"),
        url = toml_str(url),
    ))
}

fn token_requests(sim: &sim_graph::Simulator) -> usize {
    sim.faults().log().count("POST", "/oauth2/v2.0/token")
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_certificate_signs_in_and_check_reports_subject_thumbprint_and_expiry() {
    let pem_cert = certificate(APP_KEY, -1, 365);
    let (sim, server) = graph(Some(pem_cert.clone())).await;
    let s = Scratch::new();
    let config = entra_config(&s, &sim, &server.url(), &format!("{pem_cert}{APP_KEY}"));
    let config = config.to_string_lossy().into_owned();
    let run = s.run(&["sync", "-c", &config, "--json"]).await;
    run.expect_code(0);
    assert_eq!(run.source("corp")["status"], "succeeded", "{}", run.text());
    assert!(token_requests(&sim) >= 1);
    let check = s.run(&["check", "-c", &config]).await;
    check.expect_code(0);
    let out = check.text();
    assert!(
        out.contains("CN=idhost e2e app") && out.contains("thumbprint") && out.contains("expires"),
        "check names subject, thumbprint and expiry\n{out}"
    );
    assert!(
        !out.contains("! warning:"),
        "a year away is no warning\n{out}"
    );
    assert!(!out.contains("BEGIN PRIVATE KEY"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_certificate_expiring_within_30_days_is_warned_by_check() {
    let pem_cert = certificate(APP_KEY, -300, 10);
    let (sim, server) = graph(Some(pem_cert.clone())).await;
    let s = Scratch::new();
    let config = entra_config(&s, &sim, &server.url(), &format!("{pem_cert}{APP_KEY}"));
    let check = s.run(&["check", "-c", &config.to_string_lossy()]).await;
    check.expect_code(0);
    let out = check.text();
    assert!(
        out.contains("! warning:") && out.contains("day(s)"),
        "check warns of the expiry\n{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_expired_certificate_is_refused_before_any_token_request() {
    let pem_cert = certificate(APP_KEY, -400, -1);
    let (sim, server) = graph(Some(pem_cert.clone())).await;
    let s = Scratch::new();
    let config = entra_config(&s, &sim, &server.url(), &format!("{pem_cert}{APP_KEY}"));
    let run = s
        .run(&["sync", "-c", &config.to_string_lossy(), "--json"])
        .await;
    run.expect_code(1);
    let error = run.source("corp")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("expired on") && error.contains("CN=idhost e2e app"),
        "the error names the certificate and its expiry\n{}",
        run.text()
    );
    assert_eq!(token_requests(&sim), 0, "no token request was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_certificate_of_another_thumbprint_is_refused_with_aadsts700027() {
    // The app registration holds a certificate of another key.
    let registered = certificate(OTHER_KEY, -1, 365);
    let (sim, server) = graph(Some(registered)).await;
    let s = Scratch::new();
    let ours = certificate(APP_KEY, -1, 365);
    let config = entra_config(&s, &sim, &server.url(), &format!("{ours}{APP_KEY}"));
    let run = s
        .run(&["sync", "-c", &config.to_string_lossy(), "--json"])
        .await;
    run.expect_code(1);
    let error = run.source("corp")["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("AADSTS700027") && error.contains("The key was not found"),
        "{}",
        run.text()
    );
    // Every token request was refused, so nothing reached Graph itself. (The sync's resource
    // types ask for a token each, so there may be more than one refused request.)
    assert!(token_requests(&sim) >= 1);
    let log = sim.faults().log();
    assert_eq!(
        log.count("GET", "/v1.0/") + log.count("POST", "/v1.0/"),
        0,
        "no Graph request without a token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_replayed_assertion_is_refused_and_idhost_signs_a_fresh_one_per_request() {
    let pem_cert = certificate(APP_KEY, -1, 365);
    let (sim, server) = graph(Some(pem_cert.clone())).await;
    let s = Scratch::new();
    let config = entra_config(&s, &sim, &server.url(), &format!("{pem_cert}{APP_KEY}"));
    let config = config.to_string_lossy().into_owned();
    // Two syncs, two token requests, each accepted: no assertion is ever sent twice.
    s.run(&["sync", "-c", &config]).await.expect_code(0);
    let first = sim.last_client_assertion().expect("an accepted assertion");
    s.run(&["sync", "-c", &config]).await.expect_code(0);
    let second = sim.last_client_assertion().expect("an accepted assertion");
    assert_ne!(first, second);
    assert_eq!(token_requests(&sim), 2);
    // The first one sent again, as an eavesdropper would: refused.
    let c = sim.config();
    let form = format!(
        "grant_type=client_credentials&client_id={}&scope={}&client_assertion_type={}&client_assertion={first}",
        c.client_id,
        percent(&format!("{}/.default", server.url())),
        percent("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
    );
    let (status, body) = idhost_e2e::http(
        "POST",
        &format!("{}/{}/oauth2/v2.0/token", server.url(), c.tenant_id),
        &[("content-type", "application/x-www-form-urlencoded")],
        &form,
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("AADSTS700027") && body.contains("already used"),
        "{body}"
    );
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// `idhost login`: the test plays the browser (Ironclad) and the person at the device page (Entra)

use tokio::io::AsyncBufReadExt as _;

/// A running `idhost login`, its stdout read line by line.
struct Login {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

impl Login {
    fn spawn(s: &Scratch, config: &Path, source: &str, extra: &[&str]) -> Login {
        let mut cmd = idhost_e2e::idhost();
        cmd.args(["login", "-c", &config.to_string_lossy(), "--source", source])
            .args(extra)
            .current_dir(s.dir());
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start idhost login");
        let stdout = child.stdout.take().expect("stdout");
        Login {
            child,
            lines: tokio::io::BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// The first stdout line `pick` accepts (within 60 s).
    async fn line(&mut self, pick: impl Fn(&str) -> Option<String>) -> String {
        let found = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Ok(Some(line)) = self.lines.next_line().await {
                self.seen.push(line.clone());
                if let Some(found) = pick(&line) {
                    return Some(found);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(found)) => found,
            _ => panic!(
                "idhost login never printed it; stdout so far:\n{}",
                self.seen.join("\n")
            ),
        }
    }

    /// Waits for the exit (within 60 s): the code and everything it printed.
    async fn finish(mut self) -> (Option<i32>, String) {
        let mut rest = String::new();
        while let Ok(Some(line)) = self.lines.next_line().await {
            rest.push_str(&line);
            rest.push('\n');
        }
        let output = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            self.child.wait_with_output(),
        )
        .await
        .expect("idhost login exits")
        .expect("wait for idhost login");
        let text = format!(
            "{}\n{rest}\n--- stderr\n{}",
            self.seen.join("\n"),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    }
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The consent page answered `approve` (yes/no): the `Location` it redirects the browser to.
async fn consent(authorize_url: &str, approve: &str) -> String {
    let answer = no_redirects()
        .get(format!("{authorize_url}&approve={approve}"))
        .send()
        .await
        .expect("the authorize endpoint answers");
    assert_eq!(answer.status(), 302, "{:?}", answer.text().await);
    answer
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("a Location")
        .to_owned()
}

/// The browser following the redirect to idhost's loopback listener.
async fn follow(location: &str) {
    let answer = no_redirects()
        .get(location)
        .send()
        .await
        .expect("idhost's callback answers");
    assert_eq!(answer.status(), 200);
}

fn authorize_line(line: &str) -> Option<String> {
    let url = line.trim();
    url.contains("/oauth/authorize?").then(|| url.to_owned())
}

fn ironclad_login_config(s: &Scratch, sim: &sim_ironclad::Simulator, url: &str) -> PathBuf {
    let c = sim.config();
    s.config(&format!(
        "[sources.legal]\nconnector = \"ironclad\"\nread_only = true\n[sources.legal.settings]\n\
         auth = \"authorization_code\"\nbase_url = {}\nclient_id = {}\nclient_secret = {}\n{}",
        toml_str(url),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        sqlite_sink("idhost.db"),
    ))
}

fn vault_refresh_token(s: &Scratch, source: &str) -> Option<String> {
    let text = std::fs::read_to_string(s.path("idhost-vault.jsonl")).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "refresh_token" && v["source"] == source)
        .filter_map(|v| v["refresh_token"].as_str().map(str::to_owned))
        .next_back()
}

/// Logs `legal` in through the consent page; returns the login's output.
async fn ironclad_login(s: &Scratch, config: &Path) -> String {
    let mut login = Login::spawn(s, config, "legal", &[]);
    let url = login.line(authorize_line).await;
    assert!(
        url.contains("code_challenge_method=S256") && url.contains("state="),
        "{url}"
    );
    assert!(
        url.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"),
        "{url}"
    );
    follow(&consent(&url, "yes").await).await;
    let (code, text) = login.finish().await;
    assert_eq!(code, Some(0), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn ironclad_login_with_pkce_stores_the_refresh_token_in_the_vault_and_sync_uses_it() {
    let (sim, server) = ironclad().await;
    let s = Scratch::new();
    let config = ironclad_login_config(&s, &sim, &server.url());
    // Before the login a sync says what to do, and sends nothing.
    let before = s
        .run(&["sync", "-c", &config.to_string_lossy(), "--json"])
        .await;
    before.expect_code(1);
    assert!(before.text().contains("idhost login"), "{}", before.text());
    assert_eq!(sim.faults().log().len(), 0, "{}", before.text());

    let text = ironclad_login(&s, &config).await;
    let issued = sim.refresh_tokens_issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(
        vault_refresh_token(&s, "legal").as_deref(),
        Some(issued[0].as_str())
    );
    assert!(
        !text.contains(&issued[0]),
        "the refresh token was printed\n{text}"
    );
    assert!(
        !std::fs::read_to_string(&config)
            .unwrap()
            .contains(&issued[0])
    );
    let mode = std::fs::metadata(s.path("idhost-vault.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let run = s
        .run(&["sync", "-c", &config.to_string_lossy(), "--json"])
        .await;
    run.expect_code(0);
    assert_eq!(run.source("legal")["status"], "succeeded", "{}", run.text());
}

#[tokio::test(flavor = "multi_thread")]
async fn ironclad_login_denied_at_consent_stores_nothing() {
    let (sim, server) = ironclad().await;
    let s = Scratch::new();
    let config = ironclad_login_config(&s, &sim, &server.url());
    let mut login = Login::spawn(&s, &config, "legal", &[]);
    let url = login.line(authorize_line).await;
    let location = consent(&url, "no").await;
    assert!(location.contains("error=access_denied"), "{location}");
    follow(&location).await;
    let (code, text) = login.finish().await;
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("refused at the consent page: access_denied"),
        "{text}"
    );
    assert_eq!(sim.faults().log().count("POST", "/oauth/token"), 0);
    assert!(vault_refresh_token(&s, "legal").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn ironclad_login_redirect_with_the_wrong_state_is_not_exchanged() {
    let (sim, server) = ironclad().await;
    let s = Scratch::new();
    let config = ironclad_login_config(&s, &sim, &server.url());
    let mut login = Login::spawn(&s, &config, "legal", &[]);
    let url = login.line(authorize_line).await;
    let location = consent(&url, "yes").await;
    // A forged redirect: a valid code, another state.
    let mut forged = url::Url::parse(&location).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "forged-state".to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    follow(forged.as_str()).await;
    let (code, text) = login.finish().await;
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("`state` does not match"), "{text}");
    assert_eq!(
        sim.faults().log().count("POST", "/oauth/token"),
        0,
        "the code was not exchanged"
    );
    assert!(vault_refresh_token(&s, "legal").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn ironclad_refresh_token_rotated_mid_sync_is_stored_and_the_next_sync_uses_it() {
    let (sim, server) = ironclad().await;
    let s = Scratch::new();
    let config = ironclad_login_config(&s, &sim, &server.url());
    ironclad_login(&s, &config).await;
    // From here each refresh answers a new refresh token and retires the one used.
    sim.set_rotate_refresh_tokens(true);
    // The access token expires once the users are listed, while the group page is held: the
    // sync refreshes mid-way.
    sim.faults().push(
        sim_common::FaultRule::any(sim_common::FaultAction::Delay(
            std::time::Duration::from_millis(400),
        ))
        .on_path("/scim/v2/Groups")
        .times(1),
    );
    let expirer = {
        let sim = sim.clone();
        tokio::spawn(async move {
            while sim.faults().log().count("GET", "/scim/v2/Users") < 1 {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            sim.expire_tokens();
        })
    };
    let run = s
        .run(&["sync", "-c", &config.to_string_lossy(), "--json"])
        .await;
    expirer.abort();
    run.expect_code(0);
    let issued = sim.refresh_tokens_issued();
    // Login R1; the sync's first token R2; after the expiry mid-sync, R3.
    assert_eq!(
        issued.len(),
        3,
        "the sync rotated the refresh token twice: {issued:?}"
    );
    assert!(
        sim.faults().log().records().iter().any(|r| r.status == 401),
        "an access token expired mid-sync"
    );
    let latest = issued.last().unwrap().clone();
    assert_eq!(
        vault_refresh_token(&s, "legal").as_deref(),
        Some(latest.as_str())
    );
    // Every older token is retired: the next sync can only succeed with the stored one.
    let next = s
        .run(&["sync", "-c", &config.to_string_lossy(), "--json"])
        .await;
    next.expect_code(0);
    assert_eq!(
        next.source("legal")["status"],
        "succeeded",
        "{}",
        next.text()
    );
    let after = sim.refresh_tokens_issued();
    assert_eq!(
        after.len(),
        issued.len() + 1,
        "the next sync refreshed with {latest}"
    );
    assert_eq!(
        vault_refresh_token(&s, "legal").as_deref(),
        after.last().map(String::as_str)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn login_refuses_a_directory_vault_before_any_request() {
    let (sim, server) = ironclad().await;
    let s = Scratch::new();
    let config = ironclad_login_config(&s, &sim, &server.url());
    let dir = s.path("vaultdir");
    std::fs::create_dir(&dir).unwrap();
    let run = s
        .run(&[
            "login",
            "-c",
            &config.to_string_lossy(),
            "--source",
            "legal",
            "--vault",
            &dir.to_string_lossy(),
        ])
        .await;
    run.expect_code(2);
    assert!(
        run.text().contains(&dir.display().to_string()) && run.text().contains("is a directory"),
        "{}",
        run.text()
    );
    assert_eq!(sim.faults().log().len(), 0);
}

// Entra device code

async fn graph_device(ttl_secs: u64) -> (sim_graph::Simulator, RunningServer) {
    require_plugins(&["idhost_entra"]);
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: 20,
        groups: 3,
        memberships: 30,
        device_code_ttl: std::time::Duration::from_secs(ttl_secs),
        device_code_interval: std::time::Duration::from_secs(1),
        ..sim_graph::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve sim-graph");
    (sim, server)
}

fn entra_device_config(s: &Scratch, sim: &sim_graph::Simulator, url: &str) -> PathBuf {
    let c = sim.config();
    s.config(&format!(
        "[sources.corp]\nconnector = \"entra\"\nread_only = true\n[sources.corp.settings]\n\
         auth = \"device_code\"\ntenant_id = {}\nclient_id = {}\ngraph_url = {url}\n\
         login_url = {url}\n{}",
        toml_str(&c.tenant_id),
        toml_str(&c.client_id),
        sqlite_sink("idhost.db"),
        url = toml_str(url),
    ))
}

fn user_code_line(line: &str) -> Option<String> {
    let (_, rest) = line.split_once("enter the code ")?;
    Some(rest.split_whitespace().next()?.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_device_code_login_waits_out_pending_and_slow_down_then_sync_uses_the_token() {
    let (sim, server) = graph_device(900).await;
    let s = Scratch::new();
    let config = entra_device_config(&s, &sim, &server.url());
    sim.slow_down_polls(1);
    let started = std::time::Instant::now();
    let mut login = Login::spawn(&s, &config, "corp", &[]);
    let code = login.line(user_code_line).await;
    assert!(
        login
            .seen
            .iter()
            .any(|l| l.contains("https://microsoft.com/devicelogin"))
    );
    // The person takes a moment: the first polls are answered authorization_pending.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(sim.answer_device_code(&code, true));
    let (exit, text) = login.finish().await;
    assert_eq!(exit, Some(0), "{text}");
    // One slow_down adds 5 s to the 1 s interval (RFC 8628 §3.5).
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let issued = sim.refresh_tokens_issued();
    assert_eq!(
        vault_refresh_token(&s, "corp").as_deref(),
        issued.last().map(String::as_str)
    );
    assert!(!text.contains(issued.last().unwrap()), "{text}");

    let run = s
        .run(&["sync", "-c", &config.to_string_lossy(), "--json"])
        .await;
    run.expect_code(0);
    assert_eq!(run.source("corp")["status"], "succeeded", "{}", run.text());
    // Entra replaced the refresh token on use: the vault holds the newest.
    let after = sim.refresh_tokens_issued();
    assert_eq!(after.len(), issued.len() + 1);
    assert_eq!(
        vault_refresh_token(&s, "corp").as_deref(),
        after.last().map(String::as_str)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_device_code_that_expires_unapproved_stores_nothing() {
    let (sim, server) = graph_device(2).await;
    let s = Scratch::new();
    let config = entra_device_config(&s, &sim, &server.url());
    let mut login = Login::spawn(&s, &config, "corp", &[]);
    let _code = login.line(user_code_line).await;
    let (exit, text) = login.finish().await;
    assert_eq!(exit, Some(1), "{text}");
    assert!(text.contains("expired"), "{text}");
    assert!(vault_refresh_token(&s, "corp").is_none());
    assert!(sim.refresh_tokens_issued().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn entra_device_code_declined_stores_nothing() {
    let (sim, server) = graph_device(900).await;
    let s = Scratch::new();
    let config = entra_device_config(&s, &sim, &server.url());
    let mut login = Login::spawn(&s, &config, "corp", &[]);
    let code = login.line(user_code_line).await;
    assert!(sim.answer_device_code(&code, false));
    let (exit, text) = login.finish().await;
    assert_eq!(exit, Some(1), "{text}");
    assert!(
        text.contains("declined") && text.contains("authorization_declined"),
        "{text}"
    );
    assert!(vault_refresh_token(&s, "corp").is_none());
}
