//! Grants and revokes: group members and owners (`$ref`), app owners, and the dispatch to app
//! role and directory role assignments (assignments.rs).
//!
//! Every call is idempotent from the caller's view: a grant Graph refuses because it exists
//! (400 "… already exist(s)", 409) answers `already: true`, as does a revoke of something
//! absent (404, or no matching assignment) — unless this instance created it moments ago, when
//! a 404 is a replica that has not caught up (consistency.rs). A grant Graph would refuse for the
//! kind of group (kinds.rs) is refused before any write, saying why; every id is validated
//! before it is placed in a URL or an `@odata.id` (ids.rs).

use idhost_connector_sdk::{
    ConnectorError, EntitlementRef, ErrorKind, Grant, GrantOutcome, GrantRef, HttpResponse,
    ResourceRef, RevokeOutcome,
};
use serde_json::{Value, json};

use crate::Entra;
use crate::client::encode;
use crate::consistency::RETRY_WAITS;
use crate::error::{GraphError, graph_error};
use crate::ids;
use crate::kinds::{GroupKind, Refusal, Rel};

pub(crate) const SHAPES: &str = "Entra entitlements are `group:<id>:member`, `group:<id>:owner`, \
`app:<id>:assignment`, `app:<id>:<app role value>`, `app:<id>:owner`, `role:<id>:member` and \
`role:<id>:member.administrativeUnits.<unit id>`";

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done,
    Already,
}

impl Outcome {
    pub(crate) fn or(self, other: Self) -> Self {
        if self == Self::Done || other == Self::Done {
            Self::Done
        } else {
            Self::Already
        }
    }
}

/// The `$select` that tells a group's kind.
const KIND_SELECT: &str =
    "id,displayName,groupTypes,mailEnabled,securityEnabled,onPremisesSyncEnabled";

impl Entra {
    fn refuse_if_read_only(&self, what: &str) -> Result<(), ConnectorError> {
        if self.opts.read_only {
            return Err(ConnectorError::permission_denied(format!(
                "source is read-only (read_only = true): refusing to {what}"
            )));
        }
        Ok(())
    }

    pub(crate) async fn grant(
        &self,
        ent: &EntitlementRef,
        principal: &ResourceRef,
    ) -> Result<GrantOutcome, ConnectorError> {
        self.refuse_if_read_only(&format!("grant {}", ent.to_id()))?;
        let grant = Grant::new(&ent.to_id(), &principal.to_id());
        let target = &ent.resource.id;
        let outcome = match (ent.resource.rtype.as_str(), ent.slug.as_str()) {
            ("group", slug @ ("member" | "owner")) => {
                let rel = if slug == "owner" {
                    Rel::Owner
                } else {
                    Rel::Member
                };
                let types: &[&str] = match rel {
                    Rel::Owner => &["user", "app"],
                    Rel::Member => &["user", "group", "app"],
                };
                let pid = allow(principal, types, ent)?;
                let group = ids::guid("group id", target)?;
                self.check_group_grant(group, rel, principal, ent).await?;
                let path = format!(
                    "/groups/{}/{}/$ref",
                    ids::segment(group),
                    rel.relationship()
                );
                let (outcome, _) = self.add_ref(&path, pid).await?;
                outcome
            }
            ("app", "owner") => {
                let pid = allow(principal, &["user", "app"], ent)?;
                let app = ids::guid("app (service principal) id", target)?;
                let path = format!("/servicePrincipals/{}/owners/$ref", ids::segment(app));
                let (outcome, _) = self.add_ref(&path, pid).await?;
                outcome
            }
            ("app", slug) => {
                let pid = allow(principal, &["user", "group", "app"], ent)?;
                let app = ids::guid("app (service principal) id", target)?;
                self.grant_app_role(app, slug, pid, &grant.id).await?
            }
            ("role", slug) => {
                let pid = allow(principal, &["user", "group", "app"], ent)?;
                let role = ids::guid("directory role id", target)?;
                self.grant_directory_role(role, slug, pid, &grant.id)
                    .await?
            }
            _ => {
                return Err(ConnectorError::invalid_input(format!(
                    "`{}` cannot be granted: {SHAPES}",
                    ent.to_id()
                )));
            }
        };
        // A `$ref` link has no id of its own; assignments record theirs (assignments.rs).
        let is_link = ent.resource.rtype == "group" || ent.slug == "owner";
        if outcome == Outcome::Done && is_link {
            self.written.created(&grant.id, None);
        }
        Ok(GrantOutcome::new(grant, outcome == Outcome::Already))
    }

