//! Directory objects as Graph JSON, honouring `$select`.
//!
//! Each resource type has an accessor `prop(name) -> Option<Value>` over its modelled
//! properties, a default property set and the full set; `$filter` evaluation reads the same
//! accessor, so what a filter sees is what a client would see.

use serde_json::{Map, Value, json};

use crate::directory::Directory;
use crate::ids::{ObjKind, ObjRef, ns};
use crate::profile::{self, GroupFlavor, timestamp};

/// Which properties to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Select {
    /// The type's default set.
    Default,
    /// `$select=a,b`: `id` plus these, in this order.
    Fields(Vec<String>),
}

impl Select {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        match raw {
            Some(raw) if !raw.trim().is_empty() => Self::Fields(
                raw.split(',')
                    .map(|f| f.trim().to_owned())
                    .filter(|f| !f.is_empty())
                    .collect(),
            ),
            _ => Self::Default,
        }
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        match self {
            Self::Default => false,
            Self::Fields(fields) => fields.iter().any(|f| f.eq_ignore_ascii_case(name)),
        }
    }

    /// The same selection without relationship names (delta tracks those separately).
    pub(crate) fn without(&self, names: &[&str]) -> Self {
        match self {
            Self::Default => Self::Default,
            Self::Fields(fields) => Self::Fields(
                fields
                    .iter()
                    .filter(|f| !names.iter().any(|n| f.eq_ignore_ascii_case(n)))
                    .cloned()
                    .collect(),
            ),
        }
    }
}

/// A renderable resource type.
pub(crate) struct Shape {
    pub(crate) odata_type: &'static str,
    pub(crate) all: &'static [&'static str],
    pub(crate) default: &'static [&'static str],
}

/// user-list.md: "By default, only a limited set of properties are returned (businessPhones,
/// displayName, givenName, id, jobTitle, mail, mobilePhone, officeLocation, preferredLanguage,
/// surname, and userPrincipalName)". `signInActivity` only when selected (same page).
pub(crate) const USER: Shape = Shape {
    odata_type: "#microsoft.graph.user",
    all: &[
        "id",
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "accountEnabled",
        "userType",
        "department",
        "employeeId",
        "otherMails",
        "createdDateTime",
        "mailNickname",
        "companyName",
        "usageLocation",
        "onPremisesSyncEnabled",
        "onPremisesImmutableId",
        "signInActivity",
        "deletedDateTime",
    ],
    default: &[
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    ],
};

pub(crate) const GROUP: Shape = Shape {
    odata_type: "#microsoft.graph.group",
    all: &[
        "id",
        "deletedDateTime",
        "classification",
        "createdDateTime",
        "description",
        "displayName",
        "groupTypes",
        "isAssignableToRole",
        "mail",
        "mailEnabled",
        "mailNickname",
        "membershipRule",
        "membershipRuleProcessingState",
        "onPremisesSyncEnabled",
        "securityEnabled",
        "securityIdentifier",
        "visibility",
    ],
    default: &[
        "id",
        "deletedDateTime",
        "classification",
        "createdDateTime",
        "description",
        "displayName",
        "groupTypes",
        "isAssignableToRole",
        "mail",
        "mailEnabled",
        "mailNickname",
        "membershipRule",
        "membershipRuleProcessingState",
        "onPremisesSyncEnabled",
        "securityEnabled",
        "securityIdentifier",
        "visibility",
    ],
};

/// serviceprincipal-list.md example response.
pub(crate) const SERVICE_PRINCIPAL: Shape = Shape {
    odata_type: "#microsoft.graph.servicePrincipal",
    all: &[
        "id",
        "deletedDateTime",
        "accountEnabled",
        "alternativeNames",
        "appDisplayName",
        "appId",
        "appOwnerOrganizationId",
        "appRoleAssignmentRequired",
        "appRoles",
        "displayName",
        "servicePrincipalNames",
        "servicePrincipalType",
        "signInAudience",
        "tags",
    ],
    default: &[
        "id",
        "deletedDateTime",
        "accountEnabled",
        "alternativeNames",
        "appDisplayName",
        "appId",
        "appOwnerOrganizationId",
        "appRoleAssignmentRequired",
        "appRoles",
        "displayName",
        "servicePrincipalNames",
        "servicePrincipalType",
        "signInAudience",
        "tags",
    ],
};

