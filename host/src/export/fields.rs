//! Field paths: where a mapped column takes its value in a normalized [`Resource`].
//!
//! A path is parsed once, when the sink is built, so a path that can never resolve
//! (`user.email`, `profile.`, `group.kind` in a users-only export) fails the sink with the list
//! of valid paths instead of producing an empty column for every row. Resolving a parsed path is
//! then a plain match, with no string handling per record.
//!
//! Paths (the DESIGN §4 record fields):
//! - `id` (`user:123`), `upstream_id` (`123`), `type`, `display_name`, `status`, `parent`,
//!   `source` (the source name), `synced_at` (the time of the sync that wrote the row);
//! - `user.login`, `user.emails.primary` (the primary address, else the first),
//!   `user.emails` (every address, `;`-separated), `user.given_name`, `user.family_name`,
//!   `user.account_type`, `user.title`, `user.department`, `user.employee_id`, `user.manager`,
//!   `user.locale`, `user.time_zone`, `user.verified`, `user.verified_at`, `user.last_login`;
//! - `group.kind`, `group.member_count`, `group.dynamic`; `app.app_id`, `app.roles`
//!   (role values, `;`-separated); `role.template_id`;
//! - `profile.<key>[.<key or array index>…]`: any depth of the upstream attributes.
//!
//! Values render as text: strings as given (RFC 3339 times are not reformatted), booleans
//! `true`/`false`, numbers in JSON notation, objects and arrays as compact JSON; an absent
//! value is empty.

use idhost_connector_sdk::Resource;
use serde_json::Value;

use crate::route::RecordFilter;

/// A parsed field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FieldPath {
    /// `id`.
    Id,
    /// `upstream_id`.
    UpstreamId,
    /// `type`.
    Type,
    /// `display_name`.
    DisplayName,
    /// `status`.
    Status,
    /// `parent`.
    Parent,
    /// `source`: the name of the source that sent the record.
    Source,
    /// `synced_at`: filled when the sync commits.
    SyncedAt,
    /// `user.<field>`.
    User(UserField),
    /// `group.<field>`.
    Group(GroupField),
    /// `app.<field>`.
    App(AppField),
    /// `role.template_id`.
    RoleTemplateId,
    /// `profile.<segments>`.
    Profile(Vec<String>),
}

/// A field of the user trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserField {
    Login,
    PrimaryEmail,
    Emails,
    GivenName,
    FamilyName,
    AccountType,
    Title,
    Department,
    EmployeeId,
    Manager,
    Locale,
    TimeZone,
    Verified,
    VerifiedAt,
    LastLogin,
}

/// A field of the group trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupField {
    Kind,
    MemberCount,
    Dynamic,
}

/// A field of the app trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppField {
    AppId,
    Roles,
}

/// Every fixed path, for parsing and for the "valid paths are" part of errors.
const FIXED: &[(&str, FieldPath)] = &[
    ("id", FieldPath::Id),
    ("upstream_id", FieldPath::UpstreamId),
    ("type", FieldPath::Type),
    ("display_name", FieldPath::DisplayName),
    ("status", FieldPath::Status),
    ("parent", FieldPath::Parent),
    ("source", FieldPath::Source),
    ("synced_at", FieldPath::SyncedAt),
    ("user.login", FieldPath::User(UserField::Login)),
    (
        "user.emails.primary",
        FieldPath::User(UserField::PrimaryEmail),
    ),
    ("user.emails", FieldPath::User(UserField::Emails)),
    ("user.given_name", FieldPath::User(UserField::GivenName)),
    ("user.family_name", FieldPath::User(UserField::FamilyName)),
    ("user.account_type", FieldPath::User(UserField::AccountType)),
    ("user.title", FieldPath::User(UserField::Title)),
    ("user.department", FieldPath::User(UserField::Department)),
    ("user.employee_id", FieldPath::User(UserField::EmployeeId)),
    ("user.manager", FieldPath::User(UserField::Manager)),
    ("user.locale", FieldPath::User(UserField::Locale)),
    ("user.time_zone", FieldPath::User(UserField::TimeZone)),
    ("user.verified", FieldPath::User(UserField::Verified)),
    ("user.verified_at", FieldPath::User(UserField::VerifiedAt)),
    ("user.last_login", FieldPath::User(UserField::LastLogin)),
    ("group.kind", FieldPath::Group(GroupField::Kind)),
    (
        "group.member_count",
        FieldPath::Group(GroupField::MemberCount),
    ),
    ("group.dynamic", FieldPath::Group(GroupField::Dynamic)),
    ("app.app_id", FieldPath::App(AppField::AppId)),
    ("app.roles", FieldPath::App(AppField::Roles)),
    ("role.template_id", FieldPath::RoleTemplateId),
];

