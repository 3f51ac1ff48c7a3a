//! `idhost check -c FILE [--offline]`: config, plugins, and each connector's own connection
//! check; `--offline` sends no request and needs no secret (see [`offline`]).

use std::path::Path;
use std::sync::Arc;

use idhost_connector_sdk::SourceInfo;

use crate::exit::{CommandError, Outcome};
use crate::metrics::SourceMetrics;
use crate::sync::{EnvSetup, SyncEnv};

pub(crate) async fn run(
    path: &Path,
    flag: Option<&Path>,
    offline: bool,
) -> Result<Outcome, CommandError> {
    if offline {
        return self::offline(path, flag).await;
    }
    let config = std::sync::Arc::new(crate::config::load(path)?);
    println!(
        "{}: config is valid ({} sources, {} sinks)",
        path.display(),
        config.sources.len(),
        config.sinks.len()
    );
    let env = SyncEnv::open(config.clone(), flag, EnvSetup::connectors_only()).await?;
    if config.state_postgres.is_some() {
        // Opening it connected and created the tables, or the command failed above.
        println!(
            "✓ state database {} (state_url): reachable, tables ready",
            env.state.describe()
        );
    }
    let mut outcome = Outcome::Success;
    for source in &config.sources {
        let info = SourceInfo::new(source.name.clone()).with_read_only(source.read_only);
        if env.registry.get(&source.connector).is_none() {
            outcome = Outcome::Plugin;
        }
        match crate::sync::open_connector(&env, source, info, Arc::new(SourceMetrics::default()))
            .await
        {
            Err(message) => {
                println!("✗ {}: {message}", source.name);
                if outcome == Outcome::Success {
                    outcome = Outcome::Failed;
                }
            }
            Ok((instance, _services, redactor)) => {
                // Facts about the credentials first (a certificate's expiry), then the check;
                // both are plugin calls, so both run on plugin threads under the timeout.
                let calls = crate::plugin_runtime::PluginCalls::for_source(source);
                let noted = instance.clone();
                if let Ok(notes) = calls.run(async move { noted.check_notes().await }).await {
                    for note in notes {
                        let mark = if note.warning { "! warning:" } else { "·" };
                        println!(
                            "  {mark} {} ({}): {}",
                            source.name,
                            source.connector,
                            redactor.redact(&note.message)
                        );
                    }
                }
                match calls.run(async move { instance.validate().await }).await {
                    Ok(()) => println!(
                        "✓ {} ({}): connection and permissions OK",
                        source.name, source.connector
                    ),
                    Err(err) => {
                        println!(
                            "✗ {} ({}): {} ({})",
                            source.name,
                            source.connector,
                            redactor.redact(&err.message),
                            err.kind
                        );
                        if outcome == Outcome::Success {
                            outcome = Outcome::Failed;
                        }
                    }
                }
            }
        }
    }
    Ok(outcome)
}

/// `check --offline`: the config with whatever references can be resolved (the others are
/// listed), every plugin a source names, each source's settings keys against its plugin's
/// manifest, and — for a source whose settings all resolved — the plugin's own settings
/// validation, by opening it with every HTTP request refused before it is sent.
async fn offline(path: &Path, flag: Option<&Path>) -> Result<Outcome, CommandError> {
    let config = crate::config::load_with(path, crate::config::Resolve::Available)
        .map_err(CommandError::usage)?;
    crate::services::http::forbid_network();
    println!(
        "{}: config is valid ({} sources, {} sinks)",
        path.display(),
        config.sources.len(),
        config.sinks.len()
    );
    for unresolved in &config.unresolved {
        println!("  not resolved offline: {}", unresolved.problem);
    }
    // The connectors open against a throwaway state database: an offline check leaves no file.
    let scratch = tempfile::tempdir()
        .map_err(|e| CommandError::failed(anyhow::anyhow!("a scratch directory: {e}")))?;
    let mut scratch_config = config.clone();
    scratch_config.state_path = scratch.path().join("state.db");
    if scratch_config.state_postgres.take().is_some() {
        println!("  state_url: a Postgres state database (not contacted offline)");
    }
    let env = SyncEnv::open(Arc::new(scratch_config), flag, EnvSetup::connectors_only()).await?;
    let mut outcome = Outcome::Success;
    let fail = |outcome: &mut Outcome, worse: Outcome| {
        if *outcome == Outcome::Success || worse == Outcome::Plugin {
            *outcome = worse;
        }
    };
    for source in &config.sources {
        let Some(plugin) = env.registry.get(&source.connector) else {
            println!(
                "✗ {}: {}",
                source.name,
                env.registry.explain_missing(&source.connector)
            );
            fail(&mut outcome, Outcome::Plugin);
            continue;
        };
        let needs: Vec<String> = config
            .unresolved
            .iter()
            .filter(|u| u.source.as_deref() == Some(source.name.as_str()))
            .map(|u| u.problem.message.clone())
            .collect();
        let manifest = plugin.manifest();
        let known: Vec<&str> = manifest
            .config_keys
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        let mut unknown = Vec::new();
        // With every value at hand the plugin judges its settings itself (below); without, the
        // keys are checked against the ones its manifest declares.
        if !needs.is_empty()
            && !known.is_empty()
            && let Some(settings) = source.settings.as_object()
        {
            for key in settings.keys().filter(|k| !known.contains(&k.as_str())) {
                unknown.push(config.text.at_key(
                    &format!("sources.{}.settings", source.name),
                    key,
                    format!(
                        "connector `{}` has no setting `{key}`; its settings are: {}",
                        source.connector,
                        known.join(", ")
                    ),
                ));
            }
        }
        if !unknown.is_empty() {
            for problem in unknown {
                println!("✗ {}: {problem}", source.name);
            }
            fail(&mut outcome, Outcome::Failed);
            continue;
        }
        if !needs.is_empty() {
            println!(
                "✓ {} ({}): settings keys known; values not validated offline ({} reference(s) not resolved)",
                source.name,
                source.connector,
                needs.len()
            );
            continue;
        }
        let info = SourceInfo::new(source.name.clone())
            .with_read_only(source.read_only)
            .with_full_sync(true);
        match crate::sync::open_connector(&env, source, info, Arc::new(SourceMetrics::default()))
            .await
        {
            Ok(_) => println!(
                "✓ {} ({}): settings valid (offline: the connection was not tried)",
                source.name, source.connector
            ),
            Err(message) => {
                println!("✗ {}: {message}", source.name);
                fail(&mut outcome, Outcome::Failed);
            }
        }
    }
    Ok(outcome)
}
