//! `idhost demo`: the three upstream simulators on loopback, the three real connector plugins,
//! one concurrent sync into SQLite, a summary and what to try next.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::exit::{CommandError, Outcome};
use crate::plugins::Registry;
use crate::progress::Progress;
use crate::record::RunStatus;
use crate::sync::{EnvSetup, SyncEnv, SyncOptions};

/// The demo's config, compiled in so `idhost demo` works from any directory.
const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");

/// Sizes of the simulated upstreams.
#[derive(Debug, Clone)]
pub(crate) struct DemoSize {
    /// Ironclad users.
    pub(crate) ironclad_users: usize,
    /// Entra users.
    pub(crate) entra_users: usize,
    /// Clickwrap users.
    pub(crate) clickwrap_users: usize,
    /// Latency every simulator adds to each answer.
    pub(crate) latency: std::time::Duration,
}

pub(crate) async fn run(
    flag: Option<&Path>,
    size: DemoSize,
    keep: bool,
    progress: Progress,
) -> Result<Outcome, CommandError> {
    let ironclad = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        users: size.ironclad_users,
        groups: (size.ironclad_users / 40).max(2),
        members_per_group: 25,
        latency: size.latency,
        ..sim_ironclad::SimConfig::default()
    });
    let graph = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: size.entra_users,
        managed_identities: 10,
        groups: (size.entra_users / 10).max(2),
        memberships: size.entra_users * 5,
        apps: 12,
        roles: 8,
        latency: size.latency,
        ..sim_graph::SimConfig::default()
    });
    let clickwrap = sim_clickwrap::Simulator::new(sim_clickwrap::SimConfig {
        users: size.clickwrap_users,
        latency: size.latency,
        ..sim_clickwrap::SimConfig::default()
    });
    let start = |e: std::io::Error| {
        CommandError::failed(anyhow::Error::new(e).context("starting a simulator on 127.0.0.1"))
    };
    let ironclad_server = ironclad.serve(0).await.map_err(start)?;
    let graph_server = graph.serve(0).await.map_err(start)?;
    let clickwrap_server = clickwrap.serve(0).await.map_err(start)?;

    let (ic, gc, cc) = (ironclad.config(), graph.config(), clickwrap.config());
    let vars: HashMap<&str, String> = HashMap::from([
        ("IDHOST_DEMO_IRONCLAD_URL", ironclad_server.url()),
        ("IDHOST_DEMO_IRONCLAD_CLIENT_ID", ic.client_id.clone()),
        (
            "IDHOST_DEMO_IRONCLAD_CLIENT_SECRET",
            ic.client_secret.clone(),
        ),
        ("IDHOST_DEMO_IRONCLAD_ADMIN", ic.admin_email.clone()),
        ("IDHOST_DEMO_GRAPH_URL", graph_server.url()),
        ("IDHOST_DEMO_ENTRA_TENANT", gc.tenant_id.clone()),
        ("IDHOST_DEMO_ENTRA_CLIENT_ID", gc.client_id.clone()),
        ("IDHOST_DEMO_ENTRA_CLIENT_SECRET", gc.client_secret.clone()),
        ("IDHOST_DEMO_CLICKWRAP_URL", clickwrap_server.url()),
        ("IDHOST_DEMO_CLICKWRAP_CLIENT_ID", cc.client_id.clone()),
        (
            "IDHOST_DEMO_CLICKWRAP_CLIENT_SECRET",
            cc.client_secret.clone(),
        ),
        ("IDHOST_DEMO_CLICKWRAP_ACCOUNT", cc.account_id.to_string()),
    ]);
    let config = crate::config::parse(
        Path::new("config/demo.toml"),
        DEMO_CONFIG.to_owned(),
        &|name| vars.get(name).cloned(),
    )
    .map(Arc::new)
    .map_err(CommandError::usage)?;
    let registry = Registry::for_config(flag, Some(&config))
        .map_err(|e| CommandError::plugin(anyhow::Error::new(e)))?;
    for source in &config.sources {
        if registry.get(&source.connector).is_none() {
            return Err(CommandError::plugin(anyhow::anyhow!(
                "the demo needs the `{}` plugin, which is not in {}: build the workspace first (`cargo build --workspace --release`) or pass --plugin-dir",
                source.connector,
                registry.dir.display()
            )));
        }
    }
    let db_path = config
        .sinks
        .iter()
        .find_map(|s| s.path.clone())
        .unwrap_or_else(|| PathBuf::from("idhost-demo.db"));
    // A demo starts fresh: the previous demo's database and state would otherwise be diffed.
    for stale in [&db_path, &config.state_path] {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = stale.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
    }
    let setup = EnvSetup::syncing(progress);
    let cancel = setup.cancel.clone();
    super::sync::cancel_on_signal(cancel.clone());
    let env = SyncEnv::open(config.clone(), flag, setup).await?;
    eprintln!(
        "idhost demo: syncing Ironclad ({} users), Entra ID ({} users) and Clickwrap ({} users) from their simulators into {}",
        size.ironclad_users,
        size.entra_users,
        size.clickwrap_users,
        db_path.display()
    );
    let outcomes = crate::sync::run(&env, &SyncOptions::default()).await;
    env.progress.suspend(|| {
        eprintln!("\n{}", super::summary_table(&outcomes));
    });
    let db = db_path.display();
    println!("Try next:");
    println!("  sqlite3 {db} \"SELECT source, type, count(*) FROM resources GROUP BY 1, 2\"");
    println!(
        "  sqlite3 {db} \"SELECT principal, count(*) FROM grants GROUP BY 1 ORDER BY 2 DESC LIMIT 5\""
    );
    println!("  idhost plugins");
    if keep {
        println!("\nSimulators stay up until Ctrl-C:");
        println!(
            "  ironclad  {}  (SCIM at /scim/v2, token at /oauth/token)",
            ironclad_server.url()
        );
        println!(
            "  graph     {}  (Graph at /v1.0, token at /{}/oauth2/v2.0/token)",
            graph_server.url(),
            gc.tenant_id
        );
        println!(
            "  clickwrap {}  (REST at /v1.1, token at /oauth/token)",
            clickwrap_server.url()
        );
        cancel.cancelled().await;
    }
    ironclad_server.shutdown().await;
    graph_server.shutdown().await;
    clickwrap_server.shutdown().await;
    Ok(
        if outcomes.iter().all(|o| o.status == RunStatus::Succeeded) {
            Outcome::Success
        } else {
            Outcome::Failed
        },
    )
}
