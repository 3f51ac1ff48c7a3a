//! Syncing the chosen sources at once, each on its own task and each failing alone.

use std::sync::Arc;

use super::env::SyncEnv;
use super::options::{SourceOutcome, SyncOptions};
use super::source::sync_source;
use crate::record::{Counts, RunStatus};

/// Syncs the chosen sources at once, each on its own task (so a heavy page decode in one
/// source does not stall the others); unknown names in `options.sources` are reported by the
/// caller before this runs.
pub async fn run(env: &SyncEnv, options: &SyncOptions) -> Vec<SourceOutcome> {
    let tasks = env
        .config
        .sources
        .iter()
        .filter(|s| options.sources.is_empty() || options.sources.contains(&s.name))
        .map(|source| {
            let (env, source, options) = (env.clone(), source.clone(), options.clone());
            let name = source.name.clone();
            let connector = source.connector.clone();
            let handle = tokio::spawn(async move { sync_source(&env, &source, &options).await });
            (name, connector, handle)
        })
        .collect::<Vec<_>>();
    let mut outcomes = Vec::new();
    for (name, connector, handle) in tasks {
        outcomes.push(handle.await.unwrap_or_else(|err| SourceOutcome {
            source: name,
            connector,
            sync_id: String::new(),
            status: RunStatus::Failed,
            counts: Counts::default(),
            error: Some(format!("the host's sync task failed: {err}")),
            elapsed: std::time::Duration::ZERO,
            metrics: Arc::default(),
            removals: None,
            sink_lag: Vec::new(),
        }));
    }
    outcomes
}
