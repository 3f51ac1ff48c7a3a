//! The page loop: every resource type from where its cursor in the checkpoint says, several
//! types at once ([`list`]), each page (with its side-loaded or per-resource entitlements and
//! grants) written to every sink, then, with the checkpoint that follows it, to the state
//! database in one transaction. So a checkpoint is committed only after every sink accepted the
//! records before it, and a sync resumed after a crash or a stop goes on, type by type, from
//! its last committed page of each.
//!
//! Every call into the plugin runs on a plugin thread under `call_timeout_secs`
//! ([`crate::plugin_runtime`]).
//!
//! **Relisting.** An offset-paged listing (Ironclad SCIM `startIndex`, Clickwrap `page`) is
//! not a snapshot: a record deleted upstream while it is paged shifts every later page, and
//! one record would be skipped and then wrongly deactivated. A connector that sees its
//! listing shift answers a page with `relist` set (the host advertises
//! `HostFeatures::relist`). The host then drops what this sync staged from that resource
//! type only (journal and sinks: the sinks' sessions start over and get the journal's other
//! pages, of every type, again) and lists the type again from its first page, while the other
//! types go on, at most [`MAX_LISTING_ATTEMPTS`]
//! times in one sync. A listing still unstable after that fails the source as incomplete: no
//! removal or deactivation is ever emitted from an unstable listing, and the next sync lists
//! the type from its start.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt as _;
use idhost_connector_sdk::host::ConnectorInstance;
use idhost_connector_sdk::{ConnectorError, Page, PageToken, Resource, SourceInfo};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::connector::{open_connector, resource_types};
use super::ctx::{Ctx, Stop};
use super::deliver::write_all;
use crate::plugin_runtime::{PluginCall, PluginCalls};
use crate::record::Batch;
use crate::route::RoutedSession;
use crate::state::Checkpoint;

/// How many times one resource type is listed within one sync when its listing keeps
/// shifting while it is paged (the first listing included).
pub(crate) const MAX_LISTING_ATTEMPTS: u32 = 3;

/// Lists what `cp` has not listed yet: every resource type not done, up to the source's
/// `types_at_once` of them at once (their listings are independent upstream: each has its own
/// endpoint and paging chain), each from its own cursor in the checkpoint.
///
/// One producer per type fetches its pages (the next one while the last is written) and hands
/// them over a channel to the one committer here, which writes each page to every sink and
/// then to the journal with the checkpoint after it, in one transaction, as pages arrive: pages
/// of different types interleave, those of one type stay in order. Nothing downstream depends
/// on the order across types — a grant may name an entitlement of a type listed later — because
/// the diff runs only once every listing is complete.
pub(super) async fn list(
    ctx: &Ctx<'_>,
    cp: &mut Checkpoint,
    sessions: &mut Vec<RoutedSession>,
) -> Result<(), Stop> {
    let pending: Vec<(String, Option<String>)> = cp
        .types
        .iter()
        .filter_map(|t| {
            let cursor = cp.cursor(t);
            (!cursor.done).then(|| (t.clone(), cursor.page_token))
        })
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let specs = resource_types(ctx.env, ctx.source).map_err(Stop::Failed)?;
    for (rtype, _) in &pending {
        if !specs.iter().any(|s| &s.name == rtype) {
            return Err(Stop::Failed(format!(
                "source `{}`: the connector no longer lists resource type `{rtype}`; run `idhost sync --restart`",
                ctx.name()
            )));
        }
    }
    let info = SourceInfo::new(ctx.name())
        .with_read_only(ctx.source.read_only)
        .with_full_sync(cp.full);
    let (instance, services, redactor) = ctx
        .or_cancel(open_connector(
            ctx.env,
            ctx.source,
            info,
            ctx.metrics.clone(),
        ))
        .await?
        .map_err(Stop::Failed)?;
    for capability in &instance.manifest().capabilities {
        if capability.is_unknown() {
            cp.counts
                .unknown
                .insert(format!("capability:{}", capability.as_str()), 1);
        }
    }
    // What the connector staged before the interruption is staged again.
    for (key, value) in &cp.staged_state {
        idhost_connector_sdk::services::HostServices::state_set(
            services.as_ref(),
            key,
            value.clone(),
        );
    }
    let at_once = ctx.source.types_at_once.clamp(1, pending.len());
    let permits = Semaphore::new(at_once);
    let (tx, mut rx) = mpsc::channel::<Fetched>(1);
    let shared = Producer {
        ctx,
        instance: &instance,
        services: &services,
        redactor: &redactor,
        calls: PluginCalls::for_source(ctx.source),
        resources_only: cp.resources_only,
        permits: &permits,
    };
    let producers = futures::future::join_all(pending.into_iter().map(|(rtype, token)| {
        let per_resource_details = specs
            .iter()
            .any(|s| s.name == rtype && s.per_resource_details);
        shared.produce(rtype, token, per_resource_details, tx.clone())
    }));
    drop(tx);
    {
        let consume = commit_pages(ctx, cp, sessions, &mut rx, &redactor);
        tokio::pin!(consume);
        tokio::select! {
            result = &mut consume => result?,
            // Every producer is done; what they sent is still to be committed.
            _ = producers => consume.await?,
        }
    }
    if !cp.counts.unknown.is_empty() {
        let values: Vec<String> = cp
            .counts
            .unknown
            .iter()
            .map(|(value, n)| format!("{value} ({n})"))
            .collect();
        tracing::warn!(source = %ctx.name(), connector = %ctx.source.connector, unknown = %values.join(", "),
            "the plugin sent values this host does not know (it was built against a newer idhost-connector-sdk 1.x); they are kept as sent, and unknown capabilities are not used");
    }
    Ok(())
}

