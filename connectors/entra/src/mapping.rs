//! Graph JSON → the normalized model: users, managed identities, groups, apps and roles, their
//! entitlements, and the principal ids of members, owners and assignees.

use std::collections::HashMap;

use idhost_connector_sdk::{
    AccountType, AppRole, AppTrait, Email, Entitlement, GroupTrait, Profile, Purpose, Resource,
    RoleTrait, Status, UserTrait,
};
use serde_json::Value;

use crate::kinds::{GroupKind, Rel};

/// The default access app role, valid on every resource service principal
/// (approleassignment.md: "the default app role id of `00000000-0000-0000-0000-000000000000`").
pub(crate) const DEFAULT_APP_ROLE: &str = "00000000-0000-0000-0000-000000000000";

/// `$select` of user lists and user delta.
pub(crate) const USER_SELECT: &str = "id,displayName,userPrincipalName,mail,otherMails,givenName,\
surname,jobTitle,department,employeeId,preferredLanguage,accountEnabled,userType";
/// `$select` of group lists (group delta adds `members,owners`).
pub(crate) const GROUP_SELECT: &str = "id,displayName,description,groupTypes,mailEnabled,\
securityEnabled,mail,mailNickname,onPremisesSyncEnabled,isAssignableToRole,visibility";
/// `$select` of group delta: the list's properties plus the two relationships whose changes
/// are tracked (group-delta.md: "You can use `$select=members` to get membership changes … any
/// group relationship of type directoryObject collection", which includes `owners`).
pub(crate) const GROUP_DELTA_SELECT: &str = "id,displayName,description,groupTypes,mailEnabled,\
securityEnabled,mail,mailNickname,onPremisesSyncEnabled,isAssignableToRole,visibility,members,owners";
/// `$select` of enterprise apps.
pub(crate) const APP_SELECT: &str = "id,appId,displayName,appRoles,accountEnabled,\
servicePrincipalType,appOwnerOrganizationId,appRoleAssignmentRequired";
/// `$select` of managed identities.
pub(crate) const MI_SELECT: &str =
    "id,appId,displayName,accountEnabled,servicePrincipalType,alternativeNames";
/// `$select` of directory roles.
pub(crate) const ROLE_SELECT: &str = "id,displayName,description,roleTemplateId";
/// `$select` of member and owner lists: the id, plus the type of a service principal so it can
/// be named as the resource type it is listed as.
pub(crate) const PRINCIPAL_SELECT: &str = "id,servicePrincipalType";

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn owned(v: &Value, key: &str) -> Option<String> {
    text(v, key).map(str::to_owned)
}

fn put(profile: &mut Profile, name: &str, v: &Value, key: &str) {
    if let Some(value) = v.get(key).filter(|x| !x.is_null()) {
        profile.insert(name.to_owned(), value.clone());
    }
}

fn status(v: &Value) -> Status {
    match v.get("accountEnabled").and_then(Value::as_bool) {
        Some(false) => Status::Disabled,
        _ => Status::Enabled,
    }
}

/// A user from `/users` or `/users/delta`.
pub(crate) fn user(v: &Value) -> Option<Resource> {
    let id = text(v, "id")?;
    let upn = owned(v, "userPrincipalName");
    let name = text(v, "displayName")
        .map(str::to_owned)
        .or_else(|| upn.clone())
        .unwrap_or_else(|| id.to_owned());
    let mut r = Resource::new("user", id, name);
    r.status = status(v);
    let mut emails: Vec<Email> = Vec::new();
    if let Some(mail) = text(v, "mail") {
        emails.push(Email::new(mail.to_owned(), true));
    }
    for other in v
        .get("otherMails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !emails.iter().any(|e| e.address.eq_ignore_ascii_case(other)) {
            emails.push(Email::new(other.to_owned(), false));
        }
    }
    r.user = Some({
        let mut built = UserTrait::default();
        built.login = upn;
        built.emails = emails;
        built.given_name = owned(v, "givenName");
        built.family_name = owned(v, "surname");
        built.account_type = AccountType::Human;
        built.title = owned(v, "jobTitle");
        built.department = owned(v, "department");
        built.employee_id = owned(v, "employeeId");
        built.locale = owned(v, "preferredLanguage");
        built
    });
    put(&mut r.profile, "user_type", v, "userType");
    Some(r)
}

