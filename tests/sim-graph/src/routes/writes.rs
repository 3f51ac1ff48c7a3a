//! Provisioning writes: `$ref` membership and ownership, app role assignments, directory role
//! assignments. Each records a change-log entry (delta sees group member/owner changes).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::lists::lookup_role_assignment;
use super::{BodyIn, Call};
use crate::directory::{Refusal, Rel, Written};
use crate::ids::{ObjKind, ObjRef, ns};
use crate::profile::{Elsewhere, GroupFlavor};
use crate::render::{self, Select};
use crate::reply::{Reply, bad_request, error, not_found};
use crate::state::{Shared, str_field};

fn json_body<'a>(call: &'a Call) -> Result<&'a Value, Reply> {
    match call.body {
        BodyIn::Json(v) if v.is_object() => Ok(v),
        // The message Graph gives for unreadable payloads.
        _ => Err(bad_request(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )),
    }
}

/// The object an `{"@odata.id": "{root}/v1.0/directoryObjects/{id}"}` body names.
///
/// The root must be this service's own (concepts/deployments.md: `@odata.id` URLs use the same
/// Graph root as the call); `users/`, `groups/` and `servicePrincipals/` forms are accepted too.
fn reference(call: &Call, shared: &Shared) -> Result<(ObjRef, String), Reply> {
    let body = json_body(call)?;
    let url = str_field(body, "@odata.id");
    if url.is_empty() {
        return Err(bad_request(
            "Invalid request body: the '@odata.id' property is required.",
        ));
    }
    let root = format!("{}/v1.0/", call.origin);
    let rest = url
        .get(..root.len())
        .filter(|head| head.eq_ignore_ascii_case(&root))
        .and_then(|_| url.get(root.len()..))
        .ok_or_else(|| {
            bad_request(format!(
                "Invalid URL format specified in @odata.id: '{url}'. The service root must be '{root}'."
            ))
        })?;
    let id = [
        "directoryObjects/",
        "users/",
        "groups/",
        "servicePrincipals/",
    ]
    .iter()
    .find_map(|prefix| rest.strip_prefix(prefix))
    .map(|id| id.trim_matches(|c| c == '/' || c == '\'' || c == '(' || c == ')'))
    .filter(|id| !id.is_empty() && !id.contains('/'))
    .ok_or_else(|| {
        bad_request(format!(
            "Invalid URL format specified in @odata.id: '{url}'."
        ))
    })?;
    let obj = shared.read().resolve(id).ok_or_else(|| not_found(id))?;
    Ok((obj, id.to_owned()))
}

/// group-post-members.md: "400 Bad Request when the object is already a member"; the message
/// is the one Graph sends (quoted by many clients, e.g. n8n's Microsoft Entra node).
fn already_exists(property: &str) -> Reply {
    bad_request(format!(
        "One or more added object references already exist for the following modified properties: '{property}'."
    ))
}

