//! The normalized identity model every connector produces and every sink sees.
//!
//! Identifiers follow the Baton convention so people can move between tools:
//! resource `"<type>:<id>"`, entitlement `"<type>:<id>:<slug>"`, grant
//! `"<entitlement>:<principal type>:<principal id>"`. Build them with [`Resource::new`],
//! [`Entitlement::new`] and [`Grant::new`] rather than by hand.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Free-form upstream attributes kept beside the typed traits (extension attributes, raw fields).
pub type Profile = Map<String, Value>;

/// Lifecycle state of a resource as the upstream reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Status {
    /// Active, can sign in / be used.
    #[default]
    Enabled,
    /// Present upstream but disabled (e.g. `accountEnabled: false`).
    Disabled,
    /// Reported as deleted by the upstream (e.g. a delta `@removed`).
    Deleted,
    /// A status this SDK does not know (from a newer 1.x SDK), kept as sent.
    Other(crate::wire::UnknownName),
}

crate::wire::wire_enum!(Status {
    Enabled => "enabled",
    Disabled => "disabled",
    Deleted => "deleted",
});

/// One identity object: a user, group, app, role or a connector-specific type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Resource {
    /// Resource type (`user`, `group`, `app`, `role`, or one the manifest declares).
    #[serde(rename = "type")]
    pub rtype: String,
    /// `"<type>:<upstream id>"`.
    pub id: String,
    /// Human-readable name.
    pub display_name: String,
    /// Lifecycle state.
    #[serde(default)]
    pub status: Status,
    /// Id of the containing resource, if any (e.g. a site's account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// User trait, for `user` resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserTrait>,
    /// Group trait, for `group` resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupTrait>,
    /// App trait, for `app` resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppTrait>,
    /// Role trait, for `role` resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleTrait>,
    /// Upstream attributes not covered by a trait.
    #[serde(default)]
    pub profile: Profile,
}

impl Resource {
    /// A resource of type `rtype` whose upstream id is `upstream_id`; the id becomes
    /// `"<rtype>:<upstream_id>"`.
    pub fn new(rtype: &str, upstream_id: &str, display_name: impl Into<String>) -> Self {
        Self {
            rtype: rtype.to_owned(),
            id: resource_id(rtype, upstream_id),
            display_name: display_name.into(),
            status: Status::Enabled,
            parent: None,
            user: None,
            group: None,
            app: None,
            role: None,
            profile: Profile::new(),
        }
    }

    /// The upstream id: the part after `"<type>:"`.
    pub fn upstream_id(&self) -> &str {
        self.id
            .strip_prefix(self.rtype.as_str())
            .and_then(|rest| rest.strip_prefix(':'))
            .unwrap_or(&self.id)
    }

    /// A reference to this resource.
    pub fn as_ref(&self) -> ResourceRef {
        ResourceRef {
            rtype: self.rtype.clone(),
            id: self.upstream_id().to_owned(),
        }
    }
}

/// `"<type>:<upstream id>"`.
pub fn resource_id(rtype: &str, upstream_id: &str) -> String {
    let mut id = String::with_capacity(rtype.len() + 1 + upstream_id.len());
    id.push_str(rtype);
    id.push(':');
    id.push_str(upstream_id);
    id
}

/// Kind of account a user resource stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum AccountType {
    /// A person.
    #[default]
    Human,
    /// A workload identity (managed identity, service account).
    Service,
    /// A built-in system account.
    System,
    /// An account type this SDK does not know (from a newer 1.x SDK), kept as sent.
    Other(crate::wire::UnknownName),
}

crate::wire::wire_enum!(AccountType {
    Human => "human",
    Service => "service",
    System => "system",
});

/// One email address of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Email {
    /// The address.
    pub address: String,
    /// Whether this is the user's primary address.
    #[serde(default)]
    pub primary: bool,
}

impl Email {
    /// The address `address`, primary or not.
    pub fn new(address: String, primary: bool) -> Self {
        Self { address, primary }
    }

