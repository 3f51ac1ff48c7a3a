//! Issue 8, secrets: no configured secret and no issued token leaks anywhere a person or a
//! machine can read it.
//!
//! For each connector (real plugin, its simulator in this process, distinctive credentials):
//! a full sync with `--log-level debug` in the pretty and the JSON log format, a provisioning
//! call (entra, ironclad: a grant and a revoke; clickwrap has no provisioner, so the refused call
//! is scanned), a sync with a wrong secret (its error messages), and `idhost run` with its
//! `/metrics` text. Every line of stdout and stderr, the metrics, every row of every table of
//! the SQLite sink and the state database, and the JSONL sink are scanned for every configured
//! secret (client secrets, static bearer/access tokens) and every token the simulator issued or
//! received (captured by a layer around the simulator's router: `access_token`/`refresh_token`
//! of token answers and the `Authorization` header of every request).
//!
//! `Debug` of every connector's settings struct is checked in each connector's own
//! tests/settings_debug.rs (one test binary cannot link two plugins: their abi_stable root
//! module symbols collide).
#![allow(
    clippy::disallowed_methods,
    reason = "the tests read the databases idhost wrote the way an outside client would"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use idhost_e2e::{Run, Scratch, http, require_plugins, toml_str};
use rusqlite::{Connection, OpenFlags, types::ValueRef};
use sim_common::RunningServer;

/// Tokens the simulator issued or was shown.
type Captured = Arc<Mutex<BTreeSet<String>>>;

/// Records bearer/basic credentials of requests and tokens in JSON answers of token endpoints.
async fn capture(State(seen): State<Captured>, request: Request, next: Next) -> Response {
    if let Some(value) = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
    {
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("Basic "))
            .unwrap_or(value);
        seen.lock().expect("lock").insert(token.to_owned());
    }
    let is_token = request.uri().path().contains("token");
    let response = next.run(request).await;
    if !is_token {
        return response;
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("token answer body");
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        for key in ["access_token", "refresh_token", "id_token"] {
            if let Some(t) = json[key].as_str() {
                seen.lock().expect("lock").insert(t.to_owned());
            }
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

async fn serve_capturing(router: Router, seen: &Captured) -> RunningServer {
    let router = router.layer(axum::middleware::from_fn_with_state(seen.clone(), capture));
    sim_common::serve(router, 0)
        .await
        .expect("serve a simulator on loopback")
}

/// Everything readable the runs left behind, labelled.
#[derive(Default)]
struct Haystack(Vec<(String, String)>);

impl Haystack {
    fn run(&mut self, label: &str, run: &Run) {
        self.0
            .push((format!("{label}: stdout"), run.stdout.clone()));
        self.0
            .push((format!("{label}: stderr"), run.stderr.clone()));
    }

    fn text(&mut self, label: &str, text: String) {
        self.0.push((label.to_owned(), text));
    }

    /// Every cell of every table of a SQLite file, one line per row.
    fn sqlite(&mut self, path: &Path) {
        if !path.exists() {
            return;
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open a database");
        let tables: Vec<String> = {
            let mut stmt = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .expect("list tables");
            stmt.query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .expect("table names")
        };
        let mut dump = String::new();
        let mut rows = 0;
        for table in tables {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM \"{table}\""))
                .expect("select");
            let columns = stmt.column_count();
            let mut query = stmt.query([]).expect("query");
            while let Some(row) = query.next().expect("row") {
                rows += 1;
                dump.push_str(&table);
                for i in 0..columns {
                    dump.push('\t');
                    match row.get_ref(i).expect("cell") {
                        ValueRef::Null => {}
                        ValueRef::Integer(n) => dump.push_str(&n.to_string()),
                        ValueRef::Real(x) => dump.push_str(&x.to_string()),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            dump.push_str(&String::from_utf8_lossy(t))
                        }
                    }
                }
                dump.push('\n');
            }
        }
        assert!(rows > 0, "{} has no rows to scan", path.display());
        self.text(&path.display().to_string(), dump);
    }

    /// Panics naming the place and the line if any secret occurs anywhere.
    fn assert_clean(&self, secrets: &BTreeSet<String>) {
        let mut scanned = 0;
        for (label, text) in &self.0 {
            scanned += text.lines().count();
            for secret in secrets.iter().filter(|s| s.len() >= 8) {
                if let Some(line) = text.lines().find(|l| l.contains(secret.as_str())) {
                    panic!("a secret (`{}…`) appears in {label}:\n{line}", &secret[..4]);
                }
            }
        }
        assert!(scanned > 50, "too little output scanned ({scanned} lines)");
        eprintln!(
            "scanned {scanned} lines in {} places for {} secrets and tokens",
            self.0.len(),
            secrets.len()
        );
    }
}

