//! Issue 13 points 11 and 12 for Clickwrap, end to end: the real `idhost` binary with the real
//! Clickwrap plugin against sim-clickwrap. Offset paging (`page`) that shifts when a user is
//! deleted between pages is relisted by the host; the connector sends the order it relies on
//! (`sort=id`: the simulator's unsorted order moves as users change), prefers a configured
//! static access token, and caches the client-credentials token across pages and syncs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use idhost_e2e::{Scratch, require_plugins, toml_str};
use serde_json::json;
use sim_clickwrap::{SimConfig, Simulator};
use sim_common::{FaultAction, FaultRule, Hook, RunningServer};

const SOURCE: &str = "clickwrap";
/// The SQLite sink, with change events.
const SINK: &str = "\n[sinks.db]\ntype = \"sqlite\"\npath = \"idhost.db\"\ninputs = [\"*\"]\nrecords = [\"resource\", \"entitlement\", \"grant\", \"event\", \"sync_run\"]\n";

async fn start(users: usize) -> (Simulator, RunningServer) {
    require_plugins(&["idhost_clickwrap"]);
    let sim = Simulator::new(SimConfig {
        users,
        ..SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve sim-clickwrap on loopback");
    (sim, server)
}

/// How the source authenticates.
enum Auth {
    /// `client_id` + `client_secret` (the token endpoint).
    ClientCredentials,
    /// The long-lived `access_token` shown when the API key was registered, with the client
    /// credentials beside it as a fallback.
    StaticToken,
}

/// A config syncing the simulator into `idhost.db`. Users are listed before sites
/// (`types_at_once = 1`): a user deleted upstream also shifts its site's membership pages, and
/// with both types listed at once either listing could be the first to give up, so the rows
/// that pin which listing is incomplete would pass or fail by the race.
fn config(s: &Scratch, sim: &Simulator, server: &RunningServer, auth: Auth) -> PathBuf {
    let c = sim.config();
    let credentials = match auth {
        Auth::ClientCredentials => format!(
            "client_id = {}\nclient_secret = {}\n",
            toml_str(&c.client_id),
            toml_str(&c.client_secret)
        ),
        Auth::StaticToken => format!(
            "access_token = {}\nclient_id = {}\nclient_secret = {}\n",
            toml_str(&c.access_token),
            toml_str(&c.client_id),
            toml_str(&c.client_secret)
        ),
    };
    s.config(&format!(
        "[sources.{SOURCE}]\nconnector = \"clickwrap\"\nread_only = true\ntypes_at_once = 1\n[sources.{SOURCE}.settings]\nbase_url = {}\ntoken_url = {}\n{credentials}account_id = \"{}\"\nper_page = 100\n{SINK}",
        toml_str(&format!("{}/v1.1", server.url())),
        toml_str(&format!("{}/oauth/token", server.url())),
        c.account_id,
    ))
}

fn members_path(sim: &Simulator) -> String {
    format!("/v1.1/accounts/{}/members", sim.config().account_id)
}

fn users_in_sim(sim: &Simulator) -> BTreeSet<String> {
    sim.user_ids().iter().map(|u| format!("user:{u}")).collect()
}

fn events_of(s: &Scratch) -> Vec<String> {
    s.db("idhost.db").strings(
        "SELECT event || ' ' || subject FROM events WHERE source = ?1 ORDER BY seq",
        [SOURCE],
    )
}

fn token_requests(sim: &Simulator) -> usize {
    sim.faults().log().count("POST", "/oauth/token")
}

/// The lowest user id the sink holds as `enabled` (only an active user's disappearance is a
/// `deactivated` event).
fn lowest_enabled(s: &Scratch, sim: &Simulator) -> u64 {
    let db = s.db("idhost.db");
    sim.user_ids()
        .into_iter()
        .find(|id| {
            db.resource(SOURCE, &format!("user:{id}"))
                .is_some_and(|r| r.status == "enabled")
        })
        .expect("an enabled user")
}

// ------------------------------------------------------------------ point 11: offset paging

#[tokio::test(flavor = "multi_thread")]
async fn a_user_deleted_between_pages_is_relisted_and_only_that_user_is_removed() {
    let (sim, server) = start(450).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server, Auth::ClientCredentials);
    s.sync(&config, &[]).await.expect_code(0);
    assert!(events_of(&s).is_empty(), "the baseline makes no events");

    // While page 2 is asked for, a user of page 1 is deleted upstream: every later user moves
    // up a place and page 2 would skip one. `total_count` changes, so the page asks for a
    // relist, and the host lists the users again.
    let victim = lowest_enabled(&s, &sim);
    let hook_sim = sim.clone();
    sim.faults().push(
        FaultRule::any(FaultAction::Run(Hook::new(move || {
            hook_sim.remove_user(victim);
        })))
        .on_path(&members_path(&sim))
        .after(1)
        .times(1),
    );
    let run = s.sync(&config, &[]).await;
    run.expect_code(0);
    assert!(
        run.stderr.contains("listing it again from the start"),
        "{}",
        run.text()
    );
    assert_eq!(
        s.db("idhost.db").resource_ids(SOURCE, "user"),
        users_in_sim(&sim),
        "exactly the upstream's users"
    );
    let deactivated: Vec<String> = events_of(&s)
        .into_iter()
        .filter(|e| e.starts_with("deactivated "))
        .collect();
    assert_eq!(
        deactivated,
        vec![format!("deactivated user:{victim}")],
        "the deleted user is removed once, and no other user is deactivated"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listing_that_never_stops_shifting_fails_the_source_as_incomplete_with_no_removal() {
    let (sim, server) = start(450).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server, Auth::ClientCredentials);
    s.sync(&config, &[]).await.expect_code(0);
    let before = s.db("idhost.db").snapshot(SOURCE);

    // Before every members page but the first of all, the lowest remaining user is deleted.
    let hook_sim = sim.clone();
    sim.faults().push(
        FaultRule::any(FaultAction::Run(Hook::new(move || {
            if let Some(first) = hook_sim.user_ids().first() {
                hook_sim.remove_user(*first);
            }
        })))
        .on_path(&members_path(&sim))
        .after(1)
        .times(u32::MAX),
    );
    let run = s.sync(&config, &[]).await;
    run.expect_code(1);
    let row = run.source(SOURCE);
    assert_eq!(row["status"], "failed", "{}", run.text());
    let error = row["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("listing `user` is incomplete")
            && error.contains("on each of 3 attempts")
            && error.contains("nothing is removed or deactivated"),
        "{error}"
    );
    assert_eq!(
        s.db("idhost.db").snapshot(SOURCE),
        before,
        "the previous snapshot is intact"
    );
    assert!(
        events_of(&s).is_empty(),
        "no removal from an unstable listing"
    );
}

// ------------------------------------------------------------------ point 12: order and tokens

#[tokio::test(flavor = "multi_thread")]
async fn the_members_listing_sends_its_order_and_a_user_changed_between_pages_moves_nothing() {
    let (sim, server) = start(450).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server, Auth::ClientCredentials);
    s.sync(&config, &[]).await.expect_code(0);

    // Unsorted, the simulator answers most recently changed first: a user renamed between
    // pages would jump to the front and push another one onto a page already read.
    let renamed = *sim.user_ids().last().expect("users");
    let hook_sim = sim.clone();
    sim.faults().push(
        FaultRule::any(FaultAction::Run(Hook::new(move || {
            hook_sim.set_user_field(renamed, "name", json!("Renamed Between Pages"));
        })))
        .on_path(&members_path(&sim))
        .after(1)
        .times(1),
    );
    let run = s.sync(&config, &[]).await;
    run.expect_code(0);
    let pages: Vec<String> = sim
        .faults()
        .log()
        .records()
        .into_iter()
        .filter(|r| r.path == members_path(&sim))
        .map(|r| r.query)
        .collect();
    assert!(pages.len() >= 5, "{pages:?}");
    for query in &pages {
        assert!(
            query.split('&').any(|p| p == "sort=id"),
            "every members page names its order: {query}"
        );
    }
    assert_eq!(
        s.db("idhost.db").resource_ids(SOURCE, "user"),
        users_in_sim(&sim)
    );
    assert_eq!(
        events_of(&s)
            .into_iter()
            .filter(|e| e.starts_with("deactivated "))
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_configured_access_token_is_used_without_asking_the_token_endpoint() {
    let (sim, server) = start(450).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server, Auth::StaticToken);
    s.sync(&config, &[]).await.expect_code(0);
    s.sync(&config, &[]).await.expect_code(0);
    assert_eq!(token_requests(&sim), 0, "no token endpoint call");
    assert_eq!(
        s.db("idhost.db").resource_ids(SOURCE, "user"),
        users_in_sim(&sim)
    );
}

/// Two syncs in one process (`idhost run`, a 2 s schedule): the token fetched for the first
/// page serves every page of both. (Separate `idhost sync` processes fetch one each: a bearer
/// token is a secret, and the connector keeps it in memory only, never in the state database.)
#[tokio::test(flavor = "multi_thread")]
async fn the_client_credentials_token_is_fetched_once_across_pages_and_two_syncs() {
    let (sim, server) = start(450).await;
    let s = Scratch::new();
    let config = config(&s, &sim, &server, Auth::ClientCredentials);
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace(
            "read_only = true\n",
            "read_only = true\nschedule = \"2s\"\n",
        ),
    )
    .expect("config");
    let mut child = tokio::process::Command::from(idhost_e2e::idhost())
        .args(["run", "-c"])
        .arg(&config)
        .args(["--listen", "127.0.0.1:0", "--max-jitter", "0s"])
        .env_remove("IDHOST_LISTEN")
        .current_dir(s.dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start idhost run");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let succeeded = || {
        let path = s.path("idhost.db");
        if !path.exists() {
            return 0;
        }
        let db = idhost_e2e::Db::open(&path);
        let has_runs = db.count(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sync_runs'",
            [],
        );
        if has_runs == 0 {
            return 0;
        }
        db.count(
            "SELECT count(*) FROM sync_runs WHERE source = ?1 AND status = 'succeeded'",
            [SOURCE],
        )
    };
    while succeeded() < 2 {
        assert!(
            std::time::Instant::now() < until,
            "two scheduled syncs did not succeed within 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let killed = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().expect("pid").to_string())
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("idhost run stops")
        .expect("exit status");
    assert_eq!(status.code(), Some(0));
    let pages = sim.faults().log().count("GET", &members_path(&sim));
    assert!(pages >= 10, "two syncs of five pages each: {pages}");
    assert_eq!(
        token_requests(&sim),
        1,
        "one token for every page of both syncs"
    );
}
