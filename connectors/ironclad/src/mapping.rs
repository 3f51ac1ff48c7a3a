//! Ironclad SCIM JSON → the SDK's model.
//!
//! A user's typed fields go to the user trait (login = `userName`, emails, given/family name,
//! title, department, manager = the Ironclad extension's `departmentHead`, employee id, locale,
//! time zone; always a human account). Everything else goes to the profile so nothing Ironclad
//! sends is lost:
//!
//! - core attributes without a trait field stay under their SCIM names (`displayName`,
//!   `nickName`, `userType`, `phoneNumbers`, `addresses`, `externalId`, `meta`, ...), and
//!   `name` keeps its other sub-attributes (`formatted`, `middleName`, ...);
//! - every attribute of every extension, known or unknown, is lifted to the top of the profile
//!   under its own name (`department`, `employeeNumber`, `departmentHead`, `provider`,
//!   `allowProviderConversion`, a company's custom `managementLevel`, ...), so record paths
//!   such as `profile.managementLevel` work. Should two extensions (or a core attribute) use
//!   the same name, the later one is kept as `<extension>:<name>`, `<extension>` being the
//!   URN segment after `extension:` (`enterprise`, `ironclad`, ...).

use idhost_connector_sdk::prelude::*;
use serde_json::{Map, Value};

pub(crate) const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub(crate) const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub(crate) const ENTERPRISE_URN: &str =
    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub(crate) const IRONCLAD_URN: &str = "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User";
pub(crate) const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Core attributes that become trait fields or the resource id (not repeated in the profile).
const CONSUMED: [&str; 9] = [
    "id", "schemas", "userName", "name", "title", "emails", "active", "locale", "timezone",
];

fn text(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The `id` of a SCIM resource, or an error naming what was listed.
fn id_of<'a>(value: &'a Value, what: &str) -> Result<&'a str, ConnectorError> {
    value
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            let excerpt: String = value.to_string().chars().take(200).collect();
            ConnectorError::internal(format!(
                "Ironclad listed a {what} without an `id`: {excerpt}"
            ))
        })
}

/// Short name of an extension URN: `urn:…:extension:ironclad:2.0:User` → `ironclad`.
fn extension_name(urn: &str) -> &str {
    urn.split_once(":extension:")
        .and_then(|(_, rest)| rest.split(':').next())
        .filter(|s| !s.is_empty())
        .unwrap_or(urn)
}

/// Maps one SCIM User.
pub(crate) fn user(value: &Value) -> Result<Resource, ConnectorError> {
    let id = id_of(value, "user")?;
    let object = value.as_object().cloned().unwrap_or_default();
    let name = object.get("name").and_then(Value::as_object);
    let given_name = text(name.and_then(|n| n.get("givenName")));
    let family_name = text(name.and_then(|n| n.get("familyName")));
    let login = text(object.get("userName"));
    let enterprise = object.get(ENTERPRISE_URN).and_then(Value::as_object);
    let ironclad = object.get(IRONCLAD_URN).and_then(Value::as_object);

    let mut emails: Vec<Email> = object
        .get("emails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(Email::new(
                text(e.get("value"))?,
                e.get("primary").and_then(Value::as_bool).unwrap_or(false),
            ))
        })
        .collect();
    // Primary first, as the trait promises.
    emails.sort_by_key(|e| !e.primary);
    if emails.is_empty()
        && let Some(login) = &login
    {
        // The User OpenAPI: the work email "is typically copied from ... userName".
        emails.push(Email::new(login.clone(), true));
    }

    let full_name = match (&given_name, &family_name) {
        (Some(g), Some(f)) => Some(format!("{g} {f}")),
        (Some(n), None) | (None, Some(n)) => Some(n.clone()),
        (None, None) => None,
    };
    let display_name = text(object.get("displayName"))
        .or(full_name)
        .or_else(|| login.clone())
        .unwrap_or_else(|| id.to_owned());

    let mut resource = Resource::new("user", id, display_name);
    // Ironclad removes a user set inactive ("On subsequent reads, inactive users would be not
    // found"), so a listed user is enabled unless it says otherwise.
    if object.get("active") == Some(&Value::Bool(false)) {
        resource.status = Status::Disabled;
    }
    resource.user = Some({
        let mut built = UserTrait::default();
        built.login = login;
        built.emails = emails;
        built.given_name = given_name;
        built.family_name = family_name;
        built.account_type = AccountType::Human;
        built.title = text(object.get("title"));
        built.department = text(enterprise.and_then(|e| e.get("department")));
        built.employee_id = text(enterprise.and_then(|e| e.get("employeeNumber")));
        built.manager = text(ironclad.and_then(|e| e.get("departmentHead"))).or_else(|| {
            let manager = enterprise.and_then(|e| e.get("manager"));
            text(manager.and_then(|m| m.get("value")))
        });
        built.locale = text(object.get("locale"));
        built.time_zone = text(object.get("timezone"));
        built
    });
    resource.profile = user_profile(object);
    Ok(resource)
}

fn user_profile(object: Map<String, Value>) -> Profile {
    let mut profile = Profile::new();
    let mut extensions = Vec::new();
    for (key, value) in object {
        if key.starts_with("urn:") {
            extensions.push((key, value));
        } else if key == "name" {
            if let Value::Object(mut name) = value {
                name.remove("givenName");
                name.remove("familyName");
                if !name.is_empty() {
                    profile.insert(key, Value::Object(name));
                }
            }
        } else if !CONSUMED.contains(&key.as_str()) {
            profile.insert(key, value);
        }
    }
    for (urn, value) in extensions {
        match value {
            Value::Object(attributes) => {
                let short = extension_name(&urn).to_owned();
                for (attr, v) in attributes {
                    if profile.contains_key(&attr) {
                        profile.insert(format!("{short}:{attr}"), v);
                    } else {
                        profile.insert(attr, v);
                    }
                }
            }
            other => {
                profile.insert(urn, other);
            }
        }
    }
    profile
}

