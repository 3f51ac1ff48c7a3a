//! `idhost bench`: how close a sync comes to what the upstream allows.
//!
//! Every scenario starts the simulators in this process (with injected latency), writes a
//! config that syncs the real connector plugins into a sink in a temporary directory, runs
//! `idhost sync --json` on it as a child process, and prints one table row:
//!
//! * `requests`: requests the simulator logged (`sim_common::RequestLog`), token calls included;
//! * `bound`: the lower bound on wall time the upstream's documented limits allow, i.e. the
//!   fewest requests a sync can make, divided by the concurrency the upstream allows, times the
//!   injected latency — and, where a documented rate limit would stretch that, the time the rate
//!   limit needs for the same requests. Each scenario documents its formula below;
//! * `wall` (the child's, start to exit), `CPU` (the child's user + system time, which it
//!   reports in its JSON summary), `ratio` (wall ÷ bound), `records` (resources, entitlements
//!   and grants received), `rec/s`, and `peak RSS`: the `idhost sync` process's own `VmHWM`,
//!   which it reports in its JSON summary — the simulators live in this process, so their
//!   datasets are not counted against the sync.
//!
//! Two scenarios measure a shape rather than one sync: `flat` runs the Ironclad scenario at ¼,
//! ½ and all of its size and prints the peak RSS of each (memory must not grow with the
//! tenant), and `resync` runs the SQLite sink scenario three times into the same state and
//! sink — the first sync, an unchanged re-sync and one where 1% of the records changed — and
//! prints each one's wall and CPU time against the first's.
//!
//! Targets (issue 18): wall ≤ 1.15 × bound for `entra`; peak RSS ≤ 48 MB for `ironclad` at
//! 20k and at 50k users (`flat`), ≤ 100 MB for `entra` (100k users / 1M memberships), ≤ 96 MB
//! for the SQLite sink at 1M grants, ≤ 128 MB for `all`; an unchanged re-sync ≤ 50% of the
//! first sync's wall and CPU, a 1%-changed one ≤ 60%; SQLite sink ≥ 300k records/s, Postgres
//! no slower. The bench reports misses; it does not fail on them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::cli::{BenchArgs, Scenario};
use crate::exit::{CommandError, Outcome};

/// One printed row.
#[derive(Debug, Default)]
struct Row {
    name: String,
    requests: Option<usize>,
    bound: Option<Duration>,
    wall: Duration,
    /// CPU time (user + system) of the `idhost sync` child.
    cpu: Option<Duration>,
    records: u64,
    rss_kb: Option<u64>,
    note: String,
}

const ALL: [Scenario; 10] = [
    Scenario::Entra,
    Scenario::Ironclad,
    Scenario::Clickwrap,
    Scenario::All,
    Scenario::Sqlite,
    Scenario::Postgres,
    Scenario::Jsonl,
    Scenario::Plugin,
    Scenario::Flat,
    Scenario::Resync,
];

/// Runs the chosen scenarios and prints the table on stdout.
pub(crate) async fn run(flag: Option<&Path>, args: BenchArgs) -> Result<Outcome, CommandError> {
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        return Err(CommandError::usage(anyhow::anyhow!(
            "--scale must be a positive number like `0.1`; got `{}`",
            args.scale
        )));
    }
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    let latency = Duration::from_millis(args.latency_ms);
    let mut failed = false;
    println!("{}", header());
    for scenario in scenarios {
        let result = match scenario {
            Scenario::Entra | Scenario::Ironclad | Scenario::Clickwrap | Scenario::All => {
                upstream(flag, scenario, args.scale, latency)
                    .await
                    .map(|r| vec![r])
            }
            Scenario::Sqlite | Scenario::Postgres | Scenario::Jsonl => {
                sink(flag, scenario, args.scale, &args.postgres_url)
                    .await
                    .map(|r| vec![r])
            }
            Scenario::Plugin => plugin_boundary(flag, args.scale).await.map(|r| vec![r]),
            Scenario::Flat => flat(flag, args.scale, latency).await.map(|r| vec![r]),
            Scenario::Resync => resync(flag, args.scale).await,
        };
        let rows = match result {
            Ok(rows) => rows,
            Err(err) => {
                failed = true;
                vec![Row {
                    name: name(scenario).to_owned(),
                    note: format!("FAILED: {err:#}"),
                    ..Row::default()
                }]
            }
        };
        for row in rows {
            println!("{}", format_row(&row));
        }
    }
    Ok(if failed {
        Outcome::Failed
    } else {
        Outcome::Success
    })
}

