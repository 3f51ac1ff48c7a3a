//! Command-line interface (DESIGN §6). Every flag has an `IDHOST_*` environment twin.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

/// idhost: sync identity data from connector plugins into sinks, and provision access.
#[derive(Debug, Parser)]
#[command(name = "idhost", version, about)]
pub struct Cli {
    /// Log filter: `error`, `warn`, `info`, `debug`, `trace`, or directives like `idhost=debug`.
    #[arg(long, global = true, env = "IDHOST_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "IDHOST_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
    /// Directory of connector plugins (overrides the config's `plugin_dir`).
    #[arg(long, global = true, env = "IDHOST_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List discovered plugins: name, version, SDK interface version, resource types, capabilities.
    Plugins {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config, load every plugin, and run each connector's connection check.
    Check {
        /// Config file.
        #[arg(short, long, env = "IDHOST_CONFIG")]
        config: PathBuf,
    },
    /// One complete sync of the chosen sources, concurrently. Exit code 1 if any failed.
    Sync {
        /// Config file.
        #[arg(short, long, env = "IDHOST_CONFIG")]
        config: PathBuf,
        /// Only this source (repeatable).
        #[arg(long = "source")]
        sources: Vec<String>,
        /// Skip entitlements and grants.
        #[arg(long)]
        resources_only: bool,
        /// Ignore kept connector state (delta links) and list everything.
        #[arg(long)]
        full: bool,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}