/// Dynamic groups cannot have members managed through Graph (group-delete-members.md: "You
/// can't remove a member from groups with dynamic memberships"); the status is 403
/// `Authorization_RequestDenied` per Microsoft's Entra developer-support blog
/// ("Authorization_RequestDenied error when using Microsoft Graph API to add users to a group").
fn dynamic_membership() -> Reply {
    error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

/// Groups managed in Exchange (mail-enabled security, distribution) or on-premises Active
/// Directory: groups-overview.md "Mail-enabled and distribution groups are read-only through
/// Microsoft Graph"; group-list-owners.md "Owners are currently not available in Microsoft Graph
/// for groups that were created in Exchange, distribution groups, or groups that are
/// synchronized from an on-premises environment". The answer is the one Graph gave for a
/// mail-enabled security group (microsoftgraph/microsoft-graph-docs-contrib#8241) and gives for
/// objects synchronized from on-premises.
fn external_service() -> Reply {
    bad_request(
        "Unable to update the specified properties for objects that have originated within an external service.",
    )
}

fn managed_elsewhere(flavor: GroupFlavor, rel: Rel) -> Option<Reply> {
    match (rel, flavor.members_managed_elsewhere()) {
        (Rel::Members, Some(Elsewhere::Rule)) => Some(dynamic_membership()),
        (Rel::Members, Some(Elsewhere::ExternalService)) => Some(external_service()),
        (Rel::Owners, _) if !flavor.owners_in_graph() => Some(external_service()),
        _ => None,
    }
}

/// Member and owner types a group takes (group-post-members.md, the table of member types:
/// a Microsoft 365 group takes only users, and a Microsoft 365 group is a member of no group;
/// group-post-owners.md: owners are users or service principals). The answers are those Graph
/// gives: "Directory object type: ServicePrincipal cannot be added to Unified Groups" (recorded
/// in Azure/azure-cli#29097) and "Unified Groups cannot be added to Unified Groups"
/// (microsoftgraph/microsoft-graph-docs-contrib#3884); the wording for a security group added
/// to a Microsoft 365 group, a Microsoft 365 group added to a security group and a group as
/// owner follows them [UNCONFIRMED wording; the refusals are documented].
fn refused_type(flavor: GroupFlavor, rel: Rel, obj: ObjRef) -> Option<Reply> {
    let suffix =
        "paramName: Members, paramValue: , objectType: Microsoft.Online.DirectoryServices.Group";
    let member_is_unified =
        obj.kind() == ObjKind::Group && GroupFlavor::of(obj.index()) == GroupFlavor::Unified;
    match rel {
        Rel::Owners if obj.kind() == ObjKind::Group => Some(bad_request(
            "Invalid object type: the owners of a group are users or service principals.",
        )),
        Rel::Owners => None,
        Rel::Members if flavor == GroupFlavor::Unified => match obj.kind() {
            ObjKind::User => None,
            ObjKind::ServicePrincipal => Some(bad_request(format!(
                "Directory object type: ServicePrincipal cannot be added to Unified Groups. {suffix}"
            ))),
            ObjKind::Group if member_is_unified => Some(bad_request(format!(
                "Unified Groups cannot be added to Unified Groups. {suffix}"
            ))),
            ObjKind::Group => Some(bad_request(format!(
                "Directory object type: Group cannot be added to Unified Groups. {suffix}"
            ))),
        },
        Rel::Members if member_is_unified => Some(bad_request(format!(
            "Unified Groups cannot be added to other groups. {suffix}"
        ))),
        Rel::Members => None,
    }
}

fn group_index(shared: &Shared, id: &str) -> Result<u32, Reply> {
    shared
        .read()
        .resolve_kind(id, ObjKind::Group)
        .ok_or_else(|| not_found(id))
}

/// `POST /groups/{id}/members/$ref` and `/owners/$ref`: 204, 400 if present, 404 if missing.
pub(super) fn add_group_ref(shared: &Shared, call: &Call, id: &str, rel: Rel) -> Reply {
    let group = match group_index(shared, id) {
        Ok(g) => g,
        Err(reply) => return reply,
    };
    let flavor = GroupFlavor::of(group);
    if let Some(reply) = managed_elsewhere(flavor, rel) {
        return reply;
    }
    let (obj, _) = match reference(call, shared) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    if let Some(reply) = refused_type(flavor, rel, obj) {
        return reply;
    }
    let mut dir = shared.write();
    match dir.add_link(rel, group, obj) {
        Ok(()) => {
            shared.lag(&mut dir, Written::Link { rel, group, obj });
            Reply::no_content()
        }
        Err(Refusal::AlreadyExists) => already_exists(rel.name()),
        Err(Refusal::Absent) => not_found(id),
    }
}

/// `DELETE /groups/{id}/members/{memberId}/$ref` (group-delete-members.md): 204, 404 if absent
/// (or not replicated yet to the replica answering).
pub(super) fn remove_group_ref(shared: &Shared, id: &str, rel: Rel, item: &str) -> Reply {
    let group = match group_index(shared, id) {
        Ok(g) => g,
        Err(reply) => return reply,
    };
    if let Some(reply) = managed_elsewhere(GroupFlavor::of(group), rel) {
        return reply;
    }
    let mut dir = shared.write();
    let Some(obj) = dir.resolve(item) else {
        return not_found(item);
    };
    if !dir.replicated(Written::Link { rel, group, obj }, shared.call()) {
        return not_found(item);
    }
    match dir.remove_link(rel, group, obj) {
        Ok(()) => Reply::no_content(),
        Err(_) => not_found(item),
    }
}

fn sp_index(shared: &Shared, id: &str) -> Result<u32, Reply> {
    shared
        .read()
        .resolve_kind(id, ObjKind::ServicePrincipal)
        .ok_or_else(|| not_found(id))
}

pub(super) fn add_sp_owner(shared: &Shared, call: &Call, id: &str) -> Reply {
    let sp = match sp_index(shared, id) {
        Ok(sp) => sp,
        Err(reply) => return reply,
    };
    let (obj, _) = match reference(call, shared) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    match shared.write().add_sp_owner(sp, obj) {
        Ok(()) => Reply::no_content(),
        Err(Refusal::AlreadyExists) => already_exists("owners"),
        Err(Refusal::Absent) => not_found(id),
    }
}

pub(super) fn remove_sp_owner(shared: &Shared, id: &str, owner: &str) -> Reply {
    let sp = match sp_index(shared, id) {
        Ok(sp) => sp,
        Err(reply) => return reply,
    };
    let mut dir = shared.write();
    let Some(obj) = dir.resolve(owner) else {
        return not_found(owner);
    };
    match dir.remove_sp_owner(sp, obj) {
        Ok(()) => Reply::no_content(),
        Err(_) => not_found(owner),
    }
}

/// `POST /servicePrincipals/{id}/appRoleAssignedTo` (serviceprincipal-post-approleassignedto.md):
/// 201 with the appRoleAssignment.
pub(super) fn add_app_assignment(shared: &Shared, call: &Call, id: &str) -> Reply {
    let sp = match sp_index(shared, id) {
        Ok(sp) => sp,
        Err(reply) => return reply,
    };
    let body = match json_body(call) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let (principal_id, resource_id, role_id) = (
        str_field(body, "principalId"),
        str_field(body, "resourceId"),
        str_field(body, "appRoleId"),
    );
    for (name, value) in [
        ("principalId", principal_id),
        ("resourceId", resource_id),
        ("appRoleId", role_id),
    ] {
        if value.is_empty() {
            return bad_request(format!(
                "Invalid value specified for property '{name}' of resource 'AppRoleAssignment'."
            ));
        }
    }
    let mut dir = shared.write();
    if dir.resolve_kind(resource_id, ObjKind::ServicePrincipal) != Some(sp) {
        return bad_request(format!(
            "Invalid value specified for property 'resourceId' of resource 'AppRoleAssignment': it must be the id of '{id}'."
        ));
    }
    let Some(principal) = dir.resolve(principal_id) else {
        return not_found(principal_id);
    };
    let Some(role) = dir.parse_app_role(sp, role_id) else {
        // Message Graph sends for an appRoleId the resource does not define.
        return bad_request("Permission being assigned was not found on application.");
    };
    match dir.add_app_assignment(sp, principal, role) {
        Ok(index) => {
            shared.lag(&mut dir, Written::AppAssignment(index));
            let mut value = render::app_assignment(&dir, index, &Select::Default);
            value["@odata.context"] = json!(format!(
                "{}/v1.0/$metadata#servicePrincipals('{id}')/appRoleAssignedTo/$entity",
                call.origin
            ));
            Reply::json(StatusCode::CREATED, value)
        }
        // Duplicate: 400 `Request_BadRequest` "Permission being assigned already exists on the
        // object." [not on the API page; the message clients match on, e.g. azure-cli scripts]
        Err(_) => bad_request("Permission being assigned already exists on the object."),
    }
}

pub(super) fn remove_app_assignment(shared: &Shared, id: &str, assignment: &str) -> Reply {
    let sp = match sp_index(shared, id) {
        Ok(sp) => sp,
        Err(reply) => return reply,
    };
    let mut dir = shared.write();
    let index = dir.codec.parse_opaque(ns::APP_ROLE_ASSIGNMENT, assignment);
    match index {
        Some(a) if !dir.replicated(Written::AppAssignment(a), shared.call()) => {
            not_found(assignment)
        }
        Some(a) if dir.remove_app_assignment(sp, a) => Reply::no_content(),
        _ => not_found(assignment),
    }
}

/// A conflicting assignment: 400 `Request_BadRequest` "A conflicting object with one or more of
/// the specified property values is present in the directory." (the Graph answer recorded in
/// dod-ccpo/atat#1554; the API page does not document duplicates).
fn conflicting() -> Reply {
    bad_request(
        "A conflicting object with one or more of the specified property values is present in the directory.",
    )
}

/// `POST /roleManagement/directory/roleAssignments` (rbacapplication-post-roleassignments.md).
pub(super) fn add_role_assignment(shared: &Shared, call: &Call) -> Reply {
    let body = match json_body(call) {
        Ok(b) => b,
        Err(reply) => return reply,
    };
    let principal_id = str_field(body, "principalId");
    let definition_id = str_field(body, "roleDefinitionId");
    let scope = str_field(body, "directoryScopeId");
    if principal_id.is_empty() || definition_id.is_empty() {
        return bad_request("principalId and roleDefinitionId are required.");
    }
    if scope.is_empty() {
        // "Either this property or appScopeId is required."
        return if str_field(body, "appScopeId").is_empty() {
            bad_request("Either directoryScopeId or appScopeId is required.")
        } else {
            crate::reply::not_implemented("appScopeId role assignments")
        };
    }
    let mut dir = shared.write();
    let Some(principal) = dir.resolve(principal_id) else {
        return not_found(principal_id);
    };
    let Some(role) = dir.resolve_role_definition(definition_id) else {
        return not_found(definition_id);
    };
    // unifiedroleassignment.md, directoryScopeId: "/" for tenant-wide, an administrative unit
    // (`/administrativeUnits/{id}`) or a directory object (`/{id}`). [Wording UNCONFIRMED.]
    if !dir.valid_scope(scope) {
        return bad_request(format!(
            "Invalid value specified for property 'directoryScopeId' of resource 'UnifiedRoleAssignment': '{scope}'."
        ));
    }
    match dir.add_role_assignment(principal, role, scope) {
        Ok(index) => {
            shared.lag(&mut dir, Written::RoleAssignment(index));
            let mut value = render::role_assignment(&dir, index, &Select::Default, false);
            value["@odata.context"] = json!(format!(
                "{}/v1.0/$metadata#roleManagement/directory/roleAssignments/$entity",
                call.origin
            ));
            Reply::json(StatusCode::CREATED, value)
        }
        Err(_) => conflicting(),
    }
}

pub(super) fn remove_role_assignment(shared: &Shared, id: &str) -> Reply {
    let mut dir = shared.write();
    match lookup_role_assignment(&dir, id) {
        Some(a) if !dir.replicated(Written::RoleAssignment(a), shared.call()) => not_found(id),
        Some(a) if dir.remove_role_assignment(a) => Reply::no_content(),
        _ => not_found(id),
    }
}

/// Legacy `POST /directoryRoles/{id}/members/$ref`: a tenant-scoped role assignment.
pub(super) fn add_directory_role_member(shared: &Shared, call: &Call, id: &str) -> Reply {
    let Some(role) = shared.read().resolve_directory_role(id) else {
        return not_found(id);
    };
    let (obj, _) = match reference(call, shared) {
        Ok(found) => found,
        Err(reply) => return reply,
    };
    match shared.write().add_role_assignment(obj, role, "/") {
        Ok(_) => Reply::no_content(),
        Err(_) => already_exists("members"),
    }
}

pub(super) fn remove_directory_role_member(shared: &Shared, id: &str, member: &str) -> Reply {
    let mut dir = shared.write();
    let Some(role) = dir.resolve_directory_role(id) else {
        return not_found(id);
    };
    let Some(obj) = dir.resolve(member) else {
        return not_found(member);
    };
    let found = dir.live_role_assignments().find(|a| {
        let x = &dir.role_assignments[*a as usize];
        x.principal == obj && x.role == role && &*x.scope == "/"
    });
    match found {
        Some(a) if dir.remove_role_assignment(a) => Reply::no_content(),
        _ => not_found(member),
    }
}
