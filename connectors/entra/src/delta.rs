//! Incremental syncs of users and groups with Graph delta queries (delta-query-overview.md,
//! user-delta.md, group-delta.md).
//!
//! **How the first complete sync gets its delta link.** Before the first `/users` (or
//! `/groups`) page is read, the connector asks for `…/delta?$select=…&$deltatoken=latest`,
//! Graph's "sync from now": one request that answers a `@odata.deltaLink` and no data. The full
//! listing then runs over the plain, cheap `/users` and `/groups` endpoints (`$top=999`, members
//! and owners through `$batch`). Taking the link *before* the listing means a change made while
//! the listing runs is replayed by the next delta round — an upsert or removal of something the
//! snapshot may already show, which is harmless — whereas a link taken *after* it could miss
//! such a change for ever. The alternative, listing through `/users/delta` from the start so
//! that the listing *is* the initial delta round, was rejected: delta supports neither `$top`
//! nor `$expand`, so its pages are small, and the initial group round would carry every
//! membership as `members@delta` on pages of unbounded size, with a group repeated across
//! pages, instead of through the side-loaded `$batch` reads the full listing uses.
//!
//! **Later syncs** (unless the host asks for a full sync) follow the stored link to the end of
//! its round: every page is `incremental`, holding the changed objects (upserts) and the removed
//! ids (`user:<id>`, `group:<id>` with its entitlements, and the grant ids of removed memberships
//! and ownerships); the round's new `@odata.deltaLink` is staged with `ctx.state().set`, which
//! the host commits only when the whole sync completes, so a failed sync replays the same round.
//! A link Graph no longer knows falls back to a full, non-incremental listing with a fresh link:
//! 410 Gone ("Synchronization reset"), or any other 4xx with `syncStateNotFound`,
//! `syncStateInvalid` or `resyncRequired` ("Token duration": "a 40X-series error with error
//! codes such as syncStateNotFound"; error.rs). A `@odata.nextLink` that expires in the middle
//! of a round cannot fall back (the round's earlier pages were already incremental), so that
//! sync fails and the next one starts from the committed link, which then falls back.

use idhost_connector_sdk::{ConnectorError, Page, Resource};
use serde_json::Value;

use crate::Entra;
use crate::client::{Graph, encode, values};
use crate::error::graph_error;
use crate::mapping;
use crate::sync::{Cursor, Grants};

/// A collection tracked with delta.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tracked {
    pub(crate) path: &'static str,
    pub(crate) select: &'static str,
    /// State key of its delta link; the version changes with `select`, so a link tracking other
    /// properties is never reused.
    pub(crate) key: &'static str,
}

pub(crate) const USERS: Tracked = Tracked {
    path: "/users/delta",
    select: mapping::USER_SELECT,
    key: "users.delta_link.v1",
};

pub(crate) const GROUPS: Tracked = Tracked {
    path: "/groups/delta",
    select: mapping::GROUP_DELTA_SELECT,
    key: "groups.delta_link.v1",
};

/// State key of the managed identity ids seen by the last sync (newline-separated).
pub(crate) const MANAGED_IDENTITIES: &str = "managed_identities.v1";

/// Most pages followed to reach the `@odata.deltaLink` of a `$deltatoken=latest` request.
const MAX_LATEST_PAGES: usize = 1_000;

impl Entra {
    /// The stored delta link of `tracked`, if this sync may be incremental.
    fn stored_delta(&self, tracked: Tracked) -> Option<String> {
        if !self.opts.incremental || self.graph.ctx.source().full_sync {
            return None;
        }
        let stored = self.graph.ctx.state().get(tracked.key)?;
        let tenant = &self.opts.endpoints.tenant_id;
        match stored.split_once(' ') {
            Some((t, link)) if t == tenant && self.graph.owns(link) => Some(link.to_owned()),
            _ => {
                tracing::info!(
                    key = tracked.key,
                    "the stored delta link belongs to another tenant or graph_url; listing in full"
                );
                None
            }
        }
    }

