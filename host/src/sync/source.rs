//! One source's sync: resume or start its checkpoint, list every page into the sinks and the
//! journal ([`super::listing`]), apply the mass-removal brake, complete the snapshot and
//! deliver the change events ([`super::deliver`]), then advance the journal's snapshot. A
//! failure or a stop while listing aborts the sinks' sessions (each keeps its previous
//! snapshot) and keeps the checkpoint, so the next `idhost sync` goes on from the last
//! committed page. A sink that fails at delivery holds back neither the other sinks nor the
//! journal: its events wait in the outbox for it (see [`crate::state`]).
//!
//! The brake (DESIGN §7.1): a complete listing that removes more of the previous snapshot's
//! resources, or of its grants, than the source's `max_removals` allows (and more than 10) is
//! held: no diff, no event, no sink commit (the sessions are dropped, so each sink keeps its
//! staging invisible and its snapshot), the checkpoint kept in phase `held` with the counts.
//! The next `idhost sync` reports it held again without listing; `idhost approve` resumes it
//! (the staged listing is replayed to the sinks, diffed and delivered) and
//! `idhost sync --allow-removals` or `--restart` drops it and lists again.

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
use crate::state::{Checkpoint, Phase, Removals};

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
    // The settings as written: `${VAR}` references, never their values, so rotating a
    // secret (or any interpolated value) keeps an interrupted sync resumable.
    hash.update(source.settings_template.as_bytes());
    hash.update([0]);
    hash.update(format!("{:?}", source.resource_types).as_bytes());
    hex::encode(&hash.finalize()[..16])
}

/// The checkpoint this sync runs under: the interrupted one if it still fits, else a new one.
/// A sync that finished listing and is delivering is never thrown away: when something asks
/// to start over, it is committed to the journal first, its events kept in the outbox for the
/// sinks that have not taken them (the new sync delivers them).
async fn prepare(ctx: &Ctx<'_>, options: &SyncOptions) -> Result<Checkpoint, String> {
    let (state, name) = (&ctx.env.state, ctx.name());
    let hash = config_hash(ctx.source);
    let existing = state.checkpoint(name).await.map_err(|e| e.to_string())?;
    if options.approve {
        return match existing {
            Some(mut cp) if cp.phase == Phase::Held => {
                cp.attempts += 1;
                state
                    .save_checkpoint(name, &cp)
                    .await
                    .map_err(|e| e.to_string())?;
                tracing::info!(source = %name, sync_id = %cp.sync_id, "approving the held sync: committing its listing without listing again");
                Ok(cp)
            }
            _ => Err(format!(
                "source `{name}` has no held sync to approve (`idhost sync` holds one that removes more than `max_removals` allows)"
            )),
        };
    }
    if let Some(mut cp) = existing {
        let reason = if options.restart {
            Some("--restart".to_owned())
        } else if cp.config_hash != hash {
            Some("the source's config changed".to_owned())
        } else if cp.full != options.full || cp.resources_only != options.resources_only {
            Some("it was started with other --full/--resources-only flags".to_owned())
        } else if cp.phase == Phase::Held && options.allow_removals {
            Some("--allow-removals lists the source again and accepts what it removes".to_owned())
        } else {
            None
        };
        match reason {
            None => {
                cp.attempts += 1;
                state
                    .save_checkpoint(name, &cp)
                    .await
                    .map_err(|e| e.to_string())?;
                let at = match cp.phase {
                    Phase::Listing => match cp.types.get(cp.type_index) {
                        Some(t) => format!("at `{t}` after {} committed pages", cp.pages),
                        None => "at the end of its listing".to_owned(),
                    },
                    Phase::Delivering => "at the delivery of its events".to_owned(),
                    Phase::Held => "held by the mass-removal brake".to_owned(),
                };
                tracing::info!(source = %name, sync_id = %cp.sync_id, attempt = cp.attempts, "resuming the interrupted sync {at}");
                return Ok(cp);
            }
            Some(reason) if cp.phase == Phase::Delivering => {
                tracing::info!(source = %name, sync_id = %cp.sync_id, "the interrupted sync had finished listing; {reason} does not throw its events away: committing it to the journal, its events kept for the sinks that have not taken them");
                let lost = state
                    .commit_sync(name, &cp, now_rfc3339())
                    .await
                    .map_err(|e| e.to_string())?;
                super::deliver::report_lost(ctx, &lost);
            }
            Some(reason) => {
                tracing::info!(source = %name, sync_id = %cp.sync_id, "not resuming the interrupted sync ({reason}); starting over");
                state.discard_sync(name).await.map_err(|e| e.to_string())?;
            }
        }
    }
    let types = resource_types(ctx.env, ctx.source)?
        .into_iter()
        .map(|t| t.name)
        .collect();
    let base = state
        .committed_snapshot(name)
        .await
        .map_err(|e| e.to_string())?
        .map(|(generation, _)| generation);
    let mut cp = Checkpoint::new(new_sync_id(), now_rfc3339(), hash, types, base);
    cp.full = options.full;
    cp.resources_only = options.resources_only;
    state
        .begin_sync(name, &cp)
        .await
        .map_err(|e| e.to_string())?;
    Ok(cp)
}

