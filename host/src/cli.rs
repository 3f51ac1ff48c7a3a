//! Command-line interface (DESIGN §6). Every flag has an `IDHOST_*` environment twin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

/// idhost: sync identity data from connector plugins into sinks, and provision access.
#[derive(Debug, Parser)]
#[command(name = "idhost", version, about)]
pub struct Cli {
    /// Log filter: `error`, `warn`, `info`, `debug`, `trace`, or directives like `idhost=debug`.
    #[arg(long, global = true, env = "IDHOST_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "IDHOST_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
    /// Directory of connector plugins (overrides the config's `plugin_dir`).
    #[arg(long, global = true, env = "IDHOST_PLUGIN_DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output of commands that report one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// For people.
    Text,
    /// One JSON document.
    Json,
}

/// `idhost provision` arguments.
#[derive(Debug, clap::Args)]
pub struct ProvisionArgs {
    /// The source whose connector makes the change.
    #[arg(long)]
    pub source: String,
    /// Show the upstream writes it would send; send none.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Who is asking, for the audit trail (default: $USER).
    #[arg(long, env = "IDHOST_ACTOR")]
    pub actor: Option<String>,
    /// Vault file (0600) for generated passwords (default: idhost-vault.jsonl beside the state database).
    #[arg(long, env = "IDHOST_VAULT")]
    pub vault: Option<PathBuf>,
    /// The change.
    #[command(subcommand)]
    pub op: ProvisionOp,
}

/// One provisioning operation.
#[derive(Debug, Subcommand)]
pub enum ProvisionOp {
    /// Grant an entitlement (`group:<id>:member`) to a principal (`user:<id>`).
    Grant {
        /// Entitlement id.
        #[arg(long)]
        entitlement: String,
        /// Principal resource id.
        #[arg(long)]
        principal: String,
    },
    /// Revoke a grant (`group:<id>:member:user:<id>`).
    Revoke {
        /// Grant id.
        #[arg(long)]
        grant: String,
    },
    /// Create a user account.
    CreateAccount {
        /// Sign-in name.
        #[arg(long)]
        login: String,
        /// Primary email.
        #[arg(long)]
        email: Option<String>,
        /// Given name.
        #[arg(long)]
        given_name: Option<String>,
        /// Family name.
        #[arg(long)]
        family_name: Option<String>,
        /// Display name.
        #[arg(long)]
        display_name: Option<String>,
        /// Further attributes as a JSON object.
        #[arg(long)]
        profile: Option<String>,
        /// Generate a password meeting the upstream's policy (written to the vault, never shown).
        #[arg(long)]
        generate_password: bool,
    },
    /// Create a group.
    CreateGroup {
        /// Display name.
        #[arg(long)]
        name: String,
        /// Further attributes as a JSON object.
        #[arg(long)]
        profile: Option<String>,
    },
    /// Update attributes of a resource.
    Update {
        /// Resource id (`user:<id>`).
        #[arg(long)]
        resource: String,
        /// FIELD=VALUE (repeatable); VALUE is JSON when it parses as JSON.
        #[arg(long = "set", value_parser = parse_set, required = true)]
        set: Vec<(String, serde_json::Value)>,
    },
    /// Delete a resource.
    Delete {
        /// Resource id (`user:<id>`).
        #[arg(long)]
        resource: String,
    },
}

/// Output of `idhost query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// Aligned columns.
    Table,
    /// A JSON array of objects.
    Json,
    /// CSV with a header row.
    Csv,
}

/// `idhost query` arguments.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The sqlite sink to read (default: the first one in the config).
    #[arg(long)]
    pub sink: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: QueryFormat,
    /// The question.
    #[command(subcommand)]
    pub op: QueryOp,
}

