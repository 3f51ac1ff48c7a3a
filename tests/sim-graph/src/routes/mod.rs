//! One Graph call, routed: the same code answers a top-level request and a `$batch` inner
//! request, so both get identical semantics, throttling included.

mod delta;
mod lists;
mod writes;

use std::time::Instant;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use crate::directory::Rel;
use crate::query::{Headers, Query, parse_top};
use crate::reply::{Reply, error, unexpected};
use crate::state::Shared;
use crate::throttle::{Cost, Verdict};

/// A request body as received.
#[derive(Debug, Clone)]
pub(crate) enum BodyIn {
    None,
    Json(Value),
    Invalid,
}

/// One call against `/v1.0`.
pub(crate) struct Call<'a> {
    pub(crate) method: &'a Method,
    /// Path below `/v1.0`, starting with `/`.
    pub(crate) path: &'a str,
    pub(crate) query: Query,
    pub(crate) headers: &'a Headers,
    pub(crate) body: &'a BodyIn,
    /// `http://host`, for absolute links.
    pub(crate) origin: &'a str,
}

/// The resource a path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Users,
    UsersDelta,
    UsersCount,
    User(String),
    Groups,
    GroupsDelta,
    GroupsCount,
    Group(String),
    GroupRel(String, Rel),
    GroupRelRef(String, Rel),
    GroupRelItemRef(String, Rel, String),
    Sps,
    SpsCount,
    Sp(String),
    SpAssignedTo(String),
    SpAssignment(String, String),
    SpOwners(String),
    /// `servicePrincipals/{id}/memberOf` (serviceprincipal-list-memberof.md).
    SpMemberOf(String),
    /// `servicePrincipals/{id}/ownedObjects` (serviceprincipal-list-ownedobjects.md).
    SpOwnedObjects(String),
    /// `{users|groups|servicePrincipals}/{id}/appRoleAssignments`: the assignments granted to
    /// a principal (user-list-approleassignments.md, group-list-approleassignments.md,
    /// serviceprincipal-list-approleassignments.md).
    PrincipalAssignments(crate::ids::ObjKind, String),
    SpOwnersRef(String),
    SpOwnerRef(String, String),
    DirectoryRoles,
    DirectoryRole(String),
    DirectoryRoleMembers(String),
    DirectoryRoleMembersRef(String),
    DirectoryRoleMemberRef(String, String),
    RoleAssignments,
    RoleAssignment(String),
    RoleDefinitions,
    RoleDefinition(String),
    Batch,
}

fn decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("s={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn is_delta(s: &str) -> bool {
    matches!(
        s,
        "delta" | "delta()" | "microsoft.graph.delta" | "microsoft.graph.delta()"
    )
}

fn rel(s: &str) -> Option<Rel> {
    match s {
        "members" => Some(Rel::Members),
        "owners" => Some(Rel::Owners),
        _ => None,
    }
}

