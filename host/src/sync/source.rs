//! One source's sync: resume or start its checkpoint, list every page into the sinks and the
//! state database ([`super::listing`]), complete the snapshot and deliver the change events
//! ([`super::deliver`]), then advance the host's snapshot. A failure or a stop aborts the
//! sinks' sessions (each keeps its previous snapshot) and keeps the checkpoint, so the next
//! `idhost sync` goes on from the last committed page.

use std::sync::Arc;
use std::time::Instant;

use idhost_connector_sdk::host::ConnectorInstance;
use idhost_connector_sdk::{ConnectorError, Manifest, ResourceTypeSpec, SourceInfo};
use sha2::{Digest as _, Sha256};

use super::{SourceOutcome, SyncEnv, SyncOptions};
use crate::config::SourceConfig;
use crate::metrics::SourceMetrics;
use crate::progress::SourceProgress;
use crate::redact::Redactor;
use crate::retry::RetryPolicy;
use crate::services::http::{HostHttp, HttpPolicy};
use crate::services::{SourceServices, max_log_level};
use crate::sinks::{RoutedSession, RunStatus, SyncRun};
use crate::snapshot::{Checkpoint, Phase, now_rfc3339};

/// Why a sync stopped early.
pub(super) enum Stop {
    Failed(String),
    Cancelled,
}

impl Stop {
    pub(super) fn failed(err: impl std::fmt::Display) -> Self {
        Stop::Failed(err.to_string())
    }
}

/// What one source's sync works with.
pub(super) struct Ctx<'a> {
    pub(super) env: &'a SyncEnv,
    pub(super) source: &'a SourceConfig,
    pub(super) metrics: &'a Arc<SourceMetrics>,
    pub(super) progress: &'a SourceProgress,
}

impl Ctx<'_> {
    pub(super) fn name(&self) -> &str {
        &self.source.name
    }

    /// Runs `f` unless the sync is cancelled first.
    pub(super) async fn or_cancel<T>(&self, f: impl Future<Output = T>) -> Result<T, Stop> {
        tokio::select! {
            value = f => Ok(value),
            () = self.env.cancel.cancelled() => Err(Stop::Cancelled),
        }
    }
}

/// A time-ordered sync id.
pub(crate) fn new_sync_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The redactor of a source: interpolated values, manifest secret keys, secret-looking keys.
pub(crate) fn source_redactor(source: &SourceConfig, manifest: Option<&Manifest>) -> Redactor {
    let redactor = Redactor::new(source.secrets.iter().cloned());
    if let serde_json::Value::Object(settings) = &source.settings {
        for (key, value) in settings {
            let secret_key = manifest.is_some_and(|m| m.secret_keys().any(|k| k == key));
            if (secret_key || crate::redact::looks_secret(key))
                && let Some(text) = value.as_str()
            {
                redactor.add(text.to_owned());
            }
        }
    }
    redactor
}

/// The error for a source whose connector no plugin provides, located in the config.
fn missing_plugin(env: &SyncEnv, source: &SourceConfig) -> String {
    let available = env.registry.names();
    env.config
        .text
        .at(
            source.connector_offset,
            format!(
                "source `{}`: no plugin provides connector `{}` in {}; available: {}",
                source.name,
                source.connector,
                env.registry.dir.display(),
                if available.is_empty() {
                    "none".to_owned()
                } else {
                    available.join(", ")
                }
            ),
        )
        .to_string()
}

/// Opens `source`'s connector with fresh services. Shared by sync, check and provision.
pub async fn open_connector(
    env: &SyncEnv,
    source: &SourceConfig,
    info: SourceInfo,
    metrics: Arc<SourceMetrics>,
) -> Result<(ConnectorInstance, Arc<SourceServices>, Redactor), String> {
    let Some(plugin) = env.registry.get(&source.connector) else {
        return Err(missing_plugin(env, source));
    };
    let redactor = source_redactor(source, Some(plugin.manifest()));
    let committed = if info.full_sync {
        Default::default()
    } else {
        env.state
            .connector_state(&source.name)
            .map_err(|e| e.to_string())?
    };
    let policy = HttpPolicy {
        retry: RetryPolicy {
            max_attempts: source.max_attempts,
            max_wait: source.max_retry_wait,
            ..RetryPolicy::default()
        },
        timeout: source.request_timeout,
    };
    let http = Arc::new(HostHttp::new(
        env.client.clone(),
        policy,
        info.dry_run,
        source.allow_insecure_http,
        redactor.clone(),
        metrics,
    ));
    let services = Arc::new(SourceServices::new(
        &source.name,
        http,
        redactor.clone(),
        committed,
    ));
    let instance = plugin
        .open(&source.settings, info, max_log_level(), services.clone())
        .await
        .map_err(|err| describe_open_error(env, source, &redactor, &err))?;
    Ok((instance, services, redactor))
}

/// A settings error from a plugin, located in the config file when it names a key.
fn describe_open_error(
    env: &SyncEnv,
    source: &SourceConfig,
    redactor: &Redactor,
    err: &ConnectorError,
) -> String {
    let message = redactor.redact(&err.message);
    for marker in ["unknown field `", "missing field `"] {
        if let Some(start) = message.find(marker) {
            let rest = &message[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                let key = &rest[..end];
                let header = format!("sources.{}.settings", source.name);
                let located = if marker.starts_with("unknown") {
                    env.config.text.at_key(&header, key, message.clone())
                } else {
                    env.config
                        .text
                        .at_text(0, &format!("[{header}]"), message.clone())
                };
                return located.to_string();
            }
        }
    }
    format!(
        "source `{}`: opening connector `{}` failed: {message}",
        source.name, source.connector
    )
}

/// The resource types `source` syncs, in the connector's order (or the configured subset's).
pub(super) fn resource_types(
    env: &SyncEnv,
    source: &SourceConfig,
) -> Result<Vec<ResourceTypeSpec>, String> {
    let Some(plugin) = env.registry.get(&source.connector) else {
        return Err(missing_plugin(env, source));
    };
    let manifest = plugin.manifest();
    let Some(wanted) = &source.resource_types else {
        return Ok(manifest.resource_types.clone());
    };
    let mut chosen = Vec::new();
    for name in wanted {
        match manifest.resource_type(name) {
            Some(spec) => chosen.push(spec.clone()),
            None => {
                let known: Vec<&str> = manifest
                    .resource_types
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect();
                return Err(format!(
                    "source `{}`: connector `{}` has no resource type `{name}`; it has: {}",
                    source.name,
                    manifest.name,
                    known.join(", ")
                ));
            }
        }
    }
    Ok(chosen)
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

/// Opens a session in every sink routed from the source, except `skip`.
pub(super) async fn open_sessions(
    ctx: &Ctx<'_>,
    sync_id: &str,
    skip: &std::collections::BTreeSet<String>,
    sessions: &mut Vec<RoutedSession>,
) -> Result<(), Stop> {
    for sink in ctx.env.sinks.iter() {
        let config = sink.config();
        if config.inputs.includes(ctx.name()) && !skip.contains(&config.name) {
            let session = ctx
                .or_cancel(sink.begin(ctx.name(), sync_id))
                .await?
                .map_err(Stop::failed)?;
            sessions.push(RoutedSession::new(config, session));
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
