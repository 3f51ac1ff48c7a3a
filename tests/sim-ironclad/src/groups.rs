//! `/scim/v2/Groups` and `/scim/v2/Groups/{groupId}` (SCIM OpenAPI tag "Groups"). Every group
//! request counts against "All scim/v2/groups* 600 requests per minute".

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::Simulator;
use crate::filter;
use crate::guard::{Bucket, admit};
use crate::oauth::Scope;
use crate::patch::{self, Op};
use crate::respond::{self, ScimError, find_key};
use crate::schema::{GROUP_URN, SCIM_BASE};
use crate::store::{GroupRecord, Store};

type Answer = Result<Response, ScimError>;

fn answer(result: Answer) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

/// A group's JSON with `excluded` attributes dropped; excluding `members` (the documented use)
/// renders without them instead of stripping them afterwards.
fn shown(group: &GroupRecord, excluded: &[String]) -> String {
    if excluded.is_empty() {
        return group.json().to_string();
    }
    let (members, others): (Vec<&String>, Vec<&String>) = excluded
        .iter()
        .partition(|a| a.eq_ignore_ascii_case("members"));
    let base = group.render(members.is_empty());
    if others.is_empty() {
        base
    } else {
        respond::exclude(&base, &others.into_iter().cloned().collect::<Vec<_>>())
    }
}

/// `GET /Groups` — retrieve-all-groups, scope `scim.groups.readGroups`.
pub(crate) async fn list(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    answer(list_groups(&sim, &headers, raw.as_deref()))
}

fn list_groups(sim: &Simulator, headers: &HeaderMap, raw: Option<&str>) -> Answer {
    admit(sim, headers, Bucket::Groups, Scope::ReadGroups)?;
    let q = respond::list_query(raw)?;
    let filter = q.filter.as_deref().map(filter::parse).transpose()?;
    if let Some(f) = &filter {
        filter::check_group_attribute(f)?;
    }
    let store = sim.read();
    let (total, page): (usize, Vec<String>) = match &filter {
        None => (
            store.groups.len(),
            store
                .groups
                .page(q.start_index, q.count)
                .into_iter()
                .map(|g| shown(g, &q.excluded))
                .collect(),
        ),
        Some(f) => {
            let hits: Vec<&GroupRecord> = if f.is("displayName", None) {
                f.text()
                    .and_then(|name| store.group_id_by_name(name))
                    .and_then(|id| store.groups.get(&id))
                    .into_iter()
                    .collect()
            } else if f.is("id", None) {
                f.text()
                    .and_then(|id| store.groups.get(id))
                    .into_iter()
                    .collect()
            } else if f.is("externalId", None) {
                store
                    .groups
                    .iter()
                    .filter(|g| g.external_id.as_deref() == f.text())
                    .collect()
            } else {
                // members / members.value eq "<userId>"
                let member = f.text().unwrap_or_default();
                store
                    .groups
                    .iter()
                    .filter(|g| g.has_member(member))
                    .collect()
            };
            let page = hits
                .iter()
                .skip(q.start_index - 1)
                .take(q.count)
                .map(|g| shown(g, &q.excluded))
                .collect();
            (hits.len(), page)
        }
    };
    drop(store);
    Ok(respond::list(
        sim.shown_total(total, page.len()),
        q.start_index,
        q.count,
        &page,
    ))
}

/// A validated GroupCreateRequestBody (also the PUT body).
struct GroupBody {
    display_name: String,
    external_id: Option<String>,
    members: Vec<Arc<str>>,
}

/// Validates a group body; every member must be an existing user ("The unique id of the user").
fn group_body(store: &Store, body: &Value) -> Result<GroupBody, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::bad_request(
            "invalidSyntax",
            "A Group must be a JSON object",
        ));
    };
    let schemas = body.get("schemas").unwrap_or(&Value::Null);
    if !schemas.as_array().is_some_and(|s| {
        s.iter().any(|u| {
            u.as_str()
                .is_some_and(|u| u.eq_ignore_ascii_case(GROUP_URN))
        })
    }) {
        return Err(ScimError::invalid_value("schemas", schemas));
    }
    let field = |name: &str| find_key(body, name).and_then(|k| body.get(&k));
    // Documented 400 example: "Invalid value at displayName: 123".
    let display_name = match field("displayName") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        Some(other) => return Err(ScimError::invalid_value("displayName", other)),
        None => {
            return Err(ScimError::bad_request(
                "invalidValue",
                "Missing required attribute: displayName",
            ));
        }
    };
    let external_id = match field("externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) => Some(e.clone()),
        Some(other) => return Err(ScimError::invalid_value("externalId", other)),
    };
    let members = match field("members") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => member_ids(store, value)?,
    };
    Ok(GroupBody {
        display_name,
        external_id,
        members,
    })
}