pub(crate) const DIRECTORY_ROLE: Shape = Shape {
    odata_type: "#microsoft.graph.directoryRole",
    all: &[
        "id",
        "deletedDateTime",
        "description",
        "displayName",
        "roleTemplateId",
    ],
    default: &[
        "id",
        "deletedDateTime",
        "description",
        "displayName",
        "roleTemplateId",
    ],
};

pub(crate) const ROLE_DEFINITION: Shape = Shape {
    odata_type: "#microsoft.graph.unifiedRoleDefinition",
    all: &[
        "id",
        "description",
        "displayName",
        "isBuiltIn",
        "isEnabled",
        "resourceScopes",
        "templateId",
        "version",
        "rolePermissions",
    ],
    default: &[
        "id",
        "description",
        "displayName",
        "isBuiltIn",
        "isEnabled",
        "resourceScopes",
        "templateId",
        "version",
        "rolePermissions",
    ],
};

/// rbacapplication-list-roleassignments.md example.
pub(crate) const ROLE_ASSIGNMENT: Shape = Shape {
    odata_type: "#microsoft.graph.unifiedRoleAssignment",
    all: &[
        "id",
        "principalId",
        "resourceScope",
        "directoryScopeId",
        "roleDefinitionId",
    ],
    default: &[
        "id",
        "principalId",
        "resourceScope",
        "directoryScopeId",
        "roleDefinitionId",
    ],
};

/// serviceprincipal-post-approleassignedto.md example response.
pub(crate) const APP_ROLE_ASSIGNMENT: Shape = Shape {
    odata_type: "#microsoft.graph.appRoleAssignment",
    all: &[
        "id",
        "deletedDateTime",
        "appRoleId",
        "createdDateTime",
        "principalDisplayName",
        "principalId",
        "principalType",
        "resourceDisplayName",
        "resourceId",
    ],
    default: &[
        "id",
        "deletedDateTime",
        "appRoleId",
        "createdDateTime",
        "principalDisplayName",
        "principalId",
        "principalType",
        "resourceDisplayName",
        "resourceId",
    ],
};

/// The canonical spelling of a property of `shape` (Graph matches `$select` case-insensitively).
pub(crate) fn canonical(shape: &Shape, name: &str) -> Option<&'static str> {
    shape
        .all
        .iter()
        .find(|p| p.eq_ignore_ascii_case(name))
        .copied()
}

/// Renders with `prop`, in the order the selection asks for; selected properties the simulator
/// does not model come out as `null` rather than failing the request.
pub(crate) fn build(
    shape: &Shape,
    select: &Select,
    with_type: bool,
    mut prop: impl FnMut(&str) -> Option<Value>,
) -> Value {
    let mut map = Map::new();
    if with_type {
        map.insert("@odata.type".to_owned(), Value::from(shape.odata_type));
    }
    match select {
        Select::Default => {
            for name in shape.default {
                if let Some(value) = prop(name) {
                    map.insert((*name).to_owned(), value);
                }
            }
        }
        Select::Fields(fields) => {
            map.insert("id".to_owned(), prop("id").unwrap_or(Value::Null));
            for field in fields {
                match canonical(shape, field) {
                    Some("id") => {}
                    Some(name) => {
                        map.insert(name.to_owned(), prop(name).unwrap_or(Value::Null));
                    }
                    None => {
                        map.insert(field.clone(), Value::Null);
                    }
                }
            }
        }
    }
    Value::Object(map)
}

/// A user with its generated profile computed once, for rendering and filtering.
pub(crate) struct UserView<'a> {
    dir: &'a Directory,
    index: u32,
    p: profile::UserProfile,
}

impl<'a> UserView<'a> {
    pub(crate) fn new(dir: &'a Directory, index: u32) -> Self {
        Self {
            dir,
            index,
            p: dir.user_profile(index),
        }
    }

    pub(crate) fn render(&self, select: &Select, with_type: bool) -> Value {
        build(&USER, select, with_type, |n| self.prop(n))
    }

    pub(crate) fn prop(&self, name: &str) -> Option<Value> {
        let (dir, index, p) = (self.dir, self.index, &self.p);
        user_value(dir, index, p, name)
    }
}

