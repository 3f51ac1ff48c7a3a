//! Listing: users (+ managed identities), groups, enterprise apps and directory roles, with the
//! members, owners and assignments of every group, app and role side-loaded onto the list page
//! that holds it (read through `$batch`, batch.rs).
//!
//! Users and groups are listed incrementally after the first complete sync (delta.rs); apps
//! and roles are small and always listed in full.

use std::collections::HashSet;

use crate::Entra;
use crate::batch::{self, ReadPlan};
use crate::client::{encode, values};
use crate::ids;
use crate::mapping::{self, PrincipalRules};
use idhost_connector_sdk::{ConnectorError, Entitlement, Grant, Page, PageToken, Resource};

/// Where a listing continues. Encoded as `"<kind> <url>"`; URLs are Graph's own
/// `@odata.nextLink`s, followed verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cursor {
    /// The next `/users` page.
    Users(String),
    /// The next page of a `/users/delta` round.
    UserDelta(String),
    /// The managed identities, after the users; `incremental` when the users came from delta.
    ManagedIdentities { incremental: bool },
    /// The next `/groups` page.
    Groups(String),
    /// The next page of a `/groups/delta` round.
    GroupDelta(String),
    /// The next `/servicePrincipals` (apps) page.
    Apps(String),
    /// The service principals' group memberships and ownerships, after the groups (links.rs);
    /// `incremental` when the groups came from delta.
    ServicePrincipalLinks { incremental: bool },
}

/// Most groups on one page of a full listing. Each group's members and owners ride on its
/// page as grants (a hundred members per group is common), so a page of 999 groups would
/// hold some 100,000 grants in memory at once; 200 keeps a page near 20,000 and costs only
/// a few more `/groups` requests, which overlap with the host writing the previous page.
const GROUPS_PER_PAGE: u32 = 200;

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        match self {
            Self::Users(url) => format!("users {url}"),
            Self::UserDelta(url) => format!("users-delta {url}"),
            Self::ManagedIdentities { incremental: false } => "managed-identities".to_owned(),
            Self::ManagedIdentities { incremental: true } => {
                "managed-identities-incremental".to_owned()
            }
            Self::Groups(url) => format!("groups {url}"),
            Self::GroupDelta(url) => format!("groups-delta {url}"),
            Self::Apps(url) => format!("apps {url}"),
            Self::ServicePrincipalLinks { incremental: false } => {
                "service-principal-links".to_owned()
            }
            Self::ServicePrincipalLinks { incremental: true } => {
                "service-principal-links-incremental".to_owned()
            }
        }
    }

    pub(crate) fn decode(token: &str) -> Result<Self, ConnectorError> {
        let (kind, url) = token.split_once(' ').unwrap_or((token, ""));
        let url = url.to_owned();
        Ok(match (kind, url.is_empty()) {
            ("users", false) => Self::Users(url),
            ("users-delta", false) => Self::UserDelta(url),
            ("managed-identities", true) => Self::ManagedIdentities { incremental: false },
            ("managed-identities-incremental", true) => {
                Self::ManagedIdentities { incremental: true }
            }
            ("groups", false) => Self::Groups(url),
            ("groups-delta", false) => Self::GroupDelta(url),
            ("apps", false) => Self::Apps(url),
            ("service-principal-links", true) => Self::ServicePrincipalLinks { incremental: false },
            ("service-principal-links-incremental", true) => {
                Self::ServicePrincipalLinks { incremental: true }
            }
            _ => {
                return Err(ConnectorError::invalid_input(format!(
                    "`{token}` is not a page token of the entra connector"
                )));
            }
        })
    }
}

fn wrong_cursor(rtype: &str, cursor: &Cursor) -> ConnectorError {
    ConnectorError::invalid_input(format!(
        "page token `{}` does not belong to a `{rtype}` listing",
        cursor.encode()
    ))
}

fn cursor(token: &PageToken) -> Result<Option<Cursor>, ConnectorError> {
    token.as_str().map(Cursor::decode).transpose()
}

