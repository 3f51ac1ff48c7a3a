//! `idhost sync -c FILE [--source S]… [--resources-only] [--full] [--restart]
//! [--allow-removals]`, and `idhost approve -c FILE --source S` (the same run, committing the
//! source's held sync instead of listing).

use std::path::Path;

use anyhow::anyhow;
use tokio_util::sync::CancellationToken;

use crate::cli::OutputFormat;
use crate::exit::{CommandError, Outcome};
use crate::progress::Progress;
use crate::record::RunStatus;
use crate::sync::{EnvSetup, SyncEnv, SyncOptions};

/// Cancels `token` on Ctrl-C or SIGTERM, so every sync stops between pages and aborts cleanly.
pub(crate) fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            () = term => {},
        }
        tracing::warn!("stopping: finishing no more pages, keeping previous snapshots");
        token.cancel();
    });
}

pub(crate) async fn run(
    path: &Path,
    flag: Option<&Path>,
    options: SyncOptions,
    format: OutputFormat,
    progress: Progress,
) -> Result<Outcome, CommandError> {
    if format == OutputFormat::Csv {
        return Err(CommandError::usage(anyhow!(
            "the sync summary is a table or JSON: --output table or json, not csv"
        )));
    }
    let config = std::sync::Arc::new(crate::config::load(path)?);
    for wanted in &options.sources {
        if !config.sources.iter().any(|s| &s.name == wanted) {
            let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            return Err(CommandError::usage(anyhow!(
                "--source `{wanted}` is not a source in {}; sources are: {}",
                path.display(),
                known.join(", ")
            )));
        }
    }
    let setup = EnvSetup::syncing(progress);
    cancel_on_signal(setup.cancel.clone());
    let env = SyncEnv::open(config.clone(), flag, setup).await?;
    let outcomes = crate::sync::run(&env, &options).await;
    env.progress.close();
    let orphans = super::summary::orphans_after_sync(&config);
    if format == OutputFormat::Json {
        let peak_rss_kb = crate::metrics::process_peak_rss_kb();
        let cpu_ms = crate::metrics::process_cpu_ms();
        let rows: Vec<_> = outcomes
            .iter()
            .map(|o| {
                serde_json::json!({
                    "source": o.source, "connector": o.connector, "sync_id": o.sync_id,
                    "status": o.status, "counts": o.counts, "error": o.error,
                    "changes": o.counts.changes,
                    "removals": o.removals.map(|r| serde_json::json!({
                        "resources": r.resources, "resources_before": r.resources_before,
                        "grants": r.grants, "grants_before": r.grants_before,
                    })),
                    "sinks_behind": o.sink_lag.iter().filter(|l| l.events > 0 || l.dropped > 0)
                        .map(|l| serde_json::json!({"sink": l.sink, "events": l.events, "dropped": l.dropped}))
                        .collect::<Vec<_>>(),
                    "orphans": orphans.as_ref().and_then(|m| m.get(&o.source)).map(|r| r.values().sum::<u64>()),
                    "requests": o.metrics.requests(), "retries": o.metrics.retries(),
                    "seconds": o.elapsed.as_secs_f64(),
                    "process_peak_rss_kb": peak_rss_kb,
                    "process_cpu_ms": cpu_ms,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        eprint!(
            "\n{}{}",
            super::summary::summary_table(&outcomes),
            super::summary::changes_and_orphans(&outcomes, orphans.as_ref())
        );
    }
    let missing_plugin = outcomes
        .iter()
        .any(|o| o.status == RunStatus::Failed && env.registry.get(&o.connector).is_none());
    Ok(
        if outcomes.iter().all(|o| o.status == RunStatus::Succeeded) {
            Outcome::Success
        } else if missing_plugin {
            Outcome::Plugin
        } else {
            Outcome::Failed
        },
    )
}
