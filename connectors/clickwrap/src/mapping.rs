//! Upstream JSON → the normalized model: users, sites, site-role entitlements and grants.

use idhost_connector_sdk::{
    ConnectorError, Email, Entitlement, Grant, Profile, Purpose, Resource, Status, UserTrait,
    resource_id,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Resource type of a Clickwrap site (declared in the manifest).
pub(crate) const SITE: &str = "site";
/// Resource type of a Clickwrap user.
pub(crate) const USER: &str = "user";

/// The site roles of support article "Manage Clickwrap Users" ("The three user roles in
/// Clickwrap are Admins, Members, and Owners"), as (slug, display name).
///
/// Purpose `permission`: a role is the level of what its holder may do on the site (owners and
/// admins manage the site and its users, members work on its contracts), and every site member
/// holds exactly one of them. It is not a bare membership (`assignment`), and `owner` is a role
/// granted like the others rather than ownership of a record.
pub(crate) const ROLES: [(&str, &str); 3] =
    [("owner", "Owner"), ("admin", "Admin"), ("member", "Member")];

/// A user object, as in `data[]` of `GET /accounts/{id}/members` and `data[].user` of
/// `GET /sites/{id}/memberships` (reference/retrieve-user-memberships-for-an-account-1 and
/// reference/list-all-site-memberships-1 list the same properties).
#[derive(Debug, Deserialize)]
pub(crate) struct ApiUser {
    /// `integer` in the docs; a string is accepted too.
    id: Value,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    verified: Option<bool>,
    #[serde(default)]
    verified_time: Option<String>,
    /// `profiles[]` and anything undocumented: kept in the resource's profile.
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// A site, from `GET /sites` or `GET /sites/{id}` (reference/get_sites, retrieve-a-site-1).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ApiSite {
    id: Value,
    #[serde(default)]
    account: Value,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    deleted: Option<bool>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// A site membership (reference/list-all-site-memberships-1):
/// `{id, account, site, role, membership_type, created_time, updated_time, user:{USER}}`.
#[derive(Debug, Deserialize)]
pub(crate) struct ApiMembership {
    #[serde(default)]
    role: Option<String>,
    /// The embedded user object; a bare user id is accepted too.
    #[serde(default)]
    user: Value,
}

/// Site fields kept in a site's profile: the ones that say what the site is. Its many settings
/// (`email_reply_address`, `company_information`, …) stay out, so changing them does not
/// raise change events about identities.
const SITE_PROFILE_FIELDS: &[&str] = &[
    "key",
    "url",
    "locale",
    "time_zone",
    "sandbox",
    "primary",
    "verified",
    "verified_time",
    "created_time",
];

/// An integer id given as a JSON number or a string of digits.
pub(crate) fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The id as it appears in resource ids: digits for numbers, the text otherwise.
fn id_text(value: &Value, what: &str) -> Result<String, ConnectorError> {
    match value {
        Value::Number(n) => Ok(n.to_string()),
        Value::String(s) if !s.trim().is_empty() && !s.contains(':') => Ok(s.trim().to_owned()),
        other => Err(ConnectorError::internal(format!(
            "a {what} in the API's answer has no usable `id` (got `{other}`)"
        ))),
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl ApiUser {
    /// `user:<id>` with the seven fields Oomnitza maps (Email, Locale, Name, Time Zone, User Id,
    /// Verified, Verified Time) in the user trait and the numeric id as `profile.user_id`.
    pub(crate) fn into_resource(self) -> Result<Resource, ConnectorError> {
        let id = id_text(&self.id, "user")?;
        let email = non_empty(&self.email).map(str::to_owned);
        let display = non_empty(&self.name)
            .map(str::to_owned)
            .or_else(|| email.clone())
            .unwrap_or_else(|| id.clone());
        let mut resource = Resource::new(USER, &id, display);
        resource.user = Some({
            let mut built = UserTrait::default();
            built.login = email.clone();
            built.emails = email
                .into_iter()
                .map(|address| Email::new(address, true))
                .collect();
            built.locale = non_empty(&self.locale).map(str::to_owned);
            built.time_zone = non_empty(&self.time_zone).map(str::to_owned);
            built.verified = self.verified;
            built.verified_at = non_empty(&self.verified_time).map(str::to_owned);
            built
        });
        let mut profile = Profile::new();
        profile.insert("user_id".to_owned(), self.id);
        profile.extend(self.rest);
        resource.profile = profile;
        Ok(resource)
    }
}

impl ApiSite {
    pub(crate) fn id(&self) -> Option<u64> {
        as_u64(&self.id)
    }

    pub(crate) fn account(&self) -> Option<u64> {
        as_u64(&self.account)
    }

    pub(crate) fn name(&self) -> &str {
        non_empty(&self.name).unwrap_or("")
    }

    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted == Some(true)
    }

    /// `site:<id>`, with its account and descriptive fields in the profile.
    pub(crate) fn to_resource(&self) -> Result<Resource, ConnectorError> {
        let id = id_text(&self.id, "site")?;
        let display = match self.name() {
            "" => format!("Site {id}"),
            name => name.to_owned(),
        };
        let mut resource = Resource::new(SITE, &id, display);
        resource.status = if self.is_deleted() {
            Status::Deleted
        } else if self.disabled == Some(true) {
            Status::Disabled
        } else {
            Status::Enabled
        };
        let mut profile = Profile::new();
        profile.insert("site_id".to_owned(), self.id.clone());
        if !self.account.is_null() {
            profile.insert("account_id".to_owned(), self.account.clone());
        }
        for field in SITE_PROFILE_FIELDS {
            if let Some(v) = self.rest.get(*field) {
                profile.insert((*field).to_owned(), v.clone());
            }
        }
        resource.profile = profile;
        Ok(resource)
    }

    /// One line for error messages: `10011 "Customer Terms" (account 1001, sandbox)`.
    pub(crate) fn describe(&self) -> String {
        let mut notes = Vec::new();
        if let Some(account) = self.account() {
            notes.push(format!("account {account}"));
        }
        if self.rest.get("sandbox") == Some(&Value::Bool(true)) {
            notes.push("sandbox".to_owned());
        }
        let id = self
            .id()
            .map_or_else(|| self.id.to_string(), |n| n.to_string());
        format!("{id} \"{}\" ({})", self.name(), notes.join(", "))
    }
}

/// The `owner`, `admin` and `member` entitlements of a site.
pub(crate) fn site_entitlements(site: &Resource) -> Vec<Entitlement> {
    ROLES
        .iter()
        .map(|(slug, label)| role_entitlement(site, slug, label))
        .collect()
}

fn role_entitlement(site: &Resource, slug: &str, label: &str) -> Entitlement {
    Entitlement::new(&site.id, slug, Purpose::Permission, &[USER])
        .named(format!("{label} of {}", site.display_name))
}

/// Grants from one page of a site's memberships, plus entitlements for any role beyond the
/// three documented ones (so a role Clickwrap adds later is reported, not dropped).
pub(crate) fn membership_grants(
    site: &Resource,
    memberships: Vec<ApiMembership>,
) -> Result<(Vec<Grant>, Vec<Entitlement>), ConnectorError> {
    let mut grants = Vec::with_capacity(memberships.len());
    let mut extra: Vec<Entitlement> = Vec::new();
    for m in memberships {
        let user_id = match &m.user {
            Value::Object(user) => user.get("id").cloned().unwrap_or(Value::Null),
            bare => bare.clone(),
        };
        let user_id = id_text(&user_id, "site membership's user")?;
        let Some(role) = non_empty(&m.role).map(|r| r.to_ascii_lowercase().replace(':', "_"))
        else {
            tracing::warn!(site = %site.id, user = %user_id, "site membership without a role; skipped");
            continue;
        };
        let entitlement_id = format!("{}:{role}", site.id);
        if !ROLES.iter().any(|(slug, _)| *slug == role) && !extra.iter().any(|e| e.slug == role) {
            tracing::warn!(site = %site.id, role = %role, "undocumented site role; reported as its own entitlement");
            extra.push(role_entitlement(site, &role, &role));
        }
        grants.push(Grant::new(&entitlement_id, &resource_id(USER, &user_id)));
    }
    Ok((grants, extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documented_user_example_maps_to_the_seven_fields() {
        let user: ApiUser = serde_json::from_value(json!({
            "id": 1, "email": "eric@pactsafe.com", "name": "Eric", "locale": "en-US",
            "time_zone": "EDT", "verified": true, "verified_time": "2015-06-12T21:29:46.955Z",
            "profiles": [{"id": "eric@pactsafe.com", "provider": "local", "displayName": "Eric"}],
            "department": "Legal"
        }))
        .expect("parses");
        let r = user.into_resource().expect("maps");
        assert_eq!(r.id, "user:1");
        assert_eq!(r.display_name, "Eric");
        let u = r.user.expect("user trait");
        assert_eq!(u.login.as_deref(), Some("eric@pactsafe.com"));
        assert_eq!(u.primary_email(), Some("eric@pactsafe.com"));
        assert_eq!(u.locale.as_deref(), Some("en-US"));
        assert_eq!(u.time_zone.as_deref(), Some("EDT"));
        assert_eq!(u.verified, Some(true));
        assert_eq!(u.verified_at.as_deref(), Some("2015-06-12T21:29:46.955Z"));
        assert_eq!(r.profile["user_id"], json!(1));
        assert_eq!(r.profile["profiles"][0]["provider"], json!("local"));
        assert_eq!(r.profile["department"], json!("Legal"));
        assert!(
            r.profile.get("email").is_none(),
            "trait fields are not repeated"
        );
    }

    #[test]
    fn a_user_without_name_or_verification_still_maps() {
        let user: ApiUser =
            serde_json::from_value(json!({"id": 7, "email": "new@example.com", "name": "",
                                          "verified": false, "verified_time": null}))
            .expect("parses");
        let r = user.into_resource().expect("maps");
        assert_eq!(r.display_name, "new@example.com");
        let u = r.user.expect("user trait");
        assert_eq!((u.verified, u.verified_at), (Some(false), None));
        let bad: ApiUser = serde_json::from_value(json!({"id": null})).expect("parses");
        assert!(bad.into_resource().is_err());
    }

    #[test]
    fn memberships_become_role_grants_and_unknown_roles_their_own_entitlement() {
        let site: ApiSite = serde_json::from_value(
            json!({"id": 5, "account": 1, "name": "Terms", "key": "terms",
                                          "email_reply_address": "x@example.com"}),
        )
        .expect("parses");
        let res = site.to_resource().expect("maps");
        assert_eq!(res.id, "site:5");
        assert_eq!(res.profile["account_id"], json!(1));
        assert_eq!(res.profile["key"], json!("terms"));
        assert!(res.profile.get("email_reply_address").is_none());
        let ents = site_entitlements(&res);
        let ids: Vec<&str> = ents.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["site:5:owner", "site:5:admin", "site:5:member"]);
        assert_eq!(ents[1].display_name, "Admin of Terms");
        let memberships: Vec<ApiMembership> = serde_json::from_value(json!([
            {"id": "a", "role": "owner", "user": {"id": 10}},
            {"id": "b", "role": "Admin", "user": 11},
            {"id": "c", "role": "auditor", "user": {"id": 12}},
            {"id": "d", "user": {"id": 13}}
        ]))
        .expect("parses");
        let (grants, extra) = membership_grants(&res, memberships).expect("maps");
        let ids: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "site:5:owner:user:10",
                "site:5:admin:user:11",
                "site:5:auditor:user:12"
            ]
        );
        assert_eq!(extra.len(), 1);
        assert_eq!(extra[0].id, "site:5:auditor");
    }
}
