//! The simulator handle: routes, shared state, and the inspection hooks tests use.

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::http::HeaderValue;
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Map, Value};
use sim_common::{Faults, RunningServer, fault_layer, unexpected_route};

use crate::guard::Limits;
use crate::oauth::Tokens;
use crate::store::{Store, timestamp};
use crate::user_model::{self, Assigned};
use crate::{SimConfig, dataset, groups, oauth, schema, users};

/// An in-memory Ironclad company behind Ironclad's SCIM 2.0 API and OAuth token endpoint.
///
/// Cheap to clone: clones share one company, so a test can keep a handle while the router serves.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    in_flight: InFlight,
    config: SimConfig,
    faults: Faults,
    store: RwLock<Store>,
    tokens: Mutex<Tokens>,
    limits: Option<Limits>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("users", &self.user_count())
            .field("groups", &self.group_count())
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Builds the seeded company; the same `config.seed` always gives the same users and groups.
    pub fn new(config: SimConfig) -> Self {
        let faults = Faults::new();
        faults.set_latency(config.latency);
        let store = dataset::build(&config);
        let limits = config.rate_limits.then(Limits::documented);
        Self {
            inner: Arc::new(Inner {
                in_flight: InFlight::default(),
                config,
                faults,
                store: RwLock::new(store),
                tokens: Mutex::new(Tokens::default()),
                limits,
            }),
        }
    }

    /// Every route at the real host's paths (`/oauth/token`, `/scim/v2/...`), behind
    /// `sim_common::fault_layer`; anything else answers 500 "unexpected METHOD PATH".
    pub fn router(&self) -> Router {
        Router::new()
            .route("/oauth/token", post(oauth::token))
            .route("/oauth/authorize", get(oauth::authorize))
            .route("/scim/v2/Users", get(users::list).post(users::create))
            .route(
                "/scim/v2/Users/{id}",
                get(users::fetch)
                    .put(users::replace)
                    .patch(users::patch)
                    .delete(users::delete),
            )
            .route("/scim/v2/Groups", get(groups::list).post(groups::create))
            .route(
                "/scim/v2/Groups/{id}",
                get(groups::fetch)
                    .put(groups::replace)
                    .patch(groups::patch)
                    .delete(groups::delete),
            )
            .route("/scim/v2/Schemas", get(schema::list))
            .route("/scim/v2/Schemas/{id}", get(schema::fetch))
            // ServiceProviderConfig and ResourceTypes are not documented by Ironclad, so they
            // fall through to the loud 500 like any other unknown route.
            .fallback(unexpected_route)
            .method_not_allowed_fallback(unexpected_route)
            .with_state(self.clone())
            .layer(from_fn_with_state(self.inner.faults.clone(), fault_layer))
            // Outside the fault layer, so a request counts while its injected latency runs.
            .layer(from_fn_with_state(self.clone(), count_in_flight))
            // Outermost, so scripted faults carry it too.
            .layer(map_response(request_id))
    }

    /// Serves [`Simulator::router`] on `127.0.0.1:port` (`0` picks a free port).
    pub async fn serve(&self, port: u16) -> std::io::Result<RunningServer> {
        sim_common::serve(self.router(), port).await
    }

    /// Latency, scripted faults and the request log.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The configuration the company was built from.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Users in the company now.
    pub fn user_count(&self) -> usize {
        self.read().users.len()
    }

    /// Groups in the company now.
    pub fn group_count(&self) -> usize {
        self.read().groups.len()
    }

    /// The user with this userName (case-insensitive), as the API returns it.
    pub fn user_by_username(&self, user_name: &str) -> Option<Value> {
        let store = self.read();
        let id = store.user_id_by_name(user_name)?;
        store.users.get(&id).map(|u| u.value())
    }

    /// The user with this id, as the API returns it.
    pub fn user(&self, id: &str) -> Option<Value> {
        self.read().users.get(id).map(|u| u.value())
    }

    /// The group with this id, as the API returns it.
    pub fn group(&self, id: &str) -> Option<Value> {
        self.read()
            .groups
            .get(id)
            .and_then(|g| serde_json::from_str(&g.json()).ok())
    }

    /// Member user ids of a group, in the order they were added (empty for an unknown group).
    pub fn group_members(&self, group_id: &str) -> Vec<String> {
        self.read()
            .groups
            .get(group_id)
            .map(|g| g.members.iter().map(|m| m.to_string()).collect())
            .unwrap_or_default()
    }

    /// Adds a user as if created in Ironclad's UI: no validation, no rate limit, no token.
    ///
    /// Keeps every attribute given (custom ones included), fills in `schemas`, `id` (the given
    /// one when it is free), `emails` and `meta`. If the userName is already taken, that user is
    /// replaced in place and keeps its id, so seeding the same user twice is harmless.
    pub fn insert_user(&self, scim_user: Value) -> String {
        let mut user: Map<String, Value> = match scim_user {
            Value::Object(o) => o,
            _ => Map::new(),
        };
        let wanted_id = user
            .remove("id")
            .and_then(|v| v.as_str().map(str::to_owned));
        user.remove("meta");
        user.remove("schemas");
        user.remove("password");
        let mut store = self.write();
        if !user.get("userName").is_some_and(Value::is_string) {
            let n = store.users.len() + 1;
            user.insert(
                "userName".into(),
                Value::from(format!("inserted.user{n}@example.com")),
            );
        }
        if !user.contains_key("emails") {
            let user_name = user.get("userName").cloned().unwrap_or(Value::Null);
            user.insert(
                "emails".into(),
                serde_json::json!([{"value": user_name, "type": "work", "primary": true}]),
            );
        }
        user.entry("active").or_insert(Value::Bool(true));
        let user_name = user_model::user_name_lc(&user);
        let existing = store.user_id_by_name(&user_name);
        let id = match (existing, wanted_id) {
            (Some(id), _) => id,
            (None, Some(id)) if !store.users.contains(&id) => Arc::from(id),
            (None, _) => store.new_user_id(),
        };
        let now = timestamp(time::OffsetDateTime::now_utc());
        let provider = if self.config().saml { "saml" } else { "local" };
        let json = user_model::finish(
            user,
            &Assigned {
                id: &id,
                created: &now,
                last_modified: &now,
                provider,
            },
        );
        store.put_user_indexed(id.clone(), user_name, json);
        id.to_string()
    }

    /// Deletes a user (and its group memberships) out of band; false if there was none.
    pub fn remove_user(&self, id: &str) -> bool {
        self.write().delete_user(id)
    }

    /// Every access token issued so far now answers 401 "token has expired". The legacy bearer
    /// token and refresh tokens keep working, so a client can recover by refreshing.
    pub fn expire_tokens(&self) {
        self.tokens().expire_all();
    }

    /// Revokes every token (access, refresh and the legacy one) and refuses the client's
    /// credentials with 401 invalid_client until [`Simulator::restore_credentials`].
    pub fn revoke_tokens(&self) {
        self.tokens().revoke_all();
    }

    /// Accepts the client's credentials (and the legacy token) again after
    /// [`Simulator::revoke_tokens`]. Tokens revoked before stay revoked.
    pub fn restore_credentials(&self) {
        self.tokens().restore();
    }

    /// Makes client-credentials answers carry a `refresh_token` (on) or not (off, the default).
    ///
    /// Ironclad's `ClientCredentialsGrantTokenResponse` documents no refresh token; only the
    /// authorization-code grant's answer does. This switch lets tests drive the
    /// `grant_type=refresh_token` path without simulating `/authorize`.
    pub fn set_issue_refresh_tokens(&self, on: bool) {
        self.tokens().issue_refresh_tokens = on;
    }

    /// Makes every refresh answer a new refresh token and retire the one used (off by default).
    pub fn set_rotate_refresh_tokens(&self, on: bool) {
        self.tokens().rotate_refresh_tokens = on;
    }

    /// Refresh tokens issued so far, oldest first.
    pub fn refresh_tokens_issued(&self) -> Vec<String> {
        self.tokens().refresh_issued.clone()
    }

    /// User ids in creation order (the order of `startIndex`).
    pub fn user_ids(&self) -> Vec<String> {
        self.read().users.iter().map(|u| u.id.to_string()).collect()
    }

    /// Group ids in creation order.
    pub fn group_ids(&self) -> Vec<String> {
        self.read()
            .groups
            .iter()
            .map(|g| g.id.to_string())
            .collect()
    }

    /// The most `GET /scim/v2/{collection}` list requests (`Users` or `Groups`) that were
    /// in flight at once since the simulator started (or [`Simulator::reset_in_flight`]).
    pub fn max_in_flight(&self, collection: &str) -> usize {
        self.inner.in_flight.max(collection)
    }

    /// Starts counting [`Simulator::max_in_flight`] afresh.
    pub fn reset_in_flight(&self) {
        self.inner.in_flight.reset();
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.inner.store.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Store> {
        self.inner.store.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn tokens(&self) -> MutexGuard<'_, Tokens> {
        self.inner.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn limits(&self) -> Option<&Limits> {
        self.inner.limits.as_ref()
    }

    /// `totalResults` as the configured [`crate::TotalResults`] has it.
    pub(crate) fn shown_total(&self, total: usize, on_page: usize) -> Option<usize> {
        match self.config().total_results {
            crate::TotalResults::Exact => Some(total),
            crate::TotalResults::Omitted => None,
            crate::TotalResults::PageSize => Some(on_page),
        }
    }
}

/// List requests in flight per collection, and the most there ever were at once: how a test
/// sees that a client's concurrency stays within what it allows.
#[derive(Debug, Default)]
struct InFlight {
    counts: Mutex<std::collections::HashMap<String, (usize, usize)>>,
}

impl InFlight {
    fn enter(&self, collection: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let entry = counts.entry(collection.to_owned()).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(entry.0);
    }

    fn leave(&self, collection: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(entry) = counts.get_mut(collection) {
            entry.0 = entry.0.saturating_sub(1);
        }
    }

    fn max(&self, collection: &str) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(collection).map_or(0, |c| c.1)
    }

    fn reset(&self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        for entry in counts.values_mut() {
            entry.1 = entry.0;
        }
    }
}

/// Counts `GET /scim/v2/Users` and `/Groups` list requests while they are served.
async fn count_in_flight(
    axum::extract::State(sim): axum::extract::State<Simulator>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let collection = (request.method() == axum::http::Method::GET)
        .then(|| {
            request
                .uri()
                .path()
                .strip_prefix("/scim/v2/")
                .filter(|c| *c == "Users" || *c == "Groups")
                .map(str::to_owned)
        })
        .flatten();
    let Some(collection) = collection else {
        return next.run(request).await;
    };
    /// Leaves on drop too: a request the client gave up on is no longer in flight.
    struct Leave(Simulator, String);
    impl Drop for Leave {
        fn drop(&mut self) {
            self.0.inner.in_flight.leave(&self.1);
        }
    }
    sim.inner.in_flight.enter(&collection);
    let _leave = Leave(sim, collection);
    next.run(request).await
}

/// Every response carries `x-ironclad-requestid` (a fresh UUID).
async fn request_id(mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert("x-ironclad-requestid", value);
    }
    response
}