impl Entra {
    pub(crate) fn plan(&self) -> ReadPlan {
        ReadPlan {
            batch: self.opts.batch,
            concurrency: self.opts.concurrency,
            attempts: self.opts.batch_retry_attempts,
        }
    }

    pub(crate) fn rules(&self) -> PrincipalRules {
        PrincipalRules {
            include_managed_identities: self.opts.include_managed_identities,
        }
    }

    /// `$top` of list requests (`page_size`).
    fn top(&self) -> u32 {
        self.opts.page_size
    }

    /// `user` pages: `/users` (or `/users/delta`), then the managed identities.
    pub(crate) async fn list_users(
        &self,
        token: &PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        match cursor(token)? {
            None => {
                if let Some(page) = self.resume_user_delta().await? {
                    return Ok(page);
                }
                self.start_delta(crate::delta::USERS).await;
                let url = self.graph.url(&format!(
                    "/users?$select={}&$top={}",
                    encode(mapping::USER_SELECT),
                    self.top()
                ));
                self.users_page(&url).await
            }
            Some(Cursor::Users(url)) => self.users_page(&url).await,
            Some(Cursor::UserDelta(url)) => self.user_delta_page(&url).await,
            Some(Cursor::ManagedIdentities { incremental }) => {
                self.managed_identities_page(incremental).await
            }
            Some(other) => Err(wrong_cursor("user", &other)),
        }
    }

    /// After the last user page: the managed identities, if they are listed.
    pub(crate) fn after_users(&self, incremental: bool) -> Option<String> {
        self.opts
            .include_managed_identities
            .then(|| Cursor::ManagedIdentities { incremental }.encode())
    }

    async fn users_page(&self, url: &str) -> Result<Page<Resource>, ConnectorError> {
        let body = self.graph.get_json(url).await?;
        let items: Vec<Resource> = values(&body).iter().filter_map(mapping::user).collect();
        let listed = self.graph.saw_users(items.len());
        let next = match self.graph.next_link(&body)? {
            Some(link) => Some(Cursor::Users(link).encode()),
            None => {
                // The tenant's size, for the next sync's throttle budget (client.rs).
                self.graph
                    .ctx
                    .state()
                    .set(crate::client::TENANT_USERS_KEY, listed.to_string());
                self.after_users(false)
            }
        };
        Ok(Page::new(items, next))
    }

    /// Every managed identity in one page (a tenant has hundreds, not hundreds of thousands).
    /// Their ids are kept in the connector state, so an incremental sync can name the ones
    /// that disappeared since (service principals are not in `/users/delta`).
    async fn managed_identities_page(
        &self,
        incremental: bool,
    ) -> Result<Page<Resource>, ConnectorError> {
        let found = self.managed.load_all(self).await?;
        let items: Vec<Resource> = found.iter().filter_map(mapping::managed_identity).collect();
        let current: Vec<String> = items.iter().map(|r| r.upstream_id().to_owned()).collect();
        let state = self.graph.ctx.state();
        let previous = state.get(crate::delta::MANAGED_IDENTITIES);
        state.set(crate::delta::MANAGED_IDENTITIES, current.join("\n"));
        let page = Page::last(items);
        if !incremental {
            return Ok(page);
        }
        let now: HashSet<&str> = current.iter().map(String::as_str).collect();
        let removed = previous
            .unwrap_or_default()
            .lines()
            .filter(|id| !id.is_empty() && !now.contains(id))
            .map(|id| format!("user:{id}"))
            .collect();
        Ok(page.incremental(removed))
    }

    /// `group` pages: `/groups` with members and owners side-loaded, or `/groups/delta`.
    pub(crate) async fn list_groups(
        &self,
        token: &PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        match cursor(token)? {
            None => {
                if let Some(page) = self.resume_group_delta().await? {
                    return Ok(page);
                }
                self.start_delta(crate::delta::GROUPS).await;
                let url = self.graph.url(&format!(
                    "/groups?$select={}&$top={}",
                    encode(mapping::GROUP_SELECT),
                    self.top().min(GROUPS_PER_PAGE)
                ));
                self.groups_page(&url).await
            }
            Some(Cursor::Groups(url)) => self.groups_page(&url).await,
            Some(Cursor::GroupDelta(url)) => self.group_delta_page(&url).await,
            Some(Cursor::ServicePrincipalLinks { incremental }) => {
                self.service_principal_links_page(incremental).await
            }
            Some(other) => Err(wrong_cursor("group", &other)),
        }
    }

