//! `idhost query`: answers from the SQLite sink (DESIGN §7.2) — resources, entitlements,
//! grants, effective access both ways, people and orphans, and what changed. Reads the config
//! without resolving any credential ([`Resolve::SinkPaths`]).

use std::path::Path;

use anyhow::anyhow;
use rusqlite::params;
use serde_json::Value;

use crate::cli::{OutputFormat, QueryArgs, QueryOp};
use crate::config::{Config, Resolve};
use crate::exit::{CommandError, Outcome};
use crate::inspect::InspectError;
use crate::inspect::access::{self, SinkGraph};
use crate::inspect::db::SinkDb;
use crate::inspect::diff::{self, DiffFilter};
use crate::inspect::identity;
use crate::inspect::lookup::{self, ACCOUNT_COLUMNS, Account};
use crate::inspect::output::{self, Rows, text_or_null, via_value};

/// Loads the config for a reading command: sink paths resolved, no credential read.
pub(crate) fn load_for_reading(path: &Path) -> Result<Config, CommandError> {
    crate::config::load_with(path, Resolve::SinkPaths).map_err(CommandError::usage)
}

/// `--since` as an RFC 3339 instant: either given as one, or a duration back from now.
pub(crate) fn since_instant(since: &str) -> Result<String, CommandError> {
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    if time::OffsetDateTime::parse(since, rfc3339).is_ok() {
        return Ok(since.to_owned());
    }
    let ago = humantime::parse_duration(since).map_err(|_| {
        CommandError::usage(anyhow!(
            "--since must be an RFC 3339 time (2026-11-23T00:00:00Z) or a duration like `24h`; got `{since}`"
        ))
    })?;
    let then = time::OffsetDateTime::now_utc() - ago;
    then.format(rfc3339)
        .map_err(|e| CommandError::usage(anyhow!("--since `{since}`: {e}")))
}

pub(crate) fn run(
    path: &Path,
    args: QueryArgs,
    format: OutputFormat,
) -> Result<Outcome, CommandError> {
    let config = load_for_reading(path)?;
    let db = SinkDb::open(&config, args.sink.as_deref())?;
    let mut rows = match &args.op {
        QueryOp::Resources {
            source,
            rtype,
            search,
        } => resources(&db, source.as_deref(), rtype.as_deref(), search.as_deref())?,
        QueryOp::Entitlements { source, resource } => {
            entitlements(&db, source.as_deref(), resource.as_deref())?
        }
        QueryOp::Grants {
            source,
            entitlement,
            principal,
        } => grants(
            &db,
            source.as_deref(),
            entitlement.as_deref(),
            principal.as_deref(),
        )?,
        QueryOp::Access { principal, source } => access_of(&db, principal, source.as_deref())?,
        QueryOp::WhoHas {
            entitlement,
            source,
        } => who_has(&db, entitlement, source.as_deref())?,
        QueryOp::People { source } => people(&db, &config, source.as_deref(), false)?,
        QueryOp::Orphans { source } => people(&db, &config, source.as_deref(), true)?,
        QueryOp::Diff {
            source,
            since,
            sync,
        } => {
            let filter = DiffFilter {
                since: since.as_deref().map(since_instant).transpose()?,
                sync_id: sync.clone(),
            };
            diff::events(&db, source, &filter)?
        }
    };
    if matches!(args.op, QueryOp::Diff { .. }) && format != OutputFormat::Json {
        for row in &mut rows.rows {
            if let Some(changes) = row.last_mut() {
                *changes = Value::String(diff::describe(changes));
            }
        }
    }
    output::print(&rows, format)
        .map_err(|e| CommandError::failed(anyhow!("writing the answer: {e}")))?;
    Ok(Outcome::Success)
}

fn resources(
    db: &SinkDb,
    source: Option<&str>,
    rtype: Option<&str>,
    search: Option<&str>,
) -> Result<Rows, InspectError> {
    let mut rows = Rows::new(&[
        "source",
        "id",
        "type",
        "display_name",
        "status",
        "login",
        "email",
    ]);
    let needle = search.map(|s| s.trim().to_lowercase());
    for s in db.scope(source)? {
        let mut stmt = db
            .conn()
            .prepare(&format!(
                "SELECT {ACCOUNT_COLUMNS} FROM resources WHERE source = ?1 AND (?2 IS NULL OR type = ?2)
                 AND (?3 IS NULL OR instr(lower(id || ' ' || display_name || ' ' || coalesce(user, '')), ?3) > 0)
                 ORDER BY type, id"
            ))
            .map_err(|e| db.fail(e))?;
        let found = stmt
            .query_map(params![s, rtype, needle], Account::from_row)
            .and_then(|r| r.collect::<Result<Vec<_>, _>>())
            .map_err(|e| db.fail(e))?;
        for a in found {
            if let Some(n) = &needle {
                // The text test above also matches inside other JSON fields; keep what the
                // user can see.
                let visible = [Some(&a.id), Some(&a.display_name), a.login.as_ref()]
                    .into_iter()
                    .flatten()
                    .chain(a.emails.iter())
                    .any(|t| t.to_lowercase().contains(n.as_str()));
                if !visible {
                    continue;
                }
            }
            rows.push(vec![
                Value::String(a.source),
                Value::String(a.id),
                Value::String(a.rtype),
                Value::String(a.display_name),
                Value::String(a.status),
                text_or_null(a.login.as_deref()),
                text_or_null(a.email.as_deref()),
            ]);
        }
    }
    Ok(rows)
}

