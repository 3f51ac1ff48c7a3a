//! What a User body must look like, and how the stored User is assembled from it.

use serde_json::{Map, Value};

use crate::respond::{ScimError, find_key};
use crate::schema::{
    CORE_USER_ATTRIBUTES, IRONCLAD_URN, SCIM_BASE, USER_EXTENSIONS, USER_URN, extension_attributes,
};
use crate::store::ordered;

/// Checks the documented password policy.
// developer.ironcladapp.com/reference/create-a-user, body param `password`: "Password
// requirements: 16+ characters, At least one lowercase letter, At least one uppercase letter,
// At least one number, At least one special character (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~)" —
// that special set is exactly ASCII punctuation.
pub(crate) fn check_password(password: &Value) -> Result<(), ScimError> {
    let Some(p) = password.as_str() else {
        return Err(ScimError::invalid_value("password", password));
    };
    let mut missing = Vec::new();
    if p.chars().count() < 16 {
        missing.push("16+ characters");
    }
    if !p.chars().any(|c| c.is_lowercase()) {
        missing.push("a lowercase letter");
    }
    if !p.chars().any(|c| c.is_uppercase()) {
        missing.push("an uppercase letter");
    }
    if !p.chars().any(|c| c.is_ascii_digit()) {
        missing.push("a number");
    }
    if !p.chars().any(|c| c.is_ascii_punctuation()) {
        missing.push("a special character");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ScimError::bad_request(
            "invalidValue",
            format!(
                "Password does not meet requirements: needs {}",
                missing.join(", ")
            ),
        ))
    }
}

/// Validates a create/replace body and returns the attributes to store: read-only and
/// undefined attributes dropped, `password` checked and never kept, documented defaults added.
// developer.ironcladapp.com/reference/create-a-user: required `schemas`, `userName`, `name`;
// `password` "Required if there are no SAML configurations set up for the company";
// `active` "Defaults to true".
pub(crate) fn from_request(
    body: Value,
    require_password: bool,
) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::bad_request(
            "invalidSyntax",
            "A User must be a JSON object",
        ));
    };
    let schemas = body.get("schemas").unwrap_or(&Value::Null);
    let names_user = schemas.as_array().is_some_and(|s| {
        s.iter()
            .any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(USER_URN)))
    });
    if !names_user {
        return Err(ScimError::invalid_value("schemas", schemas));
    }
    for required in ["userName", "name"] {
        if find_key(&body, required).is_none() {
            return Err(ScimError::bad_request(
                "invalidValue",
                format!("Missing required attribute: {required}"),
            ));
        }
    }
    match find_key(&body, "password").and_then(|k| body.get(&k)) {
        Some(p) => check_password(p)?,
        None if require_password => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "Missing required attribute: password (the company has no SAML configuration)",
            ));
        }
        None => {}
    }
    let mut user = Map::new();
    for (key, value) in body {
        // RFC 7643 §3.1: id and meta are assigned by the service provider, and a client's values
        // are ignored; password is returned "never" (RFC 7643 §4.1.1).
        if ["id", "meta", "schemas", "password"]
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&key))
        {
            continue;
        }
        if let Some(attr) = CORE_USER_ATTRIBUTES
            .iter()
            .find(|a| a.eq_ignore_ascii_case(&key))
        {
            user.insert((*attr).to_owned(), value);
        } else if let Some(urn) = USER_EXTENSIONS
            .iter()
            .find(|u| u.eq_ignore_ascii_case(&key))
        {
            check_extension(urn, &value)?;
            user.insert((*urn).to_owned(), value);
        } else {
            // Ironclad refuses attributes no schema of the company defines (issue 13 point 9;
            // the SCIM OpenAPI's 400 answers carry this detail, "No matching schema for
            // attribute: name,lastName").
            return Err(no_schema(&key));
        }
    }
    // User OpenAPI `emails`: "The email with type work and primary flag is typically copied
    // from the main email stored in the userName property."
    if !user.contains_key("emails")
        && let Some(user_name) = user.get("userName").cloned()
    {
        user.insert(
            "emails".to_owned(),
            serde_json::json!([{"value": user_name, "type": "work", "primary": true}]),
        );
    }
    user.entry("active").or_insert(Value::Bool(true));
    validate(&user)?;
    Ok(user)
}

/// 400 for an attribute outside the company's schemas.
pub(crate) fn no_schema(attribute: &str) -> ScimError {
    ScimError::bad_request(
        "invalidValue",
        format!("No matching schema for attribute: {attribute}"),
    )
}