    /// The user's primary address.
    pub fn primary(address: String) -> Self {
        Self::new(address, true)
    }
}

/// Attributes every identity tool expects of a user.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserTrait {
    /// Sign-in name (userName, userPrincipalName, email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<String>,
    /// Email addresses, primary first.
    #[serde(default)]
    pub emails: Vec<Email>,
    /// Given name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Human, service or system account.
    #[serde(default)]
    pub account_type: AccountType,
    /// Job title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Department.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Employee id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employee_id: Option<String>,
    /// Manager (login, email or resource id, as the upstream gives it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// Locale, e.g. `en-US`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    /// Time zone as the upstream gives it (IANA name or abbreviation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Whether the upstream verified the account/email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// When it was verified (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<String>,
    /// Last sign-in (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login: Option<String>,
}

impl UserTrait {
    /// The primary email, or the first one.
    pub fn primary_email(&self) -> Option<&str> {
        self.emails
            .iter()
            .find(|e| e.primary)
            .or_else(|| self.emails.first())
            .map(|e| e.address.as_str())
    }
}

/// Attributes of a group.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GroupTrait {
    /// Kind: `security`, `microsoft_365`, `mail_enabled_security`, `distribution`, `scim`, ...
    pub kind: String,
    /// Member count when the upstream reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<u64>,
    /// Whether membership is computed by a rule (dynamic) rather than assigned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dynamic: bool,
}

/// One role an application defines.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AppRole {
    /// Upstream role id.
    pub id: String,
    /// Role value (the claim value), used as the entitlement slug.
    pub value: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: String,
}

/// Attributes of an application.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AppTrait {
    /// Upstream application (client) id.
    pub app_id: String,
    /// Roles the application defines.
    #[serde(default)]
    pub roles: Vec<AppRole>,
}

/// Attributes of a role.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RoleTrait {
    /// Upstream role template / definition id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
}

/// What holding an entitlement means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Purpose {
    /// Membership or assignment (group member, app assignment, role member).
    #[default]
    Assignment,
    /// A permission on the resource.
    Permission,
    /// Ownership of the resource.
    Ownership,
    /// A purpose this SDK does not know (from a newer 1.x SDK), kept as sent.
    Other(crate::wire::UnknownName),
}

crate::wire::wire_enum!(Purpose {
    Assignment => "assignment",
    Permission => "permission",
    Ownership => "ownership",
});

/// Something that can be granted on a resource: `"<type>:<id>:<slug>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Entitlement {
    /// `"<resource id>:<slug>"`.
    pub id: String,
    /// The resource it is on (`"<type>:<id>"`).
    pub resource: String,
    /// `member`, `owner`, `assignment`, an app role value, ...
    pub slug: String,
    /// Human-readable name.
    #[serde(default)]
    pub display_name: String,
    /// What holding it means.
    #[serde(default)]
    pub purpose: Purpose,
    /// Principal types it can be granted to.
    #[serde(default)]
    pub grantable_to: Vec<String>,
}

impl Entitlement {
    /// Entitlement `slug` on the resource `resource_id` (`"<type>:<id>"`).
    pub fn new(resource_id: &str, slug: &str, purpose: Purpose, grantable_to: &[&str]) -> Self {
        Self {
            id: format!("{resource_id}:{slug}"),
            resource: resource_id.to_owned(),
            slug: slug.to_owned(),
            display_name: String::new(),
            purpose,
            grantable_to: grantable_to.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Sets the display name.
    pub fn named(mut self, display_name: impl Into<String>) -> Self {
        self.display_name = display_name.into();
        self
    }
}

/// A principal holding an entitlement: `"<entitlement>:<principal type>:<principal id>"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Grant {
    /// `"<entitlement id>:<principal id>"`.
    pub id: String,
    /// Entitlement id.
    pub entitlement: String,
    /// Principal resource id (`"<type>:<id>"`).
    pub principal: String,
}

impl Grant {
    /// `principal_id` (`"<type>:<id>"`) holds `entitlement_id`.
    pub fn new(entitlement_id: &str, principal_id: &str) -> Self {
        Self {
            id: format!("{entitlement_id}:{principal_id}"),
            entitlement: entitlement_id.to_owned(),
            principal: principal_id.to_owned(),
        }
    }