/// A managed identity (service principal of type `ManagedIdentity`) as a service user.
pub(crate) fn managed_identity(v: &Value) -> Option<Resource> {
    let id = text(v, "id")?;
    let name = text(v, "displayName").unwrap_or(id);
    let mut r = Resource::new("user", id, name);
    r.status = status(v);
    r.user = Some({
        let mut built = UserTrait::default();
        built.// The client id is what a managed identity signs in with.
        login = owned(v, "appId");
        built.account_type = AccountType::Service;
        built
    });
    put(&mut r.profile, "app_id", v, "appId");
    put(
        &mut r.profile,
        "service_principal_type",
        v,
        "servicePrincipalType",
    );
    // For user-assigned identities this holds the Azure resource id.
    put(&mut r.profile, "alternative_names", v, "alternativeNames");
    Some(r)
}

fn has(v: &Value, key: &str, wanted: &str) -> bool {
    v.get(key)
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(wanted)))
}

/// The group kind (groups-overview.md, "Group types in Microsoft Entra ID and Microsoft Graph"):
/// `groupTypes` holding `Unified` is a Microsoft 365 group; otherwise security and mail flags
/// tell security, mail-enabled security and distribution groups apart.
pub(crate) fn group_kind(v: &Value) -> &'static str {
    GroupKind::of(v).kind
}

/// Whether the group is synchronized from on-premises AD.
pub(crate) fn on_prem(v: &Value) -> bool {
    v.get("onPremisesSyncEnabled").and_then(Value::as_bool) == Some(true)
}

/// Whether a delta item carries the group's properties (a large group can come back on a later
/// page with only `members@delta`; delta-query-overview.md says to merge by id).
pub(crate) fn has_properties(v: &Value) -> bool {
    v.get("displayName").is_some()
}

/// A group and its `member` and `owner` entitlements.
pub(crate) fn group(v: &Value) -> Option<(Resource, Vec<Entitlement>)> {
    let id = text(v, "id")?;
    let name = text(v, "displayName").unwrap_or(id).to_owned();
    let mut r = Resource::new("group", id, name.clone());
    r.group = Some({
        let mut built = GroupTrait::default();
        built.kind = group_kind(v).to_owned();
        built.member_count = None;
        built.dynamic = has(v, "groupTypes", "DynamicMembership");
        built
    });
    for (name, key) in [
        ("description", "description"),
        ("mail", "mail"),
        ("mail_nickname", "mailNickname"),
        ("on_premises_sync_enabled", "onPremisesSyncEnabled"),
        ("is_assignable_to_role", "isAssignableToRole"),
        ("visibility", "visibility"),
        ("group_types", "groupTypes"),
    ] {
        put(&mut r.profile, name, v, key);
    }
    let ents = group_entitlements(&r.id, &name, GroupKind::of(v));
    Some((r, ents))
}

/// A group's `member` and `owner` entitlements, `grantable_to` what Graph lets a client add
/// to this kind of group (kinds.rs); empty when Graph manages the relationship elsewhere.
pub(crate) fn group_entitlements(group_id: &str, name: &str, kind: GroupKind) -> Vec<Entitlement> {
    vec![
        Entitlement::new(
            group_id,
            "member",
            Purpose::Assignment,
            kind.grantable_to(Rel::Member),
        )
        .named(format!("Member of {name}")),
        Entitlement::new(
            group_id,
            "owner",
            Purpose::Ownership,
            kind.grantable_to(Rel::Owner),
        )
        .named(format!("Owner of {name}")),
    ]
}

