//! Group memberships and ownerships held by service principals (enterprise apps and managed
//! identities), read from the service principal's side.
//!
//! v1.0 `GET /groups/{id}/members` does not list service principals: group-list-members.md
//! ("This API has a known issue where service principals are not listed as group members in
//! v1.0"), known-issues.md ("GET /groups/{id}/members doesn't return service principals in
//! v1.0"); and group-list-owners.md: "Currently, service principals are not listed as group
//! owners due to the staged rollout of service principals to the Microsoft Graph v1.0
//! endpoint". The workarounds the docs give are the beta endpoint (which Microsoft does not
//! support in production) and `/groups/{id}?$expand=members` (which stops at 20 objects). The
//! v1.0 relationships of the service principal itself are documented without such a note:
//! `GET /servicePrincipals/{id}/memberOf` ("the groups and directory roles that this
//! servicePrincipal is a direct member of", serviceprincipal-list-memberof.md) and
//! `GET /servicePrincipals/{id}/ownedObjects` ("objects owned by the servicePrincipal. This could
//! include applications or groups", serviceprincipal-list-ownedobjects.md). The connector reads
//! those two for every enterprise app and managed identity, through `$batch`, on one page at
//! the end of the `group` listing, so users, nested groups and service principals all arrive.
//!
//! Group pages therefore name no service principal (if v1.0 ever starts listing them, they are
//! still counted once, here). The delta docs say nothing about service principals in
//! `members@delta`, so this page runs in incremental syncs too: it names the links added since
//! the last sync (upserts) and the ones that went away (removals), against the set the last
//! sync kept in the connector state.

use std::collections::BTreeSet;

use idhost_connector_sdk::{ConnectorError, Page, Resource};
use serde_json::Value;

use crate::Entra;
use crate::batch;
use crate::client::encode;
use crate::ids;
use crate::mapping;
use crate::sync::Grants;

/// Connector state key of the service principal link grant ids of the last sync.
pub(crate) const SP_LINKS_KEY: &str = "service_principal_links.v1";

/// A service principal whose links are read, and how it is named as a principal.
struct Holder {
    id: String,
    principal: String,
}

impl Entra {
    /// The enterprise apps and (when listed) managed identities, as principals.
    async fn link_holders(&self) -> Result<Vec<Holder>, ConnectorError> {
        let url = self.graph.url(&format!(
            "/servicePrincipals?$filter={}&$select=id&$top={}",
            encode("servicePrincipalType eq 'Application'"),
            self.opts.page_size
        ));
        let mut holders = Vec::new();
        for app in self.graph.get_all(&url).await? {
            let Some(id) = mapping::id(&app) else {
                continue;
            };
            let id = ids::guid("service principal id listed by Graph", id)?.to_owned();
            holders.push(Holder {
                principal: format!("app:{id}"),
                id,
            });
        }
        if self.opts.include_managed_identities {
            let managed = self.managed.get(self).await?;
            for id in managed.ids() {
                let id = ids::guid("managed identity id listed by Graph", &id)?.to_owned();
                holders.push(Holder {
                    principal: format!("user:{id}"),
                    id,
                });
            }
        }
        Ok(holders)
    }

    /// The last `group` page: every group membership and ownership of a service principal.
    pub(crate) async fn service_principal_links_page(
        &self,
        incremental: bool,
    ) -> Result<Page<Resource>, ConnectorError> {
        let holders = self.link_holders().await?;
        let mut reads = Vec::with_capacity(holders.len() * 2);
        for h in &holders {
            for rel in ["memberOf", "ownedObjects"] {
                reads.push(format!(
                    "/servicePrincipals/{}/{rel}?$select=id&$top={}",
                    ids::segment(&h.id),
                    self.opts.page_size
                ));
            }
        }
        let lists = batch::read_all(&self.graph, self.plan(), reads).await?;
        let mut grants = Grants::default();
        for (h, pair) in holders.iter().zip(lists.chunks(2)) {
            for (slug, objects) in ["member", "owner"].iter().zip(pair) {
                for group in objects.iter().filter(|o| is_group(o)) {
                    let Some(gid) = mapping::id(group) else {
                        continue;
                    };
                    let gid = ids::guid("group id listed by Graph", gid)?;
                    grants.add(&format!("group:{gid}:{slug}"), &h.principal);
                }
            }
        }
        let grants = grants.into_vec();
        let current: BTreeSet<String> = grants.iter().map(|g| g.id.clone()).collect();
        let state = self.graph.ctx.state();
        let previous = state.get(SP_LINKS_KEY);
        state.set(
            SP_LINKS_KEY,
            current.iter().cloned().collect::<Vec<_>>().join("\n"),
        );
        tracing::debug!(
            holders = holders.len(),
            links = current.len(),
            incremental,
            "service principal group links"
        );
        if !incremental {
            return Ok(Page::last(Vec::new()).with_grants(grants));
        }
        // An incremental listing carries over what it does not name: name what changed.
        let Some(previous) = previous else {
            return Ok(Page::last(Vec::new())
                .with_grants(grants)
                .incremental(Vec::new()));
        };
        let before: BTreeSet<&str> = previous.lines().filter(|l| !l.is_empty()).collect();
        let removed = before
            .iter()
            .filter(|id| !current.contains(**id))
            .map(|id| (*id).to_owned())
            .collect();
        let added = grants
            .into_iter()
            .filter(|g| !before.contains(g.id.as_str()))
            .collect();
        Ok(Page::last(Vec::new())
            .with_grants(added)
            .incremental(removed))
    }
}

fn is_group(v: &Value) -> bool {
    v.get("@odata.type").and_then(Value::as_str) == Some("#microsoft.graph.group")
}
