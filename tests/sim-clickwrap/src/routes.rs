//! The `/v1.1` list and read handlers.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Simulator;
use crate::error::ApiError;
use crate::listing::{self, MembershipRecord};
use crate::query::{Clause, ListQuery, Op, Params, SortKey};
use crate::store::Store;

/// `GET /v1.1/sites`, "List all sites" (reference/get_sites). Parameters: page, per_page, expand,
/// filter, sort, fields, no_count, lean.
pub(crate) async fn list_sites(State(sim): State<Simulator>, RawQuery(raw): RawQuery) -> Response {
    let q = match ListQuery::parse(raw.as_deref(), Params { extras: true }) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let body = sim.read(|store| {
        let ids: Vec<u64> = store.sites.iter().map(|s| s.id).collect();
        listing::page(&q, &ids, None, |id| store.site(id))
    });
    Json(body).into_response()
}

/// `GET /v1.1/sites/{site_id}`, "Retrieve a Site" (reference/retrieve-a-site-1): `{"data": SITE}`,
/// or 404 "Not found.".
pub(crate) async fn get_site(
    State(sim): State<Simulator>,
    Path(site_id): Path<String>,
) -> Response {
    let site = parse_id(&site_id).and_then(|id| sim.read(|s| s.site(id).map(|x| x.to_json())));
    match site {
        Some(site) => Json(json!({ "data": site })).into_response(),
        None => ApiError::not_found(format!("no site `{site_id}`")).into_response(),
    }
}

/// `GET /v1.1/accounts/{account_id}/members`, "List all User Memberships" (operationId
/// `retrieve-user-memberships-for-an-account`): `data[]` are flat user objects. Parameters: page,
/// per_page, expand, filter, sort, no_count, fields, lean.
///
/// [UNVERIFIED] An account id other than the simulated one answers 404, not 403: the simulated
/// token belongs to one account, and from its point of view another account does not exist
/// (answering 403 would confirm that the id exists).
pub(crate) async fn list_members(
    State(sim): State<Simulator>,
    Path(account_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if parse_id(&account_id) != Some(sim.config().account_id) {
        return ApiError::not_found(format!("no account `{account_id}`")).into_response();
    }
    let mut q = match ListQuery::parse(raw.as_deref(), Params { extras: true }) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    // The reference page documents `sort` ("Sort the results of your call by a field in the
    // Request") and no default order. [UNVERIFIED] the real default: this simulator answers an
    // unsorted request most recently changed first (`profiles[].updated_time`, descending), an
    // order that moves as users change, so a client that pages without `sort` sees users shift
    // between its pages as it may on the real service.
    if q.sort.is_empty() {
        q.sort = vec![SortKey {
            path: "profiles.updated_time".to_owned(),
            descending: true,
        }];
    }
    let body = sim.read(|store| {
        let hint = email_hint(store, &q.filter, "email");
        listing::page(&q, &store.members, hint, |id| store.active_user(id))
    });
    Json(body).into_response()
}

/// `GET /v1.1/sites/{site_id}/memberships`, "List all Site Memberships" ("Site Memberships
/// includes the permissions of the user on the Site"; reference/list-all-site-memberships-1).
/// Parameters: page, per_page, expand, filter. Ordered by user id.
pub(crate) async fn list_memberships(
    State(sim): State<Simulator>,
    Path(site_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let q = match ListQuery::parse(raw.as_deref(), Params { extras: false }) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let body = parse_id(&site_id).and_then(|site| {
        sim.read(|store| {
            let roster = store.rosters.get(&site)?;
            let hint = email_hint(store, &q.filter, "user.email");
            let account = store.account_id;
            Some(listing::page(&q, &roster.order, hint, |uid| {
                Some(MembershipRecord {
                    membership: roster.by_user.get(&uid)?,
                    user: store.active_user(uid)?,
                    account,
                })
            }))
        })
    });
    match body {
        Some(body) => Json(body).into_response(),
        None => ApiError::not_found(format!("no site `{site_id}`")).into_response(),
    }
}

/// Path ids are integers (`"type": "integer"` in every reference page). [UNVERIFIED] a non-integer
/// answers 404, as an id that matches nothing.
fn parse_id(raw: &str) -> Option<u64> {
    raw.parse().ok()
}

/// For `email==x`, the one candidate from the email index instead of a scan.
fn email_hint(store: &Store, filter: &[Clause], path: &str) -> Option<Vec<u64>> {
    filter
        .iter()
        .find(|c| c.op == Op::Eq && c.path == path)
        .map(|c| {
            store
                .by_email
                .get(&c.literal.to_lowercase())
                .map(|&id| vec![id])
                .unwrap_or_default()
        })
}