    pub(crate) async fn revoke(&self, grant: &GrantRef) -> Result<RevokeOutcome, ConnectorError> {
        self.refuse_if_read_only(&format!("revoke {}", grant.to_id()))?;
        let ent = &grant.entitlement;
        let target = &ent.resource.id;
        let grant_id = grant.to_id();
        let outcome = match (ent.resource.rtype.as_str(), ent.slug.as_str()) {
            ("group", slug @ ("member" | "owner")) => {
                let rel = if slug == "owner" {
                    Rel::Owner
                } else {
                    Rel::Member
                };
                let group = ids::guid("group id", target)?;
                let pid = ids::guid("principal id", &grant.principal.id)?;
                self.check_group_revoke(group, rel, &grant_id).await?;
                let path = format!(
                    "/groups/{}/{}/{}/$ref",
                    ids::segment(group),
                    rel.relationship(),
                    ids::segment(pid)
                );
                self.delete(&path, &grant_id).await?
            }
            ("app", "owner") => {
                let app = ids::guid("app (service principal) id", target)?;
                let pid = ids::guid("principal id", &grant.principal.id)?;
                let path = format!(
                    "/servicePrincipals/{}/owners/{}/$ref",
                    ids::segment(app),
                    ids::segment(pid)
                );
                self.delete(&path, &grant_id).await?
            }
            ("app", slug) => {
                let app = ids::guid("app (service principal) id", target)?;
                self.remove_app_role(app, slug, &grant.principal, &grant_id)
                    .await?
            }
            ("role", slug) => {
                let role = ids::guid("directory role id", target)?;
                let pid = ids::guid("principal id", &grant.principal.id)?;
                self.remove_directory_role(role, slug, pid, &grant_id)
                    .await?
            }
            _ => {
                return Err(ConnectorError::invalid_input(format!(
                    "`{grant_id}` cannot be revoked: {SHAPES}"
                )));
            }
        };
        if outcome == Outcome::Done {
            self.written.revoked(&grant_id);
        }
        Ok(RevokeOutcome::new(outcome == Outcome::Already))
    }

    /// The group's kind, read with one GET (a 404 is the caller's `NotFound`).
    async fn group_kind(&self, group: &str) -> Result<(GroupKind, String), ConnectorError> {
        let url = self.graph.url(&format!(
            "/groups/{}?$select={}",
            ids::segment(group),
            encode(KIND_SELECT)
        ));
        let body = self.graph.get_json(&url).await?;
        let name = body
            .get("displayName")
            .and_then(Value::as_str)
            .unwrap_or(group)
            .to_owned();
        Ok((GroupKind::of(&body), name))
    }

    /// Refuses, before any write, a grant Graph would refuse for this kind of group.
    async fn check_group_grant(
        &self,
        group: &str,
        rel: Rel,
        principal: &ResourceRef,
        ent: &EntitlementRef,
    ) -> Result<(), ConnectorError> {
        let (kind, name) = self.group_kind(group).await?;
        let is_service_principal = match principal.rtype.as_str() {
            "app" => true,
            "user" if rel == Rel::Member && kind.kind == "microsoft_365" => {
                self.managed.get(self).await?.contains(&principal.id)
            }
            _ => false,
        };
        let principal_kind = if rel == Rel::Member && principal.rtype == "group" {
            Some(self.group_kind(&principal.id).await?.0)
        } else {
            None
        };
        kind.check(rel, &principal.rtype, is_service_principal, principal_kind)
            .map_err(|refusal| {
                let lead = format!(
                    "refusing to grant `{}` to `{}` before any write: group `{name}`",
                    ent.to_id(),
                    principal.to_id()
                );
                match refusal {
                    Refusal::ManagedElsewhere(why) => {
                        ConnectorError::permission_denied(format!("{lead}: {why}"))
                    }
                    Refusal::WrongPrincipal(why) => {
                        ConnectorError::invalid_input(format!("{lead}: {why}"))
                    }
                }
            })
    }