/// The entitlement slug of an app role: its `value`, unless that is empty, contains `:` (which
/// would break `"<type>:<id>:<slug>"` ids; Entra allows `:` in values) or collides with the
/// reserved slugs `assignment`/`owner` — then the role id.
pub(crate) fn app_role_slug(role: &Value) -> Option<String> {
    let id = text(role, "id")?;
    Some(match text(role, "value") {
        Some(value) if !value.contains(':') && !matches!(value, "assignment" | "owner") => {
            value.to_owned()
        }
        _ => id.to_owned(),
    })
}

/// An enterprise app (service principal of type `Application`), its entitlements, and the map
/// from app role id to entitlement slug its assignments are read with.
pub(crate) struct App {
    pub(crate) resource: Resource,
    pub(crate) entitlements: Vec<Entitlement>,
    pub(crate) slugs: HashMap<String, String>,
}

pub(crate) fn app(v: &Value) -> Option<App> {
    let id = text(v, "id")?;
    let name = text(v, "displayName").unwrap_or(id).to_owned();
    let mut r = Resource::new("app", id, name.clone());
    r.status = status(v);
    let mut roles = Vec::new();
    let mut entitlements = vec![
        Entitlement::new(
            &r.id,
            "assignment",
            Purpose::Assignment,
            &["user", "group", "app"],
        )
        .named(format!("Default access to {name}")),
    ];
    let mut slugs = HashMap::from([(DEFAULT_APP_ROLE.to_owned(), "assignment".to_owned())]);
    for role in v
        .get("appRoles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(role_id), Some(slug)) = (text(role, "id"), app_role_slug(role)) else {
            continue;
        };
        let display = text(role, "displayName").unwrap_or(&slug).to_owned();
        // allowedMemberTypes: `User` admits users and groups, `Application` service principals
        // (listed as `app`, or as `user` for managed identities).
        let mut to: Vec<&str> = Vec::new();
        if has(role, "allowedMemberTypes", "User") {
            to.extend(["user", "group"]);
        }
        if has(role, "allowedMemberTypes", "Application") {
            to.push("app");
            if !to.contains(&"user") {
                to.push("user");
            }
        }
        entitlements.push(
            Entitlement::new(&r.id, &slug, Purpose::Assignment, &to)
                .named(format!("{display} of {name}")),
        );
        roles.push({
            let mut built = AppRole::default();
            built.id = role_id.to_owned();
            built.value = text(role, "value").unwrap_or_default().to_owned();
            built.display_name = display;
            built
        });
        slugs.insert(role_id.to_ascii_lowercase(), slug);
    }
    entitlements.push(
        Entitlement::new(&r.id, "owner", Purpose::Ownership, &["user", "app"])
            .named(format!("Owner of {name}")),
    );
    r.app = Some({
        let mut built = AppTrait::default();
        built.app_id = text(v, "appId").unwrap_or_default().to_owned();
        built.roles = roles;
        built
    });
    put(
        &mut r.profile,
        "app_owner_organization_id",
        v,
        "appOwnerOrganizationId",
    );
    put(
        &mut r.profile,
        "app_role_assignment_required",
        v,
        "appRoleAssignmentRequired",
    );
    Some(App {
        resource: r,
        entitlements,
        slugs,
    })
}

/// An activated directory role and its tenant-wide `member` entitlement.
pub(crate) fn role(v: &Value) -> Option<(Resource, Entitlement)> {
    let id = text(v, "id")?;
    let name = text(v, "displayName").unwrap_or(id).to_owned();
    let mut r = Resource::new("role", id, name.clone());
    r.role = Some({
        let mut built = RoleTrait::default();
        built.template_id = owned(v, "roleTemplateId");
        built
    });
    put(&mut r.profile, "description", v, "description");
    let ent = role_entitlement(&r.id, &name, &crate::scope::Scope::Tenant);
    Some((r, ent))
}

