//! A connector plugin serving a configurable in-memory directory, for host tests.
//!
//! It is loaded as a real `.so` through the host's loader, so host tests exercise the whole
//! boundary. Settings (all optional):
//!
//! | key | meaning |
//! |---|---|
//! | `users`, `groups`, `roles`, `memberships` | dataset size; memberships spread over groups |
//! | `page_size` | records per page (default 1000) |
//! | `group_page_size` | groups per page of the `group` listing (default `page_size`): each group's members ride on its page, so 100 groups of 10,000 members at 1000 per page would be one page of 1M grants |
//! | `disabled_users` | upstream ids (numbers) reported as disabled |
//! | `missing_users` | upstream ids (numbers) left out of the listing |
//! | `rename_users` | upstream ids (numbers) whose display name gets a " (renamed)" suffix |
//! | `panic_on`, `fail_on`, `sleep_on` | a call to misbehave on: `open`, `validate`, `list:<type>` or `list:<type>:<page>` (0-based page), `entitlements:<resource id>`, `grants:<resource id>` (or just `grants`: every one), and the provisioning calls `grant`, `revoke`, `create_account`, `update`, `delete` |
//! | `fail_kind` | the error kind `fail_on` returns (default `unavailable`) |
//! | `sleep_ms` | how long `sleep_on` waits (on the host's timer) |
//! | `sleep_blocking` | `sleep_on` blocks its thread with `std::thread::sleep` instead (a plugin stuck in blocking code: it never yields) |
//! | `http_url` | `validate` GETs this URL through the host's HTTP service |
//! | `token` | a secret the connector logs at debug level and sends as a bearer token (redaction tests) |
//! | `repeat_token_on` | `list:<type>`: hand back the same page token forever (guard tests) |
//! | `incremental` | once a complete sync committed its cursor, `user` and `group` listings are deltas (below) |
//! | `delta_users` | incremental: users (numbers) sent as upserts, rendered with the settings above |
//! | `delta_grants` | incremental: grant ids (`group:g1:member:user:u7`) sent as upserts on the group listing |
//! | `delta_removed` | incremental: removed ids; `user:` ids on the user listing, the rest on the group listing |
//! | `churn_secs` | the directory changes with time: user `u0`'s display name ends in ` (w<N>)`, N = Unix seconds ÷ `churn_secs`, so every sync in a new window finds one `updated` event, whose old and new names chain from window to window (load and failover tests check that no change is lost or delivered twice) |
//!
//! Every complete listing stages connector state `cursor:<type>` (the host commits it with a
//! complete sync, as it would a Graph delta link); `--full` hides it, so the listing is full.
//! Resource types: `user`, `group` (members side-loaded on group pages), and `role` (grants
//! fetched per role through `grants`, to exercise the per-resource path).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use idhost_connector_sdk::prelude::*;
use serde::Deserialize;

/// Settings of the fixture connector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureSettings {
    #[serde(default = "default_users")]
    users: u64,
    #[serde(default = "default_groups")]
    groups: u64,
    #[serde(default)]
    roles: u64,
    #[serde(default)]
    memberships: u64,
    #[serde(default = "default_page_size")]
    page_size: u64,
    #[serde(default)]
    group_page_size: Option<u64>,
    #[serde(default)]
    disabled_users: Vec<u64>,
    #[serde(default)]
    missing_users: Vec<u64>,
    #[serde(default)]
    rename_users: Vec<u64>,
    #[serde(default)]
    panic_on: Option<String>,
    #[serde(default)]
    fail_on: Option<String>,
    #[serde(default)]
    fail_kind: Option<ErrorKind>,
    #[serde(default)]
    sleep_on: Option<String>,
    #[serde(default)]
    sleep_ms: u64,
    #[serde(default)]
    sleep_blocking: bool,
    #[serde(default)]
    http_url: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    repeat_token_on: Option<String>,
    #[serde(default)]
    incremental: bool,
    #[serde(default)]
    delta_users: Vec<u64>,
    #[serde(default)]
    delta_grants: Vec<String>,
    #[serde(default)]
    delta_removed: Vec<String>,
    #[serde(default)]
    churn_secs: u64,
}