    /// Stages `link` as the next round's start, tagged with the tenant it belongs to (a
    /// source whose tenant_id changes must not follow the old tenant's link).
    fn keep_delta(&self, tracked: Tracked, link: &str) {
        let value = format!("{} {link}", self.opts.endpoints.tenant_id);
        self.graph.ctx.state().set(tracked.key, value);
    }

    /// Stages a "sync from now" delta link for `tracked` before a full listing (see the module
    /// docs for why before). A failure only costs the next sync its incrementality, so it is
    /// logged, not returned.
    pub(crate) async fn start_delta(&self, tracked: Tracked) {
        if !self.opts.incremental {
            return;
        }
        let mut url = self.graph.url(&format!(
            "{}?$select={}&$deltatoken=latest",
            tracked.path,
            encode(tracked.select)
        ));
        for _ in 0..MAX_LATEST_PAGES {
            let body = match self.graph.get_json(&url).await {
                Ok(body) => body,
                Err(err) => {
                    tracing::warn!(%err, path = tracked.path, "could not start a delta round; the next sync lists in full");
                    return;
                }
            };
            match (
                self.graph.link(&body, "@odata.deltaLink"),
                self.graph.next_link(&body),
            ) {
                (Ok(Some(link)), _) => {
                    self.keep_delta(tracked, &link);
                    return;
                }
                (_, Ok(Some(next))) => url = next,
                _ => break,
            }
        }
        tracing::warn!(
            path = tracked.path,
            "Graph answered $deltatoken=latest without a delta link"
        );
    }

    /// The first page of an incremental user listing, or `None` when there is no usable delta
    /// link (the caller lists in full).
    pub(crate) async fn resume_user_delta(&self) -> Result<Option<Page<Resource>>, ConnectorError> {
        let Some(link) = self.stored_delta(USERS) else {
            return Ok(None);
        };
        match delta_get(&self.graph, &link).await? {
            Some(body) => self.user_delta_body(body).map(Some),
            None => {
                tracing::warn!(
                    "the users delta link expired; listing all users and starting a new delta round"
                );
                Ok(None)
            }
        }
    }

    /// A later page of a `/users/delta` round.
    pub(crate) async fn user_delta_page(
        &self,
        url: &str,
    ) -> Result<Page<Resource>, ConnectorError> {
        match delta_get(&self.graph, url).await? {
            Some(body) => self.user_delta_body(body),
            None => Err(expired_mid_round(url)),
        }
    }

    fn user_delta_body(&self, body: Value) -> Result<Page<Resource>, ConnectorError> {
        let mut items = Vec::new();
        let mut removed = Vec::new();
        for v in values(&body) {
            match (mapping::removed(&v), mapping::id(&v)) {
                (true, Some(id)) => removed.push(format!("user:{id}")),
                (false, _) => items.extend(mapping::user(&v)),
                (true, None) => {}
            }
        }
        let next = self.delta_next(&body, USERS, Cursor::UserDelta)?;
        let next = match next {
            Some(next) => Some(next),
            None => self.after_users(true),
        };
        tracing::debug!(
            upserts = items.len(),
            removed = removed.len(),
            "users delta page"
        );
        Ok(Page::new(items, next).incremental(removed))
    }

    /// The first page of an incremental group listing, or `None` to list in full.
    pub(crate) async fn resume_group_delta(
        &self,
    ) -> Result<Option<Page<Resource>>, ConnectorError> {
        let Some(link) = self.stored_delta(GROUPS) else {
            return Ok(None);
        };
        match delta_get(&self.graph, &link).await? {
            Some(body) => self.group_delta_body(body).await.map(Some),
            None => {
                tracing::warn!(
                    "the groups delta link expired; listing all groups and starting a new delta round"
                );
                Ok(None)
            }
        }
    }

