//! Which SCIM attribute a provisioning field names, and the refusals Ironclad's rules call for.
//!
//! Fields may use the normalized names (`given_name`, `department`, `manager`), the SCIM names
//! (`name.givenName`, `displayName`), a full extension path
//! (`urn:ietf:params:scim:schemas:extension:ironclad:2.0:User:managementLevel`), optionally
//! prefixed `user.` or `profile.`. Any other plain name is a company-defined attribute, which
//! lives in the company's own custom schema (found through `/Schemas`, see `schemas.rs`), not in
//! the Ironclad extension.

use idhost_connector_sdk::prelude::*;
use serde_json::{Map, Value};

use crate::mapping::{ENTERPRISE_URN, IRONCLAD_URN, USER_URN};

/// A SCIM attribute: a core path (`title`, `name.givenName`) or an extension attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attribute {
    /// A core attribute, with at most one sub-attribute.
    Core(String, Option<String>),
    /// `(extension URN, attribute)`.
    Extension(String, String),
    /// A company-defined attribute whose custom schema is still to be found (`/Schemas`).
    Custom(String),
}

impl Attribute {
    /// The PATCH path (RFC 7644 §3.5.2): `name.givenName`, `urn:…:User:department`.
    pub(crate) fn path(&self) -> String {
        match self {
            Attribute::Core(attr, None) => attr.clone(),
            Attribute::Core(attr, Some(sub)) => format!("{attr}.{sub}"),
            Attribute::Extension(urn, attr) => format!("{urn}:{attr}"),
            Attribute::Custom(attr) => attr.clone(),
        }
    }

    /// Sets the attribute in a create body.
    pub(crate) fn set_in(&self, body: &mut Map<String, Value>, value: Value) {
        let (container, attr) = match self {
            Attribute::Core(attr, None) => {
                body.insert(attr.clone(), value);
                return;
            }
            Attribute::Core(attr, Some(sub)) => (attr.clone(), sub.clone()),
            Attribute::Extension(urn, attr) => (urn.clone(), attr.clone()),
            // Resolved through `/Schemas` before a body is built; never set unresolved.
            Attribute::Custom(_) => return,
        };
        let entry = body
            .entry(container)
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Value::Object(inner) = entry {
            inner.insert(attr, value);
        }
    }
}

/// Core attributes that may be set as they are (support.ironcladapp.com "Supported User
/// Attributes"), besides those with normalized aliases below.
const CORE: [&str; 12] = [
    "displayName",
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "externalId",
    "phoneNumbers",
    "addresses",
    "photos",
];

const ENTERPRISE: [&str; 5] = [
    "department",
    "employeeNumber",
    "costCenter",
    "organization",
    "division",
];

/// The message for a field Ironclad does not let anyone change.
pub(crate) const IMMUTABLE_IDENTITY: &str =
    "Ironclad does not allow changing a user's userName or email";

fn refuse(field: &str, why: &str) -> ConnectorError {
    ConnectorError::invalid_input(format!("cannot set `{field}`: {why}"))
}

/// Whether `field` names the userName or an email (fixed once the user exists).
pub(crate) fn is_identity(field: &str) -> bool {
    let key = field
        .strip_prefix("user.")
        .or_else(|| field.strip_prefix("profile."))
        .unwrap_or(field)
        .trim();
    let key = key
        .get(..USER_URN.len() + 1)
        .filter(|p| p.eq_ignore_ascii_case(&format!("{USER_URN}:")))
        .map_or(key, |p| &key[p.len()..]);
    let lower = key.to_ascii_lowercase();
    ["login", "username", "email", "emails", "primary_email"].contains(&lower.as_str())
        || lower.starts_with("emails.")
        || lower.starts_with("emails[")
}