fn name(scenario: Scenario) -> &'static str {
    match scenario {
        Scenario::Entra => "entra",
        Scenario::Ironclad => "ironclad",
        Scenario::Clickwrap => "clickwrap",
        Scenario::All => "all",
        Scenario::Sqlite => "sqlite",
        Scenario::Postgres => "postgres",
        Scenario::Jsonl => "jsonl",
        Scenario::Plugin => "plugin",
        Scenario::Flat => "flat",
        Scenario::Resync => "resync",
    }
}

fn header() -> String {
    format!(
        "{:<10} {:>9} {:>9} {:>9} {:>8} {:>6} {:>9} {:>10} {:>9}  {}",
        "scenario",
        "requests",
        "bound",
        "wall",
        "CPU",
        "ratio",
        "records",
        "rec/s",
        "peak RSS",
        "note"
    )
}

fn format_row(row: &Row) -> String {
    let secs = |d: Duration| format!("{:.2}s", d.as_secs_f64());
    let dash = || "-".to_owned();
    let wall = row.wall.as_secs_f64();
    let ratio = match row.bound {
        Some(b) if !b.is_zero() && wall > 0.0 => format!("{:.2}", wall / b.as_secs_f64()),
        _ => dash(),
    };
    let rate = if wall > 0.0 {
        format!("{:.0}", row.records as f64 / wall)
    } else {
        dash()
    };
    format!(
        "{:<10} {:>9} {:>9} {:>9} {:>8} {:>6} {:>9} {:>10} {:>9}  {}",
        row.name,
        row.requests.map_or_else(dash, |r| r.to_string()),
        row.bound.map_or_else(dash, secs),
        secs(row.wall),
        row.cpu.map_or_else(dash, secs),
        ratio,
        row.records,
        rate,
        row.rss_kb
            .map_or_else(dash, |kb| format!("{:.1}MB", kb as f64 / 1024.0)),
        row.note
    )
}

fn scaled(n: usize, scale: f64) -> usize {
    ((n as f64 * scale).round() as usize).max(1)
}

/// What one measured sync reported.
struct Synced {
    wall: Duration,
    /// CPU time (user + system) of the `idhost sync` process.
    cpu: Option<Duration>,
    records: u64,
    /// Peak RSS of the `idhost sync` process, in kB.
    rss_kb: Option<u64>,
    /// Change events the sync made, all sources and kinds together.
    changes: u64,
}

