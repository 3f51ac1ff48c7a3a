//! `idhost provision -c FILE --source S [--dry-run] <operation>`: one change upstream, through
//! the source's connector, with an audit row for every attempt.

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use idhost_connector_sdk::{
    AccountInfo, Capability, Changes, ConnectorError, CredentialOptions, EntitlementRef, ErrorKind,
    GrantRef, ResourceRef, ResourceSpec, SourceInfo,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::app::{CommandError, Outcome};
use crate::audit::{self, AuditRecord};
use crate::cli::{OutputFormat, ProvisionArgs, ProvisionOp};
use crate::metrics::SourceMetrics;
use crate::progress::Progress;
use crate::sync::SyncEnv;

impl ProvisionOp {
    fn name(&self) -> &'static str {
        match self {
            ProvisionOp::Grant { .. } => "grant",
            ProvisionOp::Revoke { .. } => "revoke",
            ProvisionOp::CreateAccount { .. } => "create-account",
            ProvisionOp::CreateGroup { .. } => "create-group",
            ProvisionOp::Update { .. } => "update",
            ProvisionOp::Delete { .. } => "delete",
        }
    }

    fn capability(&self) -> Capability {
        match self {
            ProvisionOp::Grant { .. } => Capability::Grant,
            ProvisionOp::Revoke { .. } => Capability::Revoke,
            ProvisionOp::CreateAccount { .. } => Capability::CreateAccount,
            ProvisionOp::CreateGroup { .. } => Capability::CreateResource,
            ProvisionOp::Update { .. } => Capability::Update,
            ProvisionOp::Delete { .. } => Capability::Delete,
        }
    }

    fn target(&self) -> String {
        match self {
            ProvisionOp::Grant {
                entitlement,
                principal,
            } => format!("{entitlement} → {principal}"),
            ProvisionOp::Revoke { grant } => grant.clone(),
            ProvisionOp::CreateAccount { login, .. } => login.clone(),
            ProvisionOp::CreateGroup { name, .. } => name.clone(),
            ProvisionOp::Update { resource, .. } | ProvisionOp::Delete { resource } => {
                resource.clone()
            }
        }
    }
}

/// A `--set` value: JSON when it parses as JSON (`true`, `12`, `null`, `"x"`), text otherwise.
pub(crate) fn parse_set(text: &str) -> Result<(String, Value), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        format!("`--set {text}`: expected FIELD=VALUE, e.g. --set title=\"Vice President\"")
    })?;
    if key.trim().is_empty() {
        return Err(format!("`--set {text}`: the field name is empty"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.trim().to_owned(), value))
}

fn parse_ref<T>(
    what: &str,
    text: &str,
    parse: fn(&str) -> Result<T, idhost_connector_sdk::IdError>,
    example: &str,
) -> Result<T, CommandError> {
    parse(text)
        .map_err(|err| CommandError::usage(anyhow!("{what}: {err} (the form is `{example}`)")))
}