/// The attribute `field` names, or why it cannot be set.
pub(crate) fn resolve(field: &str) -> Result<Attribute, ConnectorError> {
    let key = field
        .strip_prefix("user.")
        .or_else(|| field.strip_prefix("profile."))
        .unwrap_or(field)
        .trim();
    if let Some(rest) = key.strip_prefix("urn:") {
        return extension_path(field, rest);
    }
    // userName and emails: "userName and email cannot be changed" (issue 3's Ironclad facts;
    // the User OpenAPI copies the work email from userName).
    if is_identity(key) {
        return Err(refuse(field, IMMUTABLE_IDENTITY));
    }
    let lower = key.to_ascii_lowercase();
    let core = |a: &str| Ok(Attribute::Core(a.to_owned(), None));
    let name = |sub: &str| Ok(Attribute::Core("name".to_owned(), Some(sub.to_owned())));
    let ext = |urn: &str, a: &str| Ok(Attribute::Extension(urn.to_owned(), a.to_owned()));
    match lower.as_str() {
        "id" | "schemas" | "meta" | "groups" | "provider" => {
            Err(refuse(field, "it is assigned by Ironclad and read-only"))
        }
        "active" | "status" => Err(refuse(
            field,
            "Ironclad has no inactive state (active=false removes the user); use delete",
        )),
        "password" => Err(refuse(
            field,
            "passwords are set only when creating an account",
        )),
        "given_name" | "givenname" | "name.givenname" => name("givenName"),
        "family_name" | "familyname" | "name.familyname" => name("familyName"),
        "formatted" | "name.formatted" => name("formatted"),
        "display_name" => core("displayName"),
        "nick_name" => core("nickName"),
        "time_zone" => core("timezone"),
        "preferred_language" => core("preferredLanguage"),
        "user_type" => core("userType"),
        "external_id" => core("externalId"),
        "employee_id" | "employee_number" => ext(ENTERPRISE_URN, "employeeNumber"),
        "cost_center" => ext(ENTERPRISE_URN, "costCenter"),
        "manager" | "department_head" | "departmenthead" => ext(IRONCLAD_URN, "departmentHead"),
        "allow_provider_conversion" | "allowproviderconversion" => {
            ext(IRONCLAD_URN, "allowProviderConversion")
        }
        _ => {
            if let Some(a) = CORE.iter().find(|a| a.eq_ignore_ascii_case(key)) {
                return core(a);
            }
            if let Some(a) = ENTERPRISE.iter().find(|a| a.eq_ignore_ascii_case(key)) {
                return ext(ENTERPRISE_URN, a);
            }
            let plain =
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !plain {
                return Err(refuse(
                    field,
                    "not a known attribute; use a name such as `title`, `given_name`, \
                     `department`, `manager`, or a full extension path \
                     `urn:ietf:params:scim:schemas:extension:ironclad:2.0:User:<attribute>`",
                ));
            }
            // A company-defined attribute: its custom schema is found through `/Schemas`.
            Ok(Attribute::Custom(key.to_owned()))
        }
    }
}

/// `urn:…:<attribute>`: an extension attribute, or a URN-qualified core attribute.
fn extension_path(field: &str, rest: &str) -> Result<Attribute, ConnectorError> {
    let full = format!("urn:{rest}");
    let Some((urn, attr)) = full.rsplit_once(':') else {
        return Err(refuse(field, "an extension path ends in `:<attribute>`"));
    };
    if attr.is_empty() || !urn.contains(':') {
        return Err(refuse(field, "an extension path ends in `:<attribute>`"));
    }
    if urn.eq_ignore_ascii_case(USER_URN) {
        // A core attribute written with its schema URN: resolve it like the short name.
        return resolve(attr);
    }
    if urn.eq_ignore_ascii_case(IRONCLAD_URN) && attr.eq_ignore_ascii_case("provider") {
        return Err(refuse(field, "it is assigned by Ironclad and read-only"));
    }
    Ok(Attribute::Extension(urn.to_owned(), attr.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(field: &str) -> String {
        resolve(field)
            .map(|a| a.path())
            .unwrap_or_else(|e| e.message)
    }

    #[test]
    fn normalized_scim_and_extension_names_resolve_to_scim_paths() {
        assert_eq!(path("given_name"), "name.givenName");
        assert_eq!(path("name.familyName"), "name.familyName");
        assert_eq!(path("title"), "title");
        assert_eq!(path("user.title"), "title");
        assert_eq!(path("displayName"), "displayName");
        assert_eq!(path("department"), format!("{ENTERPRISE_URN}:department"));
        assert_eq!(path("manager"), format!("{IRONCLAD_URN}:departmentHead"));
        // Company-defined attributes wait for the custom schema `/Schemas` names.
        assert_eq!(
            resolve("managementLevel").ok(),
            Some(Attribute::Custom("managementLevel".into()))
        );
        assert_eq!(
            resolve("profile.managementLevel").ok(),
            Some(Attribute::Custom("managementLevel".into()))
        );
        assert_eq!(
            path("urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge"),
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User:badge"
        );
        assert_eq!(path(&format!("{USER_URN}:title")), "title");
    }

    #[test]
    fn user_name_and_emails_are_refused_with_the_reason() {
        for field in [
            "login",
            "userName",
            "email",
            "emails",
            "emails[type eq \"work\"].value",
            "user.login",
            &format!("{USER_URN}:userName"),
        ] {
            let err = resolve(field).expect_err(field);
            assert_eq!(err.kind, ErrorKind::InvalidInput);
            assert!(
                err.message.contains(IMMUTABLE_IDENTITY),
                "{field}: {}",
                err.message
            );
        }
        assert!(resolve("active").is_err());
        assert!(resolve("provider").is_err());
        assert!(resolve("bad key!").is_err());
    }

    #[test]
    fn set_in_nests_sub_and_extension_attributes() {
        let mut body = Map::new();
        resolve("given_name")
            .expect("ok")
            .set_in(&mut body, "A".into());
        resolve("department")
            .expect("ok")
            .set_in(&mut body, "Legal".into());
        resolve("title").expect("ok").set_in(&mut body, "T".into());
        assert_eq!(
            Value::Object(body),
            serde_json::json!({"name": {"givenName": "A"}, ENTERPRISE_URN: {"department": "Legal"}, "title": "T"})
        );
    }
}
