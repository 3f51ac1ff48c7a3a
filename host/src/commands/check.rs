//! `idhost check -c FILE`: config, plugins, and each connector's own connection check.

use std::path::Path;
use std::sync::Arc;

use idhost_connector_sdk::SourceInfo;

use crate::exit::{CommandError, Outcome};
use crate::metrics::SourceMetrics;
use crate::sync::{EnvSetup, SyncEnv};

pub(crate) async fn run(path: &Path, flag: Option<&Path>) -> Result<Outcome, CommandError> {
    let config = Arc::new(crate::config::load(path)?);
    println!(
        "{}: config is valid ({} sources, {} sinks)",
        path.display(),
        config.sources.len(),
        config.sinks.len()
    );
    let env = SyncEnv::open(config.clone(), flag, EnvSetup::connectors_only()).await?;
    let mut outcome = Outcome::Success;
    for source in &config.sources {
        let info = SourceInfo {
            source: source.name.clone(),
            read_only: source.read_only,
            ..SourceInfo::default()
        };
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
                match crate::sync::call::bounded(source.call_timeout, async move {
                    instance.validate().await
                })
                .await
                {
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