/// Questions `idhost query` answers.
#[derive(Debug, Subcommand)]
pub enum QueryOp {
    /// Who holds an entitlement (`group:<id>:member`).
    WhoHas {
        /// Entitlement id.
        entitlement: String,
    },
    /// What a principal (`user:<id>`) holds.
    Access {
        /// Principal resource id.
        principal: String,
    },
    /// Change events of a source, oldest first.
    Diff {
        /// Source name.
        source: String,
        /// Only events at or after this RFC 3339 time, or this long ago (`24h`).
        #[arg(long)]
        since: Option<String>,
    },
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the three upstream simulators on loopback and sync all three connectors into SQLite.
    Demo {
        /// Leave the simulators running (until Ctrl-C) and print their URLs.
        #[arg(long)]
        keep: bool,
        /// Users in the simulated Ironclad company.
        #[arg(long, default_value_t = 2000)]
        ironclad_users: usize,
        /// Users in the simulated Entra tenant.
        #[arg(long, default_value_t = 5000)]
        entra_users: usize,
        /// Users in the simulated Clickwrap account.
        #[arg(long, default_value_t = 3000)]
        clickwrap_users: usize,
        /// Latency each simulator adds to every answer, in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// Make one change upstream through a source's connector (audited; --dry-run sends no write).
    Provision {
        /// Config file.
        #[arg(short, long, env = "IDHOST_CONFIG")]
        config: PathBuf,
        /// What to change.
        #[command(flatten)]
        args: ProvisionArgs,
    },
    /// Daemon: sync each source on its schedule; serve /healthz, /readyz and /metrics; notify on
    /// failures; stop gracefully on SIGTERM.
    Run(RunArgs),
    /// Measure syncs against the simulators (injected latency) and sinks against their lower bounds.
    Bench(BenchArgs),
    /// Answer questions from the SQLite sink: who-has, access, diff.
    Query {
        /// Config file.
        #[arg(short, long, env = "IDHOST_CONFIG")]
        config: PathBuf,
        /// The question.
        #[command(flatten)]
        args: QueryArgs,
    },
    /// List discovered plugins: name, version, SDK interface version, resource types, capabilities.
    Plugins {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config, load every plugin, and run each connector's connection check.
    Check {
        /// Config file.
        #[arg(short, long, env = "IDHOST_CONFIG")]
        config: PathBuf,
    },
    /// One complete sync of the chosen sources, concurrently. Exit code 1 if any failed.
    Sync {
        /// Config file.
        #[arg(short, long, env = "IDHOST_CONFIG")]
        config: PathBuf,
        /// Only this source (repeatable).
        #[arg(long = "source")]
        sources: Vec<String>,
        /// Skip entitlements and grants.
        #[arg(long)]
        resources_only: bool,
        /// Ignore kept connector state (delta links) and list everything.
        #[arg(long)]
        full: bool,
        /// Start over instead of resuming a sync that was interrupted (by a crash, a stop or a
        /// failure); its undelivered events are dropped and recomputed by this sync.
        #[arg(long)]
        restart: bool,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like `20s` or `5m`: {e}"))
}

/// `idhost run` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Config file.
    #[arg(short, long, env = "IDHOST_CONFIG")]
    pub config: PathBuf,
    /// Address of the `/healthz`, `/readyz` and `/metrics` server (`0.0.0.0:9464` in a container).
    #[arg(long, env = "IDHOST_LISTEN", default_value = "127.0.0.1:9464")]
    pub listen: SocketAddr,
    /// After SIGTERM, how long running syncs may go on before they are cancelled (keep it below
    /// Kubernetes' terminationGracePeriodSeconds minus 10 s).
    #[arg(long, env = "IDHOST_SHUTDOWN_GRACE", default_value = "20s", value_parser = duration)]
    pub shutdown_grace: Duration,
    /// Most random delay before a scheduled sync (at most a tenth of the source's interval).
    #[arg(long, env = "IDHOST_MAX_JITTER", default_value = "5m", value_parser = duration)]
    pub max_jitter: Duration,
}

/// One scenario of `idhost bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Entra: 100k users, 10k groups, 1M memberships.
    Entra,
    /// Ironclad: 50k users, 2k groups, under 600 requests/min.
    Ironclad,
    /// Clickwrap: 20k users.
    Clickwrap,
    /// The three above in one concurrent sync.
    All,
    /// Fixture plugin → SQLite sink, 1M grants.
    Sqlite,
    /// Fixture plugin → Postgres sink (127.0.0.1:5432, database `test`), 1M grants.
    Postgres,
    /// Fixture plugin → JSONL sink, 1M grants.
    Jsonl,
    /// Cost of one page crossing the plugin boundary (fixture plugin, 10 vs 1000 per page).
    Plugin,
}

/// `idhost bench` arguments.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Scenarios to run (repeatable; default: all of them).
    #[arg(long = "scenario", value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Multiplies every dataset size (0.01 for a quick run).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Latency each simulator adds to every answer, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub latency_ms: u64,
    /// Postgres URL for the `postgres` scenario.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    pub postgres_url: String,
}

/// A `--set` value: JSON when it parses as JSON (`true`, `12`, `null`, `"x"`), text otherwise.
fn parse_set(text: &str) -> Result<(String, serde_json::Value), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| {
        format!("`--set {text}`: expected FIELD=VALUE, e.g. --set title=\"Vice President\"")
    })?;
    if key.trim().is_empty() {
        return Err(format!("`--set {text}`: the field name is empty"));
    }
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
    Ok((key.trim().to_owned(), value))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

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
