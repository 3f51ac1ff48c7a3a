//! Listing: account members as `user` pages, sites with their role grants as `site` pages.
//!
//! Paging follows reference/pagination: `page` (1-based) and `per_page`, looping while
//! `has_more`. Page numbers are offsets, not a snapshot: a user removed while the listing pages
//! moves every later one up a place, and the next page would skip one, which the sync would
//! then report as deactivated. So the members listing sends the order it relies on explicitly
//! (`sort=id`, a documented parameter of `/accounts/{id}/members`; the default order is not
//! documented), asks for `total_count` (no `no_count`), and carries the first page's total in
//! its page token (`<page>:<total>`): a later page whose total differs means the account
//! changed under the listing, and the page asks the host to list users again from the first
//! page (`Page::relist`). Site rosters (`/sites/{id}/memberships`, which documents neither
//! `sort` nor `no_count`) carry their total the same way (`<site>:<page>:<total>`).

use idhost_connector_sdk::{ConnectorError, Page, PageToken, Resource};

use crate::Clickwrap;
use crate::client::Envelope;
use crate::mapping::{self, ApiMembership, ApiUser};

impl Clickwrap {
    /// A cheap call that proves the credentials, the scope and the permission to list users.
    pub(crate) async fn check(&self) -> Result<(), ConnectorError> {
        let account = self.scope.account_id(&self.client, self.per_page).await?;
        self.scope.resolve(&self.client, self.per_page).await?;
        let _: Envelope<serde_json::Value> = self
            .client
            .get(
                &format!("/accounts/{account}/members"),
                &[("page", "1"), ("per_page", "1"), ("no_count", "true")],
            )
            .await
            .map_err(|e| e.context(format!("listing the users of account {account}")))?;
        Ok(())
    }

    /// One page of `GET /accounts/{account_id}/members`. The page token is the next page number.
    pub(crate) async fn list_users(
        &self,
        token: &PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        // `<page>` (an earlier version's token) or `<page>:<total of page 1>`.
        let (page, expected_total) = match token.as_str() {
            None => (1, None),
            Some(t) => match t.split_once(':') {
                Some((page, total)) => {
                    (parse_number(page, token)?, Some(parse_count(total, token)?))
                }
                None => (parse_number(t, token)?, None),
            },
        };
        let account = self.scope.account_id(&self.client, self.per_page).await?;
        let page_text = page.to_string();
        let per_page_text = self.per_page.to_string();
        let envelope: Envelope<ApiUser> = self
            .client
            .get(
                &format!("/accounts/{account}/members"),
                &[
                    ("page", page_text.as_str()),
                    ("per_page", per_page_text.as_str()),
                    ("sort", "id"),
                ],
            )
            .await
            .map_err(|e| e.context(format!("listing the users of account {account}")))?;
        if let Some(reason) = shifted(expected_total, envelope.total_count, page, "users") {
            return Ok(Page::relist(reason));
        }
        let more = self.more(&envelope, page, "users")?;
        let users = envelope
            .data
            .into_iter()
            .map(ApiUser::into_resource)
            .collect::<Result<Vec<_>, _>>()?;
        tracing::debug!(
            account,
            page,
            users = users.len(),
            more,
            "clickwrap users page"
        );
        let total = expected_total.or(envelope.total_count);
        let next = if more {
            let next = next_page(page, token)?;
            Some(match total {
                Some(total) => format!("{next}:{total}"),
                None => next.to_string(),
            })
        } else {
            None
        };
        Ok(Page::new(users, next))
    }

