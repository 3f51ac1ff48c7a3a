//! The subcommands.

pub mod bench;
mod check;
mod demo;
mod plugins;
mod provision;
mod query;
pub mod run;
mod summary;
mod sync;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use crate::app::{CommandError, Outcome};
use crate::cli::{Cli, Command};
use crate::config::{self, Config};
use crate::plugins::{Registry, resolve_dir};
use crate::progress::Progress;

pub use summary::summary_table;

/// clap value parser for `--set FIELD=VALUE`.
pub fn parse_set_arg(text: &str) -> Result<(String, serde_json::Value), String> {
    provision::parse_set(text)
}

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

/// Loads and validates the config (exit code 2 on error).
pub(crate) fn load_config(path: &Path) -> Result<Arc<Config>, CommandError> {
    config::load(path)
        .map(Arc::new)
        .map_err(CommandError::usage)
}

/// Discovers plugins for `config` (exit code 3 if the directory is unreadable). Files that
/// fail to load are reported; they fail only the sources that need them.
pub(crate) fn discover(
    flag: Option<&Path>,
    config: Option<&Config>,
) -> Result<Arc<Registry>, CommandError> {
    let dir = resolve_dir(flag, config.and_then(|c| c.plugin_dir.as_deref()));
    let registry = Registry::discover(&dir)
        .context("cannot list plugins")
        .map_err(CommandError::plugin)?;
    let needed: Vec<&str> = config
        .map(|c| c.sources.iter().map(|s| s.connector.as_str()).collect())
        .unwrap_or_default();
    // A broken file nobody asked for is worth a debug line, not a failure (`idhost plugins`
    // prints every one); it is shown as a warning when a source's connector is missing.
    for err in &registry.errors {
        tracing::debug!("{err}");
    }
    for name in needed {
        if registry.get(name).is_none() {
            for err in &registry.errors {
                tracing::warn!("{err}");
            }
            break;
        }
    }
    Ok(Arc::new(registry))
}
