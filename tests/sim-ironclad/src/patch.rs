//! RFC 7644 §3.5.2 PatchOp, as the Ironclad docs use it: `add`, `remove` and `replace` with
//! paths such as `name.givenName`, `title`, `active`, `emails`, extension attributes
//! (`urn:…:enterprise:2.0:User:department`) and value paths (`emails[type eq "work"].value`).

use serde_json::{Map, Value};

use crate::filter::{self, equal};
use crate::respond::{ScimError, find_key};
use crate::schema::{CORE_USER_ATTRIBUTES, PATCH_URN, USER_EXTENSIONS, extension_attributes};

/// A PATCH operation name (case-insensitive on the wire, as Azure AD sends `Replace`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Add,
    Remove,
    Replace,
}

/// One entry of `Operations`.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    pub(crate) op: Op,
    pub(crate) path: Option<String>,
    pub(crate) value: Option<Value>,
}

/// Reads a PatchOp body. `schemas` must name PatchOp (the SCIM OpenAPI marks it required and
/// defaults it to `urn:ietf:params:scim:api:messages:2.0:PatchOp`).
pub(crate) fn operations(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let names_patch_op = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| {
            s.iter().any(|u| {
                u.as_str()
                    .is_some_and(|u| u.eq_ignore_ascii_case(PATCH_URN))
            })
        });
    if !names_patch_op {
        return Err(ScimError::invalid_value(
            "schemas",
            body.get("schemas").unwrap_or(&Value::Null),
        ));
    }
    let ops = body
        .as_object()
        .and_then(|o| find_key(o, "Operations").and_then(|k| o.get(&k)))
        .and_then(Value::as_array)
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| {
            ScimError::bad_request("invalidSyntax", "Operations must be a non-empty array")
        })?;
    ops.iter()
        .map(|raw| {
            let op = match raw
                .get("op")
                .and_then(Value::as_str)
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("add") => Op::Add,
                Some("remove") => Op::Remove,
                Some("replace") => Op::Replace,
                _ => {
                    return Err(ScimError::invalid_value(
                        "op",
                        raw.get("op").unwrap_or(&Value::Null),
                    ));
                }
            };
            let path = match raw.get("path") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) if !p.trim().is_empty() => Some(p.trim().to_owned()),
                Some(other) => return Err(ScimError::invalid_value("path", other)),
            };
            Ok(Operation {
                op,
                path,
                value: raw.get("value").cloned(),
            })
        })
        .collect()
}

/// Where a path points.
#[derive(Debug)]
struct Target {
    /// Extension URN, for extension attributes.
    container: Option<String>,
    /// Attribute inside the container (None: the extension object itself).
    attr: Option<String>,
    /// `[sub eq value]` selection for multi-valued attributes.
    select: Option<filter::EqFilter>,
    /// Sub-attribute after the attribute or the selection.
    sub: Option<String>,
}

fn parse_path(path: &str) -> Result<Target, ScimError> {
    let invalid = || ScimError::bad_request("invalidPath", format!("Invalid path: {path}"));
    if let Some(urn) = USER_EXTENSIONS
        .iter()
        .find(|u| u.eq_ignore_ascii_case(path))
    {
        return Ok(Target {
            container: Some((*urn).to_owned()),
            attr: None,
            select: None,
            sub: None,
        });
    }
    // The URN split only looks before any `[`, since a selection value may contain ':'.
    let head_end = path.find('[').unwrap_or(path.len());
    let (container, rest) = {
        let (c, attr) = filter::split_urn(&path[..head_end]);
        (c, format!("{attr}{}", &path[head_end..]))
    };
    let (attr, select, sub) = match rest.find('[') {
        Some(open) => {
            let close = rest.rfind(']').filter(|&c| c > open).ok_or_else(invalid)?;
            let select = filter::parse(&rest[open + 1..close]).map_err(|_| invalid())?;
            let after = &rest[close + 1..];
            let sub = match after.strip_prefix('.') {
                Some(s) if !s.is_empty() => Some(s.to_owned()),
                None if after.is_empty() => None,
                _ => return Err(invalid()),
            };
            (rest[..open].to_owned(), Some(select), sub)
        }
        None => match rest.split_once('.') {
            Some((a, s)) => (a.to_owned(), None, Some(s.to_owned())),
            None => (rest.clone(), None, None),
        },
    };
    if attr.is_empty()
        || sub
            .as_deref()
            .is_some_and(|s| s.is_empty() || s.contains('.'))
    {
        return Err(invalid());
    }
    Ok(Target {
        container,
        attr: Some(attr),
        select,
        sub,
    })
}

