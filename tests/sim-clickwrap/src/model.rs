//! The upstream objects (user, site, site membership) and their documented JSON shapes.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

/// A Clickwrap user, as returned in `data[]` of `GET /accounts/{account_id}/members` and in
/// `data[].user` of `GET /sites/{site_id}/memberships` (reference/retrieve-user-memberships-for-an-account-1
/// and reference/list-all-site-memberships-1 give the same property list for both).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct User {
    /// Integer id (the docs type `id` as `integer`, example `1`).
    pub(crate) id: u64,
    pub(crate) email: String,
    pub(crate) name: String,
    /// e.g. `en-US` (doc example).
    pub(crate) locale: String,
    /// Free text: the user example is `EDT`, the site example `America/New_York`.
    pub(crate) time_zone: String,
    /// Doc default `true`.
    pub(crate) verified: bool,
    /// [UNVERIFIED] Absent when `verified` is false; the docs only show a verified user.
    pub(crate) verified_time: Option<String>,
    /// `profiles[0].created_time`, format of the doc example `2015-06-12T21:28:14.680Z`.
    pub(crate) created_time: String,
    /// `profiles[0].updated_time`.
    pub(crate) updated_time: String,
    /// `profiles[0].photos` (the docs type it as an array of strings).
    pub(crate) photos: Vec<String>,
    /// Fields a test added with `Simulator::set_user_field` that the docs do not list.
    pub(crate) extra: Map<String, Value>,
}

impl User {
    /// The documented shape: `{id, email, name, locale, time_zone, verified, verified_time,
    /// profiles:[{id, provider:"local", displayName, emails, photos, created_time, updated_time}]}`.
    pub(crate) fn to_json(&self) -> Value {
        let mut obj = Map::with_capacity(9 + self.extra.len());
        obj.insert("id".into(), json!(self.id));
        obj.insert("email".into(), json!(self.email));
        obj.insert("name".into(), json!(self.name));
        obj.insert("locale".into(), json!(self.locale));
        obj.insert("time_zone".into(), json!(self.time_zone));
        obj.insert("verified".into(), json!(self.verified));
        if let Some(t) = &self.verified_time {
            obj.insert("verified_time".into(), json!(t));
        }
        obj.insert("profiles".into(), self.profiles());
        for (k, v) in &self.extra {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }

    /// One `local` profile. Doc example: `id` is the email, `provider` is `"local"`,
    /// `displayName` is the name.
    fn profiles(&self) -> Value {
        json!([{
            "id": self.email,
            "provider": "local",
            "displayName": self.name,
            "emails": [self.email],
            "photos": self.photos,
            "created_time": self.created_time,
            "updated_time": self.updated_time,
        }])
    }

    /// Values at a dotted path, for `filter` and `sort`. Scalar fields are read directly so a
    /// filter over 20,000 users does not render 20,000 objects.
    pub(crate) fn lookup(&self, path: &str) -> Vec<Value> {
        let (head, rest) = split_path(path);
        let scalar = match head {
            "id" => json!(self.id),
            "email" => json!(self.email),
            "name" => json!(self.name),
            "locale" => json!(self.locale),
            "time_zone" => json!(self.time_zone),
            "verified" => json!(self.verified),
            "verified_time" => match &self.verified_time {
                Some(t) => json!(t),
                None => return Vec::new(),
            },
            "profiles" => return descend(&self.profiles(), rest),
            other => match self.extra.get(other) {
                Some(v) => return descend(v, rest),
                None => return Vec::new(),
            },
        };
        if rest.is_empty() {
            vec![scalar]
        } else {
            Vec::new()
        }
    }
}

/// Site role. Support article "Manage Clickwrap Users" (support.ironcladapp.com): "The three user
/// roles in Clickwrap are Admins, Members, and Owners." The membership doc example is `"owner"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
}

/// One user's membership of one site (reference/list-all-site-memberships-1).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Membership {
    /// A 24-hex-digit string, like the doc example `557b4f08e1f61b9484f2296b`.
    pub(crate) id: String,
    pub(crate) site: u64,
    pub(crate) user: u64,
    pub(crate) role: Role,
    /// Doc enum `site | account`. [UNVERIFIED] what `account` means; we give it to the account
    /// owner, whose access to every site comes from the account rather than a site invitation.
    pub(crate) membership_type: &'static str,
    pub(crate) created_time: String,
    pub(crate) updated_time: String,
}