/// The `member` entitlement of a role at a scope (unifiedroleassignment.md: "Supported
/// principals are users, role-assignable groups, and service principals").
pub(crate) fn role_entitlement(
    role_id: &str,
    name: &str,
    scope: &crate::scope::Scope,
) -> Entitlement {
    Entitlement::new(
        role_id,
        &scope.slug(),
        Purpose::Assignment,
        &["user", "group", "app"],
    )
    .named(format!("Member of {name}{}", scope.describe()))
}

/// How service principals are named as principals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrincipalRules {
    pub(crate) include_managed_identities: bool,
}

impl PrincipalRules {
    /// The resource id of a member, owner or assignee: users `user:`, groups `group:`, managed
    /// identities `user:` (as listed; dropped when they are not), other service principals
    /// `app:`. Contacts and devices are not listed, so they are dropped.
    ///
    /// `odata_type` is the `@odata.type` (or appRoleAssignment `principalType`); `sp_type` the
    /// service principal's `servicePrincipalType` when the answer carried it, else
    /// `is_managed_identity` decides.
    pub(crate) fn principal(
        &self,
        odata_type: &str,
        id: &str,
        sp_type: Option<&str>,
        is_managed_identity: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let kind = odata_type
            .trim_start_matches('#')
            .trim_start_matches("microsoft.graph.");
        let rtype = match kind.to_ascii_lowercase().as_str() {
            "user" => "user",
            "group" => "group",
            "serviceprincipal" => {
                let managed = match sp_type {
                    Some(t) => t.eq_ignore_ascii_case("ManagedIdentity"),
                    None => is_managed_identity(id),
                };
                match (managed, sp_type) {
                    (true, _) if self.include_managed_identities => "user",
                    (true, _) => return None,
                    (false, Some(t)) if !t.eq_ignore_ascii_case("Application") => return None,
                    (false, _) => "app",
                }
            }
            _ => return None,
        };
        Some(format!("{rtype}:{id}"))
    }

    /// The principal of a directory object from a member/owner list or a `@delta` annotation.
    pub(crate) fn of_object(
        &self,
        v: &Value,
        is_managed_identity: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let id = text(v, "id")?;
        let odata_type = text(v, "@odata.type")?;
        self.principal(
            odata_type,
            id,
            text(v, "servicePrincipalType"),
            is_managed_identity,
        )
    }
}

/// Whether a directory object (member, owner, `@delta` annotation) is a service principal.
pub(crate) fn is_service_principal(v: &Value) -> bool {
    text(v, "@odata.type").is_some_and(|t| {
        t.trim_start_matches('#')
            .trim_start_matches("microsoft.graph.")
            .eq_ignore_ascii_case("servicePrincipal")
    })
}

/// Whether a delta item or annotation is a removal (`@removed`, reason `changed` or `deleted`).
pub(crate) fn removed(v: &Value) -> bool {
    v.get("@removed").is_some()
}