/// Applies one operation to a user's attributes. `password` operations only check the
/// documented password policy (it is never stored nor returned).
pub(crate) fn apply_user(user: &mut Map<String, Value>, op: &Operation) -> Result<(), ScimError> {
    let Some(path) = &op.path else {
        return apply_pathless(user, op);
    };
    let target = parse_path(path)?;
    if let Some(urn) = &target.container {
        if !USER_EXTENSIONS.iter().any(|u| u.eq_ignore_ascii_case(urn)) {
            return Err(no_schema(urn));
        }
        // An attribute the extension's schema does not define is refused like an unknown
        // extension (Ironclad answers unknown attributes with SCIM's 400).
        if let (Some(attr), Some(known)) = (&target.attr, extension_attributes(urn))
            && !known.iter().any(|k| k.eq_ignore_ascii_case(attr))
        {
            return Err(no_schema(&format!("{urn}:{attr}")));
        }
    }
    if target.container.is_none()
        && let Some(attr) = &target.attr
    {
        if ["id", "meta", "schemas", "groups"]
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attr))
        {
            return Err(ScimError::bad_request(
                "mutability",
                format!("Attribute {attr} is readOnly"),
            ));
        }
        if !CORE_USER_ATTRIBUTES
            .iter()
            .any(|a| a.eq_ignore_ascii_case(attr))
        {
            return Err(no_schema(attr));
        }
        if attr.eq_ignore_ascii_case("password") {
            return match (&op.op, &op.value) {
                (Op::Remove, _) => Ok(()),
                (_, Some(v)) => crate::user_model::check_password(v),
                (_, None) => Err(missing_value()),
            };
        }
    }
    let value = match (op.op, &op.value) {
        (Op::Remove, v) => v.clone(),
        (_, Some(v)) => Some(v.clone()),
        (_, None) => return Err(missing_value()),
    };
    let scope = match &target.container {
        None => user,
        Some(urn) => {
            let key = find_key(user, urn).unwrap_or_else(|| urn.clone());
            if op.op == Op::Remove && !user.contains_key(&key) {
                return Ok(());
            }
            let Some(attr) = &target.attr else {
                return set_or_remove(user, &key, op.op, value);
            };
            let entry = user.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(ext) = entry else {
                return Ok(());
            };
            return apply_attr(ext, attr, &target, op.op, value);
        }
    };
    match &target.attr {
        Some(attr) => apply_attr(scope, attr, &target, op.op, value),
        None => Ok(()),
    }
}

/// RFC 7644 §3.5.2.1/§3.5.2.3: without a path, `value` is an object of attributes to add or
/// replace; §3.5.2.2: a `remove` without a path fails with noTarget.
fn apply_pathless(user: &mut Map<String, Value>, op: &Operation) -> Result<(), ScimError> {
    if op.op == Op::Remove {
        return Err(ScimError::bad_request("noTarget", "remove requires a path"));
    }
    let Some(Value::Object(values)) = &op.value else {
        return Err(ScimError::invalid_value(
            "value",
            op.value.as_ref().unwrap_or(&Value::Null),
        ));
    };
    for (key, value) in values {
        let is_extension = USER_EXTENSIONS.iter().any(|u| u.eq_ignore_ascii_case(key));
        match value {
            Value::Object(inner) if is_extension => {
                for (attr, v) in inner {
                    apply_user(
                        user,
                        &Operation {
                            op: op.op,
                            path: Some(format!("{key}:{attr}")),
                            value: Some(v.clone()),
                        },
                    )?;
                }
            }
            v => apply_user(
                user,
                &Operation {
                    op: op.op,
                    path: Some(key.clone()),
                    value: Some(v.clone()),
                },
            )?,
        }
    }
    Ok(())
}

