//! The page loop: every resource type from where the checkpoint says, each page (with its
//! side-loaded or per-resource entitlements and grants) written to every sink, then, with the
//! checkpoint that follows it, to the state database in one transaction. So a checkpoint is
//! committed only after every sink accepted the records before it, and a sync resumed after
//! a crash or a stop goes on from its last committed page.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt as _;
use idhost_connector_sdk::host::ConnectorInstance;
use idhost_connector_sdk::{ConnectorError, Page, PageToken, Resource, SourceInfo};

use super::call::{PluginCall, bounded};
use super::connector::{open_connector, resource_types};
use super::ctx::{Ctx, Stop};
use crate::record::Batch;
use crate::route::RoutedSession;
use crate::state::Checkpoint;

/// Lists what `cp` has not listed yet.
pub(super) async fn list(
    ctx: &Ctx<'_>,
    cp: &mut Checkpoint,
    sessions: &mut [RoutedSession],
) -> Result<(), Stop> {
    if cp.type_index >= cp.types.len() {
        return Ok(());
    }
    let specs = resource_types(ctx.env, ctx.source).map_err(Stop::Failed)?;
    let info = SourceInfo {
        source: ctx.name().to_owned(),
        read_only: ctx.source.read_only,
        dry_run: false,
        full_sync: cp.full,
    };
    let (instance, services, redactor) = ctx
        .or_cancel(open_connector(
            ctx.env,
            ctx.source,
            info,
            ctx.metrics.clone(),
        ))
        .await?
        .map_err(Stop::Failed)?;
    // What the connector staged before the interruption is staged again.
    for (key, value) in &cp.staged_state {
        idhost_connector_sdk::services::HostServices::state_set(
            services.as_ref(),
            key,
            value.clone(),
        );
    }
    let fail = |what: String, err: ConnectorError| {
        Stop::Failed(redactor.redact(&format!(
            "source `{}`: {what}: {} ({})",
            ctx.name(),
            err.message,
            err.kind
        )))
    };
    while cp.type_index < cp.types.len() {
        let rtype = cp.types[cp.type_index].clone();
        let Some(spec) = specs.iter().find(|s| s.name == rtype) else {
            return Err(Stop::Failed(format!(
                "source `{}`: the connector no longer lists resource type `{rtype}`; run `idhost sync --restart`",
                ctx.name()
            )));
        };
        let first = match &cp.page_token {
            Some(t) => PageToken::from_string(t.clone()),
            None => PageToken::first(),
        };
        let timeout = ctx.source.call_timeout;
        let list_page = |token: PageToken| {
            let (instance, rtype) = (instance.clone(), rtype.clone());
            PluginCall::spawn(timeout, async move { instance.list(&rtype, token).await })
        };
        let mut fetch = list_page(first);
        let mut seen = HashSet::new();
        let mut page_no = 0u64;
        loop {
            let page: Page<Resource> = match ctx.or_cancel(fetch.join()).await? {
                Ok(page) => page,
                Err(e) => {
                    if e.relist {
                        // The upstream's listing shifted under the connector: resuming from this
                        // checkpoint would page on from a position that no longer exists, so the
                        // next sync starts the source over (relisting within a sync comes later).
                        if let Err(err) = ctx.env.state.discard_sync(ctx.name()).await {
                            tracing::warn!(source = %ctx.name(), error = %err, "could not discard the unstable listing's checkpoint");
                        }
                    }
                    return Err(fail(format!("listing `{rtype}` page {}", page_no + 1), e));
                }
            };
            // What the connector staged up to this page, before the next call can stage more.
            let staged = services.staged_state();
            page_no += 1;
            if page.incremental {
                if cp.base_gen.is_none() {
                    return Err(Stop::Failed(format!(
                        "source `{}`: connector `{}` sent an incremental page of `{rtype}`, but the host has no snapshot of this source to apply it to; run `idhost sync --full --source {}`",
                        ctx.name(),
                        ctx.source.connector,
                        ctx.name()
                    )));
                }
                cp.incremental_types.insert(rtype.clone());
            } else if !page.removed.is_empty() {
                tracing::debug!(source = %ctx.name(), rtype = %rtype, "ignoring `removed` ids on a page that is not incremental");
            }
            let removed = if page.incremental {
                page.removed
            } else {
                Vec::new()
            };
            let next = page.next;
            if let Some(next) = &next
                && !seen.insert(next.clone())
            {
                return Err(Stop::Failed(format!(
                    "source `{}`: listing `{rtype}`: the connector handed back page token `{}` a second time (page {page_no}); stopping instead of looping",
                    ctx.name(),
                    redactor.redact(next)
                )));
            }
            let mut batch = Batch {
                resources: page.items,
                entitlements: if cp.resources_only {
                    Vec::new()
                } else {
                    page.entitlements
                },
                grants: if cp.resources_only {
                    Vec::new()
                } else {
                    page.grants
                },
            };
            if spec.per_resource_details && !cp.resources_only {
                let (ents, grants) = ctx
                    .or_cancel(details(
                        &instance,
                        &batch.resources,
                        ctx.source.concurrency,
                        timeout,
                    ))
                    .await?
                    .map_err(|(id, e)| fail(format!("details of `{id}`"), e))?;
                batch.entitlements.extend(ents);
                batch.grants.extend(grants);
            }
            // The next page is fetched while this one is written; it is abandoned (dropped)
            // if the write fails or the sync is cancelled.
            let prefetch = next.clone().map(|n| list_page(PageToken::from_string(n)));
            let records = batch.len() as u64;
            *cp.counts.resources.entry(rtype.clone()).or_default() += batch.resources.len() as u64;
            cp.counts.entitlements += batch.entitlements.len() as u64;
            cp.counts.grants += batch.grants.len() as u64;
            ctx.metrics.pages.fetch_add(1, Ordering::Relaxed);
            ctx.metrics.records.fetch_add(records, Ordering::Relaxed);
            match &next {
                Some(next) => cp.page_token = Some(next.clone()),
                None => {
                    cp.type_index += 1;
                    cp.page_token = None;
                }
            }
            cp.pages += 1;
            cp.staged_state = staged.into_iter().collect();
            commit_page(ctx, cp, &rtype, batch, removed, sessions).await?;
            ctx.progress.page(&rtype, records);
            match prefetch {
                None => break,
                Some(call) => fetch = call,
            }
        }
    }
    Ok(())
}

