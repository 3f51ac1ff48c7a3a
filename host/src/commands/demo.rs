//! `idhost demo`: the three upstream simulators on loopback, the three real connector plugins,
//! a concurrent sync into SQLite, a scripted upstream change ([`super::demo_story`]), a second
//! sync, a summary (changes, orphans) and what to try next. It writes `idhost-demo.toml` so
//! every hint runs afterwards with no simulator and no credential.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::exit::{CommandError, Outcome};
use crate::progress::Progress;
use crate::record::RunStatus;
use crate::sync::{EnvSetup, SyncEnv, SyncOptions};

/// The demo's config template, compiled in so `idhost demo` works from any directory.
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
    // The demo's scripted change edits a user's title as an admin's SCIM client would, so the
    // simulated company's API application is registered for `scim.users.updateUsers` beside the
    // setup guide's five (idhost's read-only demo source still asks for its defaults only).
    let ironclad_defaults = sim_ironclad::SimConfig::default();
    let mut registered_scopes = ironclad_defaults.registered_scopes.clone();
    registered_scopes.push("scim.users.updateUsers".to_owned());
    let ironclad = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        users: size.ironclad_users,
        groups: (size.ironclad_users / 40).max(2),
        members_per_group: 25,
        latency: size.latency,
        registered_scopes,
        ..ironclad_defaults
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
    let vars: Vec<(&str, String)> = vec![
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
    ];
    let config_path = PathBuf::from(DEMO_CONFIG_FILE);
    std::fs::write(&config_path, render_config(&vars))
        .map_err(|e| CommandError::failed(anyhow::anyhow!("writing {DEMO_CONFIG_FILE}: {e}")))?;
    let config = crate::config::load(&config_path)
        .map(Arc::new)
        .map_err(CommandError::usage)?;
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
    for source in &config.sources {
        if env.registry.get(&source.connector).is_none() {
            return Err(CommandError::plugin(anyhow::anyhow!(
                "the demo needs the `{}` plugin, which is not in {}: build the workspace first (`cargo build --workspace --release`) or pass --plugin-dir",
                source.connector,
                env.registry.dir.display()
            )));
        }
    }
    eprintln!(
        "idhost demo: syncing Ironclad ({} users), Entra ID ({} users) and Clickwrap ({} users) from their simulators into {} ({} holds the config)",
        size.ironclad_users,
        size.entra_users,
        size.clickwrap_users,
        db_path.display(),
        config_path.display()
    );
    let first = crate::sync::run(&env, &SyncOptions::default()).await;
    let clickwrap_url = clickwrap_server.url();
    let servers = [ironclad_server, graph_server, clickwrap_server];
    if first.iter().any(|o| o.status != RunStatus::Succeeded) {
        env.progress.close();
        eprintln!("\n{}", super::summary::summary_table(&first));
        return Ok(shutdown(servers, Outcome::Failed).await);
    }
    env.progress.suspend(|| {
        for o in &first {
            eprintln!(
                "  first sync: {:<10} {} resources, {} entitlements, {} grants",
                o.source,
                o.counts.resource_total(),
                o.counts.entitlements,
                o.counts.grants
            );
        }
        eprintln!(
            "idhost demo: changing the upstreams as their admins would (SCIM and Graph writes), then syncing again"
        );
    });
    let upstreams = super::demo_story::Upstreams {
        ironclad: servers[0].url(),
        ironclad_client: (&ic.client_id, &ic.client_secret, &ic.admin_email),
        graph: servers[1].url(),
        entra_client: (&gc.tenant_id, &gc.client_id, &gc.client_secret),
        graph_sim: &graph,
    };
    let story = match super::demo_story::change(&db_path, &upstreams).await {
        Ok(story) => story,
        Err(err) => {
            env.progress.close();
            eprintln!("error: the demo's scripted upstream change failed: {err:#}");
            return Ok(shutdown(servers, Outcome::Failed).await);
        }
    };
    let outcomes = crate::sync::run(&env, &SyncOptions::default()).await;
    env.progress.close();
    let orphans = super::summary::orphans_after_sync(&config);
    eprintln!(
        "\n{}{}",
        super::summary::summary_table(&outcomes),
        super::summary::changes_and_orphans(&outcomes, orphans.as_ref())
    );
    let c = DEMO_CONFIG_FILE;
    println!("Try next:");
    for hint in hints(c, &story) {
        println!("  {hint}");
    }
    println!(
        "(these read {} through {c}: no simulator and no credential needed)",
        db_path.display()
    );
    if keep {
        println!("\nSimulators stay up until Ctrl-C (`idhost sync -c {c}` syncs them again):");
        println!(
            "  ironclad  {}  (SCIM at /scim/v2, token at /oauth/token)",
            upstreams.ironclad
        );
        println!(
            "  graph     {}  (Graph at /v1.0, token at /{}/oauth2/v2.0/token)",
            upstreams.graph, gc.tenant_id
        );
        println!("  clickwrap {clickwrap_url}  (REST at /v1.1, token at /oauth/token)");
        cancel.cancelled().await;
    }
    let outcome = if outcomes.iter().all(|o| o.status == RunStatus::Succeeded) {
        Outcome::Success
    } else {
        Outcome::Failed
    };
    Ok(shutdown(servers, outcome).await)
}

/// Stops the simulators; returns `outcome`.
async fn shutdown(servers: [sim_common::RunningServer; 3], outcome: Outcome) -> Outcome {
    for server in servers {
        server.shutdown().await;
    }
    outcome
}

/// The config file the demo writes in the directory it runs in.
pub(crate) const DEMO_CONFIG_FILE: &str = "idhost-demo.toml";

/// `config/demo.toml` with its `${IDHOST_DEMO_*}` references replaced by the simulators'
/// addresses and demo credentials, marked as such.
fn render_config(vars: &[(&str, String)]) -> String {
    let mut text = String::from(
        "# Written by `idhost demo`. The URLs are the demo's simulators on loopback (gone once the\n\
         # demo exits, unless `idhost demo --keep`), and every credential below is one of the\n\
         # SIMULATORS' DEMO CREDENTIALS, not a secret of any real service. Queries need neither:\n\
         #   idhost query -c idhost-demo.toml orphans\n\n",
    );
    // The template's own header speaks of the references this text no longer has.
    let body = DEMO_CONFIG
        .lines()
        .skip_while(|l| l.starts_with('#') || l.trim().is_empty());
    for line in body {
        let mut line = line.to_owned();
        let mut demo_credential = false;
        for (name, value) in vars {
            let reference = format!("${{{name}}}");
            if line.contains(&reference) {
                line = line.replace(&reference, value);
                demo_credential |= name.contains("CLIENT") || name.contains("ADMIN");
            }
        }
        if demo_credential {
            line.push_str("   # the simulator's demo credential");
        }
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// The "Try next" lines: idhost commands that answer from the demo's database alone.
fn hints(config: &str, story: &super::demo_story::Story) -> Vec<String> {
    vec![
        format!("idhost query -c {config} resources --source legal --type group"),
        format!(
            "idhost query -c {config} access {} --source corp",
            story.nested_person
        ),
        format!(
            "idhost query -c {config} who-has {} --source corp",
            story.outer_entitlement
        ),
        format!("idhost query -c {config} people --source legal"),
        format!("idhost query -c {config} orphans --source legal"),
        format!(
            "idhost query -c {config} access {} --source legal",
            story.leaver
        ),
        format!("idhost query -c {config} diff legal"),
        format!("idhost query -c {config} diff corp -o json"),
        format!("idhost review -c {config} -o idhost-demo-review.xlsx"),
        "idhost plugins".to_owned(),
    ]
}