/// Every attribute inside extension `urn` must be one its schema defines.
fn check_extension(urn: &str, value: &Value) -> Result<(), ScimError> {
    let (Some(known), Value::Object(attributes)) = (extension_attributes(urn), value) else {
        return Ok(());
    };
    for name in attributes.keys() {
        if !known.iter().any(|k| k.eq_ignore_ascii_case(name)) {
            return Err(no_schema(&format!("{urn}:{name}")));
        }
    }
    Ok(())
}

/// Type checks shared by create, replace and the result of a PATCH.
pub(crate) fn validate(user: &Map<String, Value>) -> Result<(), ScimError> {
    let user_name = user.get("userName").unwrap_or(&Value::Null);
    // SCIM OpenAPI `userName`: "The email address of the user (e.g., jdoe@acme.com)."
    if !user_name
        .as_str()
        .is_some_and(|u| u.contains('@') && !u.trim().is_empty())
    {
        return Err(ScimError::invalid_value("userName", user_name));
    }
    match user.get("name") {
        Some(Value::Object(name)) => {
            for (k, v) in name {
                if !v.is_string() && !v.is_null() {
                    return Err(ScimError::invalid_value(&format!("name.{k}"), v));
                }
            }
            // create-a-user requires `name`, and RFC 7643 §2.5 makes an empty complex value
            // (no sub-attribute with a value) the same as an unassigned one: `name: {}` is a
            // missing required attribute.
            let assigned = name
                .values()
                .any(|v| v.as_str().is_some_and(|s| !s.trim().is_empty()));
            if !assigned {
                return Err(ScimError::bad_request(
                    "invalidValue",
                    "Missing required attribute: name (givenName or familyName)",
                ));
            }
        }
        Some(other) => return Err(ScimError::invalid_value("name", other)),
        None => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "Missing required attribute: name",
            ));
        }
    }
    for attr in [
        "title",
        "displayName",
        "nickName",
        "userType",
        "locale",
        "timezone",
        "preferredLanguage",
        "externalId",
    ] {
        if let Some(v) = user.get(attr)
            && !v.is_string()
            && !v.is_null()
        {
            return Err(ScimError::invalid_value(attr, v));
        }
    }
    if let Some(v) = user.get("active")
        && !v.is_boolean()
    {
        return Err(ScimError::invalid_value("active", v));
    }
    if let Some(emails) = user.get("emails") {
        let ok = emails.as_array().is_some_and(|e| {
            e.iter()
                .all(|e| e.get("value").is_some_and(Value::is_string))
        });
        if !ok {
            return Err(ScimError::invalid_value("emails", emails));
        }
    }
    for urn in USER_EXTENSIONS {
        if let Some(ext) = user.get(urn)
            && !ext.is_object()
        {
            return Err(ScimError::invalid_value(urn, ext));
        }
    }
    if let Some(Value::Object(ext)) = user.get(IRONCLAD_URN) {
        if let Some(v) = ext.get("departmentHead")
            && !v.is_string()
            && !v.is_null()
        {
            return Err(ScimError::invalid_value("departmentHead", v));
        }
        if let Some(v) = ext.get("allowProviderConversion")
            && !v.is_boolean()
        {
            return Err(ScimError::invalid_value("allowProviderConversion", v));
        }
    }
    Ok(())
}

/// Whether the user stays in the company.
// SCIM OpenAPI `active`: "Ironclad users do not have the concept of active vs. inactive, and a
// SCIM User with active set to `false` will be removed from the company. On subsequent reads,
// inactive users would be not found."
pub(crate) fn is_active(user: &Map<String, Value>) -> bool {
    user.get("active") != Some(&Value::Bool(false))
}

/// Lower-cased userName of a validated user.
pub(crate) fn user_name_lc(user: &Map<String, Value>) -> String {
    user.get("userName")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
        .unwrap_or_default()
}

/// Server-assigned parts of a stored user.
#[derive(Debug, Clone)]
pub(crate) struct Assigned<'a> {
    pub(crate) id: &'a str,
    pub(crate) created: &'a str,
    pub(crate) last_modified: &'a str,
    /// Sign-in provider: not in the create body, so the server owns it.
    pub(crate) provider: &'a str,
}

