//! App role assignments and directory role assignments: granted with a POST that answers the
//! new assignment, revoked by finding the assignment through a documented query and deleting it
//! by id — after checking that it is the principal's, of that role, at that scope.

use idhost_connector_sdk::ConnectorError;
use serde_json::{Value, json};

use crate::Entra;
use crate::client::encode;
use crate::ids;
use crate::mapping::{self, DEFAULT_APP_ROLE};
use crate::provision::{Outcome, created, is_not_found};
use crate::scope::Scope;

fn same(a: Option<&str>, b: &str) -> bool {
    a.is_some_and(|a| a.eq_ignore_ascii_case(b))
}

impl Entra {
    /// `POST /servicePrincipals/{resource}/appRoleAssignedTo` (serviceprincipal-post-
    /// approleassignedto.md): 201 with the appRoleAssignment, whose `id` is kept so a revoke
    /// right after finds it even when a replica does not (consistency.rs).
    pub(crate) async fn grant_app_role(
        &self,
        app: &str,
        slug: &str,
        principal: &str,
        grant: &str,
    ) -> Result<Outcome, ConnectorError> {
        let role = self.app_role_id(app, slug).await?;
        let body = json!({ "principalId": principal, "resourceId": app, "appRoleId": role });
        let url = self.graph.url(&format!(
            "/servicePrincipals/{}/appRoleAssignedTo",
            ids::segment(app)
        ));
        let (outcome, answer) = created(self.graph.write("POST", &url, Some(&body)).await?)?;
        self.remember(grant, outcome, answer.as_ref())?;
        Ok(outcome)
    }

    /// Records a created assignment's id.
    fn remember(
        &self,
        grant: &str,
        outcome: Outcome,
        answer: Option<&Value>,
    ) -> Result<(), ConnectorError> {
        if outcome != Outcome::Done {
            return Ok(());
        }
        let id = answer.and_then(mapping::id);
        let id = match id {
            Some(id) => Some(ids::assignment("assignment id", id)?.to_owned()),
            None => None,
        };
        self.written.created(grant, id);
        Ok(())
    }

