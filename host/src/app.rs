//! The binary's edge: parse the command line, set up logs and the runtime, run a command, map
//! the outcome to an exit code. Errors are printed with their whole chain (`{:#}`).

use std::process::ExitCode;

use clap::Parser as _;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::exit::Outcome;
use crate::progress::Progress;

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    // Before any thread starts: host and plugins share glibc's malloc, in one arena.
    idhost_connector_sdk::abi::tune_malloc();
    let cli = Cli::parse();
    crate::color::init(cli.color);
    let json_output = cli.output.as_deref().is_some_and(|o| o.trim() == "json");
    let progress = match &cli.command {
        Command::Sync { json, .. } | Command::Approve { json, .. } => {
            Progress::new(!json && !json_output)
        }
        Command::Demo { .. } => Progress::new(true),
        _ => Progress::hidden(),
    };
    if let Err(message) = crate::logging::init(&cli.log_level, cli.log_format, &progress) {
        eprintln!("error: {message}");
        return ExitCode::from(Outcome::Usage as u8);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(Outcome::Failed as u8);
        }
    };
    let result = runtime.block_on(commands::run(cli, progress));
    // Plugin libraries are never unloaded; shut the runtime down without waiting on stray tasks.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    match result {
        Ok(outcome) => ExitCode::from(outcome as u8),
        Err(err) => {
            let message = format!("{:#}", err.error);
            eprintln!("error: {}", crate::redact::redact(&message));
            ExitCode::from(err.outcome as u8)
        }
    }
}