    /// A grant with the id it was stored under (a host reading its own journal back).
    pub fn from_parts(id: String, entitlement: String, principal: String) -> Self {
        Self {
            id,
            entitlement,
            principal,
        }
    }
}

/// Why an id typed by a person (or sent by a host) cannot be used: it names the whole id, the
/// part at fault and what is wrong, e.g. ``"`user:..` is not a usable resource id: its id part
/// `..` is a path step, not an id"``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not a usable {what}: {reason}", id.escape_debug())]
pub struct IdError {
    /// The id as given.
    pub id: String,
    /// `resource id`, `entitlement id` or `grant id`.
    pub what: &'static str,
    /// What is wrong, naming the part.
    pub reason: String,
}

impl From<IdError> for crate::ConnectorError {
    fn from(err: IdError) -> Self {
        crate::ConnectorError::invalid_input(err.to_string())
    }
}

/// Why `part` cannot be one part of an id (`None`: it can). A part ends up in a URL path, an
/// OData or SCIM filter, or a log line, so it may not be empty, `.` or `..` (a path step), nor
/// hold `/` or `\` (a path separator), whitespace or a control character (CR/LF silently
/// dropped by a URL parser would target another object).
pub fn id_part_problem(part: &str) -> Option<&'static str> {
    if part.is_empty() {
        return Some("is empty");
    }
    if part == "." || part == ".." {
        return Some("is a path step, not an id");
    }
    if part.contains(['/', '\\']) {
        return Some("holds a path separator (`/` or `\\`)");
    }
    if part.chars().any(char::is_whitespace) {
        return Some("holds whitespace");
    }
    if part.chars().any(char::is_control) {
        return Some("holds a control character");
    }
    None
}

fn check_parts(id: &str, what: &'static str, parts: &[(&str, &str)]) -> Result<(), IdError> {
    for (name, part) in parts {
        if let Some(problem) = id_part_problem(part) {
            return Err(IdError {
                id: id.to_owned(),
                what,
                reason: format!("its {name} `{}` {problem}", part.escape_debug()),
            });
        }
    }
    Ok(())
}

/// A reference to a resource by type and upstream id (what provisioning calls take).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResourceRef {
    /// Resource type.
    #[serde(rename = "type")]
    pub rtype: String,
    /// Upstream id (without the `"<type>:"` prefix).
    pub id: String,
}

impl ResourceRef {
    /// Parses `"<type>:<id>"`; `None` when it is not one or a part is unusable
    /// ([`ResourceRef::try_parse`] says why).
    pub fn parse(s: &str) -> Option<Self> {
        Self::try_parse(s).ok()
    }

    /// Parses `"<type>:<id>"`, refusing an empty, `.`/`..`, or separator-, whitespace- or
    /// control-character-holding part with an error naming the id.
    pub fn try_parse(s: &str) -> Result<Self, IdError> {
        let Some((rtype, id)) = s.split_once(':') else {
            return Err(IdError {
                id: s.to_owned(),
                what: "resource id",
                reason: "a resource id is `<type>:<id>`, e.g. `user:6660d37dec0eac3deffb680e`"
                    .to_owned(),
            });
        };
        let parsed = Self {
            rtype: rtype.to_owned(),
            id: id.to_owned(),
        };
        check_parts(s, "resource id", &parsed.parts())?;
        Ok(parsed)
    }

    /// Checks a reference built otherwise (e.g. decoded from JSON) the way
    /// [`ResourceRef::try_parse`] would.
    pub fn validate(&self) -> Result<(), IdError> {
        check_parts(&self.to_id(), "resource id", &self.parts())
    }