/// How [`drive`] ended when it did not fail.
enum Driven {
    /// Every sink took the sync and the journal's snapshot advanced.
    Committed,
    /// Held by the mass-removal brake.
    Held(Removals),
}

/// The message of a held sync: both counts, and what to do.
fn held_message(source: &SourceConfig, removals: &Removals) -> String {
    let limit = source.max_removals;
    let share = |removed: u64, before: u64| {
        let allowed = limit
            .allowed(before)
            .map_or_else(|| "no limit".to_owned(), |n| format!("limit {n}"));
        format!("{removed} of {before} ({allowed})")
    };
    format!(
        "held by the mass-removal brake (max_removals = {}): this sync would remove {} resources and {} grants of the previous snapshot; nothing was written, no event was sent. Check the upstream, then run `idhost approve -c FILE --source {}` to commit this sync as listed, or `idhost sync --allow-removals --source {}` to list again and accept it",
        limit.describe(),
        share(removals.resources, removals.resources_before),
        share(removals.grants, removals.grants_before),
        source.name,
        source.name,
    )
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
    let (checkpoint, result) = match prepare(&ctx, options).await {
        Ok(mut cp) => {
            let result = drive(&ctx, &mut cp, &mut sessions, options).await;
            (Some(cp), result)
        }
        Err(message) => (None, Err(Stop::Failed(message))),
    };
    let (status, error) = match &result {
        Ok(Driven::Committed) => (RunStatus::Succeeded, None),
        Ok(Driven::Held(removals)) => (RunStatus::Held, Some(held_message(source, removals))),
        Err(Stop::Cancelled) => (
            RunStatus::Cancelled,
            Some("cancelled by a signal".to_owned()),
        ),
        Err(Stop::Failed(message)) => (RunStatus::Failed, Some(message.clone())),
    };
    match (&result, &error) {
        (Ok(Driven::Held(_)), Some(message)) => {
            tracing::warn!(source = %source.name, "{message}");
        }
        (_, Some(message)) => {
            tracing::error!(source = %source.name, error = %message, "sync did not complete");
        }
        _ => {}
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
    let sink_lag = match env.state.sink_lag(&source.name).await {
        Ok(lag) => lag,
        Err(err) => {
            tracing::warn!(source = %source.name, error = %err, "cannot read how far the sinks are behind");
            Vec::new()
        }
    };
    for lag in sink_lag.iter().filter(|l| l.events > 0) {
        tracing::warn!(source = %source.name, sink = %lag.sink, events = lag.events, "sink is behind: the outbox keeps its events until it takes them");
    }
    SourceOutcome {
        source: source.name.clone(),
        connector: source.connector.clone(),
        sync_id: run.sync_id,
        status,
        counts,
        error,
        elapsed: started.elapsed(),
        metrics,
        removals: checkpoint.as_ref().and_then(|c| c.removals),
        sink_lag,
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
    options: &SyncOptions,
) -> Result<Driven, Stop> {
    let state = &ctx.env.state;
    if cp.phase == Phase::Held && !options.approve {
        return Ok(Driven::Held(cp.removals.unwrap_or_default()));
    }
    let delivered = match cp.phase {
        Phase::Listing | Phase::Held => Default::default(),
        Phase::Delivering => state
            .delivered_sinks(ctx.name(), &cp.sync_id)
            .await
            .map_err(Stop::failed)?,
    };
    open_sessions(ctx, &cp.sync_id, &delivered, sessions).await?;
    // A resumed sync (and an approved one, whose sessions were dropped when it was held)
    // hands fresh sessions what its earlier attempts listed.
    if cp.attempts > 1 || cp.phase == Phase::Held {
        super::deliver::replay(ctx, cp, sessions).await?;
    }
    if cp.phase == Phase::Listing {
        super::listing::list(ctx, cp, sessions).await?;
        super::deliver::carry_over(ctx, cp, sessions).await?;
        if !options.allow_removals && ctx.source.max_removals != crate::config::RemovalLimit::Off {
            let removals = ctx
                .or_cancel(state.removals(ctx.name(), cp))
                .await?
                .map_err(Stop::failed)?;
            let limit = ctx.source.max_removals;
            if limit.holds(removals.resources, removals.resources_before)
                || limit.holds(removals.grants, removals.grants_before)
            {
                cp.phase = Phase::Held;
                cp.removals = Some(removals);
                state
                    .save_checkpoint(ctx.name(), cp)
                    .await
                    .map_err(Stop::failed)?;
                // Dropped, not aborted: no sink records anything of a held sync.
                sessions.clear();
                return Ok(Driven::Held(removals));
            }
        }
    }
    if matches!(cp.phase, Phase::Listing | Phase::Held) {
        if cp.phase == Phase::Held {
            tracing::info!(source = %ctx.name(), "approved: diffing and delivering the held sync");
        }
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
    // The outbox holds this sync's events until every sink has taken them.
    cp.counts.changes = state
        .event_counts(ctx.name(), &cp.sync_id)
        .await
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
    let delivery = super::deliver::deliver(ctx, cp, std::mem::take(sessions), &run).await?;
    // Stopped part-way: the sync stays `delivering` and the next one finishes it.
    if delivery.cancelled {
        return Err(Stop::Cancelled);
    }
    // Every sink had its chance: the journal moves on, whichever failed; what a failing sink
    // did not take waits for it in the outbox.
    let lost = state
        .commit_sync(ctx.name(), cp, run.finished_at.clone())
        .await
        .map_err(Stop::failed)?;
    super::deliver::report_lost(ctx, &lost);
    if delivery.failures.is_empty() {
        Ok(Driven::Committed)
    } else {
        Err(Stop::Failed(format!(
            "{}; the other sinks committed this sync and the source's snapshot advanced; the failing sinks get the events they missed (once each) when they take a later sync",
            delivery.failures.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    fn hash_with(secret: &str, page_size: u32) -> String {
        let text = format!(
            "[sources.corp]\nconnector = \"entra\"\n[sources.corp.settings]\ntenant_id = \"t\"\nclient_id = \"c\"\nclient_secret = \"${{ENTRA_SECRET}}\"\npage_size = {page_size}\n[sinks.db]\ntype = \"sqlite\"\npath = \"x.db\"\n"
        );
        let env = |name: &str| (name == "ENTRA_SECRET").then(|| secret.to_owned());
        let config = crate::config::parse(std::path::Path::new("idhost.toml"), text, &env).unwrap();
        config_hash(&config.sources[0])
    }

    #[test]
    fn rotating_a_secret_keeps_the_config_hash_and_a_setting_change_does_not() {
        assert_eq!(hash_with("old-secret", 100), hash_with("new-secret", 100));
        assert_ne!(hash_with("old-secret", 100), hash_with("old-secret", 50));
    }
}
