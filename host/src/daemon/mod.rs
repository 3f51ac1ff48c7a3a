//! `idhost run`: the daemon. Every source syncs on its schedule (`schedule`, daily when unset),
//! with jitter, never twice at once; `/healthz`, `/readyz` and `/metrics` answer on `--listen`;
//! failures, overdue syncs and missed schedules reach the `[notify]` targets once per incident;
//! with `[coordination]` several replicas share the sources through Postgres leases.
//!
//! Stopping: on SIGTERM the daemon turns not-ready, starts no new sync, lets running syncs finish
//! for `--shutdown-grace`, then cancels them (a cancelled sync aborts or checkpoints between pages;
//! sinks keep their previous snapshot), waits at most [`ABORT_BOUND`] for that, gives its leases
//! back and exits 0. A second signal skips the rest of the grace.

mod lease;
mod listener;
mod metered;
mod scheduler;
mod server;
mod shutdown;
mod slots;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::exit::{CommandError, Outcome};
use crate::metrics::DaemonMetrics;
use crate::notify::Notifier;
use crate::progress::Progress;
use crate::schedule::Schedule;
use crate::sync::{EnvSetup, SyncEnv};
use lease::{PgCoordinator, SourceLease};
use store::{LocalStore, ScheduleStore};

pub use store::StoreError;

/// How long cancelled syncs get to abort (or checkpoint) after the grace ran out.
pub const ABORT_BOUND: Duration = Duration::from_secs(10);

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// The validated config.
    pub config: Arc<Config>,
    /// `--plugin-dir`.
    pub plugin_dir: Option<PathBuf>,
    /// Address of the health and metrics server.
    pub listen: SocketAddr,
    /// How long running syncs may go on after SIGTERM.
    pub shutdown_grace: Duration,
    /// Most jitter before a scheduled sync.
    pub max_jitter: Duration,
}