    /// One page of one site's memberships (`GET /sites/{site_id}/memberships`).
    ///
    /// The first page of a site carries the site and its three role entitlements; every page
    /// carries the grants of the memberships on it, so a site with many members spans several
    /// pages, the later ones holding grants only. The page token is `<site id>:<page>`.
    pub(crate) async fn list_sites(
        &self,
        token: &PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        let scope = self.scope.resolve(&self.client, self.per_page).await?;
        let (index, page, expected_total) = match token.as_str() {
            None => (0, 1, None),
            Some(t) => {
                let (site, rest) = t.split_once(':').ok_or_else(|| bad_token(token))?;
                let (page, total) = match rest.split_once(':') {
                    Some((page, total)) => (page, Some(parse_count(total, token)?)),
                    None => (rest, None),
                };
                let site = parse_number(site, token)?;
                let index = scope
                    .sites
                    .iter()
                    .position(|s| s.id() == Some(site))
                    .ok_or_else(|| {
                        ConnectorError::not_found(format!(
                            "page token `{t}` names site {site}, which the token no longer sees; \
                             restart the sync"
                        ))
                    })?;
                (index, parse_number(page, token)?, total)
            }
        };
        let Some(site) = scope.sites.get(index) else {
            return Ok(Page::empty());
        };
        let site_resource = site.to_resource()?;
        let site_id = site_resource.upstream_id().to_owned();
        // A deleted site has no memberships to read (the API would answer 404).
        let (memberships, more, total) = if site.is_deleted() {
            (Vec::new(), false, None)
        } else {
            let page_text = page.to_string();
            let per_page_text = self.per_page.to_string();
            let envelope: Envelope<ApiMembership> = self
                .client
                .get(
                    &format!("/sites/{site_id}/memberships"),
                    &[
                        ("page", page_text.as_str()),
                        ("per_page", per_page_text.as_str()),
                    ],
                )
                .await
                .map_err(|e| e.context(format!("listing the memberships of site {site_id}")))?;
            let what = format!("the memberships of site {site_id}");
            if let Some(reason) = shifted(expected_total, envelope.total_count, page, &what) {
                return Ok(Page::relist(reason));
            }
            let more = self.more(&envelope, page, "site memberships")?;
            (envelope.data, more, expected_total.or(envelope.total_count))
        };
        let (grants, extra) = mapping::membership_grants(&site_resource, memberships)?;
        let next = if more {
            let next = next_page(page, token)?;
            Some(match total {
                Some(total) => format!("{site_id}:{next}:{total}"),
                None => format!("{site_id}:{next}"),
            })
        } else {
            scope
                .sites
                .get(index + 1)
                .and_then(|s| s.id())
                .map(|id| format!("{id}:1"))
        };
        tracing::debug!(site = %site_id, page, grants = grants.len(), more, "clickwrap site page");
        let mut entitlements = extra;
        let items = if page == 1 {
            entitlements.splice(0..0, mapping::site_entitlements(&site_resource));
            vec![site_resource]
        } else {
            Vec::new()
        };
        Ok(Page::new(items, next)
            .with_entitlements(entitlements)
            .with_grants(grants))
    }

    /// Whether a page after `page` exists; `has_more` with an empty page would loop for ever.
    fn more<T>(
        &self,
        envelope: &Envelope<T>,
        page: u64,
        what: &str,
    ) -> Result<bool, ConnectorError> {
        let more = envelope.has_more(self.per_page);
        if more && envelope.data.is_empty() {
            return Err(ConnectorError::internal(format!(
                "the API answered page {page} of {what} with no items but `has_more: true`; \
                 stopping rather than paging for ever"
            )));
        }
        Ok(more)
    }
}

/// Why a later page shows the collection changed under the listing: its `total_count` differs
/// from the first page's. (A record removed before this page moved every later one up a place,
/// so this page starts one record late.)
fn shifted(expected: Option<u64>, now: Option<u64>, page: u64, what: &str) -> Option<String> {
    match (expected, now) {
        (Some(before), Some(now)) if before != now => Some(format!(
            "{what}: page 1 counted {before} in all and page {page} counts {now}, so records \
             moved between the pages"
        )),
        _ => None,
    }
}

/// A count in a page token (0 or more).
fn parse_count(text: &str, token: &PageToken) -> Result<u64, ConnectorError> {
    text.parse::<u64>().map_err(|_| bad_token(token))
}

fn parse_number(text: &str, token: &PageToken) -> Result<u64, ConnectorError> {
    text.parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| bad_token(token))
}

/// The page after `page`. A page token can name any page number, so the last one a `u64`
/// holds has no successor (found by fuzzing: `page + 1` overflowed).
fn next_page(page: u64, token: &PageToken) -> Result<u64, ConnectorError> {
    page.checked_add(1).ok_or_else(|| bad_token(token))
}

fn bad_token(token: &PageToken) -> ConnectorError {
    ConnectorError::invalid_input(format!(
        "`{}` is not a page token this connector made",
        token.as_str().unwrap_or_default()
    ))
}
