//! One source's sync: open the connector, page through every resource type, route each page
//! to the source's sinks, then commit everywhere, or abort everywhere and keep the last good
//! snapshot.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt as _;
use idhost_connector_sdk::host::ConnectorInstance;
use idhost_connector_sdk::{ConnectorError, Manifest, Page, PageToken, Resource, SourceInfo};

use super::{SourceOutcome, SyncEnv, SyncOptions};
use crate::config::SourceConfig;
use crate::metrics::SourceMetrics;
use crate::progress::SourceProgress;
use crate::redact::Redactor;
use crate::services::http::{HostHttp, HttpPolicy};
use crate::services::{SourceServices, max_log_level};
use crate::sinks::{Batch, Counts, RoutedSession, RunStatus, SyncRun};

/// What a sync has opened and must finish: the sink sessions and the connector's services
/// (whose staged state is committed only with a complete sync).
#[derive(Default)]
struct OpenSync {
    sessions: Vec<RoutedSession>,
    services: Option<Arc<SourceServices>>,
}

/// Why a sync stopped early.
enum Stop {
    Failed(String),
    Cancelled,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A time-ordered sync id.
pub(crate) fn new_sync_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Settings keys whose values are credentials even if the manifest forgot to say so.
fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "api_key",
        "apikey",
        "private_key",
    ]
    .iter()
    .any(|s| key.contains(s))
}

/// The redactor of a source: interpolated values, manifest secret keys, secret-looking keys.
pub(crate) fn source_redactor(source: &SourceConfig, manifest: Option<&Manifest>) -> Redactor {
    let redactor = Redactor::new(source.secrets.iter().cloned());
    if let serde_json::Value::Object(settings) = &source.settings {
        for (key, value) in settings {
            let secret_key = manifest.is_some_and(|m| m.secret_keys().any(|k| k == key));
            if secret_key || looks_secret(key) {
                if let Some(text) = value.as_str() {
                    redactor.add(text.to_owned());
                }
            }
        }
    }
    redactor
}