    fn parts(&self) -> [(&'static str, &str); 2] {
        [("type", &self.rtype), ("id part", &self.id)]
    }

    /// `"<type>:<id>"`.
    pub fn to_id(&self) -> String {
        resource_id(&self.rtype, &self.id)
    }
}

/// A reference to an entitlement: the resource and the slug.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntitlementRef {
    /// The resource the entitlement is on.
    pub resource: ResourceRef,
    /// The slug (`member`, `owner`, an app role value, ...).
    pub slug: String,
}

impl EntitlementRef {
    /// Parses `"<type>:<id>:<slug>"`; the slug is the part after the last `:`. `None` when it
    /// is not one or a part is unusable ([`EntitlementRef::try_parse`] says why).
    pub fn parse(s: &str) -> Option<Self> {
        Self::try_parse(s).ok()
    }

    /// Parses `"<type>:<id>:<slug>"`, refusing unusable parts with an error naming the id.
    pub fn try_parse(s: &str) -> Result<Self, IdError> {
        let shape = || IdError {
            id: s.to_owned(),
            what: "entitlement id",
            reason: "an entitlement id is `<type>:<id>:<slug>`, e.g. `group:g1:member`".to_owned(),
        };
        let (resource, slug) = s.rsplit_once(':').ok_or_else(shape)?;
        let (rtype, id) = resource.split_once(':').ok_or_else(shape)?;
        let parsed = Self {
            resource: ResourceRef {
                rtype: rtype.to_owned(),
                id: id.to_owned(),
            },
            slug: slug.to_owned(),
        };
        parsed.check(s)?;
        Ok(parsed)
    }

    /// Checks a reference built otherwise the way [`EntitlementRef::try_parse`] would.
    pub fn validate(&self) -> Result<(), IdError> {
        self.check(&self.to_id())
    }

    fn check(&self, id: &str) -> Result<(), IdError> {
        let [t, i] = self.resource.parts();
        check_parts(id, "entitlement id", &[t, i, ("slug", &self.slug)])
    }

    /// `"<type>:<id>:<slug>"`.
    pub fn to_id(&self) -> String {
        format!("{}:{}", self.resource.to_id(), self.slug)
    }
}

/// A reference to a grant: the entitlement and the principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRef {
    /// The entitlement.
    pub entitlement: EntitlementRef,
    /// The principal holding it.
    pub principal: ResourceRef,
}

impl GrantRef {
    /// Parses `"<type>:<id>:<slug>:<principal type>:<principal id>"`; `None` when it is not one
    /// or a part is unusable ([`GrantRef::try_parse`] says why).
    pub fn parse(s: &str) -> Option<Self> {
        Self::try_parse(s).ok()
    }

    /// Parses `"<type>:<id>:<slug>:<principal type>:<principal id>"`, refusing unusable parts
    /// with an error naming the id.
    pub fn try_parse(s: &str) -> Result<Self, IdError> {
        let parts: Vec<&str> = s.splitn(5, ':').collect();
        let [rtype, id, slug, ptype, pid] = parts.as_slice() else {
            return Err(IdError {
                id: s.to_owned(),
                what: "grant id",
                reason: "a grant id is `<type>:<id>:<slug>:<principal type>:<principal id>`, \
                         e.g. `group:g1:member:user:u1`"
                    .to_owned(),
            });
        };
        let parsed = Self {
            entitlement: EntitlementRef {
                resource: ResourceRef {
                    rtype: (*rtype).to_owned(),
                    id: (*id).to_owned(),
                },
                slug: (*slug).to_owned(),
            },
            principal: ResourceRef {
                rtype: (*ptype).to_owned(),
                id: (*pid).to_owned(),
            },
        };
        parsed.check(s)?;
        Ok(parsed)
    }

    /// Checks a reference built otherwise the way [`GrantRef::try_parse`] would.
    pub fn validate(&self) -> Result<(), IdError> {
        self.check(&self.to_id())
    }

    fn check(&self, id: &str) -> Result<(), IdError> {
        let [t, i] = self.entitlement.resource.parts();
        check_parts(
            id,
            "grant id",
            &[
                t,
                i,
                ("slug", &self.entitlement.slug),
                ("principal type", &self.principal.rtype),
                ("principal id", &self.principal.id),
            ],
        )
    }

