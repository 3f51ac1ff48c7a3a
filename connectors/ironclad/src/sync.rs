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
use serde_json::value::RawValue;

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
    //
    // Kept as each resource's JSON text until it is mapped, one at a time: a SCIM user as a
    // `Value` tree (an ordered map per object) takes several times its text, and up to
    // `pages_at_once` pages of 1,000 are read at once.
    #[serde(default, rename = "Resources", alias = "resources")]
    resources: Vec<Box<RawValue>>,
}

/// One page of raw resources and what follows it.
enum RawPage {
    /// Resources new to this listing, and the next page token.
    Listed {
        resources: Vec<Box<RawValue>>,
        next: Option<String>,
    },
    /// The collection shifted under the listing: list it again from the first page.
    Shifted(String),
}

/// The pages of a window beyond the first, already read and checked, each under the page token
/// the host will ask for it with: a window's pages go to the host one SCIM page at a time, so
/// the host holds (and maps, and writes) 1,000 resources at once, not `pages_at_once` × 1,000,
/// while the requests still go out together. What waits here is the resources' JSON text.
#[derive(Default)]
pub(crate) struct ReadAhead(
    std::sync::Mutex<std::collections::HashMap<(&'static str, String), Listed>>,
);

/// A page's new resources and the token of the page after it.
type Listed = (Vec<Box<RawValue>>, Option<String>);

impl ReadAhead {
    fn entries(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(&'static str, String), Listed>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn take(&self, collection: &'static str, token: &str) -> Option<Listed> {
        self.entries().remove(&(collection, token.to_owned()))
    }

    /// Forgets what was read ahead of `collection` (its listing starts over).
    fn clear(&self, collection: &'static str) {
        self.entries().retain(|(c, _), _| *c != collection);
    }

    fn keep(&self, collection: &'static str, token: String, page: Listed) {
        self.entries().insert((collection, token), page);
    }
}

/// Where a page starts, the id the previous page ended with (which must be there), and the
/// `totalResults` the first page gave.
struct Cursor {
    start: u64,
    expect: Option<String>,
    total: Option<u64>,
}

impl Cursor {
    fn parse(page: &PageToken) -> Result<Self, ConnectorError> {
        let bad = |token: &str| {
            ConnectorError::invalid_input(format!(
                "`{token}` is not an Ironclad page token (`<startIndex>/<totalResults>:<id>`, \
                 `<startIndex>:<id>`, or a startIndex of 1 or more)"
            ))
        };
        let Some(token) = page.as_str() else {
            return Ok(Self {
                start: 1,
                expect: None,
                total: None,
            });
        };
        // A bare startIndex, or one without the total, is what an earlier version
        // checkpointed; the first resumes without the overlap check, both one page at a time
        // until a page gives the total again.
        let (position, expect) = match token.split_once(':') {
            Some((position, id)) if !id.is_empty() => (position, Some(id.to_owned())),
            Some(_) => return Err(bad(token)),
            None => (token, None),
        };
        let (start, total) = match position.split_once('/') {
            Some((start, total)) => (start, Some(total)),
            None => (position, None),
        };
        let start = start
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad(token))?;
        let total = match total {
            Some(t) => Some(t.parse::<u64>().map_err(|_| bad(token))?),
            None => None,
        };
        Ok(Self {
            start,
            expect,
            total,
        })
    }
}

/// A resource's `id`, read from its text without building the rest of it.
fn id_of(resource: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        #[serde(default)]
        id: Option<Value>,
    }
    serde_json::from_str::<Id>(resource.get())
        .ok()?
        .id
        .and_then(|id| id.as_str().map(str::to_owned))
}

/// A resource's text as the tree the mapping reads.
fn tree(resource: &RawValue) -> Result<Value, ConnectorError> {
    serde_json::from_str(resource.get()).map_err(|err| {
        ConnectorError::internal(format!(
            "a SCIM resource in a list response could not be read ({err})"
        ))
    })
}

/// The `startIndex`es of the pages one call fetches at once: the cursor's, then each next
/// page's — a page of `count` resources starting at `s` ends at `s + count − 1`, where the next
/// page starts (one resource of overlap) — while it is within `total`, at most `at_once`.
/// Without a total (the first page, or a page token from an earlier version) or with a
/// `count` of 1 (no progress past the overlap), one page.
fn window(start: u64, total: Option<u64>, count: u32, at_once: u32) -> Vec<u64> {
    let step = u64::from(count).saturating_sub(1);
    let Some(total) = total.filter(|_| step > 0) else {
        return vec![start];
    };
    let mut starts = vec![start];
    while starts.len() < at_once.max(1) as usize {
        match starts.last().and_then(|s| s.checked_add(step)) {
            Some(next) if next <= total => starts.push(next),
            _ => break,
        }
    }
    starts
}

impl Client {
    /// One SCIM list request at `start`.
    async fn list_request(
        &self,
        collection: &'static str,
        start: u64,
    ) -> Result<(ListResponse, String), ConnectorError> {
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
        Ok((list, response.request_line))
    }