/// What a type's producer hands the committer.
#[allow(
    clippy::large_enum_variant,
    reason = "at most one sits in the channel to the committer; boxing the page would cost an allocation a page"
)]
enum Fetched {
    /// The next page of `rtype`, with the per-resource details fetched for it.
    Page {
        rtype: String,
        page: Page<Resource>,
        details: Details,
        /// What the connector had staged when the page came back.
        staged: std::collections::HashMap<String, Option<String>>,
    },
    /// The listing of `rtype` shifted; the producer waits for `again` (`true`: list it again
    /// from its first page, once the committer dropped what this sync staged from it).
    Relist {
        rtype: String,
        reason: String,
        again: oneshot::Sender<bool>,
    },
    /// The listing of a type failed; the sync stops.
    Failed(Stop),
}

/// What every type's producer shares.
struct Producer<'a> {
    ctx: &'a Ctx<'a>,
    instance: &'a ConnectorInstance,
    services: &'a Arc<crate::services::SourceServices>,
    redactor: &'a crate::redact::Redactor,
    calls: PluginCalls,
    resources_only: bool,
    permits: &'a Semaphore,
}

impl Producer<'_> {
    /// Fetches every page of `rtype` from `token` (`None`: its first page) and sends each to
    /// the committer, fetching the next while the committer writes the last. Ends when the
    /// listing is complete, on a failure (sent as [`Fetched::Failed`]), or when the committer
    /// stops listening.
    /// A failure of this type's listing stops the sync: the permits close first, so no type
    /// waiting for one starts listing (and asks the upstream) after the sync has failed.
    fn failed(&self, stop: Stop) -> Fetched {
        self.permits.close();
        Fetched::Failed(stop)
    }

    async fn produce(
        &self,
        rtype: String,
        token: Option<String>,
        per_resource_details: bool,
        tx: mpsc::Sender<Fetched>,
    ) {
        let Ok(_permit) = self.permits.acquire().await else {
            return;
        };
        let list_page = |token: PageToken| {
            let (instance, rtype) = (self.instance.clone(), rtype.clone());
            self.calls
                .spawn(async move { instance.list(&rtype, token).await })
        };
        let fail = |what: String, err: ConnectorError| {
            self.failed(Stop::Failed(self.redactor.redact(&format!(
                "source `{}`: {what}: {} ({})",
                self.ctx.name(),
                err.message,
                err.kind
            ))))
        };
        let mut first = token.map_or_else(PageToken::first, PageToken::from_string);
        'listing: loop {
            let mut fetch: PluginCall<Page<Resource>> = list_page(first);
            let mut seen = HashSet::new();
            let mut page_no = 0u64;
            loop {
                let page = match fetch.join().await {
                    Ok(page) => page,
                    // A plugin glue that refused the relist (it never does to this host, which
                    // advertises it) is a relist all the same.
                    Err(e) if e.relist => Page::relist(e.message),
                    Err(e) => {
                        let _ = tx
                            .send(fail(format!("listing `{rtype}` page {}", page_no + 1), e))
                            .await;
                        return;
                    }
                };
                if let Some(reason) = page.relist {
                    let (again, answer) = oneshot::channel();
                    let relist = Fetched::Relist {
                        rtype: rtype.clone(),
                        reason,
                        again,
                    };
                    if tx.send(relist).await.is_err() || answer.await != Ok(true) {
                        return;
                    }
                    first = PageToken::first();
                    continue 'listing;
                }
                // What the connector staged up to this page, before the next call can stage more.
                let staged = self.services.staged_state();
                page_no += 1;
                if let Some(next) = &page.next
                    && !seen.insert(next.clone())
                {
                    let _ = tx
                        .send(self.failed(Stop::Failed(format!(
                            "source `{}`: listing `{rtype}`: the connector handed back page token `{}` a second time (page {page_no}); stopping instead of looping",
                            self.ctx.name(),
                            self.redactor.redact(next)
                        ))))
                        .await;
                    return;
                }
                let details = if per_resource_details && !self.resources_only {
                    match details(
                        self.instance,
                        &page.items,
                        self.ctx.source.concurrency,
                        &self.calls,
                    )
                    .await
                    {
                        Ok(d) => d,
                        Err((id, e)) => {
                            let _ = tx.send(fail(format!("details of `{id}`"), e)).await;
                            return;
                        }
                    }
                } else {
                    (Vec::new(), Vec::new())
                };
                // The next page is fetched while this one is written; it is abandoned (dropped)
                // if the write fails or the sync is cancelled. It starts only once this page
                // has its place in the channel, so a type holds at most three pages at once:
                // one being written, one waiting, one being fetched.
                let Ok(place) = tx.reserve().await else {
                    return;
                };
                let prefetch = page
                    .next
                    .clone()
                    .map(|n| list_page(PageToken::from_string(n)));
                place.send(Fetched::Page {
                    rtype: rtype.clone(),
                    page,
                    details,
                    staged,
                });
                match prefetch {
                    None => return,
                    Some(call) => fetch = call,
                }
            }
        }
    }
}