/// Opens `source`'s connector with fresh services. Shared by sync, check and provision.
pub async fn open_connector(
    env: &SyncEnv,
    source: &SourceConfig,
    info: SourceInfo,
    metrics: Arc<SourceMetrics>,
) -> Result<(ConnectorInstance, Arc<SourceServices>, Redactor), String> {
    let Some(plugin) = env.registry.get(&source.connector) else {
        let available = env.registry.names();
        let location = env.config.text.at(
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
        );
        return Err(location.to_string());
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
        max_attempts: source.max_attempts,
        timeout: source.request_timeout,
        ..HttpPolicy::default()
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

/// Syncs one source completely, or fails it alone.
pub async fn sync_source(
    env: &SyncEnv,
    source: &SourceConfig,
    options: &SyncOptions,
) -> SourceOutcome {
    let started = Instant::now();
    let started_at = now_rfc3339();
    let sync_id = new_sync_id();
    let metrics = Arc::new(SourceMetrics::default());
    let progress = env.progress.source(&source.name);
    let mut counts = Counts::default();
    let mut open = OpenSync::default();
    let result = run(
        env,
        source,
        options,
        &sync_id,
        &metrics,
        &progress,
        &mut counts,
        &mut open,
    )
    .await;
    let (status, error) = match &result {
        Ok(()) => (RunStatus::Succeeded, None),
        Err(Stop::Cancelled) => (
            RunStatus::Cancelled,
            Some("cancelled by a signal".to_owned()),
        ),
        Err(Stop::Failed(message)) => (RunStatus::Failed, Some(message.clone())),
    };
    let mut run_record = SyncRun {
        source: source.name.clone(),
        sync_id: sync_id.clone(),
        started_at,
        finished_at: now_rfc3339(),
        status,
        counts: counts.clone(),
        error: error.clone(),
    };
    let (status, error) = finish(env, source, &mut run_record, open, result.is_ok()).await;
    progress.finish(
        status,
        counts.resource_total() + counts.entitlements + counts.grants,
    );
    SourceOutcome {
        source: source.name.clone(),
        connector: source.connector.clone(),
        sync_id,
        status,
        counts,
        error,
        elapsed: started.elapsed(),
        metrics,
    }
}

/// Commits (on success) or aborts every session, then the connector state.
async fn finish(
    env: &SyncEnv,
    source: &SourceConfig,
    run: &mut SyncRun,
    open: OpenSync,
    complete: bool,
) -> (RunStatus, Option<String>) {
    let mut errors = Vec::new();
    for session in open.sessions {
        let sink = session.sink().to_owned();
        let result = if complete {
            session.commit(run).await
        } else {
            session.abort(run).await
        };
        if let Err(err) = result {
            tracing::error!(source = %source.name, sink = %sink, error = %err, "sink failed to finish the sync");
            errors.push(err.to_string());
        }
    }
    if complete && errors.is_empty() {
        if let Some(services) = open.services {
            if let Err(err) = env
                .state
                .commit_connector_state(&source.name, &services.staged_state())
            {
                errors.push(err.to_string());
            }
        }
    }
    if errors.is_empty() {
        (run.status, run.error.clone())
    } else {
        run.status = RunStatus::Failed;
        let message = errors.join("; ");
        run.error = Some(match &run.error {
            Some(e) => format!("{e}; {message}"),
            None => message,
        });
        (run.status, run.error.clone())
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    env: &SyncEnv,
    source: &SourceConfig,
    options: &SyncOptions,
    sync_id: &str,
    metrics: &Arc<SourceMetrics>,
    progress: &SourceProgress,
    counts: &mut Counts,
    open: &mut OpenSync,
) -> Result<(), Stop> {
    let info = SourceInfo {
        source: source.name.clone(),
        read_only: source.read_only,
        dry_run: false,
        full_sync: options.full,
    };
    let opened = tokio::select! {
        opened = open_connector(env, source, info, metrics.clone()) => opened,
        () = env.cancel.cancelled() => return Err(Stop::Cancelled),
    };
    let (instance, services, redactor) = opened.map_err(Stop::Failed)?;
    open.services = Some(services);
    for sink in env.sinks.iter() {
        if sink.config().inputs.includes(&source.name) {
            let session = sink
                .begin(&source.name, sync_id)
                .await
                .map_err(|e| Stop::Failed(e.to_string()))?;
            open.sessions
                .push(RoutedSession::new(sink.config(), session));
        }
    }
    let manifest = instance.manifest().clone();
    let types: Vec<_> = match &source.resource_types {
        None => manifest.resource_types.clone(),
        Some(wanted) => {
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
                        return Err(Stop::Failed(format!(
                            "source `{}`: connector `{}` has no resource type `{name}`; it has: {}",
                            source.name,
                            manifest.name,
                            known.join(", ")
                        )));
                    }
                }
            }
            chosen
        }
    };
    let fail = |what: String, err: ConnectorError| {
        Stop::Failed(redactor.redact(&format!("{what}: {} ({})", err.message, err.kind)))
    };
    for spec in types {
        let mut token = PageToken::first();
        let mut seen = HashSet::new();
        let mut page_no = 0u64;
        loop {
            let page: Page<Resource> = tokio::select! {
                page = instance.list(&spec.name, token.clone()) => page,
                () = env.cancel.cancelled() => return Err(Stop::Cancelled),
            }
            .map_err(|e| fail(format!("listing `{}` page {}", spec.name, page_no + 1), e))?;
            page_no += 1;
            if page.incremental {
                return Err(Stop::Failed(format!(
                    "listing `{}`: the connector sent an incremental page, which this host version cannot apply yet; run with --full",
                    spec.name
                )));
            }
            let next = page.next.clone();
            let mut batch = Batch {
                resources: page.items,
                entitlements: if options.resources_only {
                    Vec::new()
                } else {
                    page.entitlements
                },
                grants: if options.resources_only {
                    Vec::new()
                } else {
                    page.grants
                },
            };
            if spec.per_resource_details && !options.resources_only {
                let details = tokio::select! {
                    d = details(&instance, &batch.resources, source.concurrency) => d,
                    () = env.cancel.cancelled() => return Err(Stop::Cancelled),
                };
                let (ents, grants) =
                    details.map_err(|(id, e)| fail(format!("details of `{id}`"), e))?;
                batch.entitlements.extend(ents);
                batch.grants.extend(grants);
            }
            *counts.resources.entry(spec.name.clone()).or_default() += batch.resources.len() as u64;
            counts.entitlements += batch.entitlements.len() as u64;
            counts.grants += batch.grants.len() as u64;
            metrics
                .pages
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            metrics
                .records
                .fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
            for session in open.sessions.iter_mut() {
                session
                    .write(&batch)
                    .await
                    .map_err(|e| Stop::Failed(e.to_string()))?;
            }
            progress.page(&spec.name, batch.len() as u64);
            match next {
                None => break,
                Some(next) => {
                    if !seen.insert(next.clone()) {
                        return Err(Stop::Failed(format!(
                            "listing `{}`: the connector handed back page token `{}` a second time (page {page_no}); stopping instead of looping",
                            spec.name,
                            redactor.redact(&next)
                        )));
                    }
                    token = PageToken::from_string(next);
                }
            }
        }
    }
    if env.cancel.is_cancelled() {
        return Err(Stop::Cancelled);
    }
    Ok(())
}