impl Membership {
    /// `{id, account, site, role, membership_type, created_time, updated_time, user:{USER}}`.
    pub(crate) fn to_json(&self, account: u64, user: &User) -> Value {
        json!({
            "id": self.id,
            "account": account,
            "site": self.site,
            "role": self.role.as_str(),
            "membership_type": self.membership_type,
            "created_time": self.created_time,
            "updated_time": self.updated_time,
            "user": user.to_json(),
        })
    }

    pub(crate) fn lookup(&self, account: u64, user: &User, path: &str) -> Vec<Value> {
        let (head, rest) = split_path(path);
        let scalar = match head {
            "id" => json!(self.id),
            "account" => json!(account),
            "site" => json!(self.site),
            "role" => json!(self.role.as_str()),
            "membership_type" => json!(self.membership_type),
            "created_time" => json!(self.created_time),
            "updated_time" => json!(self.updated_time),
            // Stored as a reference and populated in the answer; `user==<id>` compares the id.
            "user" if rest.is_empty() => json!(user.id),
            "user" => return user.lookup(rest),
            _ => return Vec::new(),
        };
        if rest.is_empty() {
            vec![scalar]
        } else {
            Vec::new()
        }
    }
}

/// A site (reference/get_sites). Only the fields a connector uses to discover account and site
/// ids are modelled, plus timestamps and `url`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Site {
    pub(crate) id: u64,
    pub(crate) account: u64,
    /// UUID, doc example `f9a33f92-0c74-4803-abb5-bf7159da7a13`.
    pub(crate) access_id: String,
    pub(crate) name: String,
    /// Slug, doc example `new-website`.
    pub(crate) key: String,
    pub(crate) locale: String,
    /// IANA name, doc example `America/New_York`.
    pub(crate) time_zone: String,
    pub(crate) verified: bool,
    /// Doc example `2023-11-02T15:23:51.007+00:00` (sites use `+00:00`, users use `Z`).
    pub(crate) verified_time: String,
    pub(crate) created_time: String,
    pub(crate) created_by: u64,
    pub(crate) sandbox: bool,
    pub(crate) primary: bool,
    pub(crate) url: String,
}

impl Site {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "account": self.account,
            "access_id": self.access_id,
            "name": self.name,
            "key": self.key,
            "locale": self.locale,
            "time_zone": self.time_zone,
            "url": self.url,
            "verified": self.verified,
            "verified_time": self.verified_time,
            "deleted": false,
            "disabled": false,
            "sandbox": self.sandbox,
            "primary": self.primary,
            "created_by": self.created_by,
            "created_time": self.created_time,
            "updated_time": self.created_time,
        })
    }

    pub(crate) fn lookup(&self, path: &str) -> Vec<Value> {
        descend(&self.to_json(), path)
    }
}

fn split_path(path: &str) -> (&str, &str) {
    path.split_once('.').unwrap_or((path, ""))
}

/// Values at `path` under `value`, flattening arrays on the way (so `profiles.provider` matches
/// any profile, as a document-store query would).
pub(crate) fn descend(value: &Value, path: &str) -> Vec<Value> {
    if let Value::Array(items) = value {
        return items.iter().flat_map(|v| descend(v, path)).collect();
    }
    if path.is_empty() {
        return vec![value.clone()];
    }
    let (head, rest) = split_path(path);
    match value.get(head) {
        Some(v) => descend(v, rest),
        None => Vec::new(),
    }
}

/// `2015-06-12T21:29:46.955Z`: the user/profile/membership timestamp format of the doc examples.
pub(crate) fn iso_z(unix_ms: i64) -> String {
    format_ms(unix_ms, "Z")
}

/// `2023-11-02T15:23:51.007+00:00`: the site timestamp format of reference/get_sites.
pub(crate) fn iso_offset(unix_ms: i64) -> String {
    format_ms(unix_ms, "+00:00")
}

fn format_ms(unix_ms: i64, suffix: &str) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{suffix}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_use_the_doc_formats() {
        // 2015-06-12T21:29:46.955Z is the doc's verified_time example.
        assert_eq!(iso_z(1_434_144_586_955), "2015-06-12T21:29:46.955Z");
        assert_eq!(
            iso_offset(1_434_144_586_955),
            "2015-06-12T21:29:46.955+00:00"
        );
    }

    #[test]
    fn descend_flattens_arrays() {
        let v = json!({"profiles": [{"provider": "local"}, {"provider": "saml"}]});
        assert_eq!(
            descend(&v, "profiles.provider"),
            vec![json!("local"), json!("saml")]
        );
        assert!(descend(&v, "profiles.nope").is_empty());
    }
}