    /// `"<entitlement id>:<principal id>"`.
    pub fn to_id(&self) -> String {
        format!("{}:{}", self.entitlement.to_id(), self.principal.to_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_baton_convention() {
        let group = Resource::new("group", "g1", "Legal");
        assert_eq!(group.id, "group:g1");
        assert_eq!(group.upstream_id(), "g1");
        let ent = Entitlement::new(&group.id, "member", Purpose::Assignment, &["user"]);
        assert_eq!(ent.id, "group:g1:member");
        let grant = Grant::new(&ent.id, "user:6660d3");
        assert_eq!(grant.id, "group:g1:member:user:6660d3");
        let parsed = GrantRef::parse(&grant.id).expect("grant id parses");
        assert_eq!(parsed.to_id(), grant.id);
        assert_eq!(parsed.principal.id, "6660d3");
        let ent_ref = EntitlementRef::parse("app:sp-1:Reader.All").expect("parses");
        assert_eq!(ent_ref.resource.id, "sp-1");
        assert_eq!(ent_ref.slug, "Reader.All");
    }

    #[test]
    fn malformed_references_are_rejected() {
        assert!(ResourceRef::parse("nocolon").is_none());
        assert!(ResourceRef::parse(":x").is_none());
        assert!(EntitlementRef::parse("group:g1:").is_none());
        assert!(GrantRef::parse("group:g1:member:user").is_none());
    }

    #[test]
    fn path_steps_separators_whitespace_and_control_characters_are_refused_naming_the_id() {
        // Issue 15: `user:..` reached `DELETE /scim/v2/Users`; CR/LF was dropped from an id.
        for (id, part) in [
            ("user:..", "`..` is a path step"),
            ("user:.", "`.` is a path step"),
            ("user:a/b", "path separator"),
            ("user:a\\b", "path separator"),
            ("user:a b", "whitespace"),
            ("user:u1\r\n", "whitespace"),
            ("user:u\u{7}1", "control character"),
            ("us er:u1", "type `us er` holds whitespace"),
        ] {
            let err = ResourceRef::try_parse(id).expect_err(id);
            assert!(err.to_string().contains(part), "{id}: {err}");
            // The id is shown escaped: a CR/LF or an escape sequence cannot rewrite the line.
            assert!(
                err.to_string()
                    .starts_with(&format!("`{}`", id.escape_debug())),
                "{err}"
            );
        }
        let err = EntitlementRef::try_parse("group:..:member").expect_err("..");
        assert_eq!(
            err.to_string(),
            "`group:..:member` is not a usable entitlement id: its id part `..` is a path step, not an id"
        );
        assert!(GrantRef::try_parse("group:g1:member:user:..").is_err());
        assert!(GrantRef::try_parse("group:g1:mem ber:user:u1").is_err());
        let built = ResourceRef {
            rtype: "user".into(),
            id: "..".into(),
        };
        assert!(built.validate().is_err(), "a decoded ref is checked too");
        assert!(
            ResourceRef::try_parse("app:sp-1:Reader.All").is_ok(),
            "colons are fine"
        );
    }

    #[test]
    fn resource_serializes_type_and_skips_absent_traits() {
        let mut user = Resource::new("user", "u1", "Alex Doe");
        user.user = Some(UserTrait {
            login: Some("alex@example.com".into()),
            emails: vec![Email {
                address: "alex@example.com".into(),
                primary: true,
            }],
            ..UserTrait::default()
        });
        let json = serde_json::to_value(&user).expect("serializes");
        assert_eq!(json["type"], "user");
        assert_eq!(json["status"], "enabled");
        assert!(json.get("group").is_none());
        assert_eq!(json["user"]["emails"][0]["primary"], true);
        let back: Resource = serde_json::from_value(json).expect("round-trips");
        assert_eq!(back, user);
    }
}
