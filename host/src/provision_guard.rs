//! Refusing, before any upstream request, a grant the source's last sync says cannot exist.
//!
//! Every entitlement a connector lists says which principal types it is `grantable_to`
//! (DESIGN §6); the Entra connector, for instance, lists a Microsoft 365 group's `member` as
//! grantable to `user` only and a distribution group's as grantable to nothing, because Graph
//! refuses the rest. `idhost provision grant` (dry run included) checks the principal's type
//! against the last complete snapshot of the source before the connector is even opened, so an
//! impossible grant sends no token request and no write, and the message names the group kind.
//!
//! An entitlement the snapshot does not hold (never synced, or created since) is left to the
//! connector, which checks again against the upstream.

use std::path::Path;

use rusqlite::{OptionalExtension, params};
use serde_json::Value;

/// What the last snapshot says about an entitlement.
#[derive(Debug, Clone, PartialEq)]
struct Synced {
    /// The entitlement record (`grantable_to`, `display_name`, …).
    entitlement: Value,
    /// The record of the resource it is on, if the snapshot has it.
    resource: Option<Value>,
}

/// The entitlement's record and its resource's, from the last snapshot in `state_url`'s
/// Postgres.
fn synced_pg(url: &secrecy::SecretString, source: &str, entitlement: &str) -> Option<Synced> {
    let (source, entitlement) = (source.to_owned(), entitlement.to_owned());
    let row = crate::state::postgres::blocking(url, move |conn| {
        Box::pin(async move {
            let row = conn
                .query_opt(
                    "SELECT e.record, r.record FROM idhost_state_snapshots s
                     JOIN idhost_state_entitlements e ON e.source = s.source AND e.gen = s.gen AND e.id = $2
                     LEFT JOIN idhost_state_resources r ON r.source = s.source AND r.gen = s.gen AND r.id = e.resource
                     WHERE s.source = $1",
                    &[&source, &entitlement],
                )
                .await?;
            Ok(row.map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1))))
        })
    })
    .map_err(|e| tracing::debug!(error = %e, "no snapshot to pre-check the grant against"))
    .ok()
    .flatten();
    let (entitlement, resource) = row?;
    Some(Synced {
        entitlement: serde_json::from_str(&entitlement).ok()?,
        resource: resource.and_then(|r| serde_json::from_str(&r).ok()),
    })
}