    /// A later page of a `/groups/delta` round.
    pub(crate) async fn group_delta_page(
        &self,
        url: &str,
    ) -> Result<Page<Resource>, ConnectorError> {
        match delta_get(&self.graph, url).await? {
            Some(body) => self.group_delta_body(body).await,
            None => Err(expired_mid_round(url)),
        }
    }

    async fn group_delta_body(&self, body: Value) -> Result<Page<Resource>, ConnectorError> {
        // `members@delta` names a service principal by type and id only.
        let managed = self.managed.get(self).await?;
        let rules = self.rules();
        let mut items = Vec::new();
        let mut entitlements = Vec::new();
        let mut grants = Grants::default();
        let mut removed = Vec::new();
        for v in values(&body) {
            let Some(id) = mapping::id(&v) else { continue };
            let group_id = format!("group:{id}");
            if mapping::removed(&v) {
                removed.push(format!("{group_id}:member"));
                removed.push(format!("{group_id}:owner"));
                removed.push(group_id);
                continue;
            }
            if self.opts.skip_on_prem_groups && mapping::on_prem(&v) {
                continue;
            }
            // A group repeated on a later page may carry only its `members@delta`.
            if mapping::has_properties(&v)
                && let Some((group, ents)) = mapping::group(&v)
            {
                items.push(group);
                entitlements.extend(ents);
            }
            for (slug, key) in [("member", "members@delta"), ("owner", "owners@delta")] {
                let ent = format!("{group_id}:{slug}");
                let annotations = v.get(key).and_then(Value::as_array).into_iter().flatten();
                // Service principals come from their own side (links.rs): the delta docs do not
                // say whether `members@delta` names them, so it is not relied on either way.
                for m in annotations.filter(|m| !mapping::is_service_principal(m)) {
                    let Some(principal) = rules.of_object(m, |id| managed.contains(id)) else {
                        continue;
                    };
                    if mapping::removed(m) {
                        removed.push(format!("{ent}:{principal}"));
                    } else {
                        grants.add(&ent, &principal);
                    }
                }
            }
        }
        let next = match self.delta_next(&body, GROUPS, Cursor::GroupDelta)? {
            Some(next) => Some(next),
            None => Some(Cursor::ServicePrincipalLinks { incremental: true }.encode()),
        };
        let grants = grants.into_vec();
        tracing::debug!(
            upserts = items.len(),
            grants = grants.len(),
            removed = removed.len(),
            "groups delta page"
        );
        Ok(Page::new(items, next)
            .with_entitlements(entitlements)
            .with_grants(grants)
            .incremental(removed))
    }

    /// The cursor of the round's next page, or — on its last page — `None` after staging the
    /// round's `@odata.deltaLink` for the next sync.
    fn delta_next(
        &self,
        body: &Value,
        tracked: Tracked,
        cursor: fn(String) -> Cursor,
    ) -> Result<Option<String>, ConnectorError> {
        if let Some(next) = self.graph.next_link(body)? {
            return Ok(Some(cursor(next).encode()));
        }
        match self.graph.link(body, "@odata.deltaLink")? {
            Some(link) => self.keep_delta(tracked, &link),
            None => tracing::warn!(
                path = tracked.path,
                "delta page had neither @odata.nextLink nor @odata.deltaLink; the next sync lists in full"
            ),
        }
        Ok(None)
    }
}

/// GET a delta link or next link: `None` when Graph says the link expired.
async fn delta_get(graph: &Graph, url: &str) -> Result<Option<Value>, ConnectorError> {
    let response = graph.get(url).await?;
    if response.is_success() {
        return response.json().map(Some);
    }
    if Graph::expired_delta(&response) {
        return Ok(None);
    }
    Err(graph_error(&response))
}

fn expired_mid_round(url: &str) -> ConnectorError {
    ConnectorError::unavailable(format!(
        "Graph no longer knows the delta round at {url}; this sync fails and the next one \
         starts the round again from the last committed delta link"
    ))
}