fn apply_attr(
    scope: &mut Map<String, Value>,
    attr: &str,
    target: &Target,
    op: Op,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let key = find_key(scope, attr).unwrap_or_else(|| attr.to_owned());
    match (&target.select, &target.sub) {
        (None, None) => set_or_remove(scope, &key, op, value),
        (None, Some(sub)) => match scope.get_mut(&key) {
            Some(Value::Array(items)) => {
                for item in items.iter_mut().filter(|i| i.is_object()) {
                    if let Value::Object(o) = item {
                        set_or_remove(
                            o,
                            &find_key(o, sub).unwrap_or_else(|| sub.clone()),
                            op,
                            value.clone(),
                        )?;
                    }
                }
                Ok(())
            }
            Some(Value::Object(o)) => {
                let sub_key = find_key(o, sub).unwrap_or_else(|| sub.clone());
                set_or_remove(o, &sub_key, op, value)
            }
            None if op == Op::Remove => Ok(()),
            None => {
                let mut o = Map::new();
                o.insert(sub.clone(), value.unwrap_or(Value::Null));
                scope.insert(key, Value::Object(o));
                Ok(())
            }
            Some(_) => Err(ScimError::bad_request(
                "invalidPath",
                format!("{attr} has no sub-attribute {sub}"),
            )),
        },
        (Some(select), sub) => {
            let items = match scope.entry(key).or_insert_with(|| Value::Array(Vec::new())) {
                Value::Array(items) => items,
                _ => {
                    return Err(ScimError::bad_request(
                        "invalidPath",
                        format!("{attr} is not multi-valued"),
                    ));
                }
            };
            let hits: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| item.as_object().is_some_and(|o| select.matches(o)))
                .map(|(i, _)| i)
                .collect();
            match op {
                Op::Remove => {
                    if let Some(sub) = sub {
                        for &i in &hits {
                            if let Some(Value::Object(o)) = items.get_mut(i)
                                && let Some(k) = find_key(o, sub)
                            {
                                o.remove(&k);
                            }
                        }
                    } else {
                        let mut i = 0;
                        items.retain(|_| {
                            i += 1;
                            !hits.contains(&(i - 1))
                        });
                    }
                    Ok(())
                }
                // RFC 7644 §3.5.2.3: a value selection that matches nothing fails with noTarget.
                Op::Replace if hits.is_empty() => Err(ScimError::bad_request(
                    "noTarget",
                    format!("No value of {attr} matches the path filter"),
                )),
                Op::Add | Op::Replace => {
                    let value = value.unwrap_or(Value::Null);
                    if hits.is_empty() {
                        // Add through a selection that matches nothing creates the value, as
                        // IdPs expect for `emails[type eq "work"].value`.
                        let mut o = Map::new();
                        o.insert(select.attr.clone(), select.value.clone());
                        match (sub, value) {
                            (Some(sub), v) => {
                                o.insert(sub.clone(), v);
                            }
                            (None, Value::Object(v)) => o.extend(v),
                            (None, v) => return Err(ScimError::invalid_value(attr, &v)),
                        }
                        items.push(Value::Object(o));
                        return Ok(());
                    }
                    for &i in &hits {
                        let Some(Value::Object(o)) = items.get_mut(i) else {
                            continue;
                        };
                        match (sub, &value) {
                            (Some(sub), v) => {
                                o.insert(
                                    find_key(o, sub).unwrap_or_else(|| sub.clone()),
                                    v.clone(),
                                );
                            }
                            (None, Value::Object(v)) if op == Op::Add => o.extend(v.clone()),
                            (None, Value::Object(v)) => *o = v.clone(),
                            (None, v) => return Err(ScimError::invalid_value(attr, v)),
                        }
                    }
                    Ok(())
                }
            }
        }
    }
}

/// add / replace / remove of `key` itself.
fn set_or_remove(
    scope: &mut Map<String, Value>,
    key: &str,
    op: Op,
    value: Option<Value>,
) -> Result<(), ScimError> {
    match op {
        Op::Remove => {
            // A remove carrying values removes just those values from a multi-valued attribute.
            match (scope.get_mut(key), value) {
                (Some(Value::Array(items)), Some(Value::Array(drop))) => {
                    items.retain(|i| !drop.iter().any(|d| same_value(i, d)));
                }
                _ => {
                    scope.remove(key);
                }
            }
            Ok(())
        }
        Op::Add | Op::Replace => {
            let value = value.unwrap_or(Value::Null);
            match (scope.get_mut(key), value) {
                // RFC 7644 §3.5.2.1: add to a multi-valued attribute appends; an existing value
                // is left as is.
                (Some(Value::Array(items)), Value::Array(new)) if op == Op::Add => {
                    for v in new {
                        if !items.iter().any(|i| same_value(i, &v)) {
                            items.push(v);
                        }
                    }
                }
                (Some(Value::Array(items)), v) if op == Op::Add && !v.is_null() => {
                    if !items.iter().any(|i| same_value(i, &v)) {
                        items.push(v);
                    }
                }
                // §3.5.2.1/§3.5.2.3: a complex value's unspecified sub-attributes stay.
                (Some(Value::Object(o)), Value::Object(new)) => o.extend(new),
                (_, v) => {
                    scope.insert(key.to_owned(), v);
                }
            }
            Ok(())
        }
    }
}

