//! Finding what the command line names: a principal by resource id, login or email (any
//! case), an entitlement or a resource by id. Nothing found is an error (exit 2), never an
//! empty answer; a name found in several places asks for `--source`.

use rusqlite::{OptionalExtension as _, params};
use serde_json::Value;

use super::InspectError;
use super::db::SinkDb;

/// A resource row with its user trait's names, as the day-two commands show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Source name.
    pub source: String,
    /// Resource id (`user:<id>`).
    pub id: String,
    /// Resource type.
    pub rtype: String,
    /// Display name.
    pub display_name: String,
    /// `enabled`, `disabled` or `deleted`.
    pub status: String,
    /// The user trait's login.
    pub login: Option<String>,
    /// The primary email (else the first one).
    pub email: Option<String>,
    /// Every email address.
    pub emails: Vec<String>,
    /// The user trait's employee id.
    pub employee_id: Option<String>,
}

/// Columns [`Account::from_row`] reads, in order.
pub const ACCOUNT_COLUMNS: &str = "source, id, type, display_name, status, user";

impl Account {
    /// An account from a row of [`ACCOUNT_COLUMNS`].
    pub fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let user: Option<String> = row.get(5)?;
        let trait_ = user
            .as_deref()
            .and_then(|u| serde_json::from_str::<Value>(u).ok())
            .unwrap_or(Value::Null);
        let text = |key: &str| {
            trait_
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.trim().is_empty())
                .map(str::to_owned)
        };
        let mut emails = Vec::new();
        let mut primary = None;
        for email in trait_
            .get("emails")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(address) = email.get("address").and_then(Value::as_str) {
                if primary.is_none() && email.get("primary").and_then(Value::as_bool) == Some(true)
                {
                    primary = Some(address.to_owned());
                }
                emails.push(address.to_owned());
            }
        }
        Ok(Self {
            source: row.get(0)?,
            id: row.get(1)?,
            rtype: row.get(2)?,
            display_name: row.get(3)?,
            status: row.get(4)?,
            login: text("login"),
            email: primary.or_else(|| emails.first().cloned()),
            emails,
            employee_id: text("employee_id"),
        })
    }

    /// Whether `needle` (trimmed, lower case) is this account's login or one of its emails.
    fn answers_to(&self, needle: &str) -> bool {
        let same = |s: &String| s.trim().to_lowercase() == needle;
        self.login.as_ref().is_some_and(same) || self.emails.iter().any(same)
    }
}

/// One resource by source and id.
pub fn resource(db: &SinkDb, source: &str, id: &str) -> Result<Option<Account>, InspectError> {
    db.conn()
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM resources WHERE source = ?1 AND id = ?2"
        ))
        .and_then(|mut stmt| {
            stmt.query_row(params![source, id], Account::from_row)
                .optional()
        })
        .map_err(|e| db.fail(e))
}

/// The one account `text` names: a resource id, else a login or email (case-insensitive),
/// in `source` or in every source of the sink.
pub fn principal(db: &SinkDb, text: &str, source: Option<&str>) -> Result<Account, InspectError> {
    let sources = db.scope(source)?;
    let mut found = Vec::new();
    for s in &sources {
        if let Some(account) = resource(db, s, text)? {
            found.push(account);
        }
    }
    if found.is_empty() {
        let needle = text.trim().to_lowercase();
        if !needle.is_empty() {
            for s in &sources {
                found.extend(by_login_or_email(db, s, &needle)?);
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(InspectError::Unknown(format!(
            "no resource id, login or email `{text}` in {} of sink `{}`",
            where_(source),
            db.sink
        ))),
        _ => Err(InspectError::Ambiguous(format!(
            "`{text}` matches {} accounts: {}; {}",
            found.len(),
            found
                .iter()
                .map(|a| format!("{} {} ({})", a.source, a.id, a.display_name))
                .collect::<Vec<_>>()
                .join(", "),
            if found.iter().all(|a| a.id == text) {
                "choose one with --source S".to_owned()
            } else if found.iter().all(|a| a.source == found[0].source) {
                "name one by its resource id".to_owned()
            } else {
                "choose one with --source S (or name it by its resource id)".to_owned()
            }
        ))),
    }
}

fn where_(source: Option<&str>) -> String {
    source.map_or_else(|| "any source".to_owned(), |s| format!("source `{s}`"))
}

/// Users of `source` whose login or an email is `needle` (already lower case). A cheap text
/// test on the JSON column finds the candidates; the parsed trait decides.
fn by_login_or_email(
    db: &SinkDb,
    source: &str,
    needle: &str,
) -> Result<Vec<Account>, InspectError> {
    let mut stmt = db
        .conn()
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM resources
             WHERE source = ?1 AND type = 'user' AND instr(lower(user), ?2) > 0"
        ))
        .map_err(|e| db.fail(e))?;
    let rows = stmt
        .query_map(params![source, needle], Account::from_row)
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| db.fail(e))?;
    Ok(rows.into_iter().filter(|a| a.answers_to(needle)).collect())
}

/// An entitlement: `(source, id, display_name, resource)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntitlementRow {
    /// Source name.
    pub source: String,
    /// Entitlement id.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// The resource it is on.
    pub resource: String,
}

/// The one entitlement `id` names, in `source` or in every source.
pub fn entitlement(
    db: &SinkDb,
    id: &str,
    source: Option<&str>,
) -> Result<EntitlementRow, InspectError> {
    let mut found = Vec::new();
    for s in db.scope(source)? {
        let row = db
            .conn()
            .prepare_cached(
                "SELECT source, id, display_name, resource FROM entitlements
                 WHERE source = ?1 AND id = ?2",
            )
            .and_then(|mut stmt| {
                stmt.query_row(params![s, id], |r| {
                    Ok(EntitlementRow {
                        source: r.get(0)?,
                        id: r.get(1)?,
                        display_name: r.get(2)?,
                        resource: r.get(3)?,
                    })
                })
                .optional()
            })
            .map_err(|e| db.fail(e))?;
        found.extend(row);
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(InspectError::Unknown(format!(
            "no entitlement `{id}` in {} of sink `{}` (ids look like `group:<id>:member`; `idhost query entitlements` lists them)",
            where_(source),
            db.sink
        ))),
        _ => Err(InspectError::Ambiguous(format!(
            "entitlement `{id}` is in {} sources ({}); choose one with --source S",
            found.len(),
            found
                .iter()
                .map(|e| e.source.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Checks that resource `id` exists in `source` or some source (for a `--resource` filter).
pub fn require_resource(db: &SinkDb, id: &str, source: Option<&str>) -> Result<(), InspectError> {
    for s in db.scope(source)? {
        if resource(db, &s, id)?.is_some() {
            return Ok(());
        }
    }
    Err(InspectError::Unknown(format!(
        "no resource `{id}` in {} of sink `{}`",
        where_(source),
        db.sink
    )))
}
