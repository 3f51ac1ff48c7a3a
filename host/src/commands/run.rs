//! `idhost run -c FILE`: the daemon (see [`crate::daemon`]).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::app::{CommandError, Outcome};
use crate::daemon::DaemonOptions;

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like `20s` or `5m`: {e}"))
}

/// `idhost run` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Address of the `/healthz`, `/readyz` and `/metrics` server (`0.0.0.0:9464` in a container).
    #[arg(long, env = "IDHOST_LISTEN", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// After SIGTERM, how long running syncs may go on before they are cancelled (keep it below
    /// Kubernetes' terminationGracePeriodSeconds minus 10 s).
    #[arg(long, env = "IDHOST_SHUTDOWN_GRACE", default_value = "20s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// Most random delay before a scheduled sync (at most a tenth of the source's interval).
    #[arg(long, env = "IDHOST_MAX_JITTER", default_value = "5m", value_parser = duration)]
    pub max_jitter: Duration,
}

pub(crate) async fn run(
    config: &Path,
    args: RunArgs,
    plugin_dir: Option<&Path>,
) -> Result<Outcome, CommandError> {
    crate::daemon::run(DaemonOptions {
        config: config.to_owned(),
        plugin_dir: plugin_dir.map(Path::to_owned),
        listen: args.listen,
        shutdown_grace: args.shutdown_grace,
        max_jitter: args.max_jitter,
    })
    .await
}
