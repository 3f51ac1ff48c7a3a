//! `/scim/v2/Users` and `/scim/v2/Users/{userId}` (SCIM OpenAPI tag "Users").

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::Simulator;
use crate::filter;
use crate::guard::{Bucket, admit};
use crate::oauth::Scope;
use crate::patch;
use crate::respond::{self, ScimError};
use crate::schema::{IRONCLAD_URN, SCIM_BASE};
use crate::store::timestamp;
use crate::user_model::{self, Assigned};

type Answer = Result<Response, ScimError>;

fn answer(result: Answer) -> Response {
    result.unwrap_or_else(IntoResponse::into_response)
}

fn now() -> String {
    timestamp(time::OffsetDateTime::now_utc())
}

fn shown(json: &str, excluded: &[String]) -> String {
    if excluded.is_empty() {
        json.to_owned()
    } else {
        respond::exclude(json, excluded)
    }
}

/// `GET /Users` — retrieve-all-users, scope `scim.users.readUsers`.
pub(crate) async fn list(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    answer(list_users(&sim, &headers, raw.as_deref()))
}

fn list_users(sim: &Simulator, headers: &HeaderMap, raw: Option<&str>) -> Answer {
    admit(sim, headers, Bucket::UsersReadWrite, Scope::ReadUsers)?;
    let q = respond::list_query(raw)?;
    let filter = q.filter.as_deref().map(filter::parse).transpose()?;
    if let Some(f) = &filter {
        filter::check_user_attribute(f)?;
    }
    let (total, page): (usize, Vec<Arc<str>>) = {
        let store = sim.read();
        match &filter {
            None => (
                store.users.len(),
                store
                    .users
                    .page(q.start_index, q.count)
                    .into_iter()
                    .map(|u| u.json.clone())
                    .collect(),
            ),
            // userName and id are indexed; anything else is a scan (done below, unlocked).
            Some(f) if f.is("userName", None) || f.is("id", None) => {
                let id = match (f.is("id", None), f.text()) {
                    (true, Some(id)) => Some(Arc::from(id)),
                    (false, Some(name)) => store.user_id_by_name(name),
                    _ => None,
                };
                let hit: Vec<Arc<str>> = id
                    .and_then(|id| store.users.get(&id))
                    .map(|u| vec![u.json.clone()])
                    .unwrap_or_default();
                (hit.len(), window(hit, q.start_index, q.count))
            }
            Some(_) => (
                usize::MAX,
                store.users.iter().map(|u| u.json.clone()).collect(),
            ),
        }
    };
    let (total, page) = match (&filter, total) {
        (Some(f), usize::MAX) => {
            let hits: Vec<Arc<str>> = page
                .into_iter()
                .filter(|json| match serde_json::from_str::<Value>(json) {
                    Ok(Value::Object(user)) => f.matches(&user),
                    _ => false,
                })
                .collect();
            (hits.len(), window(hits, q.start_index, q.count))
        }
        _ => (total, page),
    };
    let page: Vec<String> = page.iter().map(|j| shown(j, &q.excluded)).collect();
    Ok(respond::list(
        sim.shown_total(total, page.len()),
        q.start_index,
        q.count,
        &page,
    ))
}

fn window<T>(items: Vec<T>, start_index: usize, count: usize) -> Vec<T> {
    items
        .into_iter()
        .skip(start_index - 1)
        .take(count)
        .collect()
}

/// `POST /Users` — create-a-user, scope `scim.users.createUsers`: 201 with the user, 409 when the
/// userName exists.
pub(crate) async fn create(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    answer(create_user(&sim, &headers, raw.as_deref(), &body))
}