    /// The next page of `collection` for the host: read ahead (see [`ReadAhead`]), or the first
    /// of a window of pages requested together.
    ///
    /// **Pages at once.** Once a page has given `totalResults`, every later page's
    /// `startIndex` is known in advance (see [`window`]), so up to `pages_at_once` of them are
    /// requested together; the host's per-minute budgets still pace each request. They are
    /// checked in order as if they had been read one after another: each must start with the
    /// resource the one before ended with, or the listing shifted; and a `totalResults` below
    /// the one the listing started with means something was removed while it was paged (a
    /// shift, even where no overlap shows it yet). A larger total is not a shift: resources
    /// "are indexed based on when they were first added", so a new one comes after those
    /// already indexed; the listing goes on to it.
    async fn list_page(
        &self,
        collection: &'static str,
        page: &PageToken,
    ) -> Result<RawPage, ConnectorError> {
        match page.as_str() {
            Some(token) => {
                if let Some((resources, next)) = self.read_ahead.take(collection, token) {
                    return Ok(RawPage::Listed { resources, next });
                }
            }
            None => self.read_ahead.clear(collection),
        }
        let cursor = Cursor::parse(page)?;
        let starts = window(
            cursor.start,
            cursor.total,
            self.page_size,
            self.pages_at_once,
        );
        let answers = futures::future::try_join_all(
            starts
                .iter()
                .map(|start| self.list_request(collection, *start)),
        )
        .await?;
        let mut known_total = cursor.total;
        let mut expect = cursor.expect;
        let mut pages: Vec<Listed> = Vec::with_capacity(starts.len());
        for (start, (list, request_line)) in starts.into_iter().zip(answers) {
            let returned = list.resources.len() as u64;
            // A page token can name any startIndex; past u64::MAX there is no next one (found
            // by fuzzing: `start + returned` overflowed).
            let last_index = start
                .checked_add(returned.saturating_sub(1))
                .ok_or_else(|| {
                    ConnectorError::invalid_input(format!(
                        "page token `{start}` is too large to continue from: a startIndex past \
                         it cannot be named"
                    ))
                })?;
            // A total below the last index this very page holds is not a count (a server
            // that answers the page's length as `totalResults`): it neither ends the listing
            // nor says that something was removed.
            let credible_total = list
                .total_results
                .filter(|total| returned == 0 || *total >= last_index);
            if let (Some(before), Some(now)) = (known_total, credible_total)
                && now < before
            {
                return Ok(RawPage::Shifted(format!(
                    "{request_line}: totalResults fell from {before} to {now} while the \
                     listing was paged, so a resource was removed and a later one would have \
                     been skipped"
                )));
            }
            let mut page = list.resources;
            if let Some(expected) = &expect {
                match page.first().map(|r| id_of(r).unwrap_or_default()) {
                    Some(found) if &found == expected => {
                        page.remove(0);
                    }
                    found => {
                        let now = match found {
                            Some(id) => format!("now holds `{id}`"),
                            None => "is now past the end".to_owned(),
                        };
                        return Ok(RawPage::Shifted(format!(
                            "{request_line}: startIndex {start} held `{expected}` when the \
                             previous page was read and {now}, so a resource before it was \
                             removed and a later one would have been skipped"
                        )));
                    }
                }
            }
            if credible_total.is_some() {
                known_total = known_total.max(credible_total);
            }
            let short = returned < u64::from(self.page_size);
            let done =
                page.is_empty() || credible_total.is_some_and(|total| last_index >= total && short);
            let last_id = page.last().and_then(|r| id_of(r));
            let next = match &last_id {
                Some(last) if !done => Some(match known_total {
                    Some(total) => format!("{last_index}/{total}:{last}"),
                    None => format!("{last_index}:{last}"),
                }),
                _ => None,
            };
            expect = last_id;
            pages.push((page, next));
            if done {
                break;
            }
        }
        // A last page that brought nothing new ends the listing at the page before it.
        while pages.len() > 1
            && pages
                .last()
                .is_some_and(|(r, n)| r.is_empty() && n.is_none())
        {
            pages.pop();
            if let Some(last) = pages.last_mut() {
                last.1 = None;
            }
        }
        // The first page goes to the host; each later one waits under its predecessor's token.
        let mut pages = pages.into_iter();
        let (resources, next) = pages.next().unwrap_or_default();
        let mut token = next.clone();
        for page in pages {
            let Some(key) = token else { break };
            token = page.1.clone();
            self.read_ahead.keep(collection, key, page);
        }
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
            .map(|r| mapping::user(&tree(r)?))
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
        for raw in &resources {
            let (group, entitlement, members) = mapping::group(&tree(raw)?)?;
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

#[cfg(test)]
mod tests {
    use super::window;

    #[test]
    fn the_window_steps_by_the_page_less_its_overlap_and_stops_at_the_total() {
        // Without a total (the first page): one page.
        assert_eq!(window(1, None, 100, 4), vec![1]);
        // Pages of 100 start one resource before the last one's end.
        assert_eq!(window(100, Some(1000), 100, 4), vec![100, 199, 298, 397]);
        // Never past the total.
        assert_eq!(window(892, Some(1000), 100, 4), vec![892, 991]);
        // `count = 1` cannot move past the overlap: one page at a time.
        assert_eq!(window(5, Some(1000), 1, 4), vec![5]);
        assert_eq!(window(100, Some(1000), 100, 1), vec![100]);
    }
}
