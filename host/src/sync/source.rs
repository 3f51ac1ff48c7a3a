//! One source's sync: resume or start its checkpoint, list every page into the sinks and the
//! journal ([`super::listing`]), complete the snapshot and deliver the change events
//! ([`super::deliver`]), then advance the journal's snapshot. A failure or a stop aborts the
//! sinks' sessions (each keeps its previous snapshot) and keeps the checkpoint, so the next
//! `idhost sync` goes on from the last committed page.

use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest as _, Sha256};

use super::connector::resource_types;
use super::ctx::{Ctx, Stop};
use super::env::SyncEnv;
use super::options::{SourceOutcome, SyncOptions};
use crate::clock::now_rfc3339;
use crate::config::SourceConfig;
use crate::metrics::SourceMetrics;
use crate::record::{RunStatus, SyncRun};
use crate::route::RoutedSession;
use crate::state::{Checkpoint, Phase};

/// A time-ordered sync id.
pub(crate) fn new_sync_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A hash of what decides a source's listing: a checkpoint taken under another config is not
/// resumed (its pages may mean something else now).
fn config_hash(source: &SourceConfig) -> String {
    let mut hash = Sha256::new();
    hash.update(source.connector.as_bytes());
    hash.update([0]);
    hash.update(source.settings.to_string().as_bytes());
    hash.update([0]);
    hash.update(format!("{:?}", source.resource_types).as_bytes());
    hex::encode(&hash.finalize()[..16])
}

/// The checkpoint this sync runs under: the interrupted one if it still fits, else a new one.
fn prepare(ctx: &Ctx<'_>, options: &SyncOptions) -> Result<Checkpoint, String> {
    let (state, name) = (&ctx.env.state, ctx.name());
    let hash = config_hash(ctx.source);
    if let Some(mut cp) = state.checkpoint(name).map_err(|e| e.to_string())? {
        let reason = if options.restart {
            Some("--restart".to_owned())
        } else if cp.config_hash != hash {
            Some("the source's config changed".to_owned())
        } else if cp.full != options.full || cp.resources_only != options.resources_only {
            Some("it was started with other --full/--resources-only flags".to_owned())
        } else {
            None
        };
        match reason {
            None => {
                cp.attempts += 1;
                state
                    .save_checkpoint(name, &cp)
                    .map_err(|e| e.to_string())?;
                let at = match cp.phase {
                    Phase::Listing => match cp.types.get(cp.type_index) {
                        Some(t) => format!("at `{t}` after {} committed pages", cp.pages),
                        None => "at the end of its listing".to_owned(),
                    },
                    Phase::Delivering => "at the delivery of its events".to_owned(),
                };
                tracing::info!(source = %name, sync_id = %cp.sync_id, attempt = cp.attempts, "resuming the interrupted sync {at}");
                return Ok(cp);
            }
            Some(reason) => {
                tracing::info!(source = %name, sync_id = %cp.sync_id, "not resuming the interrupted sync ({reason}); starting over");
                state.discard_sync(name).map_err(|e| e.to_string())?;
            }
        }
    }
    let types = resource_types(ctx.env, ctx.source)?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let base = state
        .committed_snapshot(name)
        .map_err(|e| e.to_string())?
        .map(|(generation, _)| generation);
    let mut cp = Checkpoint::new(new_sync_id(), now_rfc3339(), hash, types, base);
    cp.full = options.full;
    cp.resources_only = options.resources_only;
    state.begin_sync(name, &cp).map_err(|e| e.to_string())?;
    Ok(cp)
}

/// Syncs one source completely (resuming its interrupted sync, if any), or fails it alone.
pub async fn sync_source(
    env: &SyncEnv,
    source: &SourceConfig,
    options: &SyncOptions,
) -> SourceOutcome {
    let started = Instant::now();
    let metrics = Arc::new(SourceMetrics::default());
    let progress = env.progress.source(&source.name);
    let ctx = Ctx {
        env,
        source,
        metrics: &metrics,
        progress: &progress,
    };
    let mut sessions = Vec::new();
    let (checkpoint, result) = match prepare(&ctx, options) {
        Ok(mut cp) => {
            let result = drive(&ctx, &mut cp, &mut sessions).await;
            (Some(cp), result)
        }
        Err(message) => (None, Err(Stop::Failed(message))),
    };
    let (status, error) = match &result {
        Ok(()) => (RunStatus::Succeeded, None),
        Err(Stop::Cancelled) => (
            RunStatus::Cancelled,
            Some("cancelled by a signal".to_owned()),
        ),
        Err(Stop::Failed(message)) => (RunStatus::Failed, Some(message.clone())),
    };
    if let Some(message) = &error {
        tracing::error!(source = %source.name, error = %message, "sync did not complete; the next sync resumes it");
    }
    let counts = checkpoint
        .as_ref()
        .map(|c| c.counts.clone())
        .unwrap_or_default();
    let run = SyncRun {
        source: source.name.clone(),
        sync_id: checkpoint
            .as_ref()
            .map(|c| c.sync_id.clone())
            .unwrap_or_default(),
        started_at: checkpoint
            .as_ref()
            .map_or_else(now_rfc3339, |c| c.started_at.clone()),
        finished_at: now_rfc3339(),
        status,
        counts: counts.clone(),
        error: error.clone(),
    };
    abort_all(source, sessions, &run).await;
    progress.finish(
        status,
        counts.resource_total() + counts.entitlements + counts.grants,
    );
    SourceOutcome {
        source: source.name.clone(),
        connector: source.connector.clone(),
        sync_id: run.sync_id,
        status,
        counts,
        error,
        elapsed: started.elapsed(),
        metrics,
    }
}

