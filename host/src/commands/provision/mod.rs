//! `idhost provision -c FILE --source S [--dry-run] <operation>`: one change upstream, through
//! the source's connector, with an audit row for every attempt: the intent is checked (the
//! source, read-only, the connector's capabilities) and refused with an audit row before any
//! upstream request; the change runs bounded by `call_timeout_secs`; its outcome is audited,
//! then printed ([`output`]). The operations themselves are in [`operation`].

mod operation;
mod output;

use std::path::Path;
use std::sync::Arc;

use anyhow::anyhow;
use idhost_connector_sdk::{ConnectorError, ErrorKind, SourceInfo};
use serde_json::{Value, json};

use crate::audit::{self, AuditRecord};
use crate::cli::{OutputFormat, ProvisionArgs, ProvisionOp};
use crate::config::{Config, SourceConfig};
use crate::exit::{CommandError, Outcome};
use crate::metrics::SourceMetrics;
use crate::sync::{EnvSetup, SyncEnv};

/// The audit trail of one provisioning call: one row per attempt, written as the intent
/// (`pending`) before the first upstream write and set to the outcome after it, or written once
/// for a decision taken before any call.
struct Audit<'a> {
    config: &'a Config,
    record: AuditRecord,
    /// The intent row, once written.
    row: Option<i64>,
}

impl Audit<'_> {
    /// Writes the row with `result` and `detail` (the intent row's outcome, if there is one);
    /// nothing goes upstream if this fails.
    fn append(&mut self, result: &str, detail: String) -> Result<(), CommandError> {
        self.record.result = result.to_owned();
        self.record.detail = detail;
        let written = match self.row {
            Some(id) => audit::finish_in(self.config, id, &self.record),
            None => audit::append_in(self.config, &self.record).map(|id| {
                self.row = Some(id);
            }),
        };
        written.map_err(|err| {
            CommandError::failed(anyhow::Error::new(err).context(format!(
                "the audit row of this {} could not be written, so nothing was sent upstream",
                self.record.operation
            )))
        })
    }

    /// Writes the intent row, before the first upstream write.
    fn intend(&mut self) -> Result<(), CommandError> {
        self.append(
            "pending",
            "intent recorded; outcome not yet known".to_owned(),
        )
    }

    /// Appends a refusal and returns it as the command's error.
    fn refuse(&mut self, message: String) -> CommandError {
        match self.append("refused", message.clone()) {
            Ok(()) => CommandError::failed(anyhow!(message)),
            Err(err) => err,
        }
    }
}

/// The source `args` names, or a usage error listing the sources.
fn chosen_source(
    config: &Config,
    path: &Path,
    args: &ProvisionArgs,
) -> Result<SourceConfig, CommandError> {
    config
        .sources
        .iter()
        .find(|s| s.name == args.source)
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
            CommandError::usage(anyhow!(
                "--source `{}` is not a source in {}; sources are: {}",
                args.source,
                path.display(),
                known.join(", ")
            ))
        })
}

/// Refuses a change to a read-only source before anything is opened, plugins included.
fn check_writable(
    source: &SourceConfig,
    args: &ProvisionArgs,
    audit: &mut Audit<'_>,
) -> Result<(), CommandError> {
    if source.read_only {
        return Err(audit.refuse(format!(
            "source `{}` is read_only: {} refused before any upstream request (remove `read_only = true` from [sources.{}] to allow changes)",
            source.name,
            args.op.name(),
            source.name
        )));
    }
    Ok(())
}

/// Refuses a grant the last snapshot says the entitlement cannot take (its `grantable_to`
/// leaves out the principal's type), before anything is opened ([`crate::provision_guard`]).
fn check_grantable(
    config: &Config,
    source: &SourceConfig,
    args: &ProvisionArgs,
    audit: &mut Audit<'_>,
) -> Result<(), CommandError> {
    if let ProvisionOp::Grant {
        entitlement,
        principal,
    } = &args.op
        && let Err(message) =
            crate::provision_guard::check_grant_in(config, &source.name, entitlement, principal)
    {
        return Err(audit.refuse(message));
    }
    Ok(())
}