fn synced(state_path: &Path, source: &str, entitlement: &str) -> Option<Synced> {
    if !state_path.exists() {
        return None;
    }
    let conn = crate::db::open_read_only(state_path)
        .map_err(
            |e| tracing::debug!(error = %e, "state database not readable; grant not pre-checked"),
        )
        .ok()?;
    let row: Option<(String, Option<String>)> = conn
        .query_row(
            "SELECT e.record, r.record FROM snapshots s
             JOIN snap_entitlements e ON e.source = s.source AND e.gen = s.gen AND e.id = ?2
             LEFT JOIN snap_resources r ON r.source = s.source AND r.gen = s.gen AND r.id = e.resource
             WHERE s.source = ?1",
            params![source, entitlement],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .map_err(|e| tracing::debug!(error = %e, "no snapshot to pre-check the grant against"))
        .ok()
        .flatten();
    let (entitlement, resource) = row?;
    Some(Synced {
        entitlement: serde_json::from_str(&entitlement).ok()?,
        resource: resource.and_then(|r| serde_json::from_str(&r).ok()),
    })
}

/// " (group `Sales` is a microsoft_365 group with dynamic membership, synchronized from
/// on-premises)", or "" when the resource is not a group.
fn group_kind(resource: Option<&Value>) -> String {
    let Some(r) = resource else {
        return String::new();
    };
    let Some(group) = r.get("group").filter(|g| g.is_object()) else {
        return String::new();
    };
    let name = r.get("display_name").and_then(Value::as_str).unwrap_or("");
    let kind = group
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let mut facts = format!("a {kind} group");
    if group.get("dynamic").and_then(Value::as_bool) == Some(true) {
        facts.push_str(" with dynamic membership");
    }
    if r.pointer("/profile/on_premises_sync_enabled")
        .and_then(Value::as_bool)
        == Some(true)
    {
        facts.push_str(", synchronized from on-premises");
    }
    format!(" (group `{name}` is {facts})")
}

/// `Err(message)` when the last snapshot of `source` lists `entitlement` as not grantable to
/// the type of `principal` (`"<type>:<id>"`); `Ok` when it is, or when the snapshot cannot say.
pub fn check_grant(
    state_path: &Path,
    source: &str,
    entitlement: &str,
    principal: &str,
) -> Result<(), String> {
    verdict(
        synced(state_path, source, entitlement),
        source,
        entitlement,
        principal,
    )
}

/// [`check_grant`] against the state database `config` names (`state_url`'s Postgres, else
/// the SQLite file).
pub fn check_grant_in(
    config: &crate::config::Config,
    source: &str,
    entitlement: &str,
    principal: &str,
) -> Result<(), String> {
    let found = match &config.state_postgres {
        Some(url) => synced_pg(url, source, entitlement),
        None => synced(&config.state_path, source, entitlement),
    };
    verdict(found, source, entitlement, principal)
}

fn verdict(
    found: Option<Synced>,
    source: &str,
    entitlement: &str,
    principal: &str,
) -> Result<(), String> {
    let Some(found) = found else {
        return Ok(());
    };
    let Some(types) = found
        .entitlement
        .get("grantable_to")
        .and_then(Value::as_array)
    else {
        return Ok(());
    };
    let types: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
    let ptype = principal.split_once(':').map_or(principal, |(t, _)| t);
    if types.contains(&ptype) {
        return Ok(());
    }
    let kind = group_kind(found.resource.as_ref());
    let takes = if types.is_empty() {
        "no principal type: the upstream does not let it be granted".to_owned()
    } else {
        types
            .iter()
            .map(|t| format!("`{t}`"))
            .collect::<Vec<_>>()
            .join(", ")
            + " only"
    };
    Err(format!(
        "refusing to grant `{entitlement}` to `{principal}` before any upstream request: the last \
         sync of source `{source}` lists it as grantable to {takes}{kind} \
         (run `idhost sync --source {source}` if that changed since)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dir: &Path, entitlement: &str, resource: &str) -> std::path::PathBuf {
        let path = dir.join("state.db");
        let conn = crate::db::open(&path).expect("creates");
        conn.execute_batch(
            "CREATE TABLE snapshots (source TEXT, gen INTEGER, sync_id TEXT, finished_at TEXT);
             CREATE TABLE snap_resources (source TEXT, gen INTEGER, id TEXT, type TEXT, status TEXT, record TEXT);
             CREATE TABLE snap_entitlements (source TEXT, gen INTEGER, id TEXT, rtype TEXT, resource TEXT, record TEXT);
             INSERT INTO snapshots VALUES ('corp', 3, 's', 'now');",
        )
        .expect("schema");
        conn.execute(
            "INSERT INTO snap_entitlements VALUES ('corp', 3, 'group:g1:member', 'group', 'group:g1', ?1)",
            [entitlement],
        )
        .expect("entitlement");
        conn.execute(
            "INSERT INTO snap_resources VALUES ('corp', 3, 'group:g1', 'group', 'enabled', ?1)",
            [resource],
        )
        .expect("resource");
        path
    }

    #[test]
    fn principal_types_outside_grantable_to_are_refused_naming_the_kind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = state(
            dir.path(),
            r#"{"id":"group:g1:member","grantable_to":["user"]}"#,
            r#"{"id":"group:g1","display_name":"Sales","group":{"kind":"microsoft_365","dynamic":false}}"#,
        );
        assert!(check_grant(&path, "corp", "group:g1:member", "user:u1").is_ok());
        let err = check_grant(&path, "corp", "group:g1:member", "app:s1").expect_err("refused");
        assert!(err.contains("`user` only"), "{err}");
        assert!(err.contains("microsoft_365"), "{err}");
        assert!(err.contains("Sales"), "{err}");
        // Unknown to the snapshot: the connector decides.
        assert!(check_grant(&path, "corp", "group:g2:member", "app:s1").is_ok());
        assert!(check_grant(&path, "other", "group:g1:member", "app:s1").is_ok());
        assert!(
            check_grant(
                &dir.path().join("absent.db"),
                "corp",
                "group:g1:member",
                "app:s1"
            )
            .is_ok()
        );
    }

    #[test]
    fn an_empty_grantable_to_takes_nobody() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = state(
            dir.path(),
            r#"{"id":"group:g1:member","grantable_to":[]}"#,
            r#"{"id":"group:g1","display_name":"Dyn","group":{"kind":"security","dynamic":true},"profile":{"on_premises_sync_enabled":true}}"#,
        );
        let err = check_grant(&path, "corp", "group:g1:member", "user:u1").expect_err("refused");
        assert!(err.contains("no principal type"), "{err}");
        assert!(err.contains("dynamic membership"), "{err}");
        assert!(err.contains("on-premises"), "{err}");
    }
}