impl FieldPath {
    /// Parses `text`; `records` is the sink's record filter, so a trait path of a resource type
    /// the sink never receives is refused. The error says what is valid.
    pub(crate) fn parse(text: &str, records: &RecordFilter) -> Result<Self, String> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("profile") {
            let Some(rest) = rest.strip_prefix('.') else {
                return Err(unknown(text));
            };
            let segments: Vec<String> = rest.split('.').map(str::to_owned).collect();
            if segments.iter().any(String::is_empty) {
                return Err(format!(
                    "field path `{text}` has an empty segment; write `profile.<key>` or `profile.<key>.<key>`, e.g. `profile.user_id`"
                ));
            }
            return Ok(FieldPath::Profile(segments));
        }
        let Some((_, path)) = FIXED.iter().find(|(name, _)| *name == text) else {
            return Err(unknown(text));
        };
        if let Some(rtype) = path.trait_type()
            && !records.wants_resource(rtype)
        {
            return Err(format!(
                "field path `{text}` can never resolve: it reads the {rtype} trait, and this sink's `records` takes no `{rtype}` resources"
            ));
        }
        Ok(path.clone())
    }

    /// The resource type whose trait the path reads, if any.
    fn trait_type(&self) -> Option<&'static str> {
        match self {
            FieldPath::User(_) => Some("user"),
            FieldPath::Group(_) => Some("group"),
            FieldPath::App(_) => Some("app"),
            FieldPath::RoleTemplateId => Some("role"),
            _ => None,
        }
    }

    /// The value of the path in `r`, sent by `source`; `None` when absent (and always for
    /// `synced_at`, which the commit fills in).
    pub(crate) fn resolve(&self, r: &Resource, source: &str) -> Option<String> {
        match self {
            FieldPath::Id => Some(r.id.clone()),
            FieldPath::UpstreamId => Some(r.upstream_id().to_owned()),
            FieldPath::Type => Some(r.rtype.clone()),
            FieldPath::DisplayName => Some(r.display_name.clone()),
            FieldPath::Status => Some(r.status.as_str().to_owned()),
            FieldPath::Parent => r.parent.clone(),
            FieldPath::Source => Some(source.to_owned()),
            FieldPath::SyncedAt => None,
            FieldPath::User(field) => user_field(r, *field),
            FieldPath::Group(field) => {
                let g = r.group.as_ref()?;
                match field {
                    GroupField::Kind => Some(g.kind.clone()),
                    GroupField::MemberCount => g.member_count.map(|n| n.to_string()),
                    GroupField::Dynamic => Some(g.dynamic.to_string()),
                }
            }
            FieldPath::App(field) => {
                let a = r.app.as_ref()?;
                match field {
                    AppField::AppId => Some(a.app_id.clone()),
                    AppField::Roles => Some(join(a.roles.iter().map(|x| x.value.as_str()))),
                }
            }
            FieldPath::RoleTemplateId => r.role.as_ref()?.template_id.clone(),
            FieldPath::Profile(segments) => {
                let (first, rest) = segments.split_first()?;
                let mut value = r.profile.get(first)?;
                for segment in rest {
                    value = match value {
                        Value::Object(map) => map.get(segment)?,
                        Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
                        _ => return None,
                    };
                }
                render(value)
            }
        }
    }
}