    /// Refuses a revoke on a relationship Graph does not manage for this kind of group.
    async fn check_group_revoke(
        &self,
        group: &str,
        rel: Rel,
        grant: &str,
    ) -> Result<(), ConnectorError> {
        let (kind, name) = self.group_kind(group).await?;
        match kind.managed_elsewhere(rel) {
            Some(why) => Err(ConnectorError::permission_denied(format!(
                "refusing to revoke `{grant}` before any write: group `{name}`: {why}"
            ))),
            None => Ok(()),
        }
    }

    /// `POST …/$ref` with `{"@odata.id": "{graph}/v1.0/directoryObjects/{id}"}`
    /// (group-post-members.md, group-post-owners.md, serviceprincipal-post-owners.md); `id` is
    /// a validated GUID.
    async fn add_ref(
        &self,
        path: &str,
        id: &str,
    ) -> Result<(Outcome, Option<Value>), ConnectorError> {
        let body = json!({ "@odata.id": self.graph.endpoints.directory_object(&ids::segment(id)) });
        let response = self
            .graph
            .write("POST", &self.graph.url(path), Some(&body))
            .await?;
        created(response)
    }

    /// `DELETE path`: 204 done; 404 already absent — or, for a grant this instance created
    /// moments ago, not replicated yet: retried after `RETRY_WAITS`, then unavailable.
    pub(crate) async fn delete(&self, path: &str, grant: &str) -> Result<Outcome, ConnectorError> {
        let url = self.graph.url(path);
        let mut waits = RETRY_WAITS.iter();
        loop {
            let response = self.graph.write("DELETE", &url, None).await?;
            if response.dry_run || response.is_success() {
                return Ok(Outcome::Done);
            }
            if response.status != 404 {
                return Err(graph_error(&response));
            }
            if self.written.recent(grant).is_none() {
                return Ok(Outcome::Already);
            }
            match waits.next() {
                Some(wait) => {
                    tracing::info!(
                        grant,
                        wait_ms = wait.as_millis() as u64,
                        "Graph answered 404 for what this connector just created; waiting for replication"
                    );
                    self.graph.ctx.sleep(*wait).await;
                }
                None => {
                    return Err(ConnectorError::unavailable(format!(
                        "{} answered 404 for `{grant}`, which this connector created moments ago: \
                         Microsoft Entra has not replicated it yet (eventual consistency); \
                         retry the revoke later",
                        response.request_line
                    )));
                }
            }
        }
    }
}

/// A create/add answer: 2xx (or a dry run) done, with the created object when Graph sent one;
/// "already exists" already; anything else an error.
pub(crate) fn created(response: HttpResponse) -> Result<(Outcome, Option<Value>), ConnectorError> {
    if response.dry_run || response.is_success() {
        let body = serde_json::from_slice::<Value>(&response.body).ok();
        return Ok((Outcome::Done, body));
    }
    if GraphError::from_response(&response).is_already_exists(response.status) {
        return Ok((Outcome::Already, None));
    }
    Err(graph_error(&response))
}

/// The principal's id if its type is one of `types` and the id is a GUID.
pub(crate) fn allow<'a>(
    principal: &'a ResourceRef,
    types: &[&str],
    ent: &EntitlementRef,
) -> Result<&'a str, ConnectorError> {
    if !types.contains(&principal.rtype.as_str()) {
        return Err(ConnectorError::invalid_input(format!(
            "`{}` cannot be granted to a `{}`; it takes {}",
            ent.to_id(),
            principal.rtype,
            types
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    ids::guid("principal id", &principal.id)
}

/// Whether `err` is a `NotFound`.
pub(crate) fn is_not_found(err: &ConnectorError) -> bool {
    err.kind == ErrorKind::NotFound
}
