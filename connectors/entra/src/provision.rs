//! Grants and revokes: group members and owners (`$ref`), app role assignments and app owners,
//! and directory roles through the unified RBAC API.
//!
//! Every call is idempotent from the caller's view: a grant Graph refuses because it exists
//! (400 "… already exist(s)", 409) answers `already: true`, as does a revoke of something
//! absent (404, or no matching assignment).

use idhost_connector_sdk::{
    ConnectorError, EntitlementRef, Grant, GrantOutcome, GrantRef, HttpResponse, ResourceRef,
    RevokeOutcome,
};
use serde_json::{Value, json};

use crate::Entra;
use crate::client::{encode, values};
use crate::error::{GraphError, graph_error};
use crate::mapping::{self, DEFAULT_APP_ROLE};

const SHAPES: &str = "Entra entitlements are `group:<id>:member`, `group:<id>:owner`, \
`app:<id>:assignment`, `app:<id>:<app role value>`, `app:<id>:owner` and `role:<id>:member`";

/// What a write did.
enum Outcome {
    Done,
    Already,
}

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
        let target = &ent.resource.id;
        let outcome = match (ent.resource.rtype.as_str(), ent.slug.as_str()) {
            ("group", rel @ ("member" | "owner")) => {
                allow(
                    principal,
                    if rel == "owner" {
                        &["user", "app"]
                    } else {
                        &["user", "group", "app"]
                    },
                    ent,
                )?;
                self.add_ref(&format!("/groups/{target}/{rel}s/$ref"), principal)
                    .await?
            }
            ("app", "owner") => {
                allow(principal, &["user", "app"], ent)?;
                self.add_ref(
                    &format!("/servicePrincipals/{target}/owners/$ref"),
                    principal,
                )
                .await?
            }
            ("app", slug) => {
                allow(principal, &["user", "group", "app"], ent)?;
                let role = self.app_role_id(target, slug).await?;
                let body =
                    json!({ "principalId": principal.id, "resourceId": target, "appRoleId": role });
                let url = self
                    .graph
                    .url(&format!("/servicePrincipals/{target}/appRoleAssignedTo"));
                created(self.graph.write("POST", &url, Some(&body)).await?)?
            }
            ("role", "member") => {
                allow(principal, &["user", "group", "app"], ent)?;
                let definition = self.role_definition_id(target).await?;
                let body = json!({
                    "principalId": principal.id,
                    "roleDefinitionId": definition,
                    "directoryScopeId": "/",
                });
                let url = self.graph.url("/roleManagement/directory/roleAssignments");
                created(self.graph.write("POST", &url, Some(&body)).await?)?
            }
            _ => {
                return Err(ConnectorError::invalid_input(format!(
                    "`{}` cannot be granted: {SHAPES}",
                    ent.to_id()
                )));
            }
        };
        Ok(GrantOutcome {
            grant: Grant::new(&ent.to_id(), &principal.to_id()),
            already: matches!(outcome, Outcome::Already),
        })
    }

    pub(crate) async fn revoke(&self, grant: &GrantRef) -> Result<RevokeOutcome, ConnectorError> {
        self.refuse_if_read_only(&format!("revoke {}", grant.to_id()))?;
        let ent = &grant.entitlement;
        let target = &ent.resource.id;
        let principal = &grant.principal.id;
        let outcome = match (ent.resource.rtype.as_str(), ent.slug.as_str()) {
            ("group", rel @ ("member" | "owner")) => {
                self.delete(&format!("/groups/{target}/{rel}s/{principal}/$ref"))
                    .await?
            }
            ("app", "owner") => {
                self.delete(&format!(
                    "/servicePrincipals/{target}/owners/{principal}/$ref"
                ))
                .await?
            }
            ("app", slug) => self.remove_app_role(target, slug, principal).await?,
            ("role", "member") => self.remove_directory_role(target, principal).await?,
            _ => {
                return Err(ConnectorError::invalid_input(format!(
                    "`{}` cannot be revoked: {SHAPES}",
                    grant.to_id()
                )));
            }
        };
        Ok(RevokeOutcome {
            already: matches!(outcome, Outcome::Already),
        })
    }

    /// `POST …/$ref` with `{"@odata.id": "{graph}/v1.0/directoryObjects/{id}"}`
    /// (group-post-members.md, group-post-owners.md, serviceprincipal-post-owners.md).
    async fn add_ref(
        &self,
        path: &str,
        principal: &ResourceRef,
    ) -> Result<Outcome, ConnectorError> {
        let body = json!({ "@odata.id": self.graph.endpoints.directory_object(&principal.id) });
        let response = self
            .graph
            .write("POST", &self.graph.url(path), Some(&body))
            .await?;
        created(response)
    }

    /// `DELETE path`: 204 done, 404 already absent.
    async fn delete(&self, path: &str) -> Result<Outcome, ConnectorError> {
        let response = self
            .graph
            .write("DELETE", &self.graph.url(path), None)
            .await?;
        if response.dry_run || response.is_success() {
            Ok(Outcome::Done)
        } else if response.status == 404 {
            Ok(Outcome::Already)
        } else {
            Err(graph_error(&response))
        }
    }

    /// The app role id an entitlement slug names: `assignment` is the default access role;
    /// otherwise the role whose slug (its value, see `mapping::app_role_slug`) or id matches.
    async fn app_role_id(&self, app: &str, slug: &str) -> Result<String, ConnectorError> {
        if slug == "assignment" {
            return Ok(DEFAULT_APP_ROLE.to_owned());
        }
        let url = self.graph.url(&format!(
            "/servicePrincipals/{app}?$select={}",
            encode("id,appRoles")
        ));
        let sp = self.graph.get_json(&url).await?;
        let roles = sp
            .get("appRoles")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let found = roles.iter().find(|r| {
            mapping::app_role_slug(r).as_deref() == Some(slug)
                || r.get("id")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.eq_ignore_ascii_case(slug))
        });
        match found.and_then(|r| r.get("id")).and_then(Value::as_str) {
            Some(id) => Ok(id.to_owned()),
            None => {
                let known: Vec<String> = roles.iter().filter_map(mapping::app_role_slug).collect();
                Err(ConnectorError::not_found(format!(
                    "app `{app}` has no app role `{slug}`; its entitlements are `assignment`, `owner`{}",
                    known.iter().map(|s| format!(", `{s}`")).collect::<String>()
                )))
            }
        }
    }

    /// Deletes the principal's assignment of the role, found with one filtered GET
    /// (appRoleAssignment.principalId supports `$filter` with `eq`; it is an `Edm.Guid`, so the
    /// literal is unquoted).
    async fn remove_app_role(
        &self,
        app: &str,
        slug: &str,
        principal: &str,
    ) -> Result<Outcome, ConnectorError> {
        let role = match self.app_role_id(app, slug).await {
            Ok(role) => role,
            Err(err) if err.kind == idhost_connector_sdk::ErrorKind::NotFound => {
                return Ok(Outcome::Already);
            }
            Err(err) => return Err(err),
        };
        let url = self.graph.url(&format!(
            "/servicePrincipals/{app}/appRoleAssignedTo?$filter={}&$select={}",
            encode(&format!("principalId eq {principal}")),
            encode("id,appRoleId,principalId")
        ));
        let found = self.graph.get_all(&url).await?;
        let ids: Vec<&str> = found
            .iter()
            .filter(|a| {
                a["appRoleId"]
                    .as_str()
                    .is_some_and(|r| r.eq_ignore_ascii_case(&role))
                    && a["principalId"]
                        .as_str()
                        .is_some_and(|p| p.eq_ignore_ascii_case(principal))
            })
            .filter_map(mapping::id)
            .collect();
        let mut outcome = Outcome::Already;
        for id in ids {
            if let Outcome::Done = self
                .delete(&format!("/servicePrincipals/{app}/appRoleAssignedTo/{id}"))
                .await?
            {
                outcome = Outcome::Done;
            }
        }
        Ok(outcome)
    }

    /// The unifiedRoleDefinition id of an activated directory role: its `roleTemplateId`
    /// (rbacapplication-post-roleassignments.md: a built-in role's definition id is its
    /// template id).
    async fn role_definition_id(&self, role: &str) -> Result<String, ConnectorError> {
        let url = self.graph.url(&format!(
            "/directoryRoles/{role}?$select={}",
            encode("id,roleTemplateId")
        ));
        let found = self.graph.get_json(&url).await?;
        found
            .get("roleTemplateId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                ConnectorError::internal(format!("directory role `{role}` has no roleTemplateId"))
            })
    }

    /// Deletes the principal's tenant-wide (`directoryScopeId` `/`) assignments of the role.
    async fn remove_directory_role(
        &self,
        role: &str,
        principal: &str,
    ) -> Result<Outcome, ConnectorError> {
        let definition = match self.role_definition_id(role).await {
            Ok(d) => d,
            Err(err) if err.kind == idhost_connector_sdk::ErrorKind::NotFound => {
                return Ok(Outcome::Already);
            }
            Err(err) => return Err(err),
        };
        let filter = format!("principalId eq '{principal}' and roleDefinitionId eq '{definition}'");
        let url = self.graph.url(&format!(
            "/roleManagement/directory/roleAssignments?$filter={}",
            encode(&filter)
        ));
        let found = self.graph.get_json(&url).await?;
        let mut outcome = Outcome::Already;
        for a in values(&found) {
            let scope = a
                .get("directoryScopeId")
                .and_then(Value::as_str)
                .unwrap_or("/");
            let Some(id) = mapping::id(&a).filter(|_| scope == "/") else {
                continue;
            };
            if let Outcome::Done = self
                .delete(&format!("/roleManagement/directory/roleAssignments/{id}"))
                .await?
            {
                outcome = Outcome::Done;
            }
        }
        Ok(outcome)
    }
}

/// A create/add answer: 2xx (or a dry run) done; "already exists" already; else an error.
fn created(response: HttpResponse) -> Result<Outcome, ConnectorError> {
    if response.dry_run || response.is_success() {
        return Ok(Outcome::Done);
    }
    if GraphError::from_response(&response).is_already_exists(response.status) {
        return Ok(Outcome::Already);
    }
    Err(graph_error(&response))
}

fn allow(
    principal: &ResourceRef,
    types: &[&str],
    ent: &EntitlementRef,
) -> Result<(), ConnectorError> {
    if types.contains(&principal.rtype.as_str()) {
        Ok(())
    } else {
        Err(ConnectorError::invalid_input(format!(
            "`{}` cannot be granted to a `{}`; it takes {}",
            ent.to_id(),
            principal.rtype,
            types
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }
}
