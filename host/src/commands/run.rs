//! `idhost run -c FILE`: the daemon (see [`crate::daemon`]).

use std::path::Path;
use std::sync::Arc;

use crate::cli::RunArgs;
use crate::daemon::DaemonOptions;
use crate::exit::{CommandError, Outcome};

pub(crate) async fn run(
    config: &Path,
    args: RunArgs,
    plugin_dir: Option<&Path>,
) -> Result<Outcome, CommandError> {
    let config = Arc::new(crate::config::load(config)?);
    crate::daemon::run(DaemonOptions {
        config,
        plugin_dir: plugin_dir.map(Path::to_owned),
        listen: args.listen,
        shutdown_grace: args.shutdown_grace,
        max_jitter: args.max_jitter,
    })
    .await
}