    /// The app role id an entitlement slug names: `assignment` is the default access role;
    /// otherwise the role whose slug (its value, see `mapping::app_role_slug`) or id matches.
    pub(crate) async fn app_role_id(
        &self,
        app: &str,
        slug: &str,
    ) -> Result<String, ConnectorError> {
        if slug == "assignment" {
            return Ok(DEFAULT_APP_ROLE.to_owned());
        }
        let url = self.graph.url(&format!(
            "/servicePrincipals/{}?$select={}",
            ids::segment(app),
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
            Some(id) => Ok(ids::guid("app role id answered by Graph", id)?.to_owned()),
            None => {
                let known: Vec<String> = roles.iter().filter_map(mapping::app_role_slug).collect();
                Err(ConnectorError::not_found(format!(
                    "app `{app}` has no app role `{slug}`; its entitlements are `assignment`, `owner`{}",
                    known.iter().map(|s| format!(", `{s}`")).collect::<String>()
                )))
            }
        }
    }

    /// Where the assignments granted to a principal are listed: `/users/{id}`, `/groups/{id}`
    /// or `/servicePrincipals/{id}` (an app, or a managed identity listed as a user).
    async fn principal_path(
        &self,
        principal: &idhost_connector_sdk::ResourceRef,
    ) -> Result<String, ConnectorError> {
        let id = ids::guid("principal id", &principal.id)?;
        let collection = match principal.rtype.as_str() {
            "group" => "groups",
            "app" => "servicePrincipals",
            "user" if self.managed.get(self).await?.contains(id) => "servicePrincipals",
            "user" => "users",
            other => {
                return Err(ConnectorError::invalid_input(format!(
                    "app roles are held by `user`, `group` or `app` principals, not `{other}`"
                )));
            }
        };
        Ok(format!("/{collection}/{}", ids::segment(id)))
    }

    /// Deletes the principal's assignment of the app role.
    ///
    /// The assignment is found on the principal's side: `GET /{users|groups|servicePrincipals}
    /// /{id}/appRoleAssignments?$filter=resourceId eq {app}` — `resourceId` is the documented
    /// filter (approleassignment.md: "Supports $filter (eq only)"; `principalId` is not
    /// documented as filterable on `appRoleAssignedTo`). A user's list also holds the
    /// assignments of groups it is a direct member of (user-list-approleassignments.md), so each
    /// candidate's `principalId`, `resourceId` and `appRoleId` are checked before its
    /// `DELETE /servicePrincipals/{app}/appRoleAssignedTo/{id}`
    /// (serviceprincipal-delete-approleassignedto.md).
    pub(crate) async fn remove_app_role(
        &self,
        app: &str,
        slug: &str,
        principal: &idhost_connector_sdk::ResourceRef,
        grant: &str,
    ) -> Result<Outcome, ConnectorError> {
        let role = match self.app_role_id(app, slug).await {
            Ok(role) => role,
            Err(err) if is_not_found(&err) => return Ok(Outcome::Already),
            Err(err) => return Err(err),
        };
        let pid = ids::guid("principal id", &principal.id)?;
        let url = self.graph.url(&format!(
            "{}/appRoleAssignments?$filter={}&$select={}",
            self.principal_path(principal).await?,
            encode(&format!("resourceId eq {app}")),
            encode("id,appRoleId,principalId,resourceId")
        ));
        let found = self.graph.get_all(&url).await?;
        let mut candidates = Vec::new();
        for a in &found {
            let str_of = |k: &str| a.get(k).and_then(Value::as_str);
            if same(str_of("principalId"), pid)
                && same(str_of("resourceId"), app)
                && same(str_of("appRoleId"), &role)
                && let Some(id) = mapping::id(a)
            {
                candidates.push(ids::assignment("appRoleAssignment id", id)?.to_owned());
            }
        }
        let paths = self.with_created(grant, candidates).into_iter().map(|id| {
            format!(
                "/servicePrincipals/{}/appRoleAssignedTo/{}",
                ids::segment(app),
                ids::segment(&id)
            )
        });
        let mut outcome = Outcome::Already;
        for path in paths {
            outcome = outcome.or(self.delete(&path, grant).await?);
        }
        Ok(outcome)
    }

    /// `candidates`, or — when a replica showed none — the assignment this instance created.
    fn with_created(&self, grant: &str, mut candidates: Vec<String>) -> Vec<String> {
        if candidates.is_empty()
            && let Some(Some(id)) = self.written.recent(grant)
        {
            candidates.push(id);
        }
        candidates.dedup();
        candidates
    }

    /// The unifiedRoleDefinition id of an activated directory role: its `roleTemplateId`
    /// (rbacapplication-post-roleassignments.md: a built-in role's definition id is its
    /// template id).
    async fn role_definition_id(&self, role: &str) -> Result<String, ConnectorError> {
        let url = self.graph.url(&format!(
            "/directoryRoles/{}?$select={}",
            ids::segment(role),
            encode("id,roleTemplateId")
        ));
        let found = self.graph.get_json(&url).await?;
        let template = found
            .get("roleTemplateId")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ConnectorError::internal(format!("directory role `{role}` has no roleTemplateId"))
            })?;
        Ok(ids::guid("roleTemplateId answered by Graph", template)?.to_owned())
    }

    /// `POST /roleManagement/directory/roleAssignments {principalId, roleDefinitionId,
    /// directoryScopeId}` (rbacapplication-post-roleassignments.md); the scope comes from the
    /// slug (scope.rs).
    pub(crate) async fn grant_directory_role(
        &self,
        role: &str,
        slug: &str,
        principal: &str,
        grant: &str,
    ) -> Result<Outcome, ConnectorError> {
        let scope = Scope::from_slug(slug)?;
        let definition = self.role_definition_id(role).await?;
        let body = json!({
            "principalId": principal,
            "roleDefinitionId": definition,
            "directoryScopeId": scope.directory_scope_id(),
        });
        let url = self.graph.url("/roleManagement/directory/roleAssignments");
        let (outcome, answer) = created(self.graph.write("POST", &url, Some(&body)).await?)?;
        self.remember(grant, outcome, answer.as_ref())?;
        Ok(outcome)
    }

    /// Deletes the principal's assignments of the role at the slug's scope.
    ///
    /// Found with `$filter=principalId eq '{id}'` — one of the two filters the directory
    /// provider documents (rbacapplication-list-roleassignments.md) — built from a validated
    /// GUID and written as an escaped OData string literal, so no grant id can change the
    /// query. Each returned assignment's `principalId`, `roleDefinitionId` and
    /// `directoryScopeId` are checked before its `DELETE`
    /// (unifiedroleassignment-delete.md).
    pub(crate) async fn remove_directory_role(
        &self,
        role: &str,
        slug: &str,
        principal: &str,
        grant: &str,
    ) -> Result<Outcome, ConnectorError> {
        let scope = Scope::from_slug(slug)?;
        let definition = match self.role_definition_id(role).await {
            Ok(d) => d,
            Err(err) if is_not_found(&err) => return Ok(Outcome::Already),
            Err(err) => return Err(err),
        };
        let filter = format!("principalId eq {}", ids::odata_string(principal));
        let url = self.graph.url(&format!(
            "/roleManagement/directory/roleAssignments?$filter={}&$select={}",
            encode(&filter),
            encode("id,principalId,roleDefinitionId,directoryScopeId")
        ));
        let found = self.graph.get_all(&url).await?;
        let mut candidates = Vec::new();
        for a in &found {
            let str_of = |k: &str| a.get(k).and_then(Value::as_str);
            let at_scope = scope.is(str_of("directoryScopeId").unwrap_or("/"));
            if same(str_of("principalId"), principal)
                && same(str_of("roleDefinitionId"), &definition)
                && at_scope
                && let Some(id) = mapping::id(a)
            {
                candidates.push(ids::assignment("unifiedRoleAssignment id", id)?.to_owned());
            }
        }
        let mut outcome = Outcome::Already;
        for id in self.with_created(grant, candidates) {
            let path = format!(
                "/roleManagement/directory/roleAssignments/{}",
                ids::segment(&id)
            );
            outcome = outcome.or(self.delete(&path, grant).await?);
        }
        Ok(outcome)
    }
}