/// The user as the API returns it: `schemas` naming every extension present, `id`, the
/// attributes in documented order, and `meta` last.
pub(crate) fn finish(mut user: Map<String, Value>, assigned: &Assigned<'_>) -> String {
    let ext = user
        .entry(IRONCLAD_URN)
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(ext) = ext {
        ext.insert("provider".to_owned(), Value::from(assigned.provider));
    }
    let mut schemas = vec![Value::from(USER_URN)];
    schemas.extend(
        USER_EXTENSIONS
            .iter()
            .filter(|u| user.contains_key(**u))
            .map(|u| Value::from(*u)),
    );
    user.insert("schemas".to_owned(), Value::from(schemas));
    user.insert("id".to_owned(), Value::from(assigned.id));
    user.insert(
        "meta".to_owned(),
        serde_json::json!({
            "resourceType": "User",
            "created": assigned.created,
            "lastModified": assigned.last_modified,
            "location": format!("{SCIM_BASE}/Users/{}", assigned.id),
        }),
    );
    let user = ordered(
        user,
        &[
            "schemas", "id", "userName", "name", "title", "emails", "active",
        ],
        &[crate::schema::ENTERPRISE_URN, IRONCLAD_URN, "meta"],
    );
    Value::Object(user).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn password_policy_names_every_missing_requirement() {
        check_password(&json!("Correct-Horse-Battery-9")).unwrap();
        let err = check_password(&json!("short1!")).unwrap_err();
        assert_eq!(err.scim_type(), Some("invalidValue"));
        for weak in [
            "alllowercase-123456",
            "ALLUPPERCASE-123456",
            "NoDigitsHere-abcdef",
            "NoSpecials1234567a",
        ] {
            assert!(check_password(&json!(weak)).is_err(), "{weak}");
        }
    }

    #[test]
    fn create_body_defaults_emails_and_active_and_drops_password() {
        let user = from_request(
            json!({"schemas": [USER_URN], "userName": "a@b.com", "name": {"givenName": "A"},
                   "password": "Correct-Horse-Battery-9", "id": "mine"}),
            true,
        )
        .unwrap();
        assert_eq!(user.get("active"), Some(&json!(true)));
        assert_eq!(
            user["emails"],
            json!([{"value": "a@b.com", "type": "work", "primary": true}])
        );
        assert!(!user.contains_key("password") && !user.contains_key("id"));
        // An attribute no schema defines is refused, so it is never stored either.
        let err = from_request(
            json!({"schemas": [USER_URN], "userName": "a@b.com", "name": {"givenName": "A"},
                   "favouriteColour": "red"}),
            false,
        )
        .unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(err.scim_type(), Some("invalidValue"));
    }

    #[test]
    fn unknown_extension_attributes_and_an_empty_name_are_refused() {
        let ironclad = "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User";
        for body in [
            json!({"schemas": [USER_URN], "userName": "a@b.com", "name": {"givenName": "A"},
                   ironclad: {"managementLevel": "Director"}}),
            json!({"schemas": [USER_URN], "userName": "a@b.com", "name": {}}),
            json!({"schemas": [USER_URN], "userName": "a@b.com", "name": {"givenName": " "}}),
        ] {
            let err = from_request(body.clone(), false).unwrap_err();
            assert_eq!(err.scim_type(), Some("invalidValue"), "{body}");
        }
        from_request(
            json!({"schemas": [USER_URN], "userName": "a@b.com", "name": {"givenName": "A"},
                   crate::schema::CUSTOM_URN: {"managementLevel": "Director"}}),
            false,
        )
        .expect("the custom schema defines managementLevel");
    }

    #[test]
    fn create_body_without_required_attributes_is_invalid_value() {
        for body in [
            json!({"userName": "a@b.com", "name": {"givenName": "A"}}),
            json!({"schemas": [USER_URN], "name": {"givenName": "A"}}),
            json!({"schemas": [USER_URN], "userName": "a@b.com"}),
            json!({"schemas": [USER_URN], "userName": "not-an-email", "name": {"givenName": "A"}}),
            json!({"schemas": [USER_URN], "userName": "a@b.com", "name": {"givenName": 123}}),
        ] {
            assert_eq!(
                from_request(body.clone(), false).unwrap_err().scim_type(),
                Some("invalidValue"),
                "{body}"
            );
        }
        assert!(
            from_request(
                json!({"schemas": [USER_URN], "userName": "a@b.com", "name": {"givenName": "A"}}),
                true
            )
            .is_err(),
            "no password for a company without SAML"
        );
    }
}