/// Runs the daemon until a stop signal; `Ok(Success)` after a graceful stop.
pub async fn run(options: DaemonOptions) -> Result<Outcome, CommandError> {
    let config = options.config.clone();
    listener::raise_fd_limit();
    let mut signals = shutdown::install()
        .context("cannot install the SIGTERM handler")
        .map_err(CommandError::failed)?;
    let metrics = Arc::new(DaemonMetrics::default());
    let status = server::Status {
        metrics: metrics.clone(),
        ..server::Status::default()
    };
    status.alive.store(true, Ordering::Relaxed);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (--listen / IDHOST_LISTEN)",
                options.listen
            )
        })
        .map_err(CommandError::failed)?;
    let address = listener.local_addr().unwrap_or(options.listen);
    tracing::info!(listen = %address, "idhost run: listening");
    let hard = CancellationToken::new();
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(listener::serve(
        listener,
        server::app(status.clone()),
        server_stop.clone(),
    ));

    let env = SyncEnv::open(
        config.clone(),
        options.plugin_dir.as_deref(),
        EnvSetup {
            sinks: true,
            progress: Progress::hidden(),
            cancel: hard.clone(),
        },
    )
    .await?
    .layer_sinks(|sinks| metered::wrap(sinks, &metrics));
    let client = env.client.clone();
    let notifier = Arc::new(
        Notifier::start(&config.notify, client.clone(), metrics.clone())
            .map_err(CommandError::usage)?,
    );
    let replica = lease::replica_id();
    let stop = CancellationToken::new();

    let mut leases = std::collections::BTreeMap::new();
    for source in &config.sources {
        metrics.register_source(&source.name);
        let lease = Arc::new(if config.coordination.is_some() {
            SourceLease::none()
        } else {
            SourceLease::forever()
        });
        leases.insert(source.name.clone(), lease);
    }
    let leases = Arc::new(leases);
    let (store, coordinator): (Arc<dyn ScheduleStore>, Option<Arc<PgCoordinator>>) =
        match &config.coordination {
            Some(c) => {
                let coordinator = Arc::new(PgCoordinator::new(
                    c.postgres_url.clone(),
                    replica.clone(),
                    c.lease,
                    leases.clone(),
                    metrics.clone(),
                ));
                (coordinator.clone(), Some(coordinator))
            }
            None => match &config.state_postgres {
                // One replica, state in Postgres: the schedule and incidents sit beside it.
                Some(url) => (
                    Arc::new(
                        store::PgLocalStore::connect(url)
                            .await
                            .map_err(CommandError::failed)?,
                    ),
                    None,
                ),
                None => (
                    Arc::new(LocalStore::open(&config.state_path).map_err(CommandError::failed)?),
                    None,
                ),
            },
        };
    let mut background = JoinSet::new();
    if let Some(coordinator) = &coordinator {
        // Ready only once the database answers (the schema is created on first connect).
        if !wait_for_database(coordinator, &mut signals).await {
            tracing::info!("idhost run: stopped before the coordination database answered");
            server_stop.cancel();
            return Ok(Outcome::Success);
        }
        background.spawn(coordinator.clone().run(stop.clone()));
    }

    let shared = Arc::new(scheduler::Shared {
        env,
        lease_check: coordinator
            .clone()
            .map(|c| c as Arc<dyn crate::sync::LeaseCheck>),
        store,
        metrics: metrics.clone(),
        notifier: notifier.clone(),
        replica: replica.clone(),
        stop: stop.clone(),
        hard: hard.clone(),
        max_jitter: options.max_jitter,
    });
    let mut runners = JoinSet::new();
    for source in &config.sources {
        let schedule = source
            .schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok())
            .unwrap_or_else(Schedule::daily);
        let Some(lease) = leases.get(&source.name).cloned() else {
            continue;
        };
        runners.spawn(scheduler::run_source(
            shared.clone(),
            source.clone(),
            schedule,
            lease,
        ));
    }
    status.ready.store(true, Ordering::Relaxed);
    tracing::info!(
        listen = %address, sources = config.sources.len(), replica = %replica,
        coordinated = config.coordination.is_some(), "idhost run: ready"
    );

    // Run until a signal; a scheduler ending early is reported, and the others go on.
    loop {
        tokio::select! {
            signal = signals.recv() => {
                tracing::warn!(signal = signal.unwrap_or("signal"), grace = ?options.shutdown_grace,
                    "stopping: no new syncs; running ones get the grace period");
                break;
            }
            Some(ended) = runners.join_next() => {
                status.alive.store(false, Ordering::Relaxed);
                tracing::error!(result = ?ended.err(), "a source scheduler ended unexpectedly");
            }
        }
    }
    status.ready.store(false, Ordering::Relaxed);
    stop.cancel();
    let drained = tokio::select! {
        finished = tokio::time::timeout(options.shutdown_grace, join_all(&mut runners)) => finished.is_ok(),
        _ = signals.recv() => false,
    };
    if !drained {
        tracing::warn!("cancelling running syncs; their sinks keep the previous snapshot");
        hard.cancel();
        if tokio::time::timeout(ABORT_BOUND, join_all(&mut runners))
            .await
            .is_err()
        {
            tracing::error!("syncs did not stop within {ABORT_BOUND:?}; exiting anyway");
            runners.abort_all();
        }
    }
    join_all(&mut background).await;
    if let Some(coordinator) = &coordinator {
        coordinator.release_all().await;
    }
    notifier.drain(Duration::from_secs(3)).await;
    server_stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    tracing::info!("idhost run: stopped");
    Ok(Outcome::Success)
}

async fn join_all(set: &mut JoinSet<()>) {
    while set.join_next().await.is_some() {}
}

/// Connects to the coordination database, retrying until it answers (true) or a stop signal
/// comes first (false).
async fn wait_for_database(
    coordinator: &PgCoordinator,
    signals: &mut tokio::sync::mpsc::UnboundedReceiver<&'static str>,
) -> bool {
    let mut pause = Duration::from_millis(500);
    loop {
        match coordinator.client().await {
            Ok(_) => {
                tracing::info!(replica = %coordinator.holder(), "coordination database connected");
                return true;
            }
            Err(err) => {
                tracing::warn!(error = %err, "coordination database not reachable yet; retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = signals.recv() => return false,
        }
        pause = (pause * 2).min(Duration::from_secs(15));
    }
}
