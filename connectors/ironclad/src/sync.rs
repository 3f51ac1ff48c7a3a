//! Listing users and groups with SCIM `startIndex` paging.
//!
//! `startIndex` is a 1-based resource index ("Resources are indexed based on when they were
//! first added", SCIM OpenAPI `StartIndex`), not a page number; the page token is the next
//! `startIndex`. Pages hold `page_size` resources (1000 by default, the documented maximum).
//! Group pages side-load each group's `member` entitlement and one grant per member: SCIM
//! groups carry their members, so no per-group request is needed.

use idhost_connector_sdk::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Call, Client};
use crate::mapping;

/// A SCIM ListResponse (RFC 7644 §3.4.2).
#[derive(Debug, Deserialize)]
struct ListResponse {
    #[serde(default, rename = "totalResults")]
    total_results: Option<u64>,
    #[serde(default, rename = "startIndex")]
    start_index: Option<u64>,
    // RFC 7644 §3.4.2: "Resources" is required when totalResults is non-zero.
    #[serde(default, rename = "Resources", alias = "resources")]
    resources: Vec<Value>,
}

/// One page of raw resources and the token of the next page.
struct RawPage {
    resources: Vec<Value>,
    next: Option<String>,
}

fn start_of(page: &PageToken) -> Result<u64, ConnectorError> {
    match page.as_str() {
        None => Ok(1),
        Some(token) => token
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                ConnectorError::invalid_input(format!(
                    "`{token}` is not an Ironclad page token (a startIndex of 1 or more)"
                ))
            }),
    }
}

impl Client {
    async fn list_page(
        &self,
        collection: &'static str,
        page: &PageToken,
    ) -> Result<RawPage, ConnectorError> {
        let start = start_of(page)?;
        let budget = match collection {
            "Users" => &self.budgets.users_read,
            _ => &self.budgets.groups,
        };
        let call = Call::new("GET", &[collection], budget)
            .query("startIndex", start)
            .query("count", self.page_size);
        let response = self.ok(&call).await?;
        let list: ListResponse = response.json()?;
        // Guard against a server that ignores startIndex: continuing would list the same
        // resources again (or skip some), so stop with an error that says so.
        if let Some(answered) = list.start_index.filter(|s| *s > 0 && *s != start) {
            return Err(ConnectorError::internal(format!(
                "{} answered startIndex {answered} to a request for startIndex {start}: \
                 the listing does not advance",
                response.request_line
            )));
        }
        let returned = list.resources.len() as u64;
        // A page token can name any startIndex; past u64::MAX there is no next one (found by
        // fuzzing: `start + returned` overflowed).
        let next_start = start.checked_add(returned).ok_or_else(|| {
            ConnectorError::invalid_input(format!(
                "page token `{start}` is too large to continue from: a startIndex past it \
                 cannot be named"
            ))
        })?;
        // Stop on an empty page, or once this page reaches totalResults. The next startIndex is
        // this one plus what came back (not plus `count`), so a server returning fewer than
        // asked for skips nothing.
        let done = returned == 0 || list.total_results.is_some_and(|total| next_start > total);
        Ok(RawPage {
            resources: list.resources,
            next: (!done).then(|| next_start.to_string()),
        })
    }

    /// One page of users.
    pub(crate) async fn list_users(
        &self,
        page: &PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        let raw = self.list_page("Users", page).await?;
        let items = raw
            .resources
            .iter()
            .map(mapping::user)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::new(items, raw.next))
    }

    /// One page of groups, with their `member` entitlements and grants.
    pub(crate) async fn list_groups(
        &self,
        page: &PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        let raw = self.list_page("Groups", page).await?;
        let mut items = Vec::with_capacity(raw.resources.len());
        let mut entitlements = Vec::with_capacity(raw.resources.len());
        let mut grants = Vec::new();
        for value in &raw.resources {
            let (group, entitlement, members) = mapping::group(value)?;
            items.push(group);
            entitlements.push(entitlement);
            grants.extend(members);
        }
        Ok(Page::new(items, raw.next)
            .with_entitlements(entitlements)
            .with_grants(grants))
    }

    /// A cheap check of credentials, acting user and both read scopes: one user, one group.
    pub(crate) async fn check_access(&self) -> Result<(), ConnectorError> {
        for (collection, budget) in [
            ("Users", &self.budgets.users_read),
            ("Groups", &self.budgets.groups),
        ] {
            let call = Call::new("GET", &[collection], budget)
                .query("startIndex", 1)
                .query("count", 1);
            let response = self.ok(&call).await?;
            response.json::<ListResponse>()?;
        }
        Ok(())
    }
}