/// Aborts the sessions a failed or stopped sync left open (each sink keeps its previous
/// snapshot and records the run).
async fn abort_all(source: &SourceConfig, sessions: Vec<RoutedSession>, run: &SyncRun) {
    for session in sessions {
        let sink = session.sink().to_owned();
        if let Err(err) = session.abort(run).await {
            tracing::error!(source = %source.name, sink = %sink, error = %err, "sink failed to record the failed sync");
        }
    }
}

/// Opens a session in every sink the router reaches from the source, except `skip`.
async fn open_sessions(
    ctx: &Ctx<'_>,
    sync_id: &str,
    skip: &std::collections::BTreeSet<String>,
    sessions: &mut Vec<RoutedSession>,
) -> Result<(), Stop> {
    for sink in ctx.env.router.routed_from(ctx.name()) {
        if !skip.contains(&sink.config().name) {
            let session = ctx
                .or_cancel(RoutedSession::begin(sink, ctx.name(), sync_id))
                .await?
                .map_err(Stop::failed)?;
            sessions.push(session);
        }
    }
    Ok(())
}

/// The record fields each resource type's connector declares volatile (never a change).
fn volatile_fields(ctx: &Ctx<'_>) -> std::collections::BTreeMap<String, Vec<String>> {
    ctx.env
        .registry
        .get(&ctx.source.connector)
        .map(|plugin| {
            plugin
                .manifest()
                .resource_types
                .iter()
                .filter(|t| !t.volatile_fields.is_empty())
                .map(|t| (t.name.clone(), t.volatile_fields.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The phases of a sync, from wherever its checkpoint says it is.
async fn drive(
    ctx: &Ctx<'_>,
    cp: &mut Checkpoint,
    sessions: &mut Vec<RoutedSession>,
) -> Result<(), Stop> {
    let state = &ctx.env.state;
    let delivered = match cp.phase {
        Phase::Listing => Default::default(),
        Phase::Delivering => state
            .delivered_sinks(ctx.name(), &cp.sync_id)
            .map_err(Stop::failed)?,
    };
    open_sessions(ctx, &cp.sync_id, &delivered, sessions).await?;
    if cp.attempts > 1 {
        super::deliver::replay(ctx, cp, sessions).await?;
    }
    if cp.phase == Phase::Listing {
        super::listing::list(ctx, cp, sessions).await?;
        super::deliver::carry_over(ctx, cp, sessions).await?;
        let events = ctx
            .or_cancel(state.diff(ctx.name(), cp, now_rfc3339(), &volatile_fields(ctx)))
            .await?
            .map_err(Stop::failed)?;
        if cp.base_gen.is_none() {
            tracing::info!(source = %ctx.name(), "first complete sync of this source: its snapshot is the baseline, no change events");
        } else {
            tracing::info!(source = %ctx.name(), events, "listing complete; delivering change events");
        }
    }
    // The outbox holds this sync's events until the commit below clears it.
    cp.counts.changes = state
        .event_counts(ctx.name(), &cp.sync_id)
        .map_err(Stop::failed)?
        .into_iter()
        .collect();
    let run = SyncRun {
        source: ctx.name().to_owned(),
        sync_id: cp.sync_id.clone(),
        started_at: cp.started_at.clone(),
        finished_at: now_rfc3339(),
        status: RunStatus::Succeeded,
        counts: cp.counts.clone(),
        error: None,
    };
    super::deliver::deliver(ctx, cp, std::mem::take(sessions), &run).await?;
    state
        .commit_sync(ctx.name(), cp, run.finished_at.clone())
        .await
        .map_err(Stop::failed)
}