fn entitlements(
    db: &SinkDb,
    source: Option<&str>,
    resource: Option<&str>,
) -> Result<Rows, InspectError> {
    if let Some(r) = resource {
        lookup::require_resource(db, r, source)?;
    }
    let mut rows = Rows::new(&["source", "id", "resource", "slug", "display_name"]);
    for s in db.scope(source)? {
        let mut stmt = db
            .conn()
            .prepare(
                "SELECT source, id, resource, slug, display_name FROM entitlements
                 WHERE source = ?1 AND (?2 IS NULL OR resource = ?2) ORDER BY id",
            )
            .map_err(|e| db.fail(e))?;
        let found: Vec<Vec<Value>> = stmt
            .query_map(params![s, resource], |r| {
                (0..5)
                    .map(|i| r.get::<_, String>(i).map(Value::String))
                    .collect()
            })
            .and_then(|r| r.collect())
            .map_err(|e| db.fail(e))?;
        rows.rows.extend(found);
    }
    Ok(rows)
}

fn grants(
    db: &SinkDb,
    source: Option<&str>,
    entitlement: Option<&str>,
    principal: Option<&str>,
) -> Result<Rows, InspectError> {
    let mut scope = source.map(str::to_owned);
    let entitlement = match entitlement {
        Some(e) => {
            let found = lookup::entitlement(db, e, scope.as_deref())?;
            scope = Some(found.source.clone());
            Some(found.id)
        }
        None => None,
    };
    let principal = match principal {
        Some(p) => {
            let found = lookup::principal(db, p, scope.as_deref())?;
            scope = Some(found.source.clone());
            Some(found.id)
        }
        None => None,
    };
    let mut rows = Rows::new(&["source", "id", "entitlement", "principal"]);
    for s in db.scope(scope.as_deref())? {
        let mut stmt = db
            .conn()
            .prepare(
                "SELECT source, id, entitlement, principal FROM grants
                 WHERE (?2 IS NULL OR entitlement = ?2) AND (?3 IS NULL OR principal = ?3)
                   AND source = ?1 ORDER BY id",
            )
            .map_err(|e| db.fail(e))?;
        let found: Vec<Vec<Value>> = stmt
            .query_map(params![s, entitlement, principal], |r| {
                (0..4)
                    .map(|i| r.get::<_, String>(i).map(Value::String))
                    .collect()
            })
            .and_then(|r| r.collect())
            .map_err(|e| db.fail(e))?;
        rows.rows.extend(found);
    }
    Ok(rows)
}

fn access_of(db: &SinkDb, principal: &str, source: Option<&str>) -> Result<Rows, InspectError> {
    let account = lookup::principal(db, principal, source)?;
    let mut graph = SinkGraph::new(db, &account.source);
    let held = access::effective(&mut graph, &account.id, account.rtype == "group")?;
    let mut rows = Rows::new(&[
        "source",
        "entitlement",
        "entitlement_name",
        "resource",
        "via",
    ]);
    for (entitlement, via) in held {
        let found = lookup::entitlement(db, &entitlement, Some(&account.source)).ok();
        rows.push(vec![
            Value::String(account.source.clone()),
            Value::String(entitlement.clone()),
            text_or_null(found.as_ref().map(|e| e.display_name.as_str())),
            text_or_null(found.as_ref().map(|e| e.resource.as_str())),
            via_value(via.as_deref()),
        ]);
    }
    Ok(rows)
}

fn who_has(db: &SinkDb, entitlement: &str, source: Option<&str>) -> Result<Rows, InspectError> {
    let found = lookup::entitlement(db, entitlement, source)?;
    let direct = access::principals_of(db, &found.source, &found.id)?;
    let mut graph = SinkGraph::new(db, &found.source);
    let holders = access::holders(&mut graph, direct)?;
    let mut rows = Rows::new(&["source", "principal", "principal_name", "via"]);
    for (principal, via) in holders {
        let name = lookup::resource(db, &found.source, &principal)?.map(|a| a.display_name);
        rows.push(vec![
            Value::String(found.source.clone()),
            Value::String(principal),
            text_or_null(name.as_deref()),
            via_value(via.as_deref()),
        ]);
    }
    Ok(rows)
}

fn people(
    db: &SinkDb,
    config: &Config,
    source: Option<&str>,
    orphans_only: bool,
) -> Result<Rows, InspectError> {
    let identity = identity::required(config.identity.as_ref())?;
    let links = identity::correlate(db, identity, source)?;
    if orphans_only {
        let mut rows = Rows::new(&["source", "account", "login", "email", "reason"]);
        let mut orphans: Vec<_> = links.into_iter().filter(|l| l.orphan.is_some()).collect();
        orphans.sort_by(|a, b| {
            (&a.account.source, a.orphan, &a.account.id).cmp(&(
                &b.account.source,
                b.orphan,
                &b.account.id,
            ))
        });
        for link in orphans {
            let reason = link.orphan.map(identity::Reason::as_str);
            rows.push(vec![
                Value::String(link.account.source),
                Value::String(link.account.id),
                text_or_null(link.account.login.as_deref()),
                text_or_null(link.account.email.as_deref()),
                text_or_null(reason),
            ]);
        }
        return Ok(rows);
    }
    let mut rows = Rows::new(&["person", "source", "account", "login", "email", "status"]);
    for link in links {
        rows.push(vec![
            text_or_null(link.person.as_deref()),
            Value::String(link.account.source),
            Value::String(link.account.id),
            text_or_null(link.account.login.as_deref()),
            text_or_null(link.account.email.as_deref()),
            Value::String(link.account.status),
        ]);
    }
    Ok(rows)
}
