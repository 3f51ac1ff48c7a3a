//! What Graph lets a client change on each kind of group, and why not.
//!
//! - groups-overview.md: "Only Microsoft 365 and security groups can be managed through the
//!   Microsoft Graph groups API. Mail-enabled and distribution groups are read-only through
//!   Microsoft Graph."
//! - group-post-members.md, the table of member types: a security group takes users, security
//!   groups, devices, service principals and contacts; a Microsoft 365 group takes users only;
//!   a Microsoft 365 group is a member of no group.
//! - group-post-owners.md: owners are users or service principals, of Microsoft 365 and
//!   security groups.
//! - group-delete-members.md: "You can't remove a member from groups with dynamic memberships";
//!   dynamic groups compute their members from `membershipRule`.
//! - group-list-owners.md: "Owners are currently not available in Microsoft Graph for groups
//!   that were created in Exchange, distribution groups, or groups that are synchronized from an
//!   on-premises environment." Objects synchronized from on-premises Active Directory are
//!   changed there (Graph answers "Unable to update the specified properties for objects that
//!   have originated within an external service").
//!
//! The same rules give each group's entitlements their `grantable_to` (so `idhost provision`
//! refuses before any request) and the connector's own refusal before a write.

use serde_json::Value;

/// The facts about a group that decide what can be granted on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupKind {
    /// `microsoft_365`, `security`, `mail_enabled_security` or `distribution`.
    pub(crate) kind: &'static str,
    pub(crate) dynamic: bool,
    pub(crate) on_premises: bool,
}

/// A member or owner relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rel {
    Member,
    Owner,
}

/// Why a grant or revoke cannot go through Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The relationship is managed outside Graph (a rule, Exchange, Active Directory): no
    /// principal can be granted or revoked.
    ManagedElsewhere(String),
    /// The relationship takes other principal types.
    WrongPrincipal(String),
}

fn has(v: &Value, key: &str, wanted: &str) -> bool {
    v.get(key)
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|x| x.as_str() == Some(wanted)))
}

impl GroupKind {
    /// From a group's `groupTypes`, `mailEnabled`, `securityEnabled` and
    /// `onPremisesSyncEnabled` (groups-overview.md, "Group types in Microsoft Entra ID and
    /// Microsoft Graph").
    pub(crate) fn of(v: &Value) -> Self {
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        let kind = if has(v, "groupTypes", "Unified") {
            "microsoft_365"
        } else {
            match (flag("securityEnabled"), flag("mailEnabled")) {
                (true, true) => "mail_enabled_security",
                (false, true) => "distribution",
                _ => "security",
            }
        };
        Self {
            kind,
            dynamic: has(v, "groupTypes", "DynamicMembership"),
            on_premises: flag("onPremisesSyncEnabled"),
        }
    }

    /// How the kind reads in a message: "a dynamic Microsoft 365 group", ….
    pub(crate) fn describe(self) -> String {
        let base = match self.kind {
            "microsoft_365" => "Microsoft 365 group",
            "mail_enabled_security" => "mail-enabled security group",
            "distribution" => "distribution group",
            _ => "security group",
        };
        let mut words = Vec::new();
        if self.on_premises {
            words.push("on-premises-synced");
        }
        if self.dynamic {
            words.push("dynamic");
        }
        words.push(base);
        let text = words.join(" ");
        let article = if text.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!("{article} {text}")
    }

    fn exchange(self) -> bool {
        matches!(self.kind, "mail_enabled_security" | "distribution")
    }

    /// Why nothing can be granted or revoked on `rel` of this group, if so.
    pub(crate) fn managed_elsewhere(self, rel: Rel) -> Option<String> {
        if self.on_premises {
            return Some(format!(
                "it is {}: its {} are managed in on-premises Active Directory and Graph refuses \
                 changes (400 \"Unable to update the specified properties for objects that have \
                 originated within an external service\")",
                self.describe(),
                rel.plural()
            ));
        }
        if self.exchange() {
            return Some(format!(
                "it is {}: mail-enabled security and distribution groups are read-only through \
                 Microsoft Graph and are managed in Exchange Online",
                self.describe()
            ));
        }
        if rel == Rel::Member && self.dynamic {
            return Some(format!(
                "it is {}: its members come from its membership rule, and Graph refuses member \
                 writes (403 Authorization_RequestDenied)",
                self.describe()
            ));
        }
        None
    }