/// Runs one `idhost sync --json` of `config_text` (with `${VARS}` from `vars`) as a child
/// process and times it. A child of its own, so the peak RSS is the sync's alone: not the
/// simulators' datasets in this process, nor what an earlier scenario left resident.
async fn sync_once(
    flag: Option<&Path>,
    dir: &Path,
    config_text: String,
    vars: &HashMap<&str, String>,
) -> Result<Synced, anyhow::Error> {
    let config_path = dir.join("bench.toml");
    // Checked here first, so a missing plugin is named before anything runs.
    let config = crate::config::parse(&config_path, config_text.clone(), &|name| {
        vars.get(name).cloned()
    })
    .map(Arc::new)
    .context("the bench's own config")?;
    let registry = crate::plugins::Registry::for_config(flag, Some(&config))?;
    for source in &config.sources {
        if registry.get(&source.connector).is_none() {
            anyhow::bail!(
                "the bench needs the `{}` plugin, which is not in {}: build the workspace first (`cargo build --workspace --release`) or pass --plugin-dir",
                source.connector,
                registry.dir.display()
            );
        }
    }
    std::fs::write(&config_path, &config_text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let exe = std::env::current_exe().context("finding the idhost executable")?;
    let mut command = tokio::process::Command::new(&exe);
    command
        .args(["--log-level", "warn", "--plugin-dir"])
        .arg(&registry.dir)
        .args(["sync", "--json", "-c"])
        .arg(&config_path)
        .current_dir(dir)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = command
        .output()
        .await
        .with_context(|| format!("running {} sync", exe.display()))?;
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout).with_context(|| {
        format!(
            "`idhost sync --json` exited with {} and printed no summary; its log:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })?;
    let mut records = 0;
    let mut rss_kb = None;
    let mut cpu_ms = None;
    let mut changes = 0;
    for row in &rows {
        let source = row["source"].as_str().unwrap_or("?");
        if row["status"] != "succeeded" {
            anyhow::bail!(
                "source `{source}` did not succeed: {}",
                row["error"].as_str().unwrap_or("no error recorded")
            );
        }
        let counts = &row["counts"];
        let resources: u64 = counts["resources"]
            .as_object()
            .map(|m| m.values().filter_map(serde_json::Value::as_u64).sum())
            .unwrap_or(0);
        records += resources
            + counts["entitlements"].as_u64().unwrap_or(0)
            + counts["grants"].as_u64().unwrap_or(0);
        rss_kb = rss_kb.max(row["process_peak_rss_kb"].as_u64());
        cpu_ms = cpu_ms.max(row["process_cpu_ms"].as_u64());
        changes += row["changes"].as_object().map_or(0, |m| {
            m.values().filter_map(serde_json::Value::as_u64).sum()
        });
    }
    if !output.status.success() {
        anyhow::bail!("`idhost sync` exited with {}", output.status);
    }
    Ok(Synced {
        wall,
        cpu: cpu_ms.map(Duration::from_millis),
        records,
        rss_kb,
        changes,
    })
}

fn temp_dir() -> Result<tempfile::TempDir, anyhow::Error> {
    tempfile::Builder::new()
        .prefix("idhost-bench")
        .tempdir()
        .context("creating a temporary directory")
}

fn sqlite_sink(dir: &Path) -> String {
    format!(
        "state_path = {state:?}\n[sinks.db]\ntype = \"sqlite\"\npath = {db:?}\ninputs = [\"*\"]\n",
        state = dir.join("state.db").display().to_string(),
        db = dir.join("bench.db").display().to_string(),
    )
}

/// Sizes and lower bounds of the upstream scenarios.
struct Upstreams {
    entra: Option<sim_graph::Simulator>,
    ironclad: Option<sim_ironclad::Simulator>,
    clickwrap: Option<sim_clickwrap::Simulator>,
}

/// Entra bound. Fewest requests: one token call, ⌈users/999⌉ `/users` pages and
/// ⌈groups/999⌉ `/groups` pages (`$top` ≤ 999), plus members and owners of every group read 20
/// per `$batch` (the documented batch maximum) — ⌈2·groups/20⌉ batches. Resource types are
/// listed at once (each its own endpoint and nextLink chain), so the latency bound is the
/// longest chain, not their sum: users (⌈users/999⌉ pages, each needing the previous page's
/// nextLink) against groups (⌈groups/999⌉ pages, then their batches with up to `concurrency`,
/// connector default 4, in flight): (1 + max(user pages, group pages + ⌈batches/4⌉)) × latency.
/// Throttle bound (concepts/throttling-limits.md): identity-and-access resource units, an L
/// tenant (> 500 users) 8,000 per 10 s, one bucket for the app+tenant whatever runs at once.
/// `GET users` costs 2, −1 for `$select` = 1; a group page 1; `groups/{id}/members` 3 − 1 = 2;
/// `groups/{id}/owners` 1 (never below 1); every inner read of a `$batch` is charged on its
/// own. So RU = pages + 3·groups, and a token bucket that starts full needs (RU − 8,000) / 800 s
/// for them. bound = max(latency bound, throttle bound). Apps, roles and managed identities add
/// a handful of requests and are ignored (they make the bound lower, never higher).
///
/// Why `$batch` and not `groups/delta` with members (the other documented way to read every
/// membership) is the floor: see `groups_page` in connectors/entra/src/sync.rs — delta costs
/// 1 RU a page but its pages are one nextLink chain of Graph-chosen size, so its time grows
/// with the round trip, where the batches' floor is the throttle's.
fn entra_bound(users: usize, groups: usize, latency: Duration) -> (usize, Duration) {
    let (user_pages, group_pages) = (users.div_ceil(999), groups.div_ceil(999));
    let pages = user_pages + group_pages;
    let batches = (2 * groups).div_ceil(20);
    let requests = 1 + pages + batches;
    let chain = user_pages.max(group_pages + batches.div_ceil(4));
    let latency_bound = latency * (1 + chain) as u32;
    let ru = (pages + 3 * groups) as f64;
    let throttle_bound = Duration::from_secs_f64((ru - 8000.0).max(0.0) / 800.0);
    (requests, latency_bound.max(throttle_bound))
}

/// SCIM list pages the Ironclad connector fetches at once once `totalResults` is known (its
/// `pages_at_once` default: Ironclad documents per-minute limits, not a concurrency limit).
const IRONCLAD_PAGES_AT_ONCE: usize = 4;

/// Ironclad bound. Fewest requests: one token call, ⌈users/1000⌉ `/Users` pages and
/// ⌈groups/1000⌉ `/Groups` pages (SCIM `count` ≤ 1000 in the simulator; groups carry their
/// members inline, so no per-group reads). The first page of a listing gives `totalResults`,
/// after which every later `startIndex` is known and [`IRONCLAD_PAGES_AT_ONCE`] pages are
/// requested at once; users and groups are listed at once (separate endpoints and budgets).
/// So a listing of n pages is a chain of 1 + ⌈(n − 1)/4⌉ round trips, and the latency bound is
/// (1 + the longer chain) × latency. Rate limits (developer.ironcladapp.com/reference/
/// clm-api-rate-limits): 600/min for users and 600/min for groups (separate buckets), so a
/// bucket with n requests needs at least (⌈n/600⌉ − 1) minutes.
/// bound = max(latency bound, rate bound).
fn ironclad_bound(users: usize, groups: usize, latency: Duration) -> (usize, Duration) {
    let (u, g) = (users.div_ceil(1000), groups.div_ceil(1000));
    let requests = 1 + u + g;
    let chain = |n: usize| 1 + n.saturating_sub(1).div_ceil(IRONCLAD_PAGES_AT_ONCE);
    let rate = |n: usize| Duration::from_secs(60 * (n.div_ceil(600).saturating_sub(1)) as u64);
    (
        requests,
        (latency * (1 + chain(u).max(chain(g))) as u32)
            .max(rate(u))
            .max(rate(g)),
    )
}

/// Clickwrap bound. Fewest requests: one token call, ⌈users/100⌉ account member pages and, for
/// the one (primary) site every user belongs to, ⌈users/100⌉ `/sites/{id}/memberships` pages
/// (`per_page` ≤ 100 per reference/pagination; `has_more` chains each listing: concurrency 1),
/// plus one `/sites` page. The two resource types (users; sites with their memberships) are
/// listed at once, so the latency bound is the longer chain: (1 + 1 + ⌈users/100⌉) × latency.
/// 2000 requests/min per token: (⌈n/2000⌉ − 1) minutes for all n requests.
/// bound = max(latency bound, rate bound).
fn clickwrap_bound(users: usize, latency: Duration) -> (usize, Duration) {
    let member_pages = users.div_ceil(100);
    let pages = 2 * member_pages + 1;
    let requests = 1 + pages;
    let rate = Duration::from_secs(60 * (pages.div_ceil(2000).saturating_sub(1)) as u64);
    (requests, (latency * (2 + member_pages) as u32).max(rate))
}

async fn upstream(
    flag: Option<&Path>,
    scenario: Scenario,
    scale: f64,
    latency: Duration,
) -> Result<Row, anyhow::Error> {
    let want = |s: Scenario| scenario == s || scenario == Scenario::All;
    let (e_users, e_groups, e_members) = (
        scaled(100_000, scale),
        scaled(10_000, scale),
        scaled(1_000_000, scale),
    );
    let (i_users, i_groups) = (scaled(50_000, scale), scaled(2_000, scale));
    let c_users = scaled(20_000, scale);
    let sims = Upstreams {
        entra: want(Scenario::Entra).then(|| {
            sim_graph::Simulator::new(sim_graph::SimConfig {
                users: e_users,
                groups: e_groups,
                memberships: e_members,
                latency,
                ..sim_graph::SimConfig::default()
            })
        }),
        ironclad: want(Scenario::Ironclad).then(|| {
            sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
                users: i_users,
                groups: i_groups,
                members_per_group: 25,
                latency,
                ..sim_ironclad::SimConfig::default()
            })
        }),
        clickwrap: want(Scenario::Clickwrap).then(|| {
            sim_clickwrap::Simulator::new(sim_clickwrap::SimConfig {
                users: c_users,
                latency,
                ..sim_clickwrap::SimConfig::default()
            })
        }),
    };
    let dir = temp_dir()?;
    let mut text = sqlite_sink(dir.path());
    let mut vars: HashMap<&str, String> = HashMap::new();
    let mut servers = Vec::new();
    let mut bounds = Vec::new();
    if let Some(sim) = &sims.entra {
        let server = sim.serve(0).await.context("starting the Graph simulator")?;
        let c = sim.config();
        vars.insert("B_GRAPH_URL", server.url());
        vars.insert("B_GRAPH_SECRET", c.client_secret.clone());
        text.push_str(&format!(
            "[sources.corp]\nconnector = \"entra\"\n[sources.corp.settings]\ntenant_id = {:?}\nclient_id = {:?}\nclient_secret = \"${{B_GRAPH_SECRET}}\"\ngraph_url = \"${{B_GRAPH_URL}}\"\nlogin_url = \"${{B_GRAPH_URL}}\"\n",
            c.tenant_id, c.client_id
        ));
        servers.push(server);
        bounds.push(entra_bound(e_users, e_groups, latency));
    }
    if let Some(sim) = &sims.ironclad {
        let server = sim
            .serve(0)
            .await
            .context("starting the Ironclad simulator")?;
        let c = sim.config();
        vars.insert("B_IRONCLAD_URL", server.url());
        vars.insert("B_IRONCLAD_SECRET", c.client_secret.clone());
        text.push_str(&format!(
            "[sources.legal]\nconnector = \"ironclad\"\n[sources.legal.settings]\nbase_url = \"${{B_IRONCLAD_URL}}\"\nclient_id = {:?}\nclient_secret = \"${{B_IRONCLAD_SECRET}}\"\nas_user_email = {:?}\n",
            c.client_id, c.admin_email
        ));
        servers.push(server);
        bounds.push(ironclad_bound(i_users, i_groups, latency));
    }
    if let Some(sim) = &sims.clickwrap {
        let server = sim
            .serve(0)
            .await
            .context("starting the Clickwrap simulator")?;
        let c = sim.config();
        vars.insert("B_CLICKWRAP_URL", server.url());
        vars.insert("B_CLICKWRAP_SECRET", c.client_secret.clone());
        text.push_str(&format!(
            "[sources.clickwrap]\nconnector = \"clickwrap\"\n[sources.clickwrap.settings]\nbase_url = \"${{B_CLICKWRAP_URL}}/v1.1\"\ntoken_url = \"${{B_CLICKWRAP_URL}}/oauth/token\"\nclient_id = {:?}\nclient_secret = \"${{B_CLICKWRAP_SECRET}}\"\naccount_id = \"{}\"\n",
            c.client_id, c.account_id
        ));
        servers.push(server);
        bounds.push(clickwrap_bound(c_users, latency));
    }
    let result = sync_once(flag, dir.path(), text, &vars).await;
    for server in servers {
        server.shutdown().await;
    }
    let synced = result?;
    let requests = sims.entra.as_ref().map_or(0, |s| s.faults().log().len())
        + sims.ironclad.as_ref().map_or(0, |s| s.faults().log().len())
        + sims
            .clickwrap
            .as_ref()
            .map_or(0, |s| s.faults().log().len());
    let min_requests: usize = bounds.iter().map(|b| b.0).sum();
    // Concurrent sources: the slowest one bounds the whole sync.
    let bound = bounds.iter().map(|b| b.1).max().unwrap_or_default();
    let mut note = format!("min requests {min_requests}");
    let mut sizes = String::new();
    if sims.entra.is_some() {
        let _ = write!(sizes, " entra {e_users}u/{e_groups}g/{e_members}m");
    }
    if sims.ironclad.is_some() {
        let _ = write!(sizes, " ironclad {i_users}u/{i_groups}g");
    }
    if sims.clickwrap.is_some() {
        let _ = write!(sizes, " clickwrap {c_users}u");
    }
    note.push_str(&format!(";{sizes}; latency {}ms", latency.as_millis()));
    Ok(Row {
        name: name(scenario).to_owned(),
        requests: Some(requests),
        bound: Some(bound),
        wall: synced.wall,
        cpu: synced.cpu,
        records: synced.records,
        rss_kb: synced.rss_kb,
        note,
    })
}

/// Fixture settings for `grants` memberships: 10,000 users (scaled), groups enough for the rest.
/// One group per page of the group listing: a group's members ride on its page, so at 1000
/// groups per page the 100 groups of 10,000 members would be one page of 1M grants — a page
/// no upstream serves (Graph pages members 999 at a time; an Ironclad group page carries its
/// groups' members at most 1000 groups at a time).
fn fixture_source(grants: usize, page_size: usize) -> (usize, usize, String) {
    let users = grants.clamp(1, 10_000);
    let groups = grants.div_ceil(users).max(1);
    let text = format!(
        "[sources.fixture]\nconnector = \"fixture\"\nmax_removals = \"off\"\n[sources.fixture.settings]\nusers = {users}\ngroups = {groups}\nroles = 0\nmemberships = {grants}\npage_size = {page_size}\ngroup_page_size = 1\n"
    );
    (users, groups, text)
}

/// Sink throughput: the fixture plugin (no network) serves 1M memberships (scaled) into one sink.
/// No upstream, so no bound; rec/s is the number to watch (SQLite target ≥ 200k/s).
async fn sink(
    flag: Option<&Path>,
    scenario: Scenario,
    scale: f64,
    postgres_url: &str,
) -> Result<Row, anyhow::Error> {
    let dir = temp_dir()?;
    let grants = scaled(1_000_000, scale);
    let state = dir.path().join("state.db").display().to_string();
    let mut text = format!("state_path = {state:?}\n");
    match scenario {
        Scenario::Sqlite => {
            let db = dir.path().join("bench.db").display().to_string();
            text.push_str(&format!(
                "[sinks.db]\ntype = \"sqlite\"\npath = {db:?}\ninputs = [\"*\"]\n"
            ));
        }
        Scenario::Jsonl => {
            let file = dir.path().join("bench.jsonl").display().to_string();
            text.push_str(&format!(
                "[sinks.stream]\ntype = \"jsonl\"\npath = {file:?}\n"
            ));
        }
        _ => {
            if tokio::net::TcpStream::connect("127.0.0.1:5432")
                .await
                .is_err()
                && postgres_url.contains("127.0.0.1:5432")
            {
                return Ok(Row {
                    name: name(scenario).to_owned(),
                    note: "SKIPPED: no Postgres answers on 127.0.0.1:5432".to_owned(),
                    ..Row::default()
                });
            }
            text.push_str(
                "[sinks.pg]\ntype = \"postgres\"\nurl = \"${B_PG_URL}\"\nrecords = [\"resource\", \"entitlement\", \"grant\", \"sync_run\"]\n",
            );
        }
    }
    let (users, groups, source) = fixture_source(grants, 1000);
    text.push_str(&source);
    let vars = HashMap::from([("B_PG_URL", postgres_url.to_owned())]);
    let synced = sync_once(flag, dir.path(), text, &vars).await?;
    Ok(Row {
        name: name(scenario).to_owned(),
        requests: None,
        bound: None,
        wall: synced.wall,
        cpu: synced.cpu,
        records: synced.records,
        rss_kb: synced.rss_kb,
        note: format!(
            "fixture {users}u/{groups}g/{grants} grants, 1000 users or 1 group (its members) per page"
        ),
    })
}

/// Memory against tenant size: the Ironclad scenario at ¼, ½ and all of its size (12,500, 25,000
/// and 50,000 users at scale 1), each in a child of its own; the row's RSS is the largest and
/// the note lists each size's, with the growth from the smallest to the largest.
async fn flat(flag: Option<&Path>, scale: f64, latency: Duration) -> Result<Row, anyhow::Error> {
    let mut sizes = Vec::new();
    let mut last = Row::default();
    for factor in [0.25, 0.5, 1.0] {
        let row = upstream(flag, Scenario::Ironclad, scale * factor, latency).await?;
        sizes.push((scaled(50_000, scale * factor), row.rss_kb));
        last = row;
    }
    let mb = |kb: Option<u64>| {
        kb.map_or_else(
            || "-".to_owned(),
            |kb| format!("{:.1}MB", kb as f64 / 1024.0),
        )
    };
    let mut note = sizes
        .iter()
        .map(|(users, kb)| format!("{users}u {}", mb(*kb)))
        .collect::<Vec<_>>()
        .join(", ");
    if let (Some((_, Some(small))), Some((_, Some(large)))) = (sizes.first(), sizes.last()) {
        let _ = write!(
            note,
            "; 4× the users: {:+.1}MB ({:+.0}%)",
            (*large as f64 - *small as f64) / 1024.0,
            (*large as f64 / (*small).max(1) as f64 - 1.0) * 100.0
        );
    }
    Ok(Row {
        name: "flat".to_owned(),
        rss_kb: sizes.iter().filter_map(|(_, kb)| *kb).max(),
        note: format!("ironclad at 1×, 2×, 4×: {note}"),
        ..last
    })
}

/// Re-sync cost: the SQLite sink scenario (1M grants, scaled) synced three times into the same
/// state and sink: the first sync, an unchanged re-sync, and one after 1% of the records
/// changed upstream (users missing from the listing, with every membership of theirs, and as
/// many users renamed). One row each; the re-syncs' notes give their wall and CPU time as a
/// share of the first sync's and the change events they made.
async fn resync(flag: Option<&Path>, scale: f64) -> Result<Vec<Row>, anyhow::Error> {
    let dir = temp_dir()?;
    let grants = scaled(1_000_000, scale);
    let (users, groups, source) = fixture_source(grants, 1000);
    let records = users + groups + grants;
    // A missing user takes itself and its membership of each group with it.
    let missing = (records / 100).div_ceil(1 + groups).clamp(1, users / 2);
    let list =
        |range: std::ops::Range<usize>| range.map(|n| n.to_string()).collect::<Vec<_>>().join(", ");
    let changed = format!(
        "{source}missing_users = [{}]\nrename_users = [{}]\n",
        list(0..missing),
        list(missing..2 * missing)
    );
    let base = sqlite_sink(dir.path());
    let mut rows: Vec<Row> = Vec::new();
    let mut first: Option<Synced> = None;
    for (label, text) in [
        ("resync-1st", format!("{base}{source}")),
        ("resync-0%", format!("{base}{source}")),
        ("resync-1%", format!("{base}{changed}")),
    ] {
        let synced = sync_once(flag, dir.path(), text, &HashMap::new()).await?;
        let note = match &first {
            None => format!("first sync: fixture {users}u/{groups}g/{grants} grants into SQLite"),
            Some(f) => {
                let share = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
                    (Some(a), Some(b)) if !b.is_zero() => {
                        format!("{:.2}", a.as_secs_f64() / b.as_secs_f64())
                    }
                    _ => "-".to_owned(),
                };
                let what = if label == "resync-0%" {
                    "unchanged re-sync (target ≤ 0.50)".to_owned()
                } else {
                    format!("{missing} users missing, {missing} renamed (target ≤ 0.60)")
                };
                format!(
                    "{what}: wall {} and CPU {} of the first sync's; {} change events",
                    share(Some(synced.wall), Some(f.wall)),
                    share(synced.cpu, f.cpu),
                    synced.changes
                )
            }
        };
        rows.push(Row {
            name: label.to_owned(),
            wall: synced.wall,
            cpu: synced.cpu,
            records: synced.records,
            rss_kb: synced.rss_kb,
            note,
            ..Row::default()
        });
        if first.is_none() {
            first = Some(synced);
        }
    }
    Ok(rows)
}

