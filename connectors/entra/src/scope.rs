//! Directory role scopes as entitlement slugs.
//!
//! A unifiedRoleAssignment holds a role "at a particular scope" (unifiedroleassignment.md):
//! `directoryScopeId` is `/` for the whole tenant, `/administrativeUnits/{id}` for an
//! administrative unit, or `/{id}` of a directory object (e.g. an application). Each scope is
//! its own entitlement of the role, so a scoped assignment is a distinct grant:
//!
//! | `directoryScopeId` | slug |
//! |---|---|
//! | `/` | `member` |
//! | `/administrativeUnits/{id}` | `member.administrativeUnits.{id}` |
//! | `/{id}` | `member.{id}` |
//!
//! A slug may not hold `/` (ids are `<type>:<id>:<slug>`, and `/` is refused in id parts), so
//! `/` becomes `.`; every id in a scope is a GUID, so the mapping is reversible.

use idhost_connector_sdk::ConnectorError;

use crate::ids;

/// The scope of a directory role assignment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    Tenant,
    AdministrativeUnit(String),
    Object(String),
}

impl Scope {
    /// From Graph's `directoryScopeId`; `None` for a shape the docs do not describe.
    pub(crate) fn from_directory_scope(id: &str) -> Option<Self> {
        if id == "/" {
            return Some(Self::Tenant);
        }
        let rest = id.strip_prefix('/')?;
        match rest.split_once('/') {
            Some(("administrativeUnits", unit)) => ids::guid("administrative unit id", unit)
                .ok()
                .map(|u| Self::AdministrativeUnit(u.to_ascii_lowercase())),
            Some(_) => None,
            None => ids::guid("scope object id", rest)
                .ok()
                .map(|o| Self::Object(o.to_ascii_lowercase())),
        }
    }

    /// From an entitlement slug of a `role` (`member`, `member.administrativeUnits.{id}`,
    /// `member.{id}`).
    pub(crate) fn from_slug(slug: &str) -> Result<Self, ConnectorError> {
        let shapes = "`member`, `member.administrativeUnits.<unit id>` or `member.<object id>`";
        if slug == "member" {
            return Ok(Self::Tenant);
        }
        let rest = slug.strip_prefix("member.").ok_or_else(|| {
            ConnectorError::invalid_input(format!(
                "a directory role's entitlements are {shapes}; got `{slug}`"
            ))
        })?;
        match rest.split_once('.') {
            Some(("administrativeUnits", unit)) => Ok(Self::AdministrativeUnit(
                ids::guid("administrative unit id", unit)?.to_ascii_lowercase(),
            )),
            Some(_) => Err(ConnectorError::invalid_input(format!(
                "a directory role's entitlements are {shapes}; got `{slug}`"
            ))),
            None => Ok(Self::Object(
                ids::guid("scope object id", rest)?.to_ascii_lowercase(),
            )),
        }
    }

    pub(crate) fn slug(&self) -> String {
        match self {
            Self::Tenant => "member".to_owned(),
            Self::AdministrativeUnit(unit) => format!("member.administrativeUnits.{unit}"),
            Self::Object(object) => format!("member.{object}"),
        }
    }

    /// `directoryScopeId` as Graph takes it.
    pub(crate) fn directory_scope_id(&self) -> String {
        match self {
            Self::Tenant => "/".to_owned(),
            Self::AdministrativeUnit(unit) => format!("/administrativeUnits/{unit}"),
            Self::Object(object) => format!("/{object}"),
        }
    }

    /// Whether Graph's `directoryScopeId` names this scope (ids compare case-insensitively).
    pub(crate) fn is(&self, directory_scope_id: &str) -> bool {
        Self::from_directory_scope(directory_scope_id).as_ref() == Some(self)
    }

    /// For display names: "" for the tenant, " (administrative unit …)" otherwise.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Tenant => String::new(),
            Self::AdministrativeUnit(unit) => format!(" (administrative unit {unit})"),
            Self::Object(object) => format!(" (scope /{object})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_through_slugs() {
        let unit = "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0";
        for scope in [
            "/".to_owned(),
            format!("/administrativeUnits/{unit}"),
            format!("/{unit}"),
        ] {
            let parsed = Scope::from_directory_scope(&scope).expect("documented shape");
            assert_eq!(parsed.directory_scope_id(), scope);
            assert_eq!(Scope::from_slug(&parsed.slug()).expect("slug"), parsed);
            assert!(
                parsed.is(&scope
                    .to_ascii_uppercase()
                    .replace("ADMINISTRATIVEUNITS", "administrativeUnits"))
            );
        }
        assert_eq!(Scope::from_directory_scope("/x/y"), None);
        assert_eq!(Scope::from_directory_scope("/administrativeUnits/.."), None);
        assert!(Scope::from_slug("owner").is_err());
        assert!(Scope::from_slug("member.administrativeUnits...").is_err());
        assert!(Scope::from_slug("member.x.y").is_err());
    }
}
