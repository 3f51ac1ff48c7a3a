//! The `filter` query parameter: RFC 7644 §3.4.2.2 `attrPath eq value`, which is what the docs
//! show (`userName eq "alex.doe@example.com"`, `displayName eq "Legal Ops Group"`).

use serde_json::{Map, Value};

use crate::respond::{ScimError, find_key};
use crate::schema::{CORE_USER_ATTRIBUTES, USER_EXTENSIONS, is_core_urn};

/// `attr[.sub] eq value`, with any core-schema URN prefix removed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct EqFilter {
    /// Extension URN holding the attribute, when the path was URN-qualified.
    pub(crate) container: Option<String>,
    /// Attribute name as written.
    pub(crate) attr: String,
    /// Sub-attribute, for `emails.value` and the like.
    pub(crate) sub: Option<String>,
    /// Comparison value.
    pub(crate) value: Value,
}

impl EqFilter {
    /// `attr` (and `sub`) equal these names, ignoring ASCII case, with no container.
    pub(crate) fn is(&self, attr: &str, sub: Option<&str>) -> bool {
        self.container.is_none()
            && self.attr.eq_ignore_ascii_case(attr)
            && match (&self.sub, sub) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }

    /// The comparison value as a string, when it is one.
    pub(crate) fn text(&self) -> Option<&str> {
        self.value.as_str()
    }

    /// Whether `resource` matches. String comparison ignores case except for `id` and
    /// `externalId`, which RFC 7643 §3.1 makes caseExact.
    pub(crate) fn matches(&self, resource: &Map<String, Value>) -> bool {
        let scope = match &self.container {
            Some(urn) => match find_key(resource, urn).and_then(|k| resource.get(&k)) {
                Some(Value::Object(ext)) => ext,
                _ => return false,
            },
            None => resource,
        };
        let Some(found) = find_key(scope, &self.attr).and_then(|k| scope.get(&k)) else {
            return false;
        };
        let case_exact =
            self.attr.eq_ignore_ascii_case("id") || self.attr.eq_ignore_ascii_case("externalId");
        let leaf = |v: &Value| -> bool {
            let v = match (&self.sub, v) {
                (Some(sub), Value::Object(o)) => match find_key(o, sub).and_then(|k| o.get(&k)) {
                    Some(v) => v,
                    None => return false,
                },
                // RFC 7644 §3.4.2.2: a complex multi-valued attribute without a sub-attribute
                // is compared on its `value` sub-attribute.
                (None, Value::Object(o)) => match o.get("value") {
                    Some(v) => v,
                    None => return false,
                },
                (_, v) => v,
            };
            equal(v, &self.value, case_exact)
        };
        match found {
            Value::Array(items) => items.iter().any(leaf),
            other => leaf(other),
        }
    }
}

/// Value equality for filters and PATCH value paths.
pub(crate) fn equal(a: &Value, b: &Value, case_exact: bool) -> bool {
    match (a, b) {
        (Value::String(a), Value::String(b)) if !case_exact => a.eq_ignore_ascii_case(b),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => a == b,
    }
}

/// Parses `attrPath SP "eq" SP compValue`. Other operators and logical combinations answer
/// 400 invalidFilter: the simulator implements what the docs show, nothing more.
pub(crate) fn parse(filter: &str) -> Result<EqFilter, ScimError> {
    let filter = filter.trim();
    let (path, rest) = filter
        .split_once(char::is_whitespace)
        .ok_or_else(|| ScimError::invalid_filter(format!("Invalid filter: {filter}")))?;
    let rest = rest.trim_start();
    let (op, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if !op.eq_ignore_ascii_case("eq") {
        return Err(ScimError::invalid_filter(format!(
            "Unsupported filter operator: {op}"
        )));
    }
    let value = value.trim();
    let value: Value = match value {
        v if v.eq_ignore_ascii_case("true") => Value::Bool(true),
        v if v.eq_ignore_ascii_case("false") => Value::Bool(false),
        v if v.eq_ignore_ascii_case("null") => Value::Null,
        v => serde_json::from_str(v)
            .ok()
            .filter(|v: &Value| v.is_string() || v.is_number())
            .ok_or_else(|| ScimError::invalid_filter(format!("Invalid filter value: {v}")))?,
    };
    let (container, attr_path) = split_urn(path);
    let (attr, sub) = match attr_path.split_once('.') {
        Some((a, s)) => (a.to_owned(), Some(s.to_owned())),
        None => (attr_path.to_owned(), None),
    };
    if attr.is_empty()
        || sub
            .as_deref()
            .is_some_and(|s| s.is_empty() || s.contains('.'))
    {
        return Err(ScimError::invalid_filter(format!(
            "Invalid filter: {filter}"
        )));
    }
    Ok(EqFilter {
        container,
        attr,
        sub,
        value,
    })
}

/// Splits an optional schema URN off an attribute path: `urn:…:2.0:User:department` gives
/// `(Some("urn:…:2.0:User"), "department")`; a core-schema URN gives `None`.
pub(crate) fn split_urn(path: &str) -> (Option<String>, &str) {
    if path
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        && let Some((urn, attr)) = path.rsplit_once(':')
    {
        return if is_core_urn(urn) {
            (None, attr)
        } else {
            (Some(urn.to_owned()), attr)
        };
    }
    (None, path)
}

/// Rejects filters on attributes outside the User schemas, with the documented detail
/// ("No matching schema for attribute: name,lastName").
pub(crate) fn check_user_attribute(f: &EqFilter) -> Result<(), ScimError> {
    let known = match &f.container {
        Some(urn) => USER_EXTENSIONS.iter().any(|u| u.eq_ignore_ascii_case(urn)),
        None => {
            (f.attr.eq_ignore_ascii_case("id")
                || CORE_USER_ATTRIBUTES
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&f.attr)))
                && f.sub.as_deref().is_none_or(|sub| {
                    core_sub_attributes(&f.attr)
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(sub))
                })
        }
    };
    if known {
        Ok(())
    } else {
        Err(no_matching_schema(f))
    }
}