/// Two multi-valued entries are the same when equal, or when both have the same `value`.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a.get("value"), b.get("value")) {
        (Some(x), Some(y)) => equal(x, y, false),
        _ => a == b,
    }
}

fn missing_value() -> ScimError {
    ScimError::bad_request(
        "invalidSyntax",
        "add and replace operations require a value",
    )
}

fn no_schema(attr: &str) -> ScimError {
    ScimError::bad_request(
        "invalidPath",
        format!("No matching schema for attribute: {attr}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(user: Value, ops: Value) -> Result<Value, ScimError> {
        let mut user = user.as_object().cloned().unwrap();
        let body = json!({"schemas": [PATCH_URN], "Operations": ops});
        for op in operations(&body)? {
            apply_user(&mut user, &op)?;
        }
        Ok(Value::Object(user))
    }

    #[test]
    fn replaces_sub_attributes_and_extension_attributes() {
        let out = patch(
            json!({"name": {"givenName": "A", "familyName": "B"}, "title": "T"}),
            json!([
                {"op": "Replace", "path": "name.givenName", "value": "X"},
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Legal"},
                {"op": "remove", "path": "title"},
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"name": {"givenName": "X", "familyName": "B"},
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Legal"}})
        );
    }

    #[test]
    fn value_paths_select_entries_of_multi_valued_attributes() {
        let user = json!({"emails": [{"value": "a@x.com", "type": "work", "primary": true}, {"value": "h@x.com", "type": "home"}]});
        let out = patch(user.clone(), json!([{"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@x.com"}])).unwrap();
        assert_eq!(out["emails"][0]["value"], "b@x.com");
        assert_eq!(out["emails"][1]["value"], "h@x.com");
        let out = patch(
            user.clone(),
            json!([{"op": "remove", "path": "emails[type eq \"home\"]"}]),
        )
        .unwrap();
        assert_eq!(out["emails"].as_array().map(Vec::len), Some(1));
        let err = patch(
            user,
            json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": "c"}]),
        )
        .unwrap_err();
        assert_eq!(err.scim_type(), Some("noTarget"));
    }

    #[test]
    fn pathless_add_sets_each_attribute_and_pathless_remove_is_no_target() {
        let out = patch(
            json!({"title": "T"}),
            json!([{"op": "add", "value": {"title": "U", "name.familyName": "Z",
                crate::schema::CUSTOM_URN: {"managementLevel": "Director"}}}]),
        )
        .unwrap();
        assert_eq!(out["title"], "U");
        assert_eq!(out["name"]["familyName"], "Z");
        assert_eq!(
            out[crate::schema::CUSTOM_URN]["managementLevel"],
            "Director"
        );
        // The Ironclad extension does not define it: SCIM's 400.
        let err = patch(
            json!({}),
            json!([{"op": "add", "value": {
                "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User": {"managementLevel": "Director"}}}]),
        )
        .unwrap_err();
        assert_eq!(err.scim_type(), Some("invalidPath"));
        let err = patch(json!({}), json!([{"op": "remove"}])).unwrap_err();
        assert_eq!(err.scim_type(), Some("noTarget"));
    }

    #[test]
    fn read_only_and_unknown_attributes_are_refused() {
        assert_eq!(
            patch(
                json!({}),
                json!([{"op": "replace", "path": "id", "value": "x"}])
            )
            .unwrap_err()
            .scim_type(),
            Some("mutability")
        );
        assert_eq!(
            patch(
                json!({}),
                json!([{"op": "replace", "path": "shoeSize", "value": 9}])
            )
            .unwrap_err()
            .scim_type(),
            Some("invalidPath")
        );
        assert_eq!(
            patch(json!({}), json!([{"op": "add", "path": "title"}]))
                .unwrap_err()
                .scim_type(),
            Some("invalidSyntax")
        );
        let missing_schemas =
            operations(&json!({"Operations": [{"op": "add", "path": "title", "value": "x"}]}));
        assert_eq!(
            missing_schemas.unwrap_err().scim_type(),
            Some("invalidValue")
        );
    }
}