/// Maps a `/v1.0` path to the resource it names (`None`: not simulated).
pub(crate) fn target(path: &str) -> Option<Target> {
    let segs: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let own = |x: &str| x.to_owned();
    Some(match s.as_slice() {
        ["$batch"] => Target::Batch,
        ["users"] => Target::Users,
        ["users", d] if is_delta(d) => Target::UsersDelta,
        ["users", "$count"] => Target::UsersCount,
        ["users", id] => Target::User(own(id)),
        ["users", id, "appRoleAssignments"] => {
            Target::PrincipalAssignments(crate::ids::ObjKind::User, own(id))
        }
        ["groups"] => Target::Groups,
        ["groups", d] if is_delta(d) => Target::GroupsDelta,
        ["groups", "$count"] => Target::GroupsCount,
        ["groups", id] => Target::Group(own(id)),
        ["groups", id, "appRoleAssignments"] => {
            Target::PrincipalAssignments(crate::ids::ObjKind::Group, own(id))
        }
        ["groups", id, r] => Target::GroupRel(own(id), rel(r)?),
        ["groups", id, r, "$ref"] => Target::GroupRelRef(own(id), rel(r)?),
        ["groups", id, r, item, "$ref"] => Target::GroupRelItemRef(own(id), rel(r)?, own(item)),
        ["servicePrincipals"] => Target::Sps,
        ["servicePrincipals", "$count"] => Target::SpsCount,
        ["servicePrincipals", id] => Target::Sp(own(id)),
        ["servicePrincipals", id, "appRoleAssignedTo"] => Target::SpAssignedTo(own(id)),
        ["servicePrincipals", id, "appRoleAssignedTo", a] => Target::SpAssignment(own(id), own(a)),
        ["servicePrincipals", id, "owners"] => Target::SpOwners(own(id)),
        ["servicePrincipals", id, "memberOf"] => Target::SpMemberOf(own(id)),
        ["servicePrincipals", id, "ownedObjects"] => Target::SpOwnedObjects(own(id)),
        ["servicePrincipals", id, "appRoleAssignments"] => {
            Target::PrincipalAssignments(crate::ids::ObjKind::ServicePrincipal, own(id))
        }
        ["servicePrincipals", id, "owners", "$ref"] => Target::SpOwnersRef(own(id)),
        ["servicePrincipals", id, "owners", o, "$ref"] => Target::SpOwnerRef(own(id), own(o)),
        ["directoryRoles"] => Target::DirectoryRoles,
        ["directoryRoles", id] => Target::DirectoryRole(own(id)),
        ["directoryRoles", id, "members"] => Target::DirectoryRoleMembers(own(id)),
        ["directoryRoles", id, "members", "$ref"] => Target::DirectoryRoleMembersRef(own(id)),
        ["directoryRoles", id, "members", m, "$ref"] => {
            Target::DirectoryRoleMemberRef(own(id), own(m))
        }
        ["roleManagement", "directory", "roleAssignments"] => Target::RoleAssignments,
        ["roleManagement", "directory", "roleAssignments", id] => Target::RoleAssignment(own(id)),
        ["roleManagement", "directory", "roleDefinitions"] => Target::RoleDefinitions,
        ["roleManagement", "directory", "roleDefinitions", id] => Target::RoleDefinition(own(id)),
        _ => return None,
    })
}

/// The resource-unit cost of a call (concepts/throttling-limits.md).
fn cost(call: &Call, target: &Target) -> Cost {
    let get = *call.method == Method::GET;
    let group_rel = match target {
        Target::GroupRel(_, r) => Some(*r),
        _ => None,
    };
    let small_top = call
        .query
        .get("$top")
        .and_then(|t| parse_top(t).ok())
        .is_some_and(|t| t < 20);
    // throttling-limits.md lists GET `servicePrincipals/{id}/appRoleAssignments` at 2.
    let sp_assignments = matches!(
        target,
        Target::PrincipalAssignments(crate::ids::ObjKind::ServicePrincipal, _)
    );
    Cost::base(get, *target == Target::Users || sp_assignments, group_rel).adjusted(
        call.query.get("$select").is_some(),
        call.query.get("$expand").is_some(),
        small_top,
    )
}

/// graph json-batching.md example 4: a method a target does not support.
fn method_not_allowed() -> Reply {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Request_BadRequest",
        "Specified HTTP method is not allowed for the request target.",
    )
}