/// Sub-attributes of the complex core User attributes (RFC 7643 §4.1); none for simple ones.
fn core_sub_attributes(attr: &str) -> &'static [&'static str] {
    const MULTI: &[&str] = &["value", "display", "type", "primary", "$ref"];
    match attr.to_ascii_lowercase().as_str() {
        "name" => &[
            "formatted",
            "familyName",
            "givenName",
            "middleName",
            "honorificPrefix",
            "honorificSuffix",
        ],
        "addresses" => &[
            "formatted",
            "streetAddress",
            "locality",
            "region",
            "postalCode",
            "country",
            "type",
            "primary",
        ],
        "emails" | "phonenumbers" | "ims" | "photos" | "groups" | "entitlements" | "roles"
        | "x509certificates" => MULTI,
        _ => &[],
    }
}

/// Rejects filters on attributes outside the Group schema.
pub(crate) fn check_group_attribute(f: &EqFilter) -> Result<(), ScimError> {
    let known = ["id", "displayName", "externalId"]
        .iter()
        .any(|a| f.is(a, None))
        || f.is("members", None)
        || f.is("members", Some("value"));
    if known {
        Ok(())
    } else {
        Err(no_matching_schema(f))
    }
}

fn no_matching_schema(f: &EqFilter) -> ScimError {
    let name = match &f.sub {
        Some(sub) => format!("{},{sub}", f.attr),
        None => f.attr.clone(),
    };
    ScimError::invalid_filter(format!("No matching schema for attribute: {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_documented_examples() {
        let f = parse(r#"userName eq "alex.doe@example.com""#).unwrap();
        assert!(f.is("userName", None));
        assert_eq!(f.text(), Some("alex.doe@example.com"));
        let f = parse(r#"displayName eq "Legal Ops Group""#).unwrap();
        assert_eq!(f.text(), Some("Legal Ops Group"));
        let f = parse(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department EQ "Legal""#,
        )
        .unwrap();
        assert_eq!(f.container.as_deref(), Some(crate::schema::ENTERPRISE_URN));
        let f =
            parse(r#"urn:ietf:params:scim:schemas:core:2.0:User:emails.value eq "a@b.c""#).unwrap();
        assert!(f.is("emails", Some("value")));
    }

    #[test]
    fn unsupported_operators_and_unknown_attributes_are_invalid_filter() {
        for bad in [
            r#"userName sw "a""#,
            "userName pr",
            r#"userName eq "a" and title eq "b""#,
            "userName",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().scim_type(),
                Some("invalidFilter"),
                "{bad}"
            );
        }
        let f = parse(r#"name.familyName eq "x""#).unwrap();
        check_user_attribute(&f).unwrap();
        // The documented example: "No matching schema for attribute: name,lastName".
        let f = parse(r#"name.lastName eq "x""#).unwrap();
        assert!(check_user_attribute(&f).is_err());
        let f = parse(r#"legalName eq "x""#).unwrap();
        assert!(check_user_attribute(&f).is_err());
    }

    #[test]
    fn matching_ignores_case_except_for_ids_and_looks_into_arrays() {
        let user = json!({"id":"AbC","userName":"A@B.C","emails":[{"value":"x@y.z"},{"value":"Other@y.z"}]});
        let user = user.as_object().unwrap();
        assert!(parse(r#"userName eq "a@b.c""#).unwrap().matches(user));
        assert!(
            parse(r#"emails.value eq "other@y.z""#)
                .unwrap()
                .matches(user)
        );
        assert!(parse(r#"emails eq "X@y.z""#).unwrap().matches(user));
        assert!(!parse(r#"id eq "abc""#).unwrap().matches(user));
    }
}