    /// A full listing's groups page, each group's members and owners read through `$batch`.
    ///
    /// **Why `$batch` and not `groups/delta?$select=…,members,owners`** (the other documented
    /// way to read every membership in a full sync). For the bench's tenant — 100,000 users,
    /// 10,000 groups, 1,000,000 memberships — with Graph's documented costs
    /// (concepts/throttling-limits.md: identity and access, an L tenant's app+tenant bucket
    /// holds 8,000 resource units per 10 s; `groups/{id}/members` 3 RU, anything else 1,
    /// `$select` −1, never below 1; each inner request of a `$batch` charged on its own;
    /// json-batching.md: 20 requests per batch):
    ///
    /// * `$batch`: 2 reads per group (members `$top=999` — one read for a group under 1,000
    ///   members — and owners) = 20,000 reads in ⌈20,000 / 20⌉ = 1,000 batches. RU = 10,000 ×
    ///   (2 + 1) = 30,000, plus ~150 for the user and group pages. The bucket starts full, so
    ///   (30,150 − 8,000) / 800 RU/s = 27.7 s: throttle-bound, whatever the round trip, as long
    ///   as 1,000 batches / 4 in flight × RTT stays under it (RTT ≤ ~110 ms).
    /// * `groups/delta`: 1 RU a page (1, `$select` −1, floor 1), so ~1,000 RU — no throttle.
    ///   But delta takes no `$top`; Graph chooses how many groups and `members@delta` a page
    ///   holds and says only that a large group's members may not fit in one response
    ///   (delta-query-groups.md, "Paging through members in a large group"). At the
    ///   simulator's 1,000 references a page, for ~1,015,000 references (1–2 owners a group),
    ///   that is ≈ 1,015 pages, and
    ///   they form one `@odata.nextLink` chain, strictly one after another (a `$filter` on ids
    ///   to split it allows 50 ids and tracks only those, missing new groups): 1,015 × RTT =
    ///   20 s at the bench's 20 ms, 100–200 s at a real 100–200 ms round trip.
    ///
    /// Delta is cheaper in resource units but its wall time is the round trip times a page
    /// count Graph does not document; the batches' is the documented throttle's, 27.7 s, and
    /// overtakes delta from an RTT of ~27 ms. So the full listing stays on `$batch`, and delta
    /// serves what it is cheapest for: the incremental rounds after it (delta.rs).
    async fn groups_page(&self, url: &str) -> Result<Page<Resource>, ConnectorError> {
        let body = self.graph.get_json(url).await?;
        let next = Some(match self.graph.next_link(&body)? {
            Some(link) => Cursor::Groups(link).encode(),
            None => Cursor::ServicePrincipalLinks { incremental: false }.encode(),
        });
        let mut groups = Vec::new();
        let mut entitlements = Vec::new();
        let mut reads = Vec::new();
        for v in values(&body) {
            if self.opts.skip_on_prem_groups && mapping::on_prem(&v) {
                continue;
            }
            let Some((group, ents)) = mapping::group(&v) else {
                continue;
            };
            let id = ids::guid("group id listed by Graph", group.upstream_id())?;
            let id = ids::segment(id);
            for rel in ["members", "owners"] {
                reads.push(format!(
                    "/groups/{id}/{rel}?$select={}&$top={}",
                    encode(mapping::PRINCIPAL_SELECT),
                    self.top()
                ));
            }
            groups.push(group);
            entitlements.extend(ents);
        }
        let lists = batch::read_all(&self.graph, self.plan(), reads).await?;
        let managed = self.managed.get(self).await?;
        let rules = self.rules();
        let mut grants = Grants::default();
        for (group, pair) in groups.iter().zip(lists.chunks(2)) {
            for (slug, objects) in ["member", "owner"].iter().zip(pair) {
                let ent = format!("{}:{slug}", group.id);
                // Service principals come from their own side (links.rs), counted once.
                for v in objects.iter().filter(|v| !mapping::is_service_principal(v)) {
                    if let Some(p) = rules.of_object(v, |id| managed.contains(id)) {
                        grants.add(&ent, &p);
                    }
                }
            }
        }
        Ok(Page::new(groups, next)
            .with_entitlements(entitlements)
            .with_grants(grants.into_vec()))
    }

