//! The [`Simulator`]: the axum router over both origins, and the handles tests use to inspect
//! and change the tenant.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Bytes, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::Value;
use sim_common::{Faults, RunningServer, fault_layer, unexpected_route};

use crate::auth::{self, origin};
use crate::batch;
use crate::config::SimConfig;
use crate::dataset;
use crate::directory::Rel;
use crate::ids::{ObjKind, ObjRef};
use crate::query::{Headers, Query};
use crate::render::{self, Select};
use crate::reply::{Reply, error};
use crate::routes::{self, BodyIn, Call};
use crate::state::Shared;

/// Largest request body accepted (Graph's own limit for JSON batches is 4 MB).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// Relationship and object counts of the simulated tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Live users.
    pub users: usize,
    /// Service principals of type `ManagedIdentity`.
    pub managed_identities: usize,
    /// Groups.
    pub groups: usize,
    /// Group -> member edges.
    pub memberships: usize,
    /// Group -> owner edges.
    pub owners: usize,
    /// Service principals of type `Application`.
    pub apps: usize,
    /// Live app role assignments.
    pub app_role_assignments: usize,
    /// Service principal -> owner edges.
    pub app_owners: usize,
    /// Activated directory roles.
    pub roles: usize,
    /// Live directory role assignments.
    pub role_assignments: usize,
}

/// An in-memory Microsoft Graph v1.0 tenant plus its token endpoint. Cheap to clone: clones
/// share one tenant.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

async fn token_route(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default();
    let mut tokens = shared.tokens();
    auth::token_response(
        &shared.config,
        &mut tokens,
        &tenant,
        &headers,
        &body,
        &stamp,
        Instant::now(),
    )
}

async fn device_code_route(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default();
    let mut tokens = shared.tokens();
    auth::device_authorization(
        &shared.config,
        &mut tokens,
        &tenant,
        &body,
        &stamp,
        Instant::now(),
    )
}

async fn graph_route(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let headers = Headers(
        parts
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
    );
    let origin = origin(&parts.headers);
    let path = parts.uri.path();
    let path = path.strip_prefix("/v1.0").unwrap_or(path);
    let query = parts.uri.query().unwrap_or_default();
    shared
        .graph_call(&parts.method, path, query, &headers, &bytes, &origin)
        .into_response()
}

impl Shared {
    /// Authenticates, then answers one top-level Graph request.
    fn graph_call(
        &self,
        method: &axum::http::Method,
        path: &str,
        query: &str,
        headers: &Headers,
        bytes: &[u8],
        origin: &str,
    ) -> Reply {
        let request_id = self.request_id();
        let client_id = headers
            .get("client-request-id")
            .unwrap_or(&request_id)
            .to_owned();
        let date = self.date();
        if let Err(problem) = self
            .tokens()
            .check(headers.get("authorization"), Instant::now())
        {
            return error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                problem.message(),
            )
            .with_header(
                "WWW-Authenticate",
                format!(
                    "Bearer realm=\"\", authorization_uri=\"{origin}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\""
                ),
            )
            .stamp(&request_id, &client_id, &date);
        }
        if routes::target(path) == Some(routes::Target::Batch) {
            if *method != axum::http::Method::POST {
                return error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Request_BadRequest",
                    "Specified HTTP method is not allowed for the request target.",
                )
                .stamp(&request_id, &client_id, &date);
            }
            return batch::run(self, origin, bytes).stamp(&request_id, &client_id, &date);
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            BodyIn::None
        } else {
            serde_json::from_slice::<Value>(bytes).map_or(BodyIn::Invalid, BodyIn::Json)
        };
        let call = Call {
            method,
            path,
            query: Query::parse(query),
            headers,
            body: &body,
            origin,
        };
        routes::handle(self, &call).stamp(&request_id, &client_id, &date)
    }
}

impl Simulator {
    /// Builds the tenant `config` describes (deterministic from `config.seed`).
    pub fn new(config: SimConfig) -> Self {
        let dir = dataset::generate(&config);
        Self {
            shared: Arc::new(Shared::new(config, dir)),
        }
    }