fn user_value(dir: &Directory, index: u32, p: &profile::UserProfile, name: &str) -> Option<Value> {
    let domain = &dir.domain;
    Some(match name {
        "id" => Value::from(dir.id(ObjRef::user(index))),
        "businessPhones" => json!([]),
        "displayName" => Value::from(p.display_name.as_str()),
        "givenName" => Value::from(p.given.as_str()),
        "surname" if p.surname.is_empty() => Value::Null,
        "surname" => Value::from(p.surname.as_str()),
        "jobTitle" => Value::from(p.job_title),
        "mail" if p.guest => Value::from(format!("{}@fabrikam.example", p.nickname)),
        "mail" => Value::from(format!("{}@{domain}", p.nickname)),
        "mobilePhone" | "officeLocation" | "onPremisesImmutableId" | "deletedDateTime" => {
            Value::Null
        }
        "preferredLanguage" => p.language.map_or(Value::Null, Value::from),
        // Guests carry the #EXT# form (user-list.md example 4: `a_contoso.com#EXT#@…`).
        "userPrincipalName" if p.guest => {
            Value::from(format!("{}_fabrikam.example#EXT#@{domain}", p.nickname))
        }
        "userPrincipalName" => Value::from(format!("{}@{domain}", p.nickname)),
        "accountEnabled" => Value::from(p.enabled),
        "userType" => Value::from(if p.guest { "Guest" } else { "Member" }),
        "department" => Value::from(p.department),
        "employeeId" => {
            if p.guest {
                Value::Null
            } else {
                Value::from(format!("E{index:06}"))
            }
        }
        "otherMails" => {
            if p.has_other_mail {
                json!([format!("{}@alt.example", p.nickname)])
            } else {
                json!([])
            }
        }
        "createdDateTime" => Value::from(timestamp(p.created_minutes)),
        "mailNickname" => Value::from(p.nickname.as_str()),
        "companyName" => Value::from("Contoso"),
        "usageLocation" => Value::from("US"),
        "onPremisesSyncEnabled" => Value::Null,
        "signInActivity" => json!({
            "lastSignInDateTime": timestamp(p.last_sign_in_minutes),
            "lastNonInteractiveSignInDateTime": timestamp(p.last_sign_in_minutes + 30),
        }),
        _ => return None,
    })
}

/// A group with its generated profile computed once.
pub(crate) struct GroupView<'a> {
    dir: &'a Directory,
    index: u32,
    p: profile::GroupProfile,
}

impl<'a> GroupView<'a> {
    pub(crate) fn new(dir: &'a Directory, index: u32) -> Self {
        Self {
            dir,
            index,
            p: dir.group_profile(index),
        }
    }

    pub(crate) fn render(&self, select: &Select, with_type: bool) -> Value {
        build(&GROUP, select, with_type, |n| self.prop(n))
    }

    pub(crate) fn prop(&self, name: &str) -> Option<Value> {
        group_value(self.dir, self.index, &self.p, name)
    }
}

fn group_value(
    dir: &Directory,
    index: u32,
    p: &profile::GroupProfile,
    name: &str,
) -> Option<Value> {
    let unified = p.flavor == GroupFlavor::Unified;
    let dynamic = p.flavor == GroupFlavor::Dynamic;
    // groups-overview.md: Microsoft 365 `["Unified"]`, mail-enabled; security `[]`, not
    // mail-enabled; mail-enabled security `[]`, both; distribution `[]`, mail only.
    let mail_enabled = matches!(
        p.flavor,
        GroupFlavor::Unified | GroupFlavor::MailEnabledSecurity | GroupFlavor::Distribution
    );
    let security_enabled = !matches!(p.flavor, GroupFlavor::Unified | GroupFlavor::Distribution);
    Some(match name {
        "id" => Value::from(dir.id(ObjRef::group(index))),
        "deletedDateTime" | "classification" => Value::Null,
        "createdDateTime" => Value::from(timestamp(p.created_minutes)),
        "description" => Value::from(format!("{} group for {}", p.display_name, p.department)),
        "displayName" => Value::from(p.display_name.as_str()),
        "groupTypes" => match p.flavor {
            GroupFlavor::Unified => json!(["Unified"]),
            GroupFlavor::Dynamic => json!(["DynamicMembership"]),
            _ => json!([]),
        },
        "isAssignableToRole" => Value::from(false),
        "mail" if mail_enabled => Value::from(format!("{}@{}", p.nickname, dir.domain)),
        "mail" => Value::Null,
        "mailEnabled" => Value::from(mail_enabled),
        "mailNickname" => Value::from(p.nickname.as_str()),
        "membershipRule" if dynamic => {
            Value::from(format!("(user.department -eq \"{}\")", p.department))
        }
        "membershipRuleProcessingState" if dynamic => Value::from("On"),
        "membershipRule" | "membershipRuleProcessingState" => Value::Null,
        "onPremisesSyncEnabled" if p.flavor == GroupFlavor::OnPremSynced => Value::from(true),
        "onPremisesSyncEnabled" => Value::Null,
        "securityEnabled" => Value::from(security_enabled),
        "securityIdentifier" => Value::from(format!("S-1-12-1-{}-{index}", dir.seed % 1_000_000)),
        "visibility" if unified => Value::from(if p.public { "Public" } else { "Private" }),
        "visibility" => Value::Null,
        _ => return None,
    })
}