/// A free loopback port for `idhost run --listen`.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// `idhost run` until every source has a sync_run in `idhost.db`, then `/metrics`, then SIGTERM.
async fn daemon_metrics(s: &Scratch, config: &Path, sources: usize, hay: &mut Haystack) {
    let before = Connection::open_with_flags(s.path("idhost.db"), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM sync_runs", [], |r| r.get::<_, i64>(0)))
        .expect("sync_runs after the syncs") as usize;
    let port = free_port();
    let child = tokio::process::Command::from(idhost_e2e::idhost())
        .args(["--log-level", "debug", "--log-format", "json", "run", "-c"])
        .arg(config)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--max-jitter",
            "0s",
        ])
        .current_dir(s.dir())
        .env_remove("IDHOST_LISTEN")
        .env_remove("IDHOST_LOG_LEVEL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start idhost run");
    let started = Instant::now();
    let db = s.path("idhost.db");
    let runs = || {
        Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)
            .and_then(|c| c.query_row("SELECT count(*) FROM sync_runs", [], |r| r.get::<_, i64>(0)))
            .unwrap_or(0) as usize
    };
    loop {
        if runs() >= before + sources {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "idhost run did not finish a sync of every source within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, metrics) = http("GET", &format!("http://127.0.0.1:{port}/metrics"), &[], "").await;
    assert_eq!(status, 200, "{metrics}");
    assert!(metrics.contains("idhost_"), "{metrics}");
    hay.text("idhost run /metrics", metrics);
    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("idhost run stops within 30 s of SIGTERM")
        .expect("idhost run output");
    hay.text(
        "idhost run: stdout",
        String::from_utf8_lossy(&output.stdout).into_owned(),
    );
    hay.text(
        "idhost run: stderr",
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
}

const FORMATS: [&str; 2] = ["pretty", "json"];

/// Syncs in both log formats, runs `provision` calls, a wrong-secret sync and the daemon, then
/// scans everything for `secrets` and the captured tokens.
async fn scan(
    s: &Scratch,
    body: &str,
    wrong_body: &str,
    sources: usize,
    (provisions, provisions_succeed): (&[Vec<String>], bool),
    mut secrets: BTreeSet<String>,
    seen: &Captured,
) {
    let config = s.config(&format!(
        "{body}\n[sinks.stream]\ntype = \"jsonl\"\npath = \"events.jsonl\"\n"
    ));
    let config_arg = config.to_string_lossy().into_owned();
    let mut hay = Haystack::default();
    for (i, format) in FORMATS.iter().enumerate() {
        let mut args = vec![
            "--log-level",
            "debug",
            "--log-format",
            format,
            "sync",
            "-c",
            &config_arg,
        ];
        if i == 1 {
            args.push("--full");
        }
        let run = s.run(&args).await;
        run.expect_code(0);
        assert!(
            run.stderr.lines().count() > 5,
            "debug logs expected\n{}",
            run.text()
        );
        hay.run(&format!("sync ({format} logs)"), &run);
    }
    for (i, op) in provisions.iter().enumerate() {
        let format = FORMATS[i % 2];
        let mut args = vec![
            "--log-level",
            "debug",
            "--log-format",
            format,
            "provision",
            "-c",
            &config_arg,
        ];
        args.extend(op.iter().map(String::as_str));
        let run = s.run(&args).await;
        if provisions_succeed {
            run.expect_code(0);
        } else {
            assert_ne!(run.code, Some(0), "{}", run.text());
        }
        hay.run(&format!("provision {op:?} ({format} logs)"), &run);
    }
    let wrong = s.config_named("wrong.toml", wrong_body);
    let wrong_arg = wrong.to_string_lossy().into_owned();
    for format in FORMATS {
        let run = s
            .run(&[
                "--log-level",
                "debug",
                "--log-format",
                format,
                "sync",
                "-c",
                &wrong_arg,
            ])
            .await;
        assert_eq!(
            run.code,
            Some(1),
            "a wrong secret fails the sync\n{}",
            run.text()
        );
        hay.run(&format!("sync with a wrong secret ({format} logs)"), &run);
    }
    daemon_metrics(s, &config, sources, &mut hay).await;
    hay.sqlite(&s.path("idhost.db"));
    hay.sqlite(&s.path("state.db"));
    hay.text(
        "events.jsonl",
        std::fs::read_to_string(s.path("events.jsonl")).expect("the JSONL sink was written"),
    );
    // Control: the scan sees what the debug logs say about requests and what the sinks hold.
    let all: String = hay.0.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("127.0.0.1"), "debug logs name no upstream URL");
    let captured = seen.lock().expect("lock").clone();
    assert!(!captured.is_empty(), "the capture layer saw no token");
    secrets.extend(captured);
    // The wrong secret is in the wrong config file only.
    hay.assert_clean(&secrets);
}

#[tokio::test]
async fn entra_secrets_and_tokens_never_appear_in_logs_errors_metrics_or_sinks() {
    require_plugins(&["idhost_entra"]);
    let secret = "graph-S3cr3t-9fQ2-zz";
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        client_secret: secret.to_owned(),
        users: 60,
        groups: 8,
        memberships: 150,
        ..sim_graph::SimConfig::default()
    });
    let seen = Captured::default();
    let server = serve_capturing(sim.router(), &seen).await;
    let c = sim.config();
    let section = |secret: &str| {
        format!(
            "[sources.corp]\nconnector = \"entra\"\nschedule = \"1h\"\n[sources.corp.settings]\ntenant_id = {}\nclient_id = {}\nclient_secret = {}\ngraph_url = {url}\nlogin_url = {url}\n\n[sinks.db]\ntype = \"sqlite\"\npath = \"idhost.db\"\ninputs = [\"*\"]\n",
            toml_str(&c.tenant_id),
            toml_str(&c.client_id),
            toml_str(secret),
            url = toml_str(&server.url()),
        )
    };
    let group = sim.group_ids()[0].clone();
    let members: BTreeSet<String> = sim.group_members(&group).into_iter().collect();
    let user = sim
        .user_ids()
        .into_iter()
        .find(|u| !members.contains(u))
        .expect("a user outside the group");
    let provisions = vec![
        ops(&[
            "--source",
            "corp",
            "grant",
            "--entitlement",
            &format!("group:{group}:member"),
            "--principal",
            &format!("user:{user}"),
        ]),
        ops(&[
            "--source",
            "corp",
            "revoke",
            "--grant",
            &format!("group:{group}:member:user:{user}"),
        ]),
    ];
    let s = Scratch::new();
    let wrong = "graph-Wr0ng-secret-77";
    scan(
        &s,
        &section(secret),
        &section(wrong),
        1,
        (&provisions, true),
        set(&[secret, wrong]),
        &seen,
    )
    .await;
    assert_eq!(
        sim.group_members(&group).len(),
        members.len(),
        "grant then revoke"
    );
}