    /// `app` pages: enterprise apps with app role assignments and owners side-loaded.
    pub(crate) async fn list_apps(
        &self,
        token: &PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        let url = match cursor(token)? {
            None => self.graph.url(&format!(
                "/servicePrincipals?$filter={}&$select={}&$top={}",
                encode("servicePrincipalType eq 'Application'"),
                encode(mapping::APP_SELECT),
                self.top()
            )),
            Some(Cursor::Apps(url)) => url,
            Some(other) => return Err(wrong_cursor("app", &other)),
        };
        let body = self.graph.get_json(&url).await?;
        let next = self
            .graph
            .next_link(&body)?
            .map(|link| Cursor::Apps(link).encode());
        let apps: Vec<mapping::App> = values(&body).iter().filter_map(mapping::app).collect();
        let mut reads = Vec::with_capacity(apps.len() * 2);
        for app in &apps {
            let id = ids::segment(ids::guid(
                "service principal id listed by Graph",
                app.resource.upstream_id(),
            )?);
            reads.push(format!(
                "/servicePrincipals/{id}/appRoleAssignedTo?$select={}&$top={}",
                encode("id,appRoleId,principalId,principalType"),
                self.top()
            ));
            reads.push(format!(
                "/servicePrincipals/{id}/owners?$select={}&$top={}",
                encode(mapping::PRINCIPAL_SELECT),
                self.top()
            ));
        }
        let lists = batch::read_all(&self.graph, self.plan(), reads).await?;
        let managed = self.managed.get(self).await?;
        let is_managed = |id: &str| managed.contains(id);
        let rules = self.rules();
        let mut items = Vec::new();
        let mut entitlements = Vec::new();
        let mut grants = Grants::default();
        for (app, pair) in apps.into_iter().zip(lists.chunks(2)) {
            let (assigned, owners) = (&pair[0], &pair[1]);
            if self.opts.skip_unassigned_apps && assigned.is_empty() {
                continue;
            }
            for a in assigned {
                let role = a["appRoleId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let Some(slug) = app.slugs.get(&role) else {
                    tracing::debug!(app = %app.resource.id, role, "assignment of an app role the app no longer defines");
                    continue;
                };
                let Some(id) = a["principalId"].as_str().filter(|id| !id.is_empty()) else {
                    continue;
                };
                // principalType is `User`, `Group` or `ServicePrincipal` (approleassignment.md).
                let kind = a["principalType"].as_str().unwrap_or_default();
                if let Some(p) = rules.principal(kind, id, None, is_managed) {
                    grants.add(&format!("{}:{slug}", app.resource.id), &p);
                }
            }
            let owner = format!("{}:owner", app.resource.id);
            for v in owners {
                if let Some(p) = rules.of_object(v, is_managed) {
                    grants.add(&owner, &p);
                }
            }
            items.push(app.resource);
            entitlements.extend(app.entitlements);
        }
        Ok(Page::new(items, next)
            .with_entitlements(entitlements)
            .with_grants(grants.into_vec()))
    }

