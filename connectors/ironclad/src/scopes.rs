//! The OAuth scopes a source asks for, and the refusal, before any request, of an operation
//! that needs a scope it does not ask for (DESIGN §7.5). Ironclad would answer such a call 403
//! with no detail (ForbiddenResponse403); the refusal here says which scope to add.

use idhost_connector_sdk::prelude::*;

/// SCIM OpenAPI "OAuth Scope required" of each operation the connector sends.
pub(crate) const READ_USERS: &str = "scim.users.readUsers";
pub(crate) const CREATE_USERS: &str = "scim.users.createUsers";
pub(crate) const UPDATE_USERS: &str = "scim.users.updateUsers";
pub(crate) const DELETE_USERS: &str = "scim.users.deleteUsers";
pub(crate) const READ_GROUPS: &str = "scim.groups.readGroups";
pub(crate) const CREATE_GROUPS: &str = "scim.groups.createGroups";
pub(crate) const UPDATE_GROUPS: &str = "scim.groups.updateGroups";
pub(crate) const READ_SCHEMAS: &str = "scim.schemas.readSchemas";

/// What the source asks for.
#[derive(Debug)]
pub(crate) struct Scopes {
    asked: Vec<String>,
    /// `false` for a static `bearer_token`: its scopes are Ironclad's to know, not ours.
    applies: bool,
}

impl Scopes {
    pub(crate) fn new(asked: &[String], applies: bool) -> Self {
        Self {
            asked: asked.to_vec(),
            applies,
        }
    }

    /// Whether the source asks for `scope` (always true for a static token).
    pub(crate) fn has(&self, scope: &str) -> bool {
        !self.applies || self.asked.iter().any(|s| s == scope)
    }

    /// `Ok` when the source asks for `scope`; otherwise the refusal of `operation`, naming the
    /// scope to add to `scopes` and to the API application in Ironclad.
    pub(crate) fn require(&self, operation: &str, scope: &str) -> Result<(), ConnectorError> {
        if self.has(scope) {
            return Ok(());
        }
        let mut wanted = self.asked.clone();
        wanted.push(scope.to_owned());
        let list = wanted
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Err(ConnectorError::permission_denied(format!(
            "{operation} needs the OAuth scope `{scope}`, which this source does not ask for: \
             register `{scope}` for the API application in Ironclad, then add it to the source's \
             settings (`scopes = [{list}]`); no request was sent"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operation_needing_an_unasked_scope_is_refused_naming_it() {
        let scopes = Scopes::new(&[READ_USERS.to_owned(), READ_GROUPS.to_owned()], true);
        scopes
            .require("listing users", READ_USERS)
            .expect("asked for");
        let err = scopes
            .require("update of `user:u1`", UPDATE_USERS)
            .expect_err("not asked for");
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert!(
            err.message.contains("`scim.users.updateUsers`"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains(
                r#"scopes = ["scim.users.readUsers", "scim.groups.readGroups", "scim.users.updateUsers"]"#
            ),
            "{}",
            err.message
        );
        let static_token = Scopes::new(&[], false);
        static_token
            .require("update", UPDATE_USERS)
            .expect("a static token's scopes are not ours to check");
    }
}