#[tokio::test]
async fn ironclad_secrets_and_tokens_never_appear_in_logs_errors_metrics_or_sinks() {
    require_plugins(&["idhost_ironclad"]);
    let (secret, bearer) = ("ironclad-S3cr3t-4kP8", "ironclad-St4tic-Bearer-1x");
    let sim = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        client_secret: secret.to_owned(),
        bearer_token: bearer.to_owned(),
        users: 60,
        groups: 4,
        members_per_group: 10,
        ..sim_ironclad::SimConfig::default()
    });
    let seen = Captured::default();
    let server = serve_capturing(sim.router(), &seen).await;
    let c = sim.config();
    let body = |secret: &str, bearer: &str| {
        format!(
            "[sources.legal]\nconnector = \"ironclad\"\nschedule = \"1h\"\n[sources.legal.settings]\nbase_url = {url}\nclient_id = {}\nclient_secret = {}\nas_user_email = {}\n\
             [sources.legal_static]\nconnector = \"ironclad\"\nschedule = \"1h\"\n[sources.legal_static.settings]\nbase_url = {url}\nbearer_token = {}\nas_user_email = {}\n\n\
             [sinks.db]\ntype = \"sqlite\"\npath = \"idhost.db\"\ninputs = [\"*\"]\n",
            toml_str(&c.client_id),
            toml_str(secret),
            toml_str(&c.admin_email),
            toml_str(bearer),
            toml_str(&c.admin_email),
            url = toml_str(&server.url()),
        )
    };
    let group = sim.group_ids()[0].clone();
    let members: BTreeSet<String> = sim.group_members(&group).into_iter().collect();
    let user = sim
        .user_ids()
        .into_iter()
        .find(|u| !members.contains(u))
        .expect("a user outside the group");
    let provisions = vec![
        ops(&[
            "--source",
            "legal",
            "grant",
            "--entitlement",
            &format!("group:{group}:member"),
            "--principal",
            &format!("user:{user}"),
        ]),
        ops(&[
            "--source",
            "legal_static",
            "revoke",
            "--grant",
            &format!("group:{group}:member:user:{user}"),
        ]),
    ];
    let s = Scratch::new();
    let (wrong, wrong_bearer) = ("ironclad-Wr0ng-secret-31", "ironclad-Wr0ng-bearer-31");
    scan(
        &s,
        &body(secret, bearer),
        &body(wrong, wrong_bearer),
        2,
        (&provisions, true),
        set(&[secret, bearer, wrong, wrong_bearer]),
        &seen,
    )
    .await;
    assert_eq!(
        sim.group_members(&group).len(),
        members.len(),
        "grant then revoke"
    );
}