fn default_users() -> u64 {
    10
}
fn default_groups() -> u64 {
    2
}
fn default_page_size() -> u64 {
    1000
}

/// The fixture connector.
pub struct Fixture {
    settings: FixtureSettings,
    ctx: Context,
    /// Provisioned memberships beyond the generated ones: (group, user).
    added: Mutex<BTreeSet<(u64, u64)>>,
    removed: Mutex<BTreeSet<(u64, u64)>>,
}

impl Fixture {
    async fn misbehave(&self, call: &str) -> Result<(), ConnectorError> {
        misbehave(&self.settings, &self.ctx, call).await
    }

    fn is_member(&self, group: u64, user: u64) -> bool {
        let lock = |m: &Mutex<BTreeSet<(u64, u64)>>| {
            m.lock()
                .map(|s| s.contains(&(group, user)))
                .unwrap_or(false)
        };
        if lock(&self.removed) {
            return false;
        }
        if lock(&self.added) {
            return true;
        }
        let groups = self.settings.groups.max(1);
        let k = (user * groups) + group;
        group < groups && user < self.settings.users && k < self.settings.memberships
    }

    fn user(&self, n: u64) -> Resource {
        let mut name = format!("User {n}");
        if self.settings.rename_users.contains(&n) {
            name.push_str(" (renamed)");
        }
        if n == 0 && self.settings.churn_secs > 0 {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            name.push_str(&format!(" (w{})", now / self.settings.churn_secs));
        }
        let mut user = Resource::new("user", &format!("u{n}"), name);
        let login = format!("user{n}@example.com");
        user.user = Some({
            let mut built = UserTrait::default();
            built.login = Some(login.clone());
            built.emails = vec![Email::new(login, true)];
            built.given_name = Some("User".into());
            built.family_name = Some(n.to_string());
            built.department = Some(format!("Dept {}", n % 7));
            built
        });
        if self.settings.disabled_users.contains(&n) {
            user.status = Status::Disabled;
        }
        user.profile
            .insert("employee_number".into(), serde_json::Value::from(n));
        user
    }

    /// Whether `rtype` is listed as a delta: incremental mode and a committed cursor.
    fn delta(&self, rtype: &str) -> bool {
        self.settings.incremental && self.ctx.state().get(&format!("cursor:{rtype}")).is_some()
    }

    /// Stages the cursor of `rtype` once its listing ends.
    fn listed(&self, rtype: &str, page: Page<Resource>) -> Page<Resource> {
        if page.next.is_none() {
            self.ctx.state().set(&format!("cursor:{rtype}"), "1");
        }
        page
    }

    /// An incremental page of `rtype` (`user` or `group`).
    fn delta_page(&self, rtype: &str, page: &PageToken) -> Result<Page<Resource>, ConnectorError> {
        let here = |id: &&String| id.starts_with("user:") == (rtype == "user");
        let removed = self.settings.delta_removed.iter().filter(here).cloned();
        if rtype == "user" {
            let users = &self.settings.delta_users;
            let (start, end, next) = self.page_bounds(page, users.len() as u64)?;
            let items = users[start as usize..end as usize]
                .iter()
                .map(|n| self.user(*n))
                .collect();
            let removed = if start == 0 {
                removed.collect()
            } else {
                Vec::new()
            };
            return Ok(Page::new(items, next).incremental(removed));
        }
        let mut grants = Vec::new();
        for id in &self.settings.delta_grants {
            let parsed = GrantRef::parse(id).ok_or_else(|| {
                ConnectorError::invalid_input(format!("delta_grants: `{id}` is not a grant id"))
            })?;
            grants.push(Grant::new(
                &parsed.entitlement.to_id(),
                &parsed.principal.to_id(),
            ));
        }
        Ok(Page::last(Vec::new())
            .with_grants(grants)
            .incremental(removed.collect()))
    }