/// The object id of a JSON object.
pub(crate) fn id(v: &Value) -> Option<&str> {
    text(v, "id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_fields_map_to_the_user_trait() {
        let r = user(&json!({
            "id": "u1", "displayName": "Adele Vance", "userPrincipalName": "adele@contoso.com",
            "mail": "Adele@contoso.com", "otherMails": ["adele@contoso.com", "a@alt.example"],
            "givenName": "Adele", "surname": "Vance", "jobTitle": "Engineer",
            "department": "IT", "employeeId": "E1", "preferredLanguage": "de-DE",
            "accountEnabled": false, "userType": "Member"
        }))
        .expect("maps");
        assert_eq!(r.id, "user:u1");
        assert_eq!(r.status, Status::Disabled);
        let u = r.user.expect("trait");
        assert_eq!(u.login.as_deref(), Some("adele@contoso.com"));
        assert_eq!(u.emails.len(), 2, "duplicate otherMail dropped");
        assert!(u.emails[0].primary && !u.emails[1].primary);
        assert_eq!(u.locale.as_deref(), Some("de-DE"));
        assert_eq!(u.account_type, AccountType::Human);
        assert_eq!(r.profile["user_type"], "Member");
    }

    #[test]
    fn group_kinds_follow_group_types_and_flags() {
        let kind = |v: Value| group_kind(&v);
        assert_eq!(
            kind(json!({"groupTypes": ["Unified"], "mailEnabled": true, "securityEnabled": false})),
            "microsoft_365"
        );
        assert_eq!(
            kind(json!({"groupTypes": [], "mailEnabled": false, "securityEnabled": true})),
            "security"
        );
        assert_eq!(
            kind(json!({"groupTypes": [], "mailEnabled": true, "securityEnabled": true})),
            "mail_enabled_security"
        );
        assert_eq!(
            kind(json!({"groupTypes": [], "mailEnabled": true, "securityEnabled": false})),
            "distribution"
        );
        let (g, ents) = group(&json!({"id": "g1", "displayName": "Dyn", "groupTypes": ["DynamicMembership"], "securityEnabled": true})).expect("maps");
        assert!(g.group.expect("trait").dynamic);
        assert_eq!(ents[0].id, "group:g1:member");
        assert_eq!(ents[1].id, "group:g1:owner");
    }

    #[test]
    fn app_roles_become_entitlements_by_value() {
        let a = app(&json!({
            "id": "sp1", "appId": "a1", "displayName": "Expenses",
            "appRoles": [
                {"id": "r1", "value": "App.Reader", "displayName": "Reader", "allowedMemberTypes": ["User"]},
                {"id": "r2", "value": "urn:x", "displayName": "Odd", "allowedMemberTypes": ["Application"]},
                {"id": "r3", "value": null, "displayName": "Nameless", "allowedMemberTypes": ["User"]}
            ]
        }))
        .expect("maps");
        let slugs: Vec<&str> = a.entitlements.iter().map(|e| e.slug.as_str()).collect();
        assert_eq!(slugs, ["assignment", "App.Reader", "r2", "r3", "owner"]);
        assert_eq!(a.slugs[DEFAULT_APP_ROLE], "assignment");
        assert_eq!(a.slugs["r1"], "App.Reader");
        assert_eq!(a.resource.app.expect("trait").app_id, "a1");
    }

    #[test]
    fn principals_are_named_as_the_type_they_are_listed_as() {
        let rules = PrincipalRules {
            include_managed_identities: true,
        };
        let no = |_: &str| false;
        let mi = |id: &str| id == "m1";
        let p = |v: Value| rules.of_object(&v, no);
        assert_eq!(
            p(json!({"@odata.type": "#microsoft.graph.user", "id": "u"})).as_deref(),
            Some("user:u")
        );
        assert_eq!(
            p(json!({"@odata.type": "#microsoft.graph.group", "id": "g"})).as_deref(),
            Some("group:g")
        );
        assert_eq!(p(json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": "s", "servicePrincipalType": "ManagedIdentity"})).as_deref(), Some("user:s"));
        assert_eq!(p(json!({"@odata.type": "#microsoft.graph.servicePrincipal", "id": "s", "servicePrincipalType": "Application"})).as_deref(), Some("app:s"));
        assert_eq!(
            p(json!({"@odata.type": "#microsoft.graph.device", "id": "d"})),
            None
        );
        assert_eq!(
            rules
                .principal("ServicePrincipal", "m1", None, mi)
                .as_deref(),
            Some("user:m1")
        );
        assert_eq!(
            rules
                .principal("ServicePrincipal", "s2", None, mi)
                .as_deref(),
            Some("app:s2")
        );
        let without = PrincipalRules {
            include_managed_identities: false,
        };
        assert_eq!(without.principal("ServicePrincipal", "m1", None, mi), None);
    }
}