#[tokio::test]
async fn clickwrap_secrets_and_tokens_never_appear_in_logs_errors_metrics_or_sinks() {
    require_plugins(&["idhost_clickwrap"]);
    let (secret, static_token) = ("clickwrap-S3cr3t-8hJ1", "clickwrap-St4tic-Token-6v");
    let sim = sim_clickwrap::Simulator::new(sim_clickwrap::SimConfig {
        client_secret: secret.to_owned(),
        access_token: static_token.to_owned(),
        users: 60,
        ..sim_clickwrap::SimConfig::default()
    });
    let seen = Captured::default();
    let server = serve_capturing(sim.router(), &seen).await;
    let c = sim.config();
    let body = |secret: &str, token: &str| {
        format!(
            "[sources.clickwrap]\nconnector = \"clickwrap\"\nschedule = \"1h\"\n[sources.clickwrap.settings]\nbase_url = {base}\ntoken_url = {token_url}\nclient_id = {}\nclient_secret = {}\naccount_id = \"{}\"\n\
             [sources.clickwrap_static]\nconnector = \"clickwrap\"\nschedule = \"1h\"\n[sources.clickwrap_static.settings]\nbase_url = {base}\naccess_token = {}\naccount_id = \"{}\"\n\n\
             [sinks.db]\ntype = \"sqlite\"\npath = \"idhost.db\"\ninputs = [\"*\"]\n",
            toml_str(&c.client_id),
            toml_str(secret),
            c.account_id,
            toml_str(token),
            c.account_id,
            base = toml_str(&format!("{}/v1.1", server.url())),
            token_url = toml_str(&format!("{}/oauth/token", server.url())),
        )
    };
    let user = sim.user_ids()[0];
    // Clickwrap has no provisioner: the refusal (and its logs) is scanned too.
    let provisions = vec![ops(&[
        "--source",
        "clickwrap",
        "update",
        "--resource",
        &format!("user:{user}"),
        "--set",
        "name=x",
    ])];
    let s = Scratch::new();
    let (wrong, wrong_token) = ("clickwrap-Wr0ng-secret-52", "clickwrap-Wr0ng-token-52");
    scan(
        &s,
        &body(secret, static_token),
        &body(wrong, wrong_token),
        2,
        (&provisions, false),
        set(&[secret, static_token, wrong, wrong_token]),
        &seen,
    )
    .await;
}

fn ops(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}