type Details = (
    Vec<idhost_connector_sdk::Entitlement>,
    Vec<idhost_connector_sdk::Grant>,
);

/// Entitlements and grants of each resource, `concurrency` resources at a time, every page.
async fn details(
    instance: &ConnectorInstance,
    resources: &[Resource],
    concurrency: usize,
) -> Result<Details, (String, ConnectorError)> {
    // Owned copies: a stream of futures borrowing from the caller trips the compiler's
    // higher-ranked `Send` check once the whole sync runs on a spawned task.
    let owned: Vec<(ConnectorInstance, Resource)> = resources
        .iter()
        .map(|r| (instance.clone(), r.clone()))
        .collect();
    let results = futures::stream::iter(owned.into_iter().map(|(instance, resource)| async move {
        let resource = &resource;
        let mut ents = Vec::new();
        let mut grants = Vec::new();
        let mut token = PageToken::first();
        let mut seen = HashSet::new();
        loop {
            let page = instance
                .entitlements(resource, token.clone())
                .await
                .map_err(|e| (resource.id.clone(), e))?;
            ents.extend(page.items);
            match page.next {
                Some(next) if seen.insert(next.clone()) => token = PageToken::from_string(next),
                Some(next) => {
                    return Err((
                        resource.id.clone(),
                        ConnectorError::internal(format!(
                            "entitlement page token `{next}` repeated"
                        )),
                    ));
                }
                None => break,
            }
        }
        let mut token = PageToken::first();
        seen.clear();
        loop {
            let page = instance
                .grants(resource, token.clone())
                .await
                .map_err(|e| (resource.id.clone(), e))?;
            grants.extend(page.items);
            match page.next {
                Some(next) if seen.insert(next.clone()) => token = PageToken::from_string(next),
                Some(next) => {
                    return Err((
                        resource.id.clone(),
                        ConnectorError::internal(format!("grant page token `{next}` repeated")),
                    ));
                }
                None => break,
            }
        }
        Ok::<_, (String, ConnectorError)>((ents, grants))
    }))
    .buffer_unordered(concurrency)
    .collect::<Vec<_>>()
    .await;
    let mut all = (Vec::new(), Vec::new());
    for r in results {
        let (e, g) = r?;
        all.0.extend(e);
        all.1.extend(g);
    }
    Ok(all)
}