    /// Both origins on one router: `POST /{tenant}/oauth2/v2.0/token` and `/v1.0/...`, behind
    /// [`fault_layer`], with [`unexpected_route`] for anything else.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token_route))
            .route("/{tenant}/oauth2/v2.0/devicecode", post(device_code_route))
            .route("/v1.0/{*rest}", any(graph_route))
            .fallback(unexpected_route)
            .with_state(self.shared.clone())
            .layer(axum::middleware::from_fn_with_state(
                self.shared.faults.clone(),
                fault_layer,
            ))
    }

    /// Serves [`Self::router`] on `127.0.0.1:port` (`0` picks a free port).
    pub async fn serve(&self, port: u16) -> std::io::Result<RunningServer> {
        sim_common::serve(self.router(), port).await
    }

    /// Latency, scripted faults and the request log.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The user signs in with `user_code` and approves (`true`) or declines (`false`): what a
    /// person does at the verification page. Returns whether the code was pending.
    pub fn answer_device_code(&self, user_code: &str, approve: bool) -> bool {
        let mut tokens = self.shared.tokens();
        let Some(device) = tokens
            .device_codes
            .values_mut()
            .find(|d| d.user_code == user_code && d.state == auth::DeviceState::Pending)
        else {
            return false;
        };
        device.state = if approve {
            auth::DeviceState::Approved
        } else {
            auth::DeviceState::Declined
        };
        true
    }

    /// Answers the next `n` device-code polls with `slow_down`.
    pub fn slow_down_polls(&self, n: u32) {
        self.shared.tokens().slow_downs = n;
    }

    /// Retires each refresh token once it is used (see [`crate::SimConfig`]; off by default).
    pub fn set_retire_used_refresh_tokens(&self, on: bool) {
        self.shared.tokens().retire_used_refresh_tokens = on;
    }

    /// Refresh tokens issued so far, oldest first.
    pub fn refresh_tokens_issued(&self) -> Vec<String> {
        self.shared.tokens().refresh_issued.clone()
    }

    /// The last client assertion the token endpoint accepted, to show a replay is refused.
    pub fn last_client_assertion(&self) -> Option<String> {
        self.shared.tokens().last_assertion.clone()
    }

    /// The configuration the tenant was built from.
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// Object and relationship counts right now.
    pub fn counts(&self) -> Counts {
        self.shared.inspect(|dir| {
            let managed_identities = (0..dir.sps.len() as u32)
                .filter(|s| !dir.is_app(*s))
                .count();
            Counts {
                users: dir.users.iter().filter(|u| !u.removed).count(),
                managed_identities,
                groups: dir.groups.len(),
                memberships: dir.groups.iter().map(|g| g.members.len()).sum(),
                owners: dir.groups.iter().map(|g| g.owners.len()).sum(),
                apps: dir.apps as usize,
                app_role_assignments: dir.app_assignments.iter().filter(|a| !a.removed).count(),
                app_owners: dir.sps.iter().map(|s| s.owners.len()).sum(),
                roles: dir.roles.iter().filter(|r| **r).count(),
                role_assignments: dir.live_role_assignments().count(),
            }
        })
    }

    fn links(&self, group_id: &str, rel: Rel) -> Vec<String> {
        self.shared
            .inspect(|dir| match dir.resolve_kind(group_id, ObjKind::Group) {
                Some(g) => dir.links(rel, g).iter().map(|o| dir.id(*o)).collect(),
                None => Vec::new(),
            })
    }

    /// Ids of the group's direct members (users, groups, service principals); empty if unknown.
    pub fn group_members(&self, group_id: &str) -> Vec<String> {
        self.links(group_id, Rel::Members)
    }

    /// Ids of the group's owners.
    pub fn group_owners(&self, group_id: &str) -> Vec<String> {
        self.links(group_id, Rel::Owners)
    }

    /// The appRoleAssignments granted on resource service principal `sp_id`, as Graph
    /// renders them.
    pub fn app_role_assignments(&self, sp_id: &str) -> Vec<Value> {
        self.shared.inspect(
            |dir| match dir.resolve_kind(sp_id, ObjKind::ServicePrincipal) {
                Some(sp) => dir
                    .assignments_to(sp)
                    .map(|a| render::app_assignment(dir, a, &Select::Default))
                    .collect(),
                None => Vec::new(),
            },
        )
    }

    /// Ids of the service principal's owners.
    pub fn app_owners(&self, sp_id: &str) -> Vec<String> {
        self.shared.inspect(
            |dir| match dir.resolve_kind(sp_id, ObjKind::ServicePrincipal) {
                Some(sp) => dir.sps[sp as usize]
                    .owners
                    .iter()
                    .map(|o| dir.id(*o))
                    .collect(),
                None => Vec::new(),
            },
        )
    }

    /// Every live unifiedRoleAssignment, as Graph renders them.
    pub fn role_assignments(&self) -> Vec<Value> {
        self.shared.inspect(|dir| {
            dir.live_role_assignments()
                .map(|a| render::role_assignment(dir, a, &Select::Default, false))
                .collect()
        })
    }

    /// Live user ids, in listing order.
    pub fn user_ids(&self) -> Vec<String> {
        self.shared.inspect(|dir| {
            (0..dir.users.len() as u32)
                .filter(|i| !dir.users[*i as usize].removed)
                .map(|i| dir.id(ObjRef::user(i)))
                .collect()
        })
    }

    /// Group ids, in listing order. Group 0 is always a cloud-managed security group; every
    /// tenth group from index 7 is dynamic and every twentieth from 13 is on-premises synced
    /// (their members cannot be changed through Graph).
    pub fn group_ids(&self) -> Vec<String> {
        self.shared.inspect(|dir| {
            (0..dir.groups.len() as u32)
                .map(|g| dir.id(ObjRef::group(g)))
                .collect()
        })
    }

    /// Ids of the enterprise apps' service principals (type `Application`).
    pub fn app_ids(&self) -> Vec<String> {
        self.shared
            .inspect(|dir| (0..dir.apps).map(|s| dir.id(ObjRef::sp(s))).collect())
    }

    /// Ids of the managed identities' service principals (type `ManagedIdentity`).
    pub fn managed_identity_ids(&self) -> Vec<String> {
        self.shared.inspect(|dir| {
            (dir.apps..dir.sps.len() as u32)
                .map(|s| dir.id(ObjRef::sp(s)))
                .collect()
        })
    }

    /// Object ids of the activated directoryRoles.
    pub fn role_ids(&self) -> Vec<String> {
        self.shared.inspect(|dir| {
            (0..dir.roles.len() as u32)
                .filter(|r| dir.roles[*r as usize])
                .map(|r| dir.directory_role_id(r))
                .collect()
        })
    }

    /// Role definition ids (= template ids for built-in roles) of the activated roles, in the
    /// order of [`Self::role_ids`]: what `roleDefinitionId` takes.
    pub fn role_definition_ids(&self) -> Vec<String> {
        self.shared.inspect(|dir| {
            (0..dir.roles.len() as u32)
                .filter(|r| dir.roles[*r as usize])
                .map(|r| dir.role_definition_id(r))
                .collect()
        })
    }

    /// The kind of group `group_id` is: `security`, `microsoft_365`, `dynamic` (a dynamic
    /// security group), `on_premises` (synchronized from Active Directory),
    /// `mail_enabled_security` or `distribution`; `None` if unknown.
    pub fn group_kind(&self, group_id: &str) -> Option<&'static str> {
        use crate::profile::GroupFlavor as F;
        let g = self
            .shared
            .inspect(|dir| dir.resolve_kind(group_id, ObjKind::Group))?;
        Some(match F::of(g) {
            F::Security => "security",
            F::Unified => "microsoft_365",
            F::Dynamic => "dynamic",
            F::OnPremSynced => "on_premises",
            F::MailEnabledSecurity => "mail_enabled_security",
            F::Distribution => "distribution",
        })
    }

    /// Ids of the administrative units (the non-tenant scopes of role assignments).
    pub fn administrative_unit_ids(&self) -> Vec<String> {
        self.shared
            .inspect(|dir| (0..dir.admin_units).map(|a| dir.admin_unit_id(a)).collect())
    }

    /// Assigns the role with definition (template) id `role_definition_id` to `principal_id`
    /// at `scope` (`/`, `/administrativeUnits/{id}`), as an admin would in the portal. `false`
    /// if an id or the scope is unknown, or the assignment exists.
    pub fn assign_role(&self, principal_id: &str, role_definition_id: &str, scope: &str) -> bool {
        self.shared.mutate(|dir| {
            match (
                dir.resolve(principal_id),
                dir.resolve_role_definition(role_definition_id),
            ) {
                (Some(p), Some(r)) if dir.valid_scope(scope) => {
                    dir.add_role_assignment(p, r, scope).is_ok()
                }
                _ => false,
            }
        })
    }

    /// Creates a member user with this display name, as an admin would; returns its id.
    pub fn add_user(&self, display_name: &str) -> String {
        self.shared.mutate(|dir| {
            let obj = dir.add_user(display_name);
            dir.id(obj)
        })
    }

    /// Deletes a user (soft delete: delta reports `"@removed": {"reason": "changed"}`) and its
    /// memberships, ownerships and assignments. `false` if there was no such user.
    pub fn remove_user(&self, id: &str) -> bool {
        self.shared
            .mutate(|dir| match dir.resolve_kind(id, ObjKind::User) {
                Some(i) => dir.remove_user(i),
                None => false,
            })
    }

    /// Adds a member to any group (dynamic ones included: this models a change made outside
    /// Graph). `false` if either object is unknown or it is already a member.
    pub fn add_member(&self, group_id: &str, member_id: &str) -> bool {
        self.shared.mutate(|dir| {
            match (
                dir.resolve_kind(group_id, ObjKind::Group),
                dir.resolve(member_id),
            ) {
                (Some(g), Some(m)) => dir.add_link(Rel::Members, g, m).is_ok(),
                _ => false,
            }
        })
    }

    /// Removes a member from any group. `false` if it was not a member.
    pub fn remove_member(&self, group_id: &str, member_id: &str) -> bool {
        self.shared.mutate(|dir| {
            match (
                dir.resolve_kind(group_id, ObjKind::Group),
                dir.resolve(member_id),
            ) {
                (Some(g), Some(m)) => dir.remove_link(Rel::Members, g, m).is_ok(),
                _ => false,
            }
        })
    }

    /// Every deltaLink issued so far now answers 400 `syncStateNotFound`
    /// (delta-query-overview.md, "Token duration").
    pub fn expire_delta_links(&self) {
        self.shared.invalidate_delta_links(400, "syncStateNotFound");
    }

    /// Every deltaLink issued so far now answers `status` with Graph error `code`: the
    /// 40X-series answers delta-query-overview.md ("Token duration": "a 40X-series error with
    /// error codes such as syncStateNotFound") and errors.md (`syncStateNotFound`,
    /// `syncStateInvalid`, `resyncRequired`) describe. A 410 also carries the `Location` header
    /// of "Synchronization reset".
    pub fn expire_delta_links_with(&self, status: u16, code: &str) {
        self.shared.invalidate_delta_links(status, code);
    }

    /// Every deltaLink issued so far now answers 410 Gone, code `resyncRequired`, with a
    /// `Location` header holding an empty `$deltatoken` (delta-query-overview.md,
    /// "Synchronization reset").
    pub fn reset_delta_sync(&self) {
        self.shared.invalidate_delta_links(410, "resyncRequired");
    }

    /// Every access token issued so far is now expired (401 `InvalidAuthenticationToken`).
    pub fn expire_tokens(&self) {
        self.shared.tokens().expire_all(Instant::now());
    }
}