pub(crate) fn app_roles(dir: &Directory, sp: u32) -> Value {
    let count = dir.sp_profile(sp).role_count;
    Value::Array(
        (0..count)
            .map(|k| {
                let name = profile::APP_ROLE_NAMES[k as usize % profile::APP_ROLE_NAMES.len()];
                json!({
                    "allowedMemberTypes": ["User"],
                    "description": format!("{name}s of the application."),
                    "displayName": name,
                    "id": dir.app_role_id(sp, Some(k as u8)),
                    "isEnabled": true,
                    "origin": "Application",
                    "value": format!("App.{name}"),
                })
            })
            .collect(),
    )
}

/// A service principal with its generated profile computed once.
pub(crate) struct SpView<'a> {
    dir: &'a Directory,
    index: u32,
    p: profile::SpProfile,
}

impl<'a> SpView<'a> {
    pub(crate) fn new(dir: &'a Directory, index: u32) -> Self {
        Self {
            dir,
            index,
            p: dir.sp_profile(index),
        }
    }

    pub(crate) fn render(&self, select: &Select, with_type: bool) -> Value {
        build(&SERVICE_PRINCIPAL, select, with_type, |n| self.prop(n))
    }

    pub(crate) fn prop(&self, name: &str) -> Option<Value> {
        sp_value(self.dir, self.index, &self.p, name)
    }
}

fn sp_value(dir: &Directory, index: u32, p: &profile::SpProfile, name: &str) -> Option<Value> {
    let app_id = dir.codec.format(ns::APP_ID, u64::from(index));
    Some(match name {
        "id" => Value::from(dir.id(ObjRef::sp(index))),
        "deletedDateTime" => Value::Null,
        "accountEnabled" => Value::from(true),
        "alternativeNames" if p.managed => json!([
            "isExplicit=True",
            format!(
                "/subscriptions/{}/resourcegroups/rg-sim/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}",
                dir.codec.format(ns::ORGANIZATION, 1),
                p.display_name
            )
        ]),
        "alternativeNames" => json!([]),
        "appDisplayName" => Value::from(p.display_name.clone()),
        "appId" => Value::from(app_id.clone()),
        "appOwnerOrganizationId" => Value::from(dir.codec.format(ns::ORGANIZATION, 0)),
        "appRoleAssignmentRequired" => Value::from(p.assignment_required),
        "appRoles" => app_roles(dir, index),
        "displayName" => Value::from(p.display_name.as_str()),
        "servicePrincipalNames" if p.managed => {
            json!([
                app_id,
                format!(
                    "https://identity.azure.net/{}",
                    dir.codec.format(ns::ORGANIZATION, 2)
                )
            ])
        }
        "servicePrincipalNames" => json!([app_id]),
        "servicePrincipalType" => Value::from(if p.managed {
            "ManagedIdentity"
        } else {
            "Application"
        }),
        "signInAudience" if p.managed => Value::Null,
        "signInAudience" => Value::from("AzureADMyOrg"),
        "tags" if p.managed => json!([]),
        "tags" => json!(["WindowsAzureActiveDirectoryIntegratedApp"]),
        _ => return None,
    })
}