    /// `role` page: the activated directory roles (one page: `/directoryRoles` does not page)
    /// with their assignments side-loaded from the unified role-assignment API — the API
    /// provisioning writes them through, so sync and provisioning agree on what a grant is. An
    /// assignment at an administrative unit or object scope is its own entitlement (scope.rs).
    ///
    /// rbacapplication-list-roleassignments.md: the directory provider requires "$filter on
    /// either the roleDefinitionId or principalId properties", and "The roleDefinitionId
    /// property can be either a role object ID or a value for the templateId property"; so
    /// one filtered read per role, by its `roleTemplateId`, with `$expand=principal` (the
    /// page's example) for the principal's type.
    pub(crate) async fn list_roles(
        &self,
        token: &PageToken,
    ) -> Result<Page<Resource>, ConnectorError> {
        if let Some(other) = cursor(token)? {
            return Err(wrong_cursor("role", &other));
        }
        let url = self.graph.url(&format!(
            "/directoryRoles?$select={}",
            encode(mapping::ROLE_SELECT)
        ));
        let found = self.graph.get_all(&url).await?;
        let mut roles: Vec<Resource> = Vec::new();
        let mut entitlements: Vec<Entitlement> = Vec::new();
        let mut reads = Vec::new();
        for (role, ent) in found.iter().filter_map(mapping::role) {
            let Some(template) = role.role.as_ref().and_then(|r| r.template_id.clone()) else {
                tracing::warn!(role = %role.id, "directory role without roleTemplateId; its assignments cannot be read");
                continue;
            };
            let template = ids::guid("roleTemplateId listed by Graph", &template)?;
            reads.push(format!(
                "/roleManagement/directory/roleAssignments?$filter={}&$select={}&$expand=principal",
                encode(&format!(
                    "roleDefinitionId eq {}",
                    ids::odata_string(template)
                )),
                encode("id,principalId,roleDefinitionId,directoryScopeId")
            ));
            roles.push(role);
            entitlements.push(ent);
        }
        let lists = batch::read_all(&self.graph, self.plan(), reads).await?;
        let managed = self.managed.get(self).await?;
        let rules = self.rules();
        let mut grants = Grants::default();
        let mut scoped: Vec<Entitlement> = Vec::new();
        let mut seen_scopes = HashSet::new();
        for (role, assignments) in roles.iter().zip(&lists) {
            for a in assignments {
                let scope_id = a
                    .get("directoryScopeId")
                    .and_then(|s| s.as_str())
                    .unwrap_or("/");
                let Some(scope) = crate::scope::Scope::from_directory_scope(scope_id) else {
                    tracing::warn!(role = %role.id, scope = scope_id, "role assignment at a scope the docs do not describe; left out");
                    continue;
                };
                let Some(principal) = a
                    .get("principal")
                    .and_then(|p| rules.of_object(p, |id| managed.contains(id)))
                else {
                    continue;
                };
                let ent = mapping::role_entitlement(&role.id, &role.display_name, &scope);
                if scope != crate::scope::Scope::Tenant && seen_scopes.insert(ent.id.clone()) {
                    scoped.push(ent.clone());
                }
                grants.add(&ent.id, &principal);
            }
        }
        entitlements.extend(scoped);
        Ok(Page::last(roles)
            .with_entitlements(entitlements)
            .with_grants(grants.into_vec()))
    }
}

/// Grants of one page, each once (Graph may repeat an object across pages of one collection).
#[derive(Default)]
pub(crate) struct Grants {
    seen: HashSet<String>,
    grants: Vec<Grant>,
}

impl Grants {
    pub(crate) fn add(&mut self, entitlement: &str, principal: &str) {
        let grant = Grant::new(entitlement, principal);
        if self.seen.insert(grant.id.clone()) {
            self.grants.push(grant);
        }
    }

    pub(crate) fn into_vec(self) -> Vec<Grant> {
        self.grants
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for c in [
            Cursor::Users("https://graph.microsoft.com/v1.0/users?$skiptoken=a b".into()),
            Cursor::UserDelta("https://x/v1.0/users/delta?$skiptoken=1".into()),
            Cursor::ManagedIdentities { incremental: false },
            Cursor::ManagedIdentities { incremental: true },
            Cursor::Groups("u".into()),
            Cursor::GroupDelta("u".into()),
            Cursor::Apps("u".into()),
            Cursor::ServicePrincipalLinks { incremental: false },
            Cursor::ServicePrincipalLinks { incremental: true },
        ] {
            assert_eq!(Cursor::decode(&c.encode()).expect("decodes"), c);
        }
        assert!(Cursor::decode("users").is_err());
        assert!(Cursor::decode("17").is_err());
    }
}