/// Charges the throttle, then answers the call. `$batch` is handled by the caller.
pub(crate) fn handle(shared: &Shared, call: &Call) -> Reply {
    let Some(target) = target(call.path) else {
        return unexpected(call.method.as_str(), &format!("/v1.0{}", call.path));
    };
    let cost = cost(call, &target);
    shared.count_call();
    let verdict = shared.throttle().charge(cost, Instant::now());
    let mut reply = match verdict {
        Verdict::Throttled {
            retry_after_secs,
            information,
            scope,
        } => {
            // throttling.md "Sample response" body; headers from throttling-limits.md
            // ("Throttled responses requests": `<Scope>/<Limit>/<ApplicationId>/<TenantId>`).
            let mut reply = error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Please retry again later.",
            )
            .with_header("Retry-After", retry_after_secs.to_string());
            if let Some(scope) = scope {
                reply = reply
                    .with_header(
                        "x-ms-throttle-scope",
                        format!(
                            "{scope}/{}/{}",
                            shared.config.client_id, shared.config.tenant_id
                        ),
                    )
                    .with_header("x-ms-throttle-information", information);
            }
            if let crate::reply::Body::Json(body) = &mut reply.body {
                body["error"]["innerError"] = serde_json::json!({"code": "429", "status": "429"});
            }
            return reply;
        }
        Verdict::Allowed { limit_percentage } => {
            let reply = dispatch(shared, call, &target);
            match limit_percentage {
                Some(p) => reply.with_header("x-ms-throttle-limit-percentage", format!("{p:.1}")),
                None => reply,
            }
        }
    };
    reply = reply.with_header("x-ms-resource-unit", cost.units.to_string());
    reply
}

fn dispatch(shared: &Shared, call: &Call, target: &Target) -> Reply {
    use Target as T;
    let m = call.method;
    let get = *m == Method::GET;
    let post = *m == Method::POST;
    let delete = *m == Method::DELETE;
    match target {
        T::Users if get => lists::users(shared, call),
        T::UsersDelta if get => delta::delta(shared, call, true),
        T::UsersCount | T::GroupsCount | T::SpsCount if get => lists::count(shared, call, target),
        T::User(id) if get => lists::user(shared, call, id),
        T::Groups if get => lists::groups(shared, call),
        T::GroupsDelta if get => delta::delta(shared, call, false),
        T::Group(id) if get => lists::group(shared, call, id),
        T::GroupRel(id, r) if get => lists::group_rel(shared, call, id, *r),
        T::GroupRelRef(id, r) if post => writes::add_group_ref(shared, call, id, *r),
        T::GroupRelItemRef(id, r, item) if delete => writes::remove_group_ref(shared, id, *r, item),
        T::Sps if get => lists::service_principals(shared, call),
        T::Sp(id) if get => lists::service_principal(shared, call, id),
        T::SpAssignedTo(id) if get => lists::app_role_assigned_to(shared, call, id),
        T::SpAssignedTo(id) if post => writes::add_app_assignment(shared, call, id),
        T::SpAssignment(id, a) if delete => writes::remove_app_assignment(shared, id, a),
        T::SpOwners(id) if get => lists::sp_owners(shared, call, id),
        T::SpMemberOf(id) if get => lists::sp_member_of(shared, call, id),
        T::SpOwnedObjects(id) if get => lists::sp_owned_objects(shared, call, id),
        T::PrincipalAssignments(kind, id) if get => {
            lists::principal_assignments(shared, call, *kind, id)
        }
        T::SpOwnersRef(id) if post => writes::add_sp_owner(shared, call, id),
        T::SpOwnerRef(id, o) if delete => writes::remove_sp_owner(shared, id, o),
        T::DirectoryRoles if get => lists::directory_roles(shared, call),
        T::DirectoryRole(id) if get => lists::directory_role(shared, call, id),
        T::DirectoryRoleMembers(id) if get => lists::directory_role_members(shared, call, id),
        T::DirectoryRoleMembersRef(id) if post => {
            writes::add_directory_role_member(shared, call, id)
        }
        T::DirectoryRoleMemberRef(id, m) if delete => {
            writes::remove_directory_role_member(shared, id, m)
        }
        T::RoleAssignments if get => lists::role_assignments(shared, call),
        T::RoleAssignments if post => writes::add_role_assignment(shared, call),
        T::RoleAssignment(id) if get => lists::role_assignment(shared, call, id),
        T::RoleAssignment(id) if delete => writes::remove_role_assignment(shared, id),
        T::RoleDefinitions if get => lists::role_definitions(shared, call),
        T::RoleDefinition(id) if get => lists::role_definition(shared, call, id),
        T::Batch => error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "A batch request cannot contain another batch request.",
        ),
        _ => method_not_allowed(),
    }
}