/// Maps one SCIM Group: the resource, its `member` entitlement and one grant per member.
pub(crate) fn group(value: &Value) -> Result<(Resource, Entitlement, Vec<Grant>), ConnectorError> {
    let id = id_of(value, "group")?;
    let object = value.as_object().cloned().unwrap_or_default();
    let name = text(object.get("displayName")).unwrap_or_else(|| id.to_owned());
    let mut resource = Resource::new("group", id, name.clone());
    let entitlement = Entitlement::new(&resource.id, "member", Purpose::Assignment, &["user"])
        .named(format!("Member of {name}"));
    let mut grants = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for member in object
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(member_id) = text(member.get("value")) else {
            continue;
        };
        // The Group OpenAPI documents `type` as "User" only; a nested group would be "Group".
        let rtype = match member.get("type").and_then(Value::as_str) {
            Some(t) if t.eq_ignore_ascii_case("group") => "group",
            _ => "user",
        };
        let principal = format!("{rtype}:{member_id}");
        // A member listed twice is one grant.
        if seen.insert(principal.clone()) {
            grants.push(Grant::new(&entitlement.id, &principal));
        }
    }
    resource.group = Some({
        let mut built = GroupTrait::default();
        built.kind = "scim".to_owned();
        built.member_count = Some(grants.len() as u64);
        built.dynamic = false;
        built
    });
    resource.profile = object
        .into_iter()
        .filter(|(k, _)| !["id", "schemas", "displayName", "members"].contains(&k.as_str()))
        .collect();
    Ok((resource, entitlement, grants))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_fields_go_to_the_trait_and_every_extension_attribute_to_the_profile() {
        let user = user(&json!({
            "schemas": [USER_URN, ENTERPRISE_URN, IRONCLAD_URN],
            "id": "6660d37dec0eac3deffb680e",
            "userName": "alex.doe@example.com",
            "name": {"givenName": "Alex", "familyName": "Doe", "formatted": "Alex Doe"},
            "title": "Vice President",
            "emails": [{"value": "alt@example.com", "type": "home"},
                       {"value": "alex.doe@example.com", "type": "work", "primary": true}],
            "active": true,
            "nickName": "Al",
            ENTERPRISE_URN: {"department": "Legal", "employeeNumber": "E1"},
            IRONCLAD_URN: {"departmentHead": "jane.doe@test.com", "provider": "saml",
                           "allowProviderConversion": false, "managementLevel": "Director",
                           "nickName": "collides"},
            "urn:ietf:params:scim:schemas:extension:acme:2.0:User": {"badge": 7},
            "meta": {"resourceType": "User", "created": "2024-06-05T00:00:00.000Z"}
        }))
        .expect("maps");
        assert_eq!(user.id, "user:6660d37dec0eac3deffb680e");
        assert_eq!(user.display_name, "Alex Doe");
        assert_eq!(user.status, Status::Enabled);
        let t = user.user.as_ref().expect("user trait");
        assert_eq!(t.login.as_deref(), Some("alex.doe@example.com"));
        assert_eq!(t.primary_email(), Some("alex.doe@example.com"));
        assert!(t.emails[0].primary && t.emails.len() == 2);
        assert_eq!(t.department.as_deref(), Some("Legal"));
        assert_eq!(t.manager.as_deref(), Some("jane.doe@test.com"));
        assert_eq!(t.employee_id.as_deref(), Some("E1"));
        assert_eq!(t.title.as_deref(), Some("Vice President"));
        let p = &user.profile;
        assert_eq!(p["managementLevel"], "Director");
        assert_eq!(p["department"], "Legal");
        assert_eq!(p["provider"], "saml");
        assert_eq!(p["allowProviderConversion"], false);
        assert_eq!(p["badge"], 7);
        assert_eq!(p["nickName"], "Al");
        assert_eq!(p["ironclad:nickName"], "collides");
        assert_eq!(p["name"], json!({"formatted": "Alex Doe"}));
        assert_eq!(p["meta"]["resourceType"], "User");
        assert!(!p.contains_key("userName") && !p.contains_key("schemas"));
    }

    #[test]
    fn a_user_without_emails_uses_the_user_name_and_one_without_id_is_an_error() {
        let u = user(&json!({"id": "u1", "userName": "a@b.co"})).expect("maps");
        assert_eq!(u.display_name, "a@b.co");
        assert_eq!(u.user.expect("trait").primary_email(), Some("a@b.co"));
        let err = user(&json!({"userName": "a@b.co"})).expect_err("no id");
        assert_eq!(err.kind, ErrorKind::Internal);
    }

    #[test]
    fn groups_side_load_a_member_entitlement_and_one_grant_per_member() {
        let (g, e, grants) = group(&json!({
            "schemas": [GROUP_URN], "id": "g1", "displayName": "Legal Ops Group",
            "externalId": "123",
            "members": [{"type": "User", "value": "u1"}, {"value": "u2"}, {"value": "u1"}],
            "meta": {"resourceType": "Group"}
        }))
        .expect("maps");
        assert_eq!(g.id, "group:g1");
        assert_eq!(g.group.as_ref().and_then(|t| t.member_count), Some(2));
        assert_eq!(g.group.as_ref().map(|t| t.kind.as_str()), Some("scim"));
        assert_eq!(g.profile["externalId"], "123");
        assert_eq!(e.id, "group:g1:member");
        let ids: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["group:g1:member:user:u1", "group:g1:member:user:u2"]);
    }
}