/// `[{"value": "<userId>"}, …]` → user ids, each of which must exist.
fn member_ids(store: &Store, value: &Value) -> Result<Vec<Arc<str>>, ScimError> {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        single @ Value::Object(_) => std::slice::from_ref(single),
        other => return Err(ScimError::invalid_value("members", other)),
    };
    items
        .iter()
        .map(|item| {
            let id = item
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| ScimError::invalid_value("members", item))?;
            store
                .users
                .get(id)
                .map(|u| u.id.clone())
                .ok_or_else(|| ScimError::invalid_value("members", &Value::from(id)))
        })
        .collect()
}

/// `POST /Groups` — create-a-group, scope `scim.groups.createGroups`: 201, or 409 when the
/// displayName exists (compared ignoring case: Group displayName is caseExact false).
pub(crate) async fn create(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    answer(create_group(&sim, &headers, raw.as_deref(), &body))
}

fn create_group(sim: &Simulator, headers: &HeaderMap, raw: Option<&str>, body: &[u8]) -> Answer {
    admit(sim, headers, Bucket::Groups, Scope::CreateGroups)?;
    let body = respond::body_json(body)?;
    let mut store = sim.write();
    let group = group_body(&store, &body)?;
    if store.group_id_by_name(&group.display_name).is_some() {
        return Err(ScimError::conflict());
    }
    let id = store.new_group_id();
    let record = GroupRecord::new(
        id.clone(),
        group.display_name,
        group.external_id,
        group.members,
    );
    let json = shown(&record, &respond::excluded_from_query(raw));
    store.put_group(record);
    drop(store);
    let mut response = respond::json(StatusCode::CREATED, json);
    if let Ok(location) = HeaderValue::from_str(&format!("{SCIM_BASE}/Groups/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /Groups/{groupId}` — retrieve-a-group.
pub(crate) async fn fetch(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    answer(fetch_group(&sim, &headers, &id, raw.as_deref()))
}

fn fetch_group(sim: &Simulator, headers: &HeaderMap, id: &str, raw: Option<&str>) -> Answer {
    admit(sim, headers, Bucket::Groups, Scope::ReadGroups)?;
    let store = sim.read();
    let group = store
        .groups
        .get(id)
        .ok_or_else(|| ScimError::not_found(id))?;
    Ok(respond::json(
        StatusCode::OK,
        shown(group, &respond::excluded_from_query(raw)),
    ))
}

/// `PUT /Groups/{groupId}` — replace-a-group, scope `scim.groups.updateGroups`: the name,
/// externalId and member list become exactly what was sent.
pub(crate) async fn replace(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    answer(replace_group(&sim, &headers, &id, raw.as_deref(), &body))
}

fn replace_group(
    sim: &Simulator,
    headers: &HeaderMap,
    id: &str,
    raw: Option<&str>,
    body: &[u8],
) -> Answer {
    admit(sim, headers, Bucket::Groups, Scope::UpdateGroups)?;
    let body = respond::body_json(body)?;
    let mut store = sim.write();
    if !store.groups.contains(id) {
        return Err(ScimError::not_found(id));
    }
    let group = group_body(&store, &body)?;
    if store
        .group_id_by_name(&group.display_name)
        .is_some_and(|other| &*other != id)
    {
        return Err(ScimError::conflict());
    }
    store.rename_group(id, group.display_name, group.external_id);
    let record = store
        .groups
        .get_mut(id)
        .ok_or_else(|| ScimError::not_found(id))?;
    record.set_members(group.members);
    Ok(respond::json(
        StatusCode::OK,
        shown(record, &respond::excluded_from_query(raw)),
    ))
}

/// `PATCH /Groups/{groupId}` — update-group-membership, scope `scim.groups.updateGroups`.
///
/// Documented operations: `{"op": "add"|"remove", "path": "members", "value": [{"value": id}]}`.
/// Also accepted: `remove` with path `members[value eq "<id>"]`, and `remove` of `members`
/// without a value (RFC 7644 §3.5.2.2: all members removed). `replace` is refused with 400:
/// the docs describe `op` as '"add" or "remove"'.
///
/// Adding a member already present succeeds and changes nothing (RFC 7644 §3.5.2.1: "no
/// changes SHOULD be made ... and a success response SHOULD be returned"). Removing a user who
/// is not a member also succeeds: RFC 7644 §3.5.2.2 only fails a remove (noTarget) when `path`
/// is missing, and the group ends in the requested state, which is what an idempotent
/// deprovisioning retry needs.
///
/// The docs allow 200 (with the group) or 204; we answer 200 with the group, as the documented
/// `excludedAttributes` parameter of this operation implies a body. Clients must accept both.
pub(crate) async fn patch(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    answer(patch_group(&sim, &headers, &id, raw.as_deref(), &body))
}

fn patch_group(
    sim: &Simulator,
    headers: &HeaderMap,
    id: &str,
    raw: Option<&str>,
    body: &[u8],
) -> Answer {
    admit(sim, headers, Bucket::Groups, Scope::UpdateGroups)?;
    let operations = patch::operations(&respond::body_json(body)?)?;
    let mut store = sim.write();
    let mut members: Vec<Arc<str>> = store
        .groups
        .get(id)
        .ok_or_else(|| ScimError::not_found(id))?
        .members
        .clone();
    // Applied to a copy, so a failing operation leaves the group untouched.
    for op in &operations {
        let path = op.path.as_deref().unwrap_or_default();
        let selected = path
            .strip_prefix("members[")
            .or_else(|| path.strip_prefix("Members["))
            .and_then(|rest| rest.strip_suffix(']'))
            .map(filter::parse)
            .transpose()
            .map_err(|_| ScimError::bad_request("invalidPath", format!("Invalid path: {path}")))?;
        let whole = path.eq_ignore_ascii_case("members");
        if !whole && selected.as_ref().is_none_or(|f| !f.is("value", None)) {
            return Err(ScimError::bad_request(
                "invalidPath",
                format!("Invalid path: {path} (Groups accept add and remove on members)"),
            ));
        }
        match op.op {
            Op::Replace => {
                return Err(ScimError::bad_request(
                    "invalidSyntax",
                    "Unsupported operation: replace (Groups accept add and remove)",
                ));
            }
            Op::Add if whole => {
                let value = op
                    .value
                    .as_ref()
                    .ok_or_else(|| ScimError::invalid_value("value", &Value::Null))?;
                for user in member_ids(&store, value)? {
                    if !members.contains(&user) {
                        members.push(user);
                    }
                }
            }
            Op::Add => {
                return Err(ScimError::bad_request(
                    "invalidPath",
                    "add takes the path members",
                ));
            }
            Op::Remove => {
                let drop: Vec<String> = match (&selected, &op.value) {
                    (Some(f), _) => f.text().map(str::to_owned).into_iter().collect(),
                    (None, None) => members.iter().map(|m| m.to_string()).collect(),
                    (None, Some(value)) => {
                        let items = match value {
                            Value::Array(items) => items.clone(),
                            other => vec![other.clone()],
                        };
                        items
                            .iter()
                            .map(|i| {
                                i.get("value")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                                    .ok_or_else(|| ScimError::invalid_value("members", i))
                            })
                            .collect::<Result<_, _>>()?
                    }
                };
                members.retain(|m| !drop.iter().any(|d| **d == **m));
            }
        }
    }
    let record = store
        .groups
        .get_mut(id)
        .ok_or_else(|| ScimError::not_found(id))?;
    record.set_members(members);
    Ok(respond::json(
        StatusCode::OK,
        shown(record, &respond::excluded_from_query(raw)),
    ))
}

/// `DELETE /Groups/{groupId}` — delete-a-group, scope `scim.groups.deleteGroups`: 204.
pub(crate) async fn delete(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(delete_group(&sim, &headers, &id))
}

fn delete_group(sim: &Simulator, headers: &HeaderMap, id: &str) -> Answer {
    admit(sim, headers, Bucket::Groups, Scope::DeleteGroups)?;
    if sim.write().delete_group(id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ScimError::not_found(id))
    }
}
