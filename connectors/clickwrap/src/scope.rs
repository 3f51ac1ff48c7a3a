//! Which account's users and which sites' roles a source syncs.
//!
//! From the settings: `account_id` (its users; the sites the token sees in it), `site_id` (that
//! site and its account's users), both (checked to agree), or neither: then `GET /sites` must
//! show exactly one site, whose account is used. Resolved once per connector instance, on first
//! use, so `open` stays free of network calls.

use std::sync::Arc;

use futures::lock::Mutex;
use idhost_connector_sdk::paging;
use idhost_connector_sdk::{ConnectorError, Page, PageToken};
use serde::Deserialize;

use crate::client::{Client, Envelope};
use crate::mapping::ApiSite;

/// The resolved scope.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) account_id: u64,
    /// The sites whose roles are listed, in the API's order.
    pub(crate) sites: Vec<ApiSite>,
}

/// `account_id` / `site_id` from the settings, and the scope they resolve to.
pub(crate) struct Scope {
    account_id: Option<u64>,
    site_id: Option<u64>,
    resolved: Mutex<Option<Arc<Resolved>>>,
}

/// `GET /sites/{id}` answers `{"data": SITE}` (reference/retrieve-a-site-1).
#[derive(Deserialize)]
struct SiteAnswer {
    data: ApiSite,
}

impl Scope {
    pub(crate) fn new(account_id: Option<u64>, site_id: Option<u64>) -> Self {
        Self {
            account_id,
            site_id,
            resolved: Mutex::new(None),
        }
    }

    /// The account whose members are listed; no request when `account_id` is set.
    pub(crate) async fn account_id(
        &self,
        client: &Client,
        per_page: u32,
    ) -> Result<u64, ConnectorError> {
        match self.account_id {
            Some(id) => Ok(id),
            None => Ok(self.resolve(client, per_page).await?.account_id),
        }
    }

    /// The full scope, resolved on first call and cached (a failed resolution is retried on the
    /// next call).
    pub(crate) async fn resolve(
        &self,
        client: &Client,
        per_page: u32,
    ) -> Result<Arc<Resolved>, ConnectorError> {
        let mut cached = self.resolved.lock().await;
        if let Some(r) = cached.as_ref() {
            return Ok(r.clone());
        }
        let resolved = Arc::new(self.fetch(client, per_page).await?);
        tracing::info!(
            account_id = resolved.account_id,
            sites = resolved.sites.len(),
            "clickwrap scope resolved"
        );
        *cached = Some(resolved.clone());
        Ok(resolved)
    }

    async fn fetch(&self, client: &Client, per_page: u32) -> Result<Resolved, ConnectorError> {
        if let Some(site_id) = self.site_id {
            let site = get_site(client, site_id).await?;
            let site_account = site.account().ok_or_else(|| {
                ConnectorError::internal(format!(
                    "site {site_id} has no `account` in the API's answer; set `account_id`"
                ))
            });
            let account_id = match (self.account_id, site_account) {
                (Some(configured), Ok(actual)) if configured != actual => {
                    return Err(ConnectorError::invalid_input(format!(
                        "`site_id` {site_id} belongs to account {actual}, not to `account_id` \
                         {configured}; fix one of them or remove `account_id`"
                    )));
                }
                (Some(configured), _) => configured,
                (None, actual) => actual?,
            };
            return Ok(Resolved {
                account_id,
                sites: vec![site],
            });
        }
        let all = list_sites(client, per_page).await?;
        if let Some(account_id) = self.account_id {
            // A token's user may belong to several accounts: keep this account's sites.
            let sites = all
                .into_iter()
                .filter(|s| s.account().is_none_or(|a| a == account_id))
                .collect();
            return Ok(Resolved { account_id, sites });
        }
        discover(all)
    }
}

/// Neither `account_id` nor `site_id`: exactly one visible site decides both.
fn discover(mut sites: Vec<ApiSite>) -> Result<Resolved, ConnectorError> {
    match sites.len() {
        0 => Err(ConnectorError::invalid_input(
            "the access token sees no Clickwrap site, so the account to sync is unknown; set \
             `account_id` (or `site_id`), or use a token of a user who belongs to a site",
        )),
        1 => {
            let site = sites.remove(0);
            let account_id = site.account().ok_or_else(|| {
                ConnectorError::internal(format!(
                    "the only site, {}, has no `account` in the API's answer; set `account_id`",
                    site.describe()
                ))
            })?;
            Ok(Resolved {
                account_id,
                sites: vec![site],
            })
        }
        n => {
            let listed: Vec<String> = sites.iter().map(ApiSite::describe).collect();
            let mut accounts: Vec<u64> = sites.iter().filter_map(ApiSite::account).collect();
            accounts.sort_unstable();
            accounts.dedup();
            let whole_account = match accounts.as_slice() {
                [one] => format!(", or `account_id = {one}` to sync the whole account"),
                _ => ", or `account_id` to sync one whole account".to_owned(),
            };
            Err(ConnectorError::invalid_input(format!(
                "the access token sees {n} Clickwrap sites: {}; add `site_id` naming one of \
                 them to the source's settings{whole_account}",
                listed.join(", ")
            )))
        }
    }
}

async fn get_site(client: &Client, site_id: u64) -> Result<ApiSite, ConnectorError> {
    let answer: SiteAnswer = client
        .get(&format!("/sites/{site_id}"), &[])
        .await
        .map_err(|e| e.context(format!("looking up `site_id` {site_id}")))?;
    Ok(answer.data)
}

/// Every site the token can see (`GET /sites`, reference/get_sites, sorted by id as that
/// page's `sort` parameter allows), all pages, drained with the SDK's cursor guard.
async fn list_sites(client: &Client, per_page: u32) -> Result<Vec<ApiSite>, ConnectorError> {
    let per_page_text = per_page.to_string();
    let fetch = |token: PageToken| {
        let per_page_text = per_page_text.clone();
        async move {
            let page: u64 = token.as_str().and_then(|t| t.parse().ok()).unwrap_or(1);
            let page_text = page.to_string();
            let envelope: Envelope<ApiSite> = client
                .get(
                    "/sites",
                    &[
                        ("page", page_text.as_str()),
                        ("per_page", per_page_text.as_str()),
                        ("sort", "id"),
                        ("no_count", "true"),
                    ],
                )
                .await
                .map_err(|e| e.context("listing the sites the token can see"))?;
            // An empty page ends the listing even if it claims more.
            let more = envelope.has_more(per_page) && !envelope.data.is_empty();
            let next = more.then(|| (page + 1).to_string());
            Ok::<_, ConnectorError>(Page::new(envelope.data, next))
        }
    };
    paging::drain("the sites the token can see", fetch).await
}