/// The committer: writes each page the producers send to every sink, then commits it with the
/// checkpoint after it; on a relist, drops what this sync staged from that type.
async fn commit_pages(
    ctx: &Ctx<'_>,
    cp: &mut Checkpoint,
    sessions: &mut Vec<RoutedSession>,
    rx: &mut mpsc::Receiver<Fetched>,
    redactor: &crate::redact::Redactor,
) -> Result<(), Stop> {
    let mut attempts: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    while let Some(fetched) = ctx.or_cancel(rx.recv()).await? {
        let (rtype, page, details, staged) = match fetched {
            Fetched::Failed(stop) => return Err(stop),
            Fetched::Relist {
                rtype,
                reason,
                again,
            } => {
                let reason = redactor.redact(&reason);
                discard_listing(ctx, cp, &rtype, sessions).await?;
                let attempt = attempts.entry(rtype.clone()).or_insert(1);
                if *attempt >= MAX_LISTING_ATTEMPTS {
                    return Err(Stop::Failed(format!(
                        "source `{}`: listing `{rtype}` is incomplete: the upstream's listing shifted while it was paged on each of {attempt} attempts (last: {reason}); the sync stops here and nothing is removed or deactivated; the next sync lists `{rtype}` again from the start",
                        ctx.name()
                    )));
                }
                *attempt += 1;
                tracing::warn!(source = %ctx.name(), rtype = %rtype, attempt = *attempt, max = MAX_LISTING_ATTEMPTS, reason = %reason,
                    "the upstream's listing shifted while it was paged; listing it again from the start");
                let _ = again.send(true);
                continue;
            }
            Fetched::Page {
                rtype,
                page,
                details,
                staged,
            } => (rtype, page, details, staged),
        };
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
        batch.entitlements.extend(details.0);
        batch.grants.extend(details.1);
        note_unknown(&mut cp.counts, &batch);
        let records = batch.len() as u64;
        *cp.counts.resources.entry(rtype.clone()).or_default() += batch.resources.len() as u64;
        cp.counts.entitlements += batch.entitlements.len() as u64;
        cp.counts.grants += batch.grants.len() as u64;
        ctx.metrics.pages.fetch_add(1, Ordering::Relaxed);
        ctx.metrics.records.fetch_add(records, Ordering::Relaxed);
        cp.advance(&rtype, page.next);
        cp.pages += 1;
        // Merged, not replaced: another type's page committed after this one may have been
        // fetched before it, with an older view of what the connector staged.
        cp.staged_state.extend(staged);
        commit_page(ctx, cp, &rtype, batch, removed, sessions).await?;
        ctx.progress.page(&rtype, records);
    }
    Ok(())
}

