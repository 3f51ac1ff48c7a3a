//! The operations of `idhost provision`: what each asks of the connector and what it reports.

use anyhow::anyhow;
use idhost_connector_sdk::host::ConnectorInstance;
use idhost_connector_sdk::{
    AccountInfo, Capability, Changes, ConnectorError, CredentialOptions, EntitlementRef, GrantRef,
    ResourceRef, ResourceSpec,
};
use serde_json::{Value, json};

use crate::cli::ProvisionOp;
use crate::exit::CommandError;
use crate::plugin_runtime::PluginCalls;

impl ProvisionOp {
    pub(super) fn name(&self) -> &'static str {
        match self {
            ProvisionOp::Grant { .. } => "grant",
            ProvisionOp::Revoke { .. } => "revoke",
            ProvisionOp::CreateAccount { .. } => "create-account",
            ProvisionOp::CreateGroup { .. } => "create-group",
            ProvisionOp::Update { .. } => "update",
            ProvisionOp::Delete { .. } => "delete",
        }
    }

    pub(super) fn capability(&self) -> Capability {
        match self {
            ProvisionOp::Grant { .. } => Capability::Grant,
            ProvisionOp::Revoke { .. } => Capability::Revoke,
            ProvisionOp::CreateAccount { .. } => Capability::CreateAccount,
            ProvisionOp::CreateGroup { .. } => Capability::CreateResource,
            ProvisionOp::Update { .. } => Capability::Update,
            ProvisionOp::Delete { .. } => Capability::Delete,
        }
    }

    pub(super) fn target(&self) -> String {
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

/// Performs `op` through `instance`; the result word (`changed`, `already`) and the detail the
/// audit row and the output carry. A generated password goes to the vault at `vault_path`
/// under `source`.
pub(super) async fn perform(
    instance: &ConnectorInstance,
    calls: &PluginCalls,
    op: &ProvisionOp,
    source: &str,
    vault: Option<&crate::vault::Vault>,
    http: &crate::services::http::HostHttp,
    dry_run: bool,
) -> Result<(String, Value), ConnectorError> {
    Ok(match op {
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
            let i = instance.clone();
            let outcome = calls.run(async move { i.grant(&e, &p).await }).await?;
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
            let i = instance.clone();
            let outcome = calls.run(async move { i.revoke(&g).await }).await?;
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
            let mut info = AccountInfo::default();
            info.login = login.clone();
            info.email = email.clone();
            info.given_name = given_name.clone();
            info.family_name = family_name.clone();
            info.display_name = display_name.clone();
            info.profile = parse_profile(profile.as_deref())
                .map_err(|e| ConnectorError::invalid_input(format!("{:#}", e.error)))?;
            let mut credentials = CredentialOptions::default();
            credentials.generate_password = *generate_password;
            let i = instance.clone();
            let created = calls
                .run(async move { i.create_account(info, credentials).await })
                .await?;
            let mut detail = json!({ "resource": created.resource.id });
            if let Some(password) = &created.password {
                let Some(vault) = vault else {
                    return Err(ConnectorError::internal(
                        "the account was created with a password but no vault was opened for it",
                    ));
                };
                vault.store_password(source, login, password).map_err(|e| {
                    ConnectorError::internal(format!(
                        "the account was created but its password could not be written: {e}"
                    ))
                })?;
                detail["password"] = json!(format!("written to {}", vault.path().display()));
            }
            ("changed".to_owned(), detail)
        }
        ProvisionOp::CreateGroup { name, profile } => {
            let mut spec = ResourceSpec::default();
            spec.display_name = name.clone();
            spec.profile = parse_profile(profile.as_deref())
                .map_err(|e| ConnectorError::invalid_input(format!("{:#}", e.error)))?;
            let i = instance.clone();
            let created = calls
                .run(async move { i.create_resource("group", spec).await })
                .await?;
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
            let mut changes = Changes::default();
            changes.set = set.iter().cloned().collect();
            let i = instance.clone();
            calls
                .run(async move { i.update(&r, changes).await })
                .await?;
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
            let (i, target) = (instance.clone(), r.clone());
            calls.run(async move { i.delete(&target).await }).await?;
            // A DELETE answered 404: the resource was gone already, which is what the caller
            // wanted; say so rather than claim a change.
            let already = !dry_run
                && http
                    .last_write()
                    .is_some_and(|(method, status)| method == "DELETE" && status == 404);
            let word = if already { "already" } else { "changed" };
            (
                word.to_owned(),
                json!({ "resource": resource, "already": already }),
            )
        }
    })
}

/// Checks every id `op` holds (DESIGN §7.3): a usage error (exit 2) naming the flag and the
/// part at fault, before anything is opened or sent.
pub(super) fn check_ids(op: &ProvisionOp) -> Result<(), CommandError> {
    match op {
        ProvisionOp::Grant {
            entitlement,
            principal,
        } => {
            parse_ref(
                "--entitlement",
                entitlement,
                EntitlementRef::try_parse,
                "<type>:<id>:<slug>",
            )?;
            parse_ref(
                "--principal",
                principal,
                ResourceRef::try_parse,
                "<type>:<id>",
            )?;
        }
        ProvisionOp::Revoke { grant } => {
            parse_ref(
                "--grant",
                grant,
                GrantRef::try_parse,
                "<type>:<id>:<slug>:<principal type>:<principal id>",
            )?;
        }
        ProvisionOp::Update { resource, .. } | ProvisionOp::Delete { resource } => {
            parse_ref(
                "--resource",
                resource,
                ResourceRef::try_parse,
                "<type>:<id>",
            )?;
        }
        ProvisionOp::CreateAccount { .. } | ProvisionOp::CreateGroup { .. } => {}
    }
    Ok(())
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