    /// A page of the complete listing of `rtype`.
    fn full_page(&self, rtype: &str, page: &PageToken) -> Result<Page<Resource>, ConnectorError> {
        match rtype {
            "user" => {
                let (start, end, next) = self.page_bounds(page, self.settings.users)?;
                let items = (start..end)
                    .filter(|n| !self.settings.missing_users.contains(n))
                    .map(|n| self.user(n))
                    .collect();
                Ok(Page::new(items, next))
            }
            "group" => {
                let size = self
                    .settings
                    .group_page_size
                    .unwrap_or(self.settings.page_size);
                let (start, end, next) = self.page_bounds_of(page, self.settings.groups, size)?;
                let mut items = Vec::new();
                let mut entitlements = Vec::new();
                let mut grants = Vec::new();
                for g in start..end {
                    let mut group = Resource::new("group", &format!("g{g}"), format!("Group {g}"));
                    group.group = Some({
                        let mut built = GroupTrait::default();
                        built.kind = "security".into();
                        built
                    });
                    let ent = Entitlement::new(&group.id, "member", Purpose::Assignment, &["user"])
                        .named(format!("Member of Group {g}"));
                    // Generated membership k pairs group k % groups with user k / groups.
                    let groups = self.settings.groups.max(1);
                    let generated = self.settings.memberships.saturating_sub(g).div_ceil(groups);
                    let mut members: BTreeSet<u64> =
                        (0..generated.min(self.settings.users)).collect();
                    if let (Ok(added), Ok(removed)) = (self.added.lock(), self.removed.lock()) {
                        members.extend(added.iter().filter(|(ag, _)| *ag == g).map(|(_, u)| *u));
                        members.retain(|u| !removed.contains(&(g, *u)));
                    }
                    for u in members {
                        if !self.settings.missing_users.contains(&u) {
                            grants.push(Grant::new(&ent.id, &format!("user:u{u}")));
                        }
                    }
                    entitlements.push(ent);
                    items.push(group);
                }
                Ok(Page::new(items, next)
                    .with_entitlements(entitlements)
                    .with_grants(grants))
            }
            "role" => {
                let (start, end, next) = self.page_bounds(page, self.settings.roles)?;
                let items = (start..end)
                    .map(|r| {
                        let mut role = Resource::new("role", &format!("r{r}"), format!("Role {r}"));
                        role.role = Some({
                            let mut built = RoleTrait::default();
                            built.template_id = Some(format!("tmpl-{r}"));
                            built
                        });
                        role
                    })
                    .collect();
                Ok(Page::new(items, next))
            }
            other => Err(ConnectorError::invalid_input(format!(
                "the fixture has no resource type `{other}`"
            ))),
        }
    }

    fn page_bounds(
        &self,
        page: &PageToken,
        total: u64,
    ) -> Result<(u64, u64, Option<String>), ConnectorError> {
        self.page_bounds_of(page, total, self.settings.page_size)
    }

    fn page_bounds_of(
        &self,
        page: &PageToken,
        total: u64,
        size: u64,
    ) -> Result<(u64, u64, Option<String>), ConnectorError> {
        let start = match page.as_str() {
            None => 0,
            Some(t) => t
                .parse::<u64>()
                .map_err(|_| ConnectorError::invalid_input(format!("bad page token `{t}`")))?,
        };
        let size = size.max(1);
        let end = (start + size).min(total);
        let next = (end < total).then(|| end.to_string());
        Ok((start, end, next))
    }
}