fn parse_profile(profile: Option<&str>) -> Result<serde_json::Map<String, Value>, CommandError> {
    match profile {
        None => Ok(Default::default()),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(CommandError::usage(anyhow!(
                "--profile must be a JSON object, e.g. '{{\"title\": \"Counsel\"}}'; got `{text}`"
            ))),
        },
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub(crate) async fn run(
    path: &Path,
    flag: Option<&Path>,
    args: ProvisionArgs,
    output: OutputFormat,
) -> Result<Outcome, CommandError> {
    if output == OutputFormat::Csv {
        return Err(CommandError::usage(anyhow!(
            "provision reports one result: --output table or json, not csv"
        )));
    }
    let config = super::load_config(path)?;
    let Some(source) = config
        .sources
        .iter()
        .find(|s| s.name == args.source)
        .cloned()
    else {
        let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        return Err(CommandError::usage(anyhow!(
            "--source `{}` is not a source in {}; sources are: {}",
            args.source,
            path.display(),
            known.join(", ")
        )));
    };
    let actor = args
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let mut record = AuditRecord {
        at: now(),
        actor,
        source: source.name.clone(),
        operation: args.op.name().to_owned(),
        target: args.op.target(),
        dry_run: args.dry_run,
        result: String::new(),
        detail: String::new(),
    };
    let audit_and =
        |record: &mut AuditRecord, result: &str, detail: String| -> Result<(), CommandError> {
            record.result = result.to_owned();
            record.detail = detail;
            audit::append(&config.state_path, record).map_err(CommandError::failed)
        };

    if source.read_only {
        let message = format!(
            "source `{}` is read_only: {} refused before any upstream request (remove `read_only = true` from [sources.{}] to allow changes)",
            source.name,
            args.op.name(),
            source.name
        );
        audit_and(&mut record, "refused", message.clone())?;
        return Err(CommandError::failed(anyhow!(message)));
    }
    if let ProvisionOp::Grant {
        entitlement,
        principal,
    } = &args.op
        && let Err(message) = crate::provision_guard::check_grant(
            &config.state_path,
            &source.name,
            entitlement,
            principal,
        )
    {
        audit_and(&mut record, "refused", message.clone())?;
        return Err(CommandError::failed(anyhow!(message)));
    }
    let registry = super::discover(flag, Some(&config))?;
    let Some(plugin) = registry.get(&source.connector) else {
        return Err(CommandError::plugin(anyhow!(
            "source `{}`: no plugin provides connector `{}` in {}",
            source.name,
            source.connector,
            registry.dir.display()
        )));
    };
    let manifest = plugin.manifest().clone();
    if !manifest.can(args.op.capability()) {
        let advertised: Vec<&str> = manifest.capabilities.iter().map(|c| c.as_str()).collect();
        let message = format!(
            "connector `{}` (source `{}`) does not support {}; it advertises: {}",
            manifest.name,
            source.name,
            args.op.name(),
            if advertised.is_empty() {
                "no provisioning (sync only)".to_owned()
            } else {
                advertised.join(", ")
            }
        );
        audit_and(&mut record, "refused", message.clone())?;
        return Err(CommandError::failed(anyhow!(message)));
    }

    let env = SyncEnv::build(
        config.clone(),
        registry.clone(),
        false,
        Progress::hidden(),
        CancellationToken::new(),
    )
    .await
    .map_err(CommandError::failed)?;
    let info = SourceInfo {
        source: source.name.clone(),
        read_only: false,
        dry_run: args.dry_run,
        full_sync: false,
    };
    let metrics = Arc::new(SourceMetrics::default());
    let (instance, services, redactor) =
        match crate::sync::open_connector(&env, &source, info, metrics).await {
            Ok(opened) => opened,
            Err(message) => {
                audit_and(&mut record, "failed", message.clone())?;
                return Err(CommandError::failed(anyhow!(message)));
            }
        };

    let vault_path = args
        .vault
        .clone()
        .unwrap_or_else(|| config.state_path.with_file_name("idhost-vault.jsonl"));
    // Bounded like every plugin call of a sync (`call_timeout_secs`): a hung plugin gets an
    // audited failure, not a command that never returns.
    let operation = async {
        Ok(match &args.op {
            ProvisionOp::Grant {
                entitlement,
                principal,
            } => {
                let e = parse_ref(
                    "--entitlement",
                    entitlement,
                    EntitlementRef::try_parse,
                    "<type>:<id>:<slug>",
                )
                .map_err(|e| ConnectorError::invalid_input(format!("{:#}", e.error)))?;
                let p = parse_ref(
                    "--principal",
                    principal,
                    ResourceRef::try_parse,
                    "<type>:<id>",
                )
                .map_err(|e| ConnectorError::invalid_input(format!("{:#}", e.error)))?;
                let outcome = instance.grant(&e, &p).await?;
                let result = if outcome.already {
                    "already"
                } else {
                    "changed"
                };
                (
                    result.to_owned(),
                    json!({ "grant": outcome.grant.id, "already": outcome.already }),
                )
            }
            ProvisionOp::Revoke { grant } => {
                let g = parse_ref(
                    "--grant",
                    grant,
                    GrantRef::try_parse,
                    "<type>:<id>:<slug>:<principal type>:<principal id>",
                )
                .map_err(|e| ConnectorError::invalid_input(format!("{:#}", e.error)))?;
                let outcome = instance.revoke(&g).await?;
                let result = if outcome.already {
                    "already"
                } else {
                    "changed"
                };
                (
                    result.to_owned(),
                    json!({ "grant": grant, "already": outcome.already }),
                )
            }
            ProvisionOp::CreateAccount {
                login,
                email,
                given_name,
                family_name,
                display_name,
                profile,
                generate_password,
            } => {
                let info = AccountInfo {
                    login: login.clone(),
                    email: email.clone(),
                    given_name: given_name.clone(),
                    family_name: family_name.clone(),
                    display_name: display_name.clone(),
                    profile: parse_profile(profile.as_deref())
                        .map_err(|e| ConnectorError::invalid_input(format!("{:#}", e.error)))?,
                };
                let created = instance
                    .create_account(
                        info,
                        CredentialOptions {
                            generate_password: *generate_password,
                        },
                    )
                    .await?;
                let mut detail = json!({ "resource": created.resource.id });
                if let Some(password) = &created.password {
                    crate::vault::store(&vault_path, &source.name, login, password).map_err(|e| {
                        ConnectorError::internal(format!(
                            "the account was created but its password could not be written to the vault {}: {e}",
                            vault_path.display()
                        ))
                    })?;
                    detail["password"] = json!(format!("written to {}", vault_path.display()));
                }
                ("changed".to_owned(), detail)
            }
            ProvisionOp::CreateGroup { name, profile } => {
                let spec = ResourceSpec {
                    display_name: name.clone(),
                    profile: parse_profile(profile.as_deref())
                        .map_err(|e| ConnectorError::invalid_input(format!("{:#}", e.error)))?,
                };
                let created = instance.create_resource("group", spec).await?;
                ("changed".to_owned(), json!({ "resource": created.id }))
            }
            ProvisionOp::Update { resource, set } => {
                let r = parse_ref(
                    "--resource",
                    resource,
                    ResourceRef::try_parse,
                    "<type>:<id>",
                )
                .map_err(|e| ConnectorError::invalid_input(format!("{:#}", e.error)))?;
                let changes = Changes {
                    set: set.iter().cloned().collect(),
                };
                instance.update(&r, changes).await?;
                (
                    "changed".to_owned(),
                    json!({ "resource": resource, "fields": set.iter().map(|(k, _)| k).collect::<Vec<_>>() }),
                )
            }
            ProvisionOp::Delete { resource } => {
                let r = parse_ref(
                    "--resource",
                    resource,
                    ResourceRef::try_parse,
                    "<type>:<id>",
                )
                .map_err(|e| ConnectorError::invalid_input(format!("{:#}", e.error)))?;
                instance.delete(&r).await?;
                // A DELETE answered 404: the resource was gone already, which is what the
                // caller wanted; say so rather than claim a change.
                let already = !args.dry_run
                    && services
                        .http()
                        .last_write()
                        .is_some_and(|(method, status)| method == "DELETE" && status == 404);
                let word = if already { "already" } else { "changed" };
                (
                    word.to_owned(),
                    json!({ "resource": resource, "already": already }),
                )
            }
        })
    };
    let result: Result<(String, Value), ConnectorError> = match tokio::time::timeout(
        source.call_timeout,
        operation,
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(ConnectorError::unavailable(format!(
            "the plugin did not answer within call_timeout_secs = {}; the call was abandoned, and whether the upstream applied it is unknown",
            source.call_timeout.as_secs()
        ))),
    };

    let intercepted = services.http().intercepted();
    let (outcome, result_word, mut detail) = match result {
        Ok((word, detail)) => (
            Outcome::Success,
            if args.dry_run {
                "dry_run".to_owned()
            } else {
                word
            },
            detail,
        ),
        Err(err) => {
            let message = redactor.redact(&err.message);
            let word = if err.kind == ErrorKind::PermissionDenied {
                "refused"
            } else {
                "failed"
            };
            (
                Outcome::Failed,
                word.to_owned(),
                json!({ "error": message, "kind": err.kind }),
            )
        }
    };
    if args.dry_run {
        detail["would_send"] = json!(intercepted);
    }
    audit_and(
        &mut record,
        &result_word,
        redactor.redact(&detail.to_string()),
    )?;

    match output {
        OutputFormat::Json | OutputFormat::Csv => {
            let doc = json!({
                "source": source.name, "operation": args.op.name(), "target": record.target,
                "dry_run": args.dry_run, "result": result_word, "detail": detail,
            });
            println!(
                "{}",
                redactor.redact(&serde_json::to_string_pretty(&doc).unwrap_or_default())
            );
        }
        OutputFormat::Table => {
            println!(
                "{} {} on {}: {result_word}",
                args.op.name(),
                record.target,
                source.name
            );
            if result_word == "already" && matches!(args.op, ProvisionOp::Delete { .. }) {
                println!(
                    "  {} was already deleted in `{}` (the upstream answered 404): nothing to do",
                    record.target, source.name
                );
            }
            if let Some(error) = detail.get("error").and_then(Value::as_str) {
                println!("  error: {error}");
            }
            if args.dry_run {
                if intercepted.is_empty() {
                    println!("  dry run: no write would be sent");
                }
                for request in &intercepted {
                    println!("  would send: {} {}", request.method, request.url);
                    if !request.body.is_empty() {
                        println!("    {}", request.body);
                    }
                }
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_values_parse_as_json_or_text() {
        assert_eq!(
            parse_set("title=Counsel"),
            Ok(("title".into(), json!("Counsel")))
        );
        assert_eq!(
            parse_set("active=false"),
            Ok(("active".into(), json!(false)))
        );
        assert_eq!(
            parse_set("manager=null"),
            Ok(("manager".into(), Value::Null))
        );
        assert!(parse_set("novalue").is_err());
        assert!(parse_set("=x").is_err());
    }
}