    /// The principal types `rel` of this group can be granted to (the entitlement's
    /// `grantable_to`): empty when Graph manages it elsewhere.
    pub(crate) fn grantable_to(self, rel: Rel) -> &'static [&'static str] {
        if self.managed_elsewhere(rel).is_some() {
            return &[];
        }
        match (rel, self.kind) {
            (Rel::Owner, _) => &["user", "app"],
            (Rel::Member, "microsoft_365") => &["user"],
            (Rel::Member, _) => &["user", "group", "app"],
        }
    }

    /// Whether `principal_type` (`user`, `group`, `app`) may hold `rel`; the refusal otherwise.
    /// `is_service_principal` says a `user` is a managed identity; `principal_kind` is the kind
    /// of a `group` principal when known.
    pub(crate) fn check(
        self,
        rel: Rel,
        principal_type: &str,
        is_service_principal: bool,
        principal_kind: Option<GroupKind>,
    ) -> Result<(), Refusal> {
        if let Some(why) = self.managed_elsewhere(rel) {
            return Err(Refusal::ManagedElsewhere(why));
        }
        let allowed = self.grantable_to(rel);
        if !allowed.contains(&principal_type) {
            return Err(Refusal::WrongPrincipal(match rel {
                Rel::Owner => {
                    "the owners of a group are users or service principals (group-post-owners)"
                        .to_owned()
                }
                Rel::Member => format!(
                    "it is {}, and Microsoft 365 groups take only users as members \
                     (group-post-members)",
                    self.describe()
                ),
            }));
        }
        if rel == Rel::Member && self.kind == "microsoft_365" && is_service_principal {
            return Err(Refusal::WrongPrincipal(format!(
                "it is {}, and a managed identity is a service principal, which Microsoft 365 \
                 groups do not take as members (group-post-members)",
                self.describe()
            )));
        }
        if rel == Rel::Member && principal_kind.is_some_and(|k| k.kind == "microsoft_365") {
            return Err(Refusal::WrongPrincipal(
                "the principal is a Microsoft 365 group, which cannot be a member of any group \
                 (group-post-members)"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

impl Rel {
    fn plural(self) -> &'static str {
        match self {
            Self::Member => "members",
            Self::Owner => "owners",
        }
    }

    /// The Graph relationship (`members`, `owners`).
    pub(crate) fn relationship(self) -> &'static str {
        self.plural()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(v: Value) -> GroupKind {
        GroupKind::of(&v)
    }

    #[test]
    fn grantable_to_follows_the_documented_rules() {
        let security = kind(json!({"groupTypes": [], "securityEnabled": true}));
        assert_eq!(security.grantable_to(Rel::Member), ["user", "group", "app"]);
        assert_eq!(security.grantable_to(Rel::Owner), ["user", "app"]);
        let m365 = kind(json!({"groupTypes": ["Unified"], "mailEnabled": true}));
        assert_eq!(m365.grantable_to(Rel::Member), ["user"]);
        assert_eq!(m365.grantable_to(Rel::Owner), ["user", "app"]);
        let dynamic = kind(json!({"groupTypes": ["DynamicMembership"], "securityEnabled": true}));
        assert!(dynamic.grantable_to(Rel::Member).is_empty());
        assert_eq!(dynamic.grantable_to(Rel::Owner), ["user", "app"]);
        for v in [
            json!({"groupTypes": [], "securityEnabled": true, "mailEnabled": true}),
            json!({"groupTypes": [], "mailEnabled": true}),
            json!({"groupTypes": [], "securityEnabled": true, "onPremisesSyncEnabled": true}),
        ] {
            let k = kind(v);
            assert!(k.grantable_to(Rel::Member).is_empty(), "{k:?}");
            assert!(k.grantable_to(Rel::Owner).is_empty(), "{k:?}");
        }
        assert_eq!(
            kind(json!({"groupTypes": [], "mailEnabled": true})).describe(),
            "a distribution group"
        );
        assert_eq!(
            kind(json!({"groupTypes": [], "securityEnabled": true, "onPremisesSyncEnabled": true}))
                .describe(),
            "an on-premises-synced security group"
        );
    }

    #[test]
    fn principal_checks_name_why() {
        let m365 = kind(json!({"groupTypes": ["Unified"], "mailEnabled": true}));
        let security = kind(json!({"groupTypes": [], "securityEnabled": true}));
        assert!(m365.check(Rel::Member, "user", false, None).is_ok());
        assert!(matches!(
            m365.check(Rel::Member, "app", true, None),
            Err(Refusal::WrongPrincipal(_))
        ));
        assert!(matches!(
            m365.check(Rel::Member, "user", true, None),
            Err(Refusal::WrongPrincipal(w)) if w.contains("managed identity")
        ));
        assert!(matches!(
            security.check(Rel::Member, "group", false, Some(m365)),
            Err(Refusal::WrongPrincipal(w)) if w.contains("cannot be a member")
        ));
        assert!(
            security
                .check(Rel::Member, "group", false, Some(security))
                .is_ok()
        );
        assert!(matches!(
            security.check(Rel::Owner, "group", false, None),
            Err(Refusal::WrongPrincipal(_))
        ));
    }
}
