//! The subcommands.

mod bench;
mod check;
mod demo;
mod plugins;
mod provision;
mod query;
mod run;
mod summary;
mod sync;

use crate::cli::{Cli, Command};
use crate::exit::{CommandError, Outcome};
use crate::progress::Progress;

pub use summary::summary_table;

/// Runs one command.
pub async fn run(cli: Cli, progress: Progress) -> Result<Outcome, CommandError> {
    match cli.command {
        Command::Demo {
            keep,
            ironclad_users,
            entra_users,
            clickwrap_users,
            latency_ms,
        } => {
            let size = demo::DemoSize {
                ironclad_users,
                entra_users,
                clickwrap_users,
                latency: std::time::Duration::from_millis(latency_ms),
            };
            demo::run(cli.plugin_dir.as_deref(), size, keep, progress).await
        }
        Command::Provision { config, args } => {
            provision::run(&config, cli.plugin_dir.as_deref(), args).await
        }
        Command::Run(args) => run::run(args, cli.plugin_dir.as_deref()).await,
        Command::Bench(args) => bench::run(cli.plugin_dir.as_deref(), args).await,
        Command::Query { config, args } => query::run(&config, args),
        Command::Plugins { json } => plugins::run(cli.plugin_dir.as_deref(), json),
        Command::Check { config } => check::run(&config, cli.plugin_dir.as_deref()).await,
        Command::Sync {
            config,
            sources,
            resources_only,
            full,
            restart,
            json,
        } => {
            let options = crate::sync::SyncOptions {
                sources,
                resources_only,
                full,
                restart,
            };
            sync::run(&config, cli.plugin_dir.as_deref(), options, json, progress).await
        }
    }
}
