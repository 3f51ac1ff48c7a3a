//! The subcommands, one file each; [`run`] dispatches. `demo` and `bench` (and the simulators
//! they start) are compiled only with the default `demo` feature.

#[cfg(feature = "demo")]
mod bench;
mod check;
#[cfg(feature = "demo")]
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
        #[cfg(feature = "demo")]
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
        #[cfg(feature = "demo")]
        Command::Bench(args) => bench::run(cli.plugin_dir.as_deref(), args).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => Err(not_built_in("demo")),
        #[cfg(not(feature = "demo"))]
        Command::Bench(_) => Err(not_built_in("bench")),
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

/// The error of `idhost demo` and `idhost bench` in a build without the `demo` feature: a usage
/// error (exit code 2), since the binary cannot do what was asked and retrying will not help.
#[cfg(not(feature = "demo"))]
fn not_built_in(command: &str) -> CommandError {
    CommandError::usage(anyhow::anyhow!(
        "`idhost {command}` is not built in: this idhost was built without the `demo` feature (the upstream simulators it needs); a default build has it (`cargo build -p idhost --release`)"
    ))
}
