//! Listing users and groups with SCIM `startIndex` paging, safely.
//!
//! `startIndex` is a 1-based resource index ("Resources are indexed based on when they were
//! first added", SCIM OpenAPI `StartIndex`), not a page number. Offset paging is not a snapshot
//! (RFC 7644 §3.4.2.4): a resource removed while the listing pages shifts every later resource
//! down by one, so the next page would start one too far and skip a resource that the sync would
//! then wrongly report as deactivated. So every page after the first starts at the last resource
//! of the page before (one resource of overlap) and must find it there: the page token is
//! `"<startIndex>:<id expected there>"`. When another resource is there (or none), something
//! before it was removed, and the page asks the host to list the type again from the first
//! page (`Page::relist`); the overlapping resource itself is dropped from the page.
//!
//! The listing ends on a page that brings nothing new. `totalResults` ends it one page earlier,
//! but only when it is credible (at least the index of the last resource seen) and the page was
//! short of `count`: a server that omits it, or misreports it (e.g. as the page's size), must
//! not cut the listing short after one page. Group pages side-load each group's `member`
//! entitlement and one grant per member: SCIM groups carry their members.

use idhost_connector_sdk::prelude::*;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{Call, Client};
use crate::mapping;
use crate::scopes;

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

/// One page of raw resources and what follows it.
enum RawPage {
    /// Resources new to this listing, and the next page token.
    Listed {
        resources: Vec<Value>,
        next: Option<String>,
    },
    /// The collection shifted under the listing: list it again from the first page.
    Shifted(String),
}

/// Where a page starts, and the id the previous page ended with (which must be there).
struct Cursor {
    start: u64,
    expect: Option<String>,
}

impl Cursor {
    fn parse(page: &PageToken) -> Result<Self, ConnectorError> {
        let bad = |token: &str| {
            ConnectorError::invalid_input(format!(
                "`{token}` is not an Ironclad page token (`<startIndex>:<id>`, or a startIndex \
                 of 1 or more)"
            ))
        };
        let Some(token) = page.as_str() else {
            return Ok(Self {
                start: 1,
                expect: None,
            });
        };
        // A bare startIndex is what an earlier version checkpointed; it resumes without the
        // overlap check.
        let (start, expect) = match token.split_once(':') {
            Some((start, id)) if !id.is_empty() => (start, Some(id.to_owned())),
            Some(_) => return Err(bad(token)),
            None => (token, None),
        };
        let start = start
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad(token))?;
        Ok(Self { start, expect })
    }
}

fn id_of(resource: &Value) -> Option<&str> {
    resource.get("id").and_then(Value::as_str)
}

impl Client {
    async fn list_page(
        &self,
        collection: &'static str,
        page: &PageToken,
    ) -> Result<RawPage, ConnectorError> {
        let cursor = Cursor::parse(page)?;
        let start = cursor.start;
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
        let mut resources = list.resources;
        if let Some(expected) = &cursor.expect {
            match resources.first().map(|r| id_of(r).unwrap_or_default()) {
                Some(found) if found == expected => {
                    resources.remove(0);
                }
                found => {
                    let now = match found {
                        Some(id) => format!("now holds `{id}`"),
                        None => "is now past the end".to_owned(),
                    };
                    return Ok(RawPage::Shifted(format!(
                        "{}: startIndex {start} held `{expected}` when the previous page was \
                         read and {now}, so a resource before it was removed and a later one \
                         would have been skipped",
                        response.request_line
                    )));
                }
            }
        }
        // A page token can name any startIndex; past u64::MAX there is no next one (found by
        // fuzzing: `start + returned` overflowed).
        let last_index = start
            .checked_add(returned.saturating_sub(1))
            .ok_or_else(|| {
                ConnectorError::invalid_input(format!(
                    "page token `{start}` is too large to continue from: a startIndex past it \
                 cannot be named"
                ))
            })?;
        let credible_total = list
            .total_results
            .filter(|total| returned == 0 || *total >= last_index);
        let short = returned < u64::from(self.page_size);
        let done = resources.is_empty()
            || credible_total.is_some_and(|total| last_index >= total && short);
        let next = match resources.last().and_then(id_of) {
            Some(last) if !done => Some(format!("{last_index}:{last}")),
            _ => None,
        };
        Ok(RawPage::Listed { resources, next })
    }

    /// One page of users.
    pub(crate) async fn list_users(
        &self,
        page: &PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        self.scopes.require("listing users", scopes::READ_USERS)?;
        let (resources, next) = match self.list_page("Users", page).await? {
            RawPage::Listed { resources, next } => (resources, next),
            RawPage::Shifted(reason) => return Ok(Page::relist(reason)),
        };
        let items = resources
            .iter()
            .map(mapping::user)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::new(items, next))
    }

    /// One page of groups, with their `member` entitlements and grants.
    pub(crate) async fn list_groups(
        &self,
        page: &PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        self.scopes.require("listing groups", scopes::READ_GROUPS)?;
        let (resources, next) = match self.list_page("Groups", page).await? {
            RawPage::Listed { resources, next } => (resources, next),
            RawPage::Shifted(reason) => return Ok(Page::relist(reason)),
        };
        let mut items = Vec::with_capacity(resources.len());
        let mut entitlements = Vec::with_capacity(resources.len());
        let mut grants = Vec::new();
        for value in &resources {
            let (group, entitlement, members) = mapping::group(value)?;
            items.push(group);
            entitlements.push(entitlement);
            grants.extend(members);
        }
        Ok(Page::new(items, next)
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