/// The plugin boundary: the same 200k users (scaled) listed at 10 and at 1000 per page into a
/// JSONL sink; the difference in wall time divided by the difference in pages is what one extra
/// page costs (FFI call, page conversion, routing, sink batch). No upstream, so no bound.
async fn plugin_boundary(flag: Option<&Path>, scale: f64) -> Result<Row, anyhow::Error> {
    let users = scaled(200_000, scale);
    let mut walls = Vec::new();
    let mut total = 0;
    let mut rss = None;
    for page_size in [10, 1000] {
        let dir = temp_dir()?;
        let file = dir.path().join("bench.jsonl").display().to_string();
        let state = dir.path().join("state.db").display().to_string();
        let text = format!(
            "state_path = {state:?}\n[sinks.stream]\ntype = \"jsonl\"\npath = {file:?}\n[sources.fixture]\nconnector = \"fixture\"\n[sources.fixture.settings]\nusers = {users}\ngroups = 1\nroles = 0\nmemberships = 0\npage_size = {page_size}\n"
        );
        let synced = sync_once(flag, dir.path(), text, &HashMap::new()).await?;
        total = synced.records;
        rss = rss.max(synced.rss_kb);
        walls.push((users.div_ceil(page_size), synced.wall));
    }
    let (small_pages, small) = walls[0];
    let (big_pages, big) = walls[1];
    let extra_pages = small_pages.saturating_sub(big_pages).max(1) as f64;
    let per_page = (small.as_secs_f64() - big.as_secs_f64()).max(0.0) / extra_pages;
    Ok(Row {
        name: "plugin".to_owned(),
        requests: Some(small_pages),
        bound: None,
        wall: small,
        records: total,
        cpu: None,
        rss_kb: rss,
        note: format!(
            "{users} users: {small_pages} pages of 10 in {:.2}s, {big_pages} pages of 1000 in {:.2}s → {:.1}µs per page",
            small.as_secs_f64(),
            big.as_secs_f64(),
            per_page * 1e6
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entra_bound_is_throttle_bound_at_full_size() {
        let (requests, bound) = entra_bound(100_000, 10_000, Duration::from_millis(20));
        assert_eq!(requests, 1 + 101 + 11 + 1000);
        // 112 pages + 30,000 RU = 30,112 RU; (30,112 − 8,000) / 800 ≈ 27.6 s, above the
        // 5.2 s latency bound (users' 101 pages alongside groups' 11 pages and 250 rounds of
        // batches).
        assert!((bound.as_secs_f64() - 27.64).abs() < 0.01, "{bound:?}");
    }

    #[test]
    fn ironclad_and_clickwrap_bounds_are_latency_bound_at_full_size() {
        // 50 user pages: the first, then 49 four at a time = 1 + 13 round trips, after the
        // token call: 15 × 20 ms.
        let (requests, bound) = ironclad_bound(50_000, 2_000, Duration::from_millis(20));
        assert_eq!((requests, bound), (53, Duration::from_millis(300)));
        let (requests, bound) = clickwrap_bound(20_000, Duration::from_millis(20));
        // 200 member pages alongside the site page and its 200 membership pages.
        assert_eq!((requests, bound), (402, Duration::from_millis(4040)));
    }
}
