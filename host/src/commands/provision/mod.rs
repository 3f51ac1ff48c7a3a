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

/// The audit trail of one provisioning call: the row is appended once per decision.
struct Audit<'a> {
    config: &'a Config,
    record: AuditRecord,
}

impl Audit<'_> {
    /// Appends the row with `result` and `detail`; nothing goes upstream if this fails.
    fn append(&mut self, result: &str, detail: String) -> Result<(), CommandError> {
        self.record.result = result.to_owned();
        self.record.detail = detail;
        audit::append(&self.config.state_path, &self.record).map_err(CommandError::failed)
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
        && let Err(message) = crate::provision_guard::check_grant(
            &config.state_path,
            &source.name,
            entitlement,
            principal,
        )
    {
        return Err(audit.refuse(message));
    }
    Ok(())
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
            "source `{}`: no plugin provides connector `{}` in {}",
            source.name,
            source.connector,
            env.registry.dir.display()
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
    };
    check_writable(&source, &args, &mut audit)?;
    check_grantable(&config, &source, &args, &mut audit)?;
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

    let vault_path = args
        .vault
        .clone()
        .unwrap_or_else(|| config.state_path.with_file_name("idhost-vault.jsonl"));
    // Every plugin call runs on a plugin thread bounded by `call_timeout_secs`, like every
    // plugin call of a sync: a hung or blocking plugin gets an audited failure, not a command
    // that never returns.
    let calls = crate::plugin_runtime::PluginCalls::for_source(&source);
    let result: Result<(String, Value), ConnectorError> = operation::perform(
        &instance,
        &calls,
        &args.op,
        &source.name,
        &vault_path,
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