fn user_field(r: &Resource, field: UserField) -> Option<String> {
    let u = r.user.as_ref()?;
    let text = |v: &Option<String>| v.clone();
    match field {
        UserField::Login => text(&u.login),
        UserField::PrimaryEmail => u.primary_email().map(str::to_owned),
        UserField::Emails => {
            (!u.emails.is_empty()).then(|| join(u.emails.iter().map(|e| e.address.as_str())))
        }
        UserField::GivenName => text(&u.given_name),
        UserField::FamilyName => text(&u.family_name),
        UserField::AccountType => serde_json::to_value(u.account_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
        UserField::Title => text(&u.title),
        UserField::Department => text(&u.department),
        UserField::EmployeeId => text(&u.employee_id),
        UserField::Manager => text(&u.manager),
        UserField::Locale => text(&u.locale),
        UserField::TimeZone => text(&u.time_zone),
        UserField::Verified => u.verified.map(|b| b.to_string()),
        UserField::VerifiedAt => text(&u.verified_at),
        UserField::LastLogin => text(&u.last_login),
    }
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(";")
}

/// A JSON value as column text; `null` is absent.
fn render(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// "unknown field path" with the closest valid paths and the full list.
fn unknown(text: &str) -> String {
    let last = text.rsplit('.').next().unwrap_or(text).to_ascii_lowercase();
    let mut close: Vec<&str> = FIXED
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| {
            (last.len() >= 3 && name.contains(last.as_str()))
                || name.starts_with(text)
                || edit_distance(name, text) <= 2
        })
        .collect();
    if text.starts_with("profile") || close.is_empty() && !text.contains('.') {
        close.push("profile.<key>");
    }
    let all: Vec<&str> = FIXED.iter().map(|(name, _)| *name).collect();
    let hint = match close.as_slice() {
        [] => String::new(),
        some => format!("did you mean `{}`? ", some.join("` or `")),
    };
    format!(
        "unknown field path `{text}`; {hint}valid paths are: {}, profile.<key>",
        all.join(", ")
    )
}

/// Levenshtein distance, for suggestions only (paths are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            prev = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SinkKind;
    use idhost_connector_sdk::{Email, GroupTrait, UserTrait};
    use serde_json::json;

    fn all() -> RecordFilter {
        SinkKind::Csv.default_records()
    }

    fn user() -> Resource {
        let mut r = Resource::new("user", "42", "Alex Doe");
        r.user = Some({
            let mut built = UserTrait::default();
            built.login = Some("alex".into());
            built.emails = vec![
                Email::new("alt@example.com".into(), false),
                Email::new("alex@example.com".into(), true),
            ];
            built.verified = Some(false);
            built.verified_at = Some("2015-06-12T21:29:46.955Z".into());
            built
        });
        r.profile = json!({"user_id": 42, "nested": {"list": ["a", {"b": true}]}, "none": null})
            .as_object()
            .cloned()
            .unwrap_or_default();
        r
    }

    fn get(path: &str, r: &Resource) -> Option<String> {
        FieldPath::parse(path, &all())
            .expect("valid path")
            .resolve(r, "corp")
    }

    #[test]
    fn paths_resolve_to_text() {
        let r = user();
        assert_eq!(get("id", &r).as_deref(), Some("user:42"));
        assert_eq!(get("upstream_id", &r).as_deref(), Some("42"));
        assert_eq!(get("status", &r).as_deref(), Some("enabled"));
        assert_eq!(get("source", &r).as_deref(), Some("corp"));
        assert_eq!(
            get("user.emails.primary", &r).as_deref(),
            Some("alex@example.com")
        );
        assert_eq!(
            get("user.emails", &r).as_deref(),
            Some("alt@example.com;alex@example.com")
        );
        assert_eq!(get("user.verified", &r).as_deref(), Some("false"));
        assert_eq!(
            get("user.verified_at", &r).as_deref(),
            Some("2015-06-12T21:29:46.955Z")
        );
        assert_eq!(get("user.account_type", &r).as_deref(), Some("human"));
        assert_eq!(get("user.title", &r), None);
        assert_eq!(get("profile.user_id", &r).as_deref(), Some("42"));
        assert_eq!(get("profile.nested.list.0", &r).as_deref(), Some("a"));
        assert_eq!(get("profile.nested.list.1.b", &r).as_deref(), Some("true"));
        assert_eq!(
            get("profile.nested.list.1", &r).as_deref(),
            Some(r#"{"b":true}"#)
        );
        assert_eq!(get("profile.none", &r), None);
        assert_eq!(get("profile.nested.list.9", &r), None);
        assert_eq!(get("group.kind", &r), None, "a user has no group trait");
        let mut g = Resource::new("group", "g1", "Legal");
        g.group = Some({
            let mut built = GroupTrait::default();
            built.kind = "security".into();
            built.member_count = Some(3);
            built.dynamic = false;
            built
        });
        assert_eq!(get("group.kind", &g).as_deref(), Some("security"));
        assert_eq!(get("group.member_count", &g).as_deref(), Some("3"));
    }

    #[test]
    fn unknown_paths_fail_with_suggestions() {
        let err = FieldPath::parse("user.email", &all()).expect_err("unknown");
        assert!(err.contains("unknown field path `user.email`"), "{err}");
        assert!(err.contains("did you mean `user.emails.primary`"), "{err}");
        let err = FieldPath::parse("displayname", &all()).expect_err("unknown");
        assert!(err.contains("`display_name`"), "{err}");
        let err = FieldPath::parse("profile", &all()).expect_err("needs a key");
        assert!(err.contains("profile.<key>"), "{err}");
        let err = FieldPath::parse("profile.a..b", &all()).expect_err("empty segment");
        assert!(err.contains("empty segment"), "{err}");
    }

    #[test]
    fn trait_paths_of_types_the_sink_never_receives_are_refused() {
        let text = "[sources.s]\nconnector = \"x\"\n[sinks.p]\ntype = \"csv\"\npath = \"p.csv\"\nrecords = [\"user\"]\nsync_key = \"K\"\n[sinks.p.mapping]\nK = \"id\"\n";
        let config = crate::config::parse(std::path::Path::new("t.toml"), text.into(), &|_| None)
            .expect("valid config");
        let users_only = &config.sinks[0].records;
        let err = FieldPath::parse("group.kind", users_only).expect_err("never resolves");
        assert!(err.contains("can never resolve"), "{err}");
        assert!(FieldPath::parse("user.login", users_only).is_ok());
        assert!(FieldPath::parse("profile.x", users_only).is_ok());
    }
}
