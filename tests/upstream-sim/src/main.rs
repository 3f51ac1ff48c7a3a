//! `upstream-sim`: runs the upstream simulators (Ironclad SCIM, Microsoft Graph, Ironclad
//! Clickwrap) on loopback until Ctrl-C, for trying idhost or a connector by hand.
//!
//! ```text
//! upstream-sim ironclad --users 5000 --groups 200 --port 8081
//! upstream-sim graph --users 20000 --groups 2000 --memberships 100000 --port 8082
//! upstream-sim clickwrap --users 3000 --port 8083
//! ```

use clap::{Parser, Subcommand};

/// Upstream simulators built from each upstream's public documentation.
#[derive(Debug, Parser)]
#[command(name = "upstream-sim", version, about)]
struct Cli {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, global = true, default_value_t = 0)]
    port: u16,
    #[command(subcommand)]
    upstream: Upstream,
}

#[derive(Debug, Subcommand)]
enum Upstream {
    /// Ironclad SCIM 2.0 and its OAuth token endpoint.
    Ironclad(sim_ironclad::Args),
    /// Microsoft Graph v1.0 and the identity platform token endpoint.
    Graph(sim_graph::Args),
    /// Ironclad Clickwrap (PactSafe REST API v1.1).
    Clickwrap(sim_clickwrap::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let cli = Cli::parse();
    let (server, hint) = match cli.upstream {
        Upstream::Ironclad(args) => {
            let sim = sim_ironclad::Simulator::new(args.into_config());
            let c = sim.config().clone();
            let server = sim.serve(cli.port).await?;
            let hint = format!(
                "SCIM at {0}/scim/v2, token at {0}/oauth/token; client_id {1}, client_secret {2}, as_user_email {3}",
                server.url(),
                c.client_id,
                c.client_secret,
                c.admin_email
            );
            (server, hint)
        }
        Upstream::Graph(args) => {
            let sim = sim_graph::Simulator::new(args.into_config());
            let c = sim.config().clone();
            let server = sim.serve(cli.port).await?;
            let hint = format!(
                "graph_url = login_url = {}; tenant_id {}, client_id {}, client_secret {}",
                server.url(),
                c.tenant_id,
                c.client_id,
                c.client_secret
            );
            (server, hint)
        }
        Upstream::Clickwrap(args) => {
            let sim = sim_clickwrap::Simulator::new(args.into_config());
            let c = sim.config().clone();
            let server = sim.serve(cli.port).await?;
            let hint = format!(
                "base_url {0}/v1.1, token_url {0}/oauth/token; client_id {1}, client_secret {2}, account_id {3}",
                server.url(),
                c.client_id,
                c.client_secret,
                c.account_id
            );
            (server, hint)
        }
    };
    println!("listening on {}", server.url());
    println!("{hint}");
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