async fn misbehave(
    settings: &FixtureSettings,
    ctx: &Context,
    call: &str,
) -> Result<(), ConnectorError> {
    let hits = |wanted: &Option<String>| {
        wanted
            .as_deref()
            .is_some_and(|w| w == call || call.starts_with(&format!("{w}:")))
    };
    if hits(&settings.sleep_on) {
        if settings.sleep_blocking {
            // A plugin stuck in blocking code: it never yields to the host's runtime.
            std::thread::sleep(Duration::from_millis(settings.sleep_ms));
        } else {
            ctx.sleep(Duration::from_millis(settings.sleep_ms)).await;
        }
    }
    if hits(&settings.panic_on) {
        panic!("fixture told to panic on {call}");
    }
    if hits(&settings.fail_on) {
        let kind = settings.fail_kind.unwrap_or(ErrorKind::Unavailable);
        return Err(ConnectorError::new(
            kind,
            format!("GET https://fixture.invalid/{call} answered 503: fixture told to fail"),
        )
        .with_status(503));
    }
    Ok(())
}

impl Connector for Fixture {
    type Settings = FixtureSettings;

    fn manifest() -> Manifest {
        Manifest::new(
            "fixture".into(),
            env!("CARGO_PKG_VERSION").into(),
            "In-memory directory for host tests".into(),
        )
        .with_resource_types(vec![
            ResourceTypeSpec::new("user", "Generated users"),
            ResourceTypeSpec::new("group", "Generated groups; members side-loaded"),
            ResourceTypeSpec::new("role", "Generated roles; grants fetched per role")
                .with_per_resource_details(),
        ])
        .with_capabilities(vec![
            Capability::Grant,
            Capability::Revoke,
            Capability::CreateAccount,
            Capability::Update,
            Capability::Delete,
        ])
        .with_config_keys(vec![
            ConfigKey::optional("users", "number of users"),
            ConfigKey::optional("groups", "number of groups"),
            ConfigKey::optional("token", "a fake credential").secret(),
        ])
    }

    async fn open(settings: FixtureSettings, ctx: Context) -> Result<Self, ConnectorError> {
        misbehave(&settings, &ctx, "open").await?;
        if let Some(token) = &settings.token {
            tracing::debug!(token = %token, "fixture opened with a token");
        }
        tracing::info!(
            users = settings.users,
            groups = settings.groups,
            "fixture opened"
        );
        Ok(Self {
            settings,
            ctx,
            added: Mutex::default(),
            removed: Mutex::default(),
        })
    }

    async fn validate(&self) -> Result<(), ConnectorError> {
        self.misbehave("validate").await?;
        if let Some(url) = &self.settings.http_url {
            let mut request = self.ctx.http().get(url);
            if let Some(token) = &self.settings.token {
                request = request.bearer(&SecretString::from(token.clone()));
            }
            request.send().await?.error_for_status()?;
        }
        Ok(())
    }

    async fn list(&self, rtype: &str, page: PageToken) -> Result<Page<Resource>, ConnectorError> {
        let size = match rtype {
            "group" => self
                .settings
                .group_page_size
                .unwrap_or(self.settings.page_size),
            _ => self.settings.page_size,
        };
        let page_no = match page.as_str() {
            None => 0,
            Some(t) => t.parse::<u64>().unwrap_or(0) / size.max(1),
        };
        self.misbehave(&format!("list:{rtype}:{page_no}")).await?;
        if self.settings.repeat_token_on.as_deref() == Some(&format!("list:{rtype}")) {
            return Ok(Page::new(Vec::new(), Some("same".into())));
        }
        if matches!(rtype, "user" | "group") && self.delta(rtype) {
            let page = self.delta_page(rtype, &page)?;
            return Ok(self.listed(rtype, page));
        }
        let page = self.full_page(rtype, &page)?;
        Ok(self.listed(rtype, page))
    }

