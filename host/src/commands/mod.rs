//! The subcommands, one file each; [`run`] dispatches. `demo` and `bench` (and the simulators
//! they start) are compiled only with the default `demo` feature.

mod audit;
#[cfg(feature = "demo")]
mod bench;
mod check;
#[cfg(feature = "demo")]
mod demo;
mod demo_story;
mod init;
mod login;
mod man;
mod output;
mod plugins;
mod provision;
mod query;
mod review;
mod run;
mod summary;
mod sync;

use std::path::Path;

use crate::cli::{Cli, Command, OutputFormat};
use crate::exit::{CommandError, Outcome};
use crate::progress::Progress;

pub use summary::{changes_and_orphans, summary_table};

/// Runs one command.
pub async fn run(cli: Cli, progress: Progress) -> Result<Outcome, CommandError> {
    let plugin_dir = cli.plugin_dir.as_deref();
    let config = cli.config.as_deref();
    let format = |json: bool| {
        OutputFormat::parse(cli.output.as_deref(), json)
            .map_err(|e| CommandError::usage(anyhow::anyhow!(e)))
    };
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
            demo::run(plugin_dir, size, keep, progress).await
        }
        Command::Init { connector, force } => init::run(config, plugin_dir, &connector, force),
        Command::Provision { args } => {
            provision::run(needs_config(config)?, plugin_dir, args, format(false)?).await
        }
        Command::Login(args) => login::run(needs_config(config)?, plugin_dir, args).await,
        Command::Run(args) => run::run(needs_config(config)?, args, plugin_dir).await,
        #[cfg(feature = "demo")]
        Command::Bench(args) => bench::run(plugin_dir, args).await,
        #[cfg(not(feature = "demo"))]
        Command::Demo { .. } => Err(not_built_in("demo")),
        #[cfg(not(feature = "demo"))]
        Command::Bench(_) => Err(not_built_in("bench")),
        Command::Query { args } => query::run(needs_config(config)?, args, format(false)?),
        Command::Review { sources, sink } => review::run(
            needs_config(config)?,
            &sources,
            sink.as_deref(),
            cli.output.as_deref(),
        ),
        Command::Audit {
            source,
            since,
            limit,
        } => audit::run(
            needs_config(config)?,
            source.as_deref(),
            since.as_deref(),
            limit,
            format(false)?,
        ),
        Command::Plugins { json } => plugins::run(plugin_dir, format(json)?),
        Command::Check { offline } => check::run(needs_config(config)?, plugin_dir, offline).await,
        Command::Sync {
            sources,
            resources_only,
            full,
            restart,
            allow_removals,
            json,
        } => {
            let options = crate::sync::SyncOptions {
                sources,
                resources_only,
                full,
                restart,
                allow_removals,
                approve: false,
            };
            let format = format(json)?;
            sync::run(needs_config(config)?, plugin_dir, options, format, progress).await
        }
        Command::Approve { source, json } => {
            let options = crate::sync::SyncOptions {
                sources: vec![source],
                approve: true,
                ..Default::default()
            };
            let format = format(json)?;
            sync::run(needs_config(config)?, plugin_dir, options, format, progress).await
        }
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "idhost", &mut script);
            output::write_stdout(&script)?;
            Ok(Outcome::Success)
        }
        Command::Man { dir } => man::run(dir.as_deref()),
    }
}

/// The `-c FILE` a command needs (exit code 2 without one).
fn needs_config(config: Option<&Path>) -> Result<&Path, CommandError> {
    config.ok_or_else(|| {
        CommandError::usage(anyhow::anyhow!(
            "this command needs a config file: pass -c FILE (or set IDHOST_CONFIG); `idhost init <connector>` writes one"
        ))
    })
}

/// The error of `idhost demo` and `idhost bench` in a build without the `demo` feature: a usage
/// error (exit code 2), since the binary cannot do what was asked and retrying will not help.
#[cfg(not(feature = "demo"))]
fn not_built_in(command: &str) -> CommandError {
    CommandError::usage(anyhow::anyhow!(
        "`idhost {command}` is not built in: this idhost was built without the `demo` feature (the upstream simulators it needs); a default build has it (`cargo build -p idhost --release`)"
    ))
}