/// Counts the values in `batch` this host does not know (statuses, account types, purposes).
fn note_unknown(counts: &mut crate::record::Counts, batch: &Batch) {
    let mut note = |what: &str, value: &str| {
        *counts.unknown.entry(format!("{what}:{value}")).or_default() += 1;
    };
    for r in &batch.resources {
        if r.status.is_unknown() {
            note("status", r.status.as_str());
        }
        if let Some(user) = &r.user
            && user.account_type.is_unknown()
        {
            note("account_type", user.account_type.as_str());
        }
    }
    for e in &batch.entitlements {
        if e.purpose.is_unknown() {
            note("purpose", e.purpose.as_str());
        }
    }
}

/// Drops what this sync staged from listing `rtype`, in the journal (with the checkpoint set
/// back to the type's first page) and in every sink: each sink's session starts over (a sink
/// drops a session's staging when the next one begins, as after a killed attempt) and gets
/// the journal's remaining pages again.
async fn discard_listing(
    ctx: &Ctx<'_>,
    cp: &mut Checkpoint,
    rtype: &str,
    sessions: &mut Vec<RoutedSession>,
) -> Result<(), Stop> {
    cp.restart_type(rtype);
    let template = cp.clone();
    let rtype_owned = rtype.to_owned();
    let discarded = ctx
        .or_cancel(
            ctx.env
                .state
                .discard_listing(ctx.name(), cp.generation, rtype, move |d| {
                    let mut cp = template;
                    discount(&mut cp, &rtype_owned, d);
                    cp.to_json()
                }),
        )
        .await?
        .map_err(Stop::failed)?;
    discount(cp, rtype, discarded);
    tracing::info!(source = %ctx.name(), rtype = %rtype, resources = discarded.resources,
        entitlements = discarded.entitlements, grants = discarded.grants,
        "dropped what this sync had staged from the shifted listing");
    let names: Vec<String> = sessions.iter().map(|s| s.sink().to_owned()).collect();
    sessions.clear();
    for sink in ctx.env.router.routed_from(ctx.name()) {
        if names.contains(&sink.config().name) {
            let session = ctx
                .or_cancel(RoutedSession::begin(sink, ctx.name(), &cp.sync_id))
                .await?
                .map_err(Stop::failed)?;
            sessions.push(session);
        }
    }
    super::deliver::replay(ctx, cp, sessions).await
}