    async fn entitlements(
        &self,
        resource: &Resource,
        _page: PageToken,
    ) -> Result<Page<Entitlement>, ConnectorError> {
        self.misbehave(&format!("entitlements:{}", resource.id))
            .await?;
        Ok(Page::last(vec![Entitlement::new(
            &resource.id,
            "member",
            Purpose::Assignment,
            &["user"],
        )]))
    }

    async fn grants(
        &self,
        resource: &Resource,
        _page: PageToken,
    ) -> Result<Page<Grant>, ConnectorError> {
        self.misbehave(&format!("grants:{}", resource.id)).await?;
        // Role r is held by the users whose number is a multiple of (r + 2).
        let r: u64 = resource
            .upstream_id()
            .trim_start_matches('r')
            .parse()
            .map_err(|_| ConnectorError::invalid_input(format!("unknown role {}", resource.id)))?;
        let ent = format!("{}:member", resource.id);
        let grants = (0..self.settings.users)
            .filter(|u| u % (r + 2) == 0 && !self.settings.missing_users.contains(u))
            .map(|u| Grant::new(&ent, &format!("user:u{u}")))
            .collect();
        Ok(Page::last(grants))
    }
}

fn number(id: &str, prefix: char) -> Result<u64, ConnectorError> {
    id.trim_start_matches(prefix)
        .parse()
        .map_err(|_| ConnectorError::not_found(format!("no such fixture object `{id}`")))
}

impl Provisioner for Fixture {
    async fn grant(
        &self,
        entitlement: &EntitlementRef,
        principal: &ResourceRef,
    ) -> Result<GrantOutcome, ConnectorError> {
        self.misbehave("grant").await?;
        let g = number(&entitlement.resource.id, 'g')?;
        let u = number(&principal.id, 'u')?;
        let already = self.is_member(g, u);
        if let (Ok(mut added), Ok(mut removed)) = (self.added.lock(), self.removed.lock()) {
            removed.remove(&(g, u));
            added.insert((g, u));
        }
        Ok(GrantOutcome::new(
            Grant::new(&entitlement.to_id(), &principal.to_id()),
            already,
        ))
    }

    async fn revoke(&self, grant: &GrantRef) -> Result<RevokeOutcome, ConnectorError> {
        self.misbehave("revoke").await?;
        let g = number(&grant.entitlement.resource.id, 'g')?;
        let u = number(&grant.principal.id, 'u')?;
        let already = !self.is_member(g, u);
        if let (Ok(mut added), Ok(mut removed)) = (self.added.lock(), self.removed.lock()) {
            added.remove(&(g, u));
            removed.insert((g, u));
        }
        Ok(RevokeOutcome::new(already))
    }

    async fn create_account(
        &self,
        info: AccountInfo,
        credentials: CredentialOptions,
    ) -> Result<AccountCreated, ConnectorError> {
        self.misbehave("create_account").await?;
        let mut resource = Resource::new(
            "user",
            &info.login,
            info.display_name.clone().unwrap_or_default(),
        );
        resource.user = Some({
            let mut built = UserTrait::default();
            built.login = Some(info.login.clone());
            built
        });
        Ok(AccountCreated::new(
            resource,
            credentials
                .generate_password
                .then(|| SecretString::from("Fixture-Password-123!".to_owned())),
        ))
    }

    async fn update(
        &self,
        resource: &ResourceRef,
        _changes: Changes,
    ) -> Result<(), ConnectorError> {
        self.misbehave("update").await?;
        number(&resource.id, 'u').map(drop)
    }

    async fn delete(&self, resource: &ResourceRef) -> Result<(), ConnectorError> {
        self.misbehave("delete").await?;
        number(&resource.id, 'u').map(drop)
    }
}

export_connector!(Fixture, provisioner);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberships_are_unique_pairs() {
        let groups = 7u64;
        let users = 11u64;
        let mut seen = BTreeSet::new();
        for k in 0..(groups * users) {
            assert!(seen.insert((k % groups, (k / groups) % users)));
        }
    }
}