/// A user, group or service principal with `@odata.type` (members, owners, principals).
pub(crate) fn directory_object(dir: &Directory, obj: ObjRef, select: &Select) -> Value {
    let i = obj.index();
    match obj.kind() {
        ObjKind::User => UserView::new(dir, i).render(select, true),
        ObjKind::Group => GroupView::new(dir, i).render(select, true),
        ObjKind::ServicePrincipal => SpView::new(dir, i).render(select, true),
    }
}

pub(crate) fn odata_type(obj: ObjRef) -> &'static str {
    match obj.kind() {
        ObjKind::User => USER.odata_type,
        ObjKind::Group => GROUP.odata_type,
        ObjKind::ServicePrincipal => SERVICE_PRINCIPAL.odata_type,
    }
}

pub(crate) fn directory_role_prop(dir: &Directory, role: u32, name: &str) -> Option<Value> {
    let (display, _, description) = profile::role_template(role);
    Some(match name {
        "id" => Value::from(dir.directory_role_id(role)),
        "deletedDateTime" => Value::Null,
        "description" => Value::from(description),
        "displayName" => Value::from(display),
        "roleTemplateId" => Value::from(dir.role_definition_id(role)),
        _ => return None,
    })
}

pub(crate) fn role_definition_prop(dir: &Directory, role: u32, name: &str) -> Option<Value> {
    let (display, builtin, description) = profile::role_template(role);
    Some(match name {
        "id" | "templateId" => Value::from(dir.role_definition_id(role)),
        "description" => Value::from(description),
        "displayName" => Value::from(display),
        "isBuiltIn" => Value::from(builtin.is_some()),
        "isEnabled" => Value::from(true),
        "resourceScopes" => json!(["/"]),
        "version" => Value::from("1"),
        "rolePermissions" => json!([{
            "allowedResourceActions": ["microsoft.directory/users/standard/read"],
            "condition": null,
        }]),
        _ => return None,
    })
}

pub(crate) fn role_assignment_prop(dir: &Directory, index: u32, name: &str) -> Option<Value> {
    let a = dir.role_assignments.get(index as usize)?;
    Some(match name {
        "id" => Value::from(format!(
            "{}-1",
            dir.codec.format_opaque(ns::ROLE_ASSIGNMENT, index)
        )),
        "principalId" => Value::from(dir.id(a.principal)),
        "resourceScope" | "directoryScopeId" => Value::from(&*a.scope),
        "roleDefinitionId" => Value::from(dir.role_definition_id(a.role)),
        _ => return None,
    })
}

pub(crate) fn role_assignment(dir: &Directory, index: u32, select: &Select, expand: bool) -> Value {
    let mut value = build(&ROLE_ASSIGNMENT, select, false, |n| {
        role_assignment_prop(dir, index, n)
    });
    if expand
        && let (Some(a), Value::Object(map)) =
            (dir.role_assignments.get(index as usize), &mut value)
    {
        map.insert(
            "principal".to_owned(),
            directory_object(dir, a.principal, &Select::Default),
        );
    }
    value
}

pub(crate) fn app_assignment_prop(dir: &Directory, index: u32, name: &str) -> Option<Value> {
    let a = dir.app_assignments.get(index as usize)?;
    Some(match name {
        "id" => Value::from(dir.codec.format_opaque(ns::APP_ROLE_ASSIGNMENT, index)),
        "deletedDateTime" => Value::Null,
        "appRoleId" => Value::from(dir.app_role_id(a.sp, a.role)),
        "createdDateTime" => Value::from(timestamp(a.created_minutes)),
        "principalDisplayName" => Value::from(dir.display_name(a.principal)),
        "principalId" => Value::from(dir.id(a.principal)),
        "principalType" => Value::from(match a.principal.kind() {
            ObjKind::User => "User",
            ObjKind::Group => "Group",
            ObjKind::ServicePrincipal => "ServicePrincipal",
        }),
        "resourceDisplayName" => Value::from(dir.sp_profile(a.sp).display_name),
        "resourceId" => Value::from(dir.id(ObjRef::sp(a.sp))),
        _ => return None,
    })
}

pub(crate) fn app_assignment(dir: &Directory, index: u32, select: &Select) -> Value {
    build(&APP_ROLE_ASSIGNMENT, select, false, |n| {
        app_assignment_prop(dir, index, n)
    })
}