/// Takes what [`discard_listing`] dropped out of the checkpoint's counts.
fn discount(cp: &mut Checkpoint, rtype: &str, d: crate::state::Discarded) {
    cp.counts.resources.remove(rtype);
    cp.counts.entitlements = cp.counts.entitlements.saturating_sub(d.entitlements);
    cp.counts.grants = cp.counts.grants.saturating_sub(d.grants);
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

type Details = (
    Vec<idhost_connector_sdk::Entitlement>,
    Vec<idhost_connector_sdk::Grant>,
);

/// Entitlements and grants of each resource, `concurrency` resources at a time. The first
/// failure ends it: the calls still in flight are abandoned (dropped) and no new one starts.
async fn details(
    instance: &ConnectorInstance,
    resources: &[Resource],
    concurrency: usize,
    calls: &PluginCalls,
) -> Result<Details, (String, ConnectorError)> {
    // Owned copies: a stream of futures borrowing from the caller trips the compiler's
    // higher-ranked `Send` check once the whole sync runs on a spawned task.
    let owned: Vec<(ConnectorInstance, Resource, PluginCalls)> = resources
        .iter()
        .map(|r| (instance.clone(), r.clone(), calls.clone()))
        .collect();
    let mut results = futures::stream::iter(
        owned
            .into_iter()
            .map(|(instance, resource, calls)| resource_details(instance, resource, calls)),
    )
    .buffer_unordered(concurrency.max(1));
    let mut all = (Vec::new(), Vec::new());
    while let Some(result) = results.next().await {
        let (e, g) = result?;
        all.0.extend(e);
        all.1.extend(g);
    }
    Ok(all)
}

/// One resource's entitlements and grants, every page of each. A detail listing that shifts
/// under the connector (`relist`) is listed again from its first page, at most
/// [`MAX_LISTING_ATTEMPTS`] times.
async fn resource_details(
    instance: ConnectorInstance,
    resource: Resource,
    calls: PluginCalls,
) -> Result<Details, (String, ConnectorError)> {
    let id = resource.id.clone();
    let failed = |e| (id.clone(), e);
    let ents = detail_pages(&id, "entitlement", |token| {
        let (instance, resource) = (instance.clone(), resource.clone());
        calls.spawn(async move { instance.entitlements(&resource, token).await })
    })
    .await
    .map_err(failed)?;
    let grants = detail_pages(&id, "grant", |token| {
        let (instance, resource) = (instance.clone(), resource.clone());
        calls.spawn(async move { instance.grants(&resource, token).await })
    })
    .await
    .map_err(failed)?;
    Ok((ents, grants))
}

/// Every page of one detail listing (`what`: `entitlement` or `grant`) of resource `id`.
async fn detail_pages<T: Send + 'static>(
    id: &str,
    what: &str,
    page: impl Fn(PageToken) -> PluginCall<Page<T>>,
) -> Result<Vec<T>, ConnectorError> {
    let mut attempt = 1u32;
    'listing: loop {
        let mut items = Vec::new();
        let mut token = PageToken::first();
        let mut seen = HashSet::new();
        loop {
            let answer = page(token).join().await?;
            if let Some(reason) = answer.relist {
                if attempt >= MAX_LISTING_ATTEMPTS {
                    return Err(ConnectorError::unavailable(format!(
                        "the {what} listing of `{id}` is incomplete: it shifted while it was paged on each of {attempt} attempts (last: {reason}); nothing is removed or deactivated"
                    )));
                }
                attempt += 1;
                continue 'listing;
            }
            items.extend(answer.items);
            match answer.next {
                Some(next) if seen.insert(next.clone()) => token = PageToken::from_string(next),
                Some(next) => {
                    return Err(ConnectorError::internal(format!(
                        "{what} page token `{next}` repeated"
                    )));
                }
                None => return Ok(items),
            }
        }
    }
}