/// Writes a page to every sink, then commits it with the checkpoint after it.
async fn commit_page(
    ctx: &Ctx<'_>,
    cp: &Checkpoint,
    rtype: &str,
    batch: Batch,
    removed: Vec<String>,
    sessions: &mut [RoutedSession],
) -> Result<(), Stop> {
    let batch = Arc::new(batch);
    write_all(ctx, sessions, &batch).await?;
    ctx.env
        .state
        .stage_page(ctx.name(), cp, rtype, batch, removed)
        .await
        .map_err(Stop::failed)
}

/// Writes `batch` to every session at once; returns when all accepted it.
pub(super) async fn write_all(
    ctx: &Ctx<'_>,
    sessions: &mut [RoutedSession],
    batch: &Batch,
) -> Result<(), Stop> {
    if batch.is_empty() || sessions.is_empty() {
        return Ok(());
    }
    let writes = futures::future::try_join_all(sessions.iter_mut().map(|s| s.write(batch)));
    ctx.or_cancel(writes).await?.map_err(Stop::failed)?;
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
    timeout: Duration,
) -> Result<Details, (String, ConnectorError)> {
    // Owned copies: a stream of futures borrowing from the caller trips the compiler's
    // higher-ranked `Send` check once the whole sync runs on a spawned task.
    let owned: Vec<(ConnectorInstance, Resource)> = resources
        .iter()
        .map(|r| (instance.clone(), r.clone()))
        .collect();
    let results = futures::stream::iter(owned.into_iter().map(|(instance, resource)| async move {
        let resource_id = resource.id.clone();
        let mut ents = Vec::new();
        let mut grants = Vec::new();
        let mut token = PageToken::first();
        let mut seen = HashSet::new();
        loop {
            let page = {
                let (instance, resource, token) =
                    (instance.clone(), resource.clone(), token.clone());
                bounded(timeout, async move {
                    instance.entitlements(&resource, token).await
                })
                .await
                .map_err(|e| (resource_id.clone(), e))?
            };
            ents.extend(page.items);
            match page.next {
                Some(next) if seen.insert(next.clone()) => token = PageToken::from_string(next),
                Some(next) => {
                    return Err((
                        resource_id.clone(),
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
            let page = {
                let (instance, resource, token) =
                    (instance.clone(), resource.clone(), token.clone());
                bounded(
                    timeout,
                    async move { instance.grants(&resource, token).await },
                )
                .await
                .map_err(|e| (resource_id.clone(), e))?
            };
            grants.extend(page.items);
            match page.next {
                Some(next) if seen.insert(next.clone()) => token = PageToken::from_string(next),
                Some(next) => {
                    return Err((
                        resource_id.clone(),
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