/// The vault of a create-account (where a generated password goes), checked before anything is
/// opened (DESIGN §7.3): a path that is not a 0600 regular file of the running user, or absent,
/// is refused with exit 2 and an audit row, before the account could be created.
fn open_vault(
    config: &Config,
    args: &ProvisionArgs,
    audit: &mut Audit<'_>,
) -> Result<Option<crate::vault::Vault>, CommandError> {
    if !matches!(args.op, ProvisionOp::CreateAccount { .. }) {
        return Ok(None);
    }
    match crate::vault::open_for(config, args.vault.as_deref()) {
        Ok(vault) => Ok(Some(vault)),
        Err(err) => {
            let message = format!("{err}; refused before any upstream request");
            match audit.append("refused", message.clone()) {
                Ok(()) => Err(CommandError::usage(anyhow!(message))),
                Err(audit_err) => Err(audit_err),
            }
        }
    }
}

/// Refuses what the source's connector does not advertise, before any upstream request.
fn check_capable(
    env: &SyncEnv,
    source: &SourceConfig,
    args: &ProvisionArgs,
    audit: &mut Audit<'_>,
) -> Result<(), CommandError> {
    let Some(plugin) = env.registry.get(&source.connector) else {
        return Err(CommandError::plugin(anyhow!(
            "source `{}`: {}",
            source.name,
            env.registry.explain_missing(&source.connector)
        )));
    };
    let manifest = plugin.manifest();
    if !manifest.can(args.op.capability()) {
        let advertised: Vec<&str> = manifest.capabilities.iter().map(|c| c.as_str()).collect();
        return Err(audit.refuse(format!(
            "connector `{}` (source `{}`) does not support {}; it advertises: {}",
            manifest.name,
            source.name,
            args.op.name(),
            if advertised.is_empty() {
                "no provisioning (sync only)".to_owned()
            } else {
                advertised.join(", ")
            }
        )));
    }
    Ok(())
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
    // Every id is checked before anything is opened or sent (DESIGN §7.3: exit 2, no request).
    operation::check_ids(&args.op)?;
    let config = Arc::new(crate::config::load(path)?);
    let source = chosen_source(&config, path, &args)?;
    let actor = args
        .actor
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".to_owned());
    let mut audit = Audit {
        config: &config,
        record: AuditRecord {
            at: crate::clock::now_rfc3339(),
            actor,
            source: source.name.clone(),
            operation: args.op.name().to_owned(),
            target: args.op.target(),
            dry_run: args.dry_run,
            result: String::new(),
            detail: String::new(),
        },
        row: None,
    };
    check_writable(&source, &args, &mut audit)?;
    check_grantable(&config, &source, &args, &mut audit)?;
    let vault = open_vault(&config, &args, &mut audit)?;
    let env = SyncEnv::open(config.clone(), flag, EnvSetup::connectors_only()).await?;
    check_capable(&env, &source, &args, &mut audit)?;
    let info = SourceInfo::new(source.name.clone()).with_dry_run(args.dry_run);
    let metrics = Arc::new(SourceMetrics::default());
    let (instance, services, redactor) =
        match crate::sync::open_connector(&env, &source, info, metrics).await {
            Ok(opened) => opened,
            Err(message) => {
                audit.append("failed", message.clone())?;
                return Err(CommandError::failed(anyhow!(message)));
            }
        };

    // Every plugin call runs on a plugin thread bounded by `call_timeout_secs`, like every
    // plugin call of a sync: a hung or blocking plugin gets an audited failure, not a command
    // that never returns.
    // The intent is on disk before the first upstream write; if it cannot be, nothing is sent.
    audit.intend()?;
    let calls = crate::plugin_runtime::PluginCalls::for_source(&source);
    let result: Result<(String, Value), ConnectorError> = operation::perform(
        &instance,
        &calls,
        &args.op,
        &source.name,
        vault.as_ref(),
        services.http(),
        args.dry_run,
    )
    .await
    .map_err(|mut err| {
        if err.message.contains("call_timeout_secs") {
            err.message
                .push_str(", and whether the upstream applied it is unknown");
        }
        err
    });

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
    audit.append(&result_word, redactor.redact(&detail.to_string()))?;
    let report = output::Report {
        source: &source.name,
        target: &audit.record.target,
        result_word: &result_word,
        detail: &detail,
        intercepted: &intercepted,
    };
    output::print(&args, output, &report, &redactor);
    Ok(outcome)
}