fn create_user(sim: &Simulator, headers: &HeaderMap, raw: Option<&str>, body: &[u8]) -> Answer {
    admit(sim, headers, Bucket::UsersReadWrite, Scope::CreateUsers)?;
    let user = user_model::from_request(respond::body_json(body)?, !sim.config().saml)?;
    let user_name = user_model::user_name_lc(&user);
    let active = user_model::is_active(&user);
    let mut store = sim.write();
    if store.user_id_by_name(&user_name).is_some() {
        return Err(ScimError::conflict());
    }
    let id = store.new_user_id();
    let stamp = now();
    let provider = if sim.config().saml { "saml" } else { "local" };
    let json = user_model::finish(
        user,
        &Assigned {
            id: &id,
            created: &stamp,
            last_modified: &stamp,
            provider,
        },
    );
    // A user created with active=false is removed at once: Ironclad has no inactive users.
    if active {
        store.put_user_indexed(id.clone(), user_name, json.clone());
    }
    drop(store);
    let mut response = respond::json(
        StatusCode::CREATED,
        shown(&json, &respond::excluded_from_query(raw)),
    );
    // RFC 7644 §3.3: a 201 carries the new resource's URI in Location.
    if let Ok(location) = HeaderValue::from_str(&format!("{SCIM_BASE}/Users/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET /Users/{userId}` — retrieve-a-user; 404 "Resource <id> not found".
pub(crate) async fn fetch(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    answer(fetch_user(&sim, &headers, &id, raw.as_deref()))
}

fn fetch_user(sim: &Simulator, headers: &HeaderMap, id: &str, raw: Option<&str>) -> Answer {
    admit(sim, headers, Bucket::UsersReadWrite, Scope::ReadUsers)?;
    let json = sim
        .read()
        .users
        .get(id)
        .map(|u| u.json.clone())
        .ok_or_else(|| ScimError::not_found(id))?;
    Ok(respond::json(
        StatusCode::OK,
        shown(&json, &respond::excluded_from_query(raw)),
    ))
}

/// The stored parts a replace or patch must keep: creation time and sign-in provider.
fn kept(old: &Value) -> (String, String) {
    let created = old["meta"]["created"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let provider = old[IRONCLAD_URN]["provider"]
        .as_str()
        .unwrap_or("local")
        .to_owned();
    (created, provider)
}

/// Stores the new version of user `id` (or removes it when inactive) and answers 200 with it.
fn commit(
    sim: &Simulator,
    id: &str,
    user: Map<String, Value>,
    old: &Value,
    raw: Option<&str>,
) -> Answer {
    user_model::validate(&user)?;
    let user_name = user_model::user_name_lc(&user);
    let active = user_model::is_active(&user);
    let (created, provider) = kept(old);
    let mut store = sim.write();
    // Deleted by a concurrent request since it was read.
    if !store.users.contains(id) {
        return Err(ScimError::not_found(id));
    }
    // The SCIM OpenAPI gives userName `uniqueness: server` and `mutability: readWrite`: it may
    // change, but not to another user's name (409, like a create).
    if store
        .user_id_by_name(&user_name)
        .is_some_and(|other| &*other != id)
    {
        return Err(ScimError::conflict());
    }
    let stamp = now();
    let json = user_model::finish(
        user,
        &Assigned {
            id,
            created: &created,
            last_modified: &stamp,
            provider: &provider,
        },
    );
    if active {
        store.put_user_indexed(Arc::from(id), user_name, json.clone());
    } else {
        // "a SCIM User with active set to `false` will be removed from the company. On
        // subsequent reads, inactive users would be not found." The answer still shows the
        // user as sent (PATCH documents 200 with the user, and no 204).
        store.delete_user(id);
    }
    drop(store);
    Ok(respond::json(
        StatusCode::OK,
        shown(&json, &respond::excluded_from_query(raw)),
    ))
}

fn current(sim: &Simulator, id: &str) -> Result<Value, ScimError> {
    sim.read()
        .users
        .get(id)
        .map(|u| u.value())
        .ok_or_else(|| ScimError::not_found(id))
}

/// `PUT /Users/{userId}` — replace-a-user, scope `scim.users.updateUsers`.
// The body is the documented UserCreateRequestBody. Its password is checked against the policy
// when sent but not required: a replace cannot be expected to know the current password.
pub(crate) async fn replace(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    answer(replace_user(&sim, &headers, &id, raw.as_deref(), &body))
}

fn replace_user(
    sim: &Simulator,
    headers: &HeaderMap,
    id: &str,
    raw: Option<&str>,
    body: &[u8],
) -> Answer {
    admit(sim, headers, Bucket::UsersReadWrite, Scope::UpdateUsers)?;
    let user = user_model::from_request(respond::body_json(body)?, false)?;
    let old = current(sim, id)?;
    commit(sim, id, user, &old, raw)
}

/// `PATCH /Users/{userId}` — update-user-data, scope `scim.users.updateUsers`, counted against
/// the 50/min PATCH/DELETE limit.
pub(crate) async fn patch(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    answer(patch_user(&sim, &headers, &id, raw.as_deref(), &body))
}

fn patch_user(
    sim: &Simulator,
    headers: &HeaderMap,
    id: &str,
    raw: Option<&str>,
    body: &[u8],
) -> Answer {
    admit(sim, headers, Bucket::UsersPatchDelete, Scope::UpdateUsers)?;
    let operations = patch::operations(&respond::body_json(body)?)?;
    let old = current(sim, id)?;
    let mut user = old.as_object().cloned().unwrap_or_default();
    for op in &operations {
        patch::apply_user(&mut user, op)?;
    }
    for server_owned in ["schemas", "id", "meta"] {
        user.remove(server_owned);
    }
    commit(sim, id, user, &old, raw)
}

/// `DELETE /Users/{userId}` — delete-a-user, scope `scim.users.deleteUsers`: 204, and the user
/// leaves every group.
// The docs add that the user's active workflows are reassigned to the admin group's default
// user; there are no workflows here.
pub(crate) async fn delete(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    answer(delete_user(&sim, &headers, &id))
}

fn delete_user(sim: &Simulator, headers: &HeaderMap, id: &str) -> Answer {
    admit(sim, headers, Bucket::UsersPatchDelete, Scope::DeleteUsers)?;
    if sim.write().delete_user(id) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ScimError::not_found(id))
    }
}
