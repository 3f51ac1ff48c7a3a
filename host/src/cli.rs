//! Command-line interface (DESIGN §6). Every flag has an `IDHOST_*` environment twin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::logging::LogFormat;

/// idhost: sync identity data from connector plugins into sinks, and provision access.
#[derive(Debug, Parser)]
#[command(name = "idhost", version, about, after_long_help = crate::help::TOP)]
pub struct Cli {
    /// Config file (accepted anywhere on the line).
    #[arg(short, long, global = true, env = "IDHOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output: `table` (default; `text` is the same), `json` or `csv`. For `idhost review`, the
    /// file to write (`.csv` or `.xlsx`).
    #[arg(
        short,
        long,
        global = true,
        env = "IDHOST_OUTPUT",
        value_name = "FORMAT|FILE"
    )]
    pub output: Option<String>,
    /// Colour: `auto` (on a terminal, unless NO_COLOR is set), `always` or `never`.
    #[arg(
        long,
        global = true,
        env = "IDHOST_COLOR",
        value_enum,
        default_value = "auto"
    )]
    pub color: crate::color::ColorChoice,
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

/// What `--output` asks for (every command but `review`, which writes a file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// For people: aligned columns or lines of text.
    Table,
    /// JSON on stdout.
    Json,
    /// CSV with a header row.
    Csv,
}

impl OutputFormat {
    /// `--output` (or `--json`, its alias where a command has it), `table` when absent.
    pub fn parse(output: Option<&str>, json: bool) -> Result<Self, String> {
        if json {
            return Ok(Self::Json);
        }
        match output.map(str::trim) {
            None | Some("table") | Some("text") => Ok(Self::Table),
            Some("json") => Ok(Self::Json),
            Some("csv") => Ok(Self::Csv),
            Some(other) => Err(format!(
                "--output must be one of `table`, `json`, `csv`; got `{other}`"
            )),
        }
    }
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
#[command(after_long_help = crate::help::PROVISION)]
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

/// `idhost query` arguments.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// The sqlite sink to read (default: the first one in the config).
    #[arg(long, global = true)]
    pub sink: Option<String>,
    /// The question.
    #[command(subcommand)]
    pub op: QueryOp,
}

/// Questions `idhost query` answers from the SQLite sink (DESIGN §7.2).
#[derive(Debug, Subcommand)]
pub enum QueryOp {
    /// Resources (users, groups, apps, roles, ...): id, type, name, status, login, email.
    #[command(after_long_help = crate::help::RESOURCES)]
    Resources {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only this resource type (`user`, `group`, ...).
        #[arg(long = "type")]
        rtype: Option<String>,
        /// Only resources whose id, name, login or email contains this text (any case).
        #[arg(long)]
        search: Option<String>,
    },
    /// Entitlements: what can be granted, on which resource.
    #[command(after_long_help = crate::help::ENTITLEMENTS)]
    Entitlements {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only the entitlements of this resource (`group:<id>`).
        #[arg(long)]
        resource: Option<String>,
    },
    /// Direct grants, as the source lists them.
    #[command(after_long_help = crate::help::GRANTS)]
    Grants {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only grants of this entitlement (`group:<id>:member`).
        #[arg(long)]
        entitlement: Option<String>,
        /// Only grants to this principal (id, login or email).
        #[arg(long)]
        principal: Option<String>,
    },
    /// Who holds an entitlement, directly or through nested groups (`via`).
    #[command(after_long_help = crate::help::WHO_HAS)]
    WhoHas {
        /// Entitlement id (`group:<id>:member`, `app:<id>:<role>`).
        entitlement: String,
        /// The source, when the entitlement id is in several.
        #[arg(long)]
        source: Option<String>,
    },
    /// What a principal holds, directly or through nested groups (`via`).
    #[command(after_long_help = crate::help::ACCESS)]
    Access {
        /// Principal: resource id (`user:<id>`), login or email (any case).
        principal: String,
        /// The source, when the principal matches accounts in several.
        #[arg(long)]
        source: Option<String>,
    },
    /// Every account of every source with the person (`[identity]`) it belongs to.
    #[command(after_long_help = crate::help::PEOPLE)]
    People {
        /// Only the accounts of this source.
        #[arg(long)]
        source: Option<String>,
    },
    /// Accounts with no person, or whose person is disabled or deleted in the authoritative
    /// source (`[identity]`).
    #[command(after_long_help = crate::help::ORPHANS)]
    Orphans {
        /// Only the accounts of this source.
        #[arg(long)]
        source: Option<String>,
    },
    /// What changed in a source: change events with names and the fields that changed.
    #[command(after_long_help = crate::help::DIFF)]
    Diff {
        /// Source name.
        source: String,
        /// Only events at or after this RFC 3339 time, or this long ago (`24h`).
        #[arg(long, conflicts_with = "sync")]
        since: Option<String>,
        /// Only the events of this sync (a `sync_id`).
        #[arg(long)]
        sync: Option<String>,
    },
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the three upstream simulators on loopback, sync all three connectors into SQLite,
    /// change the upstreams a little and sync again, then show what to try next.
    #[command(after_long_help = crate::help::DEMO)]
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
    /// Write a commented config for one connector (to -c FILE, default `idhost.toml`).
    #[command(after_long_help = crate::help::INIT)]
    Init {
        /// The connector: `ironclad`, `entra`, `clickwrap`, or any installed plugin's name.
        connector: String,
        /// Replace the file if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Make one change upstream through a source's connector (audited; --dry-run sends no write).
    #[command(after_long_help = crate::help::PROVISION)]
    Provision {
        /// What to change.
        #[command(flatten)]
        args: ProvisionArgs,
    },
    /// Sign a source in as a person and keep its refresh token in the vault: Ironclad
    /// `auth = "authorization_code"` (a browser, PKCE, a loopback redirect) or Entra
    /// `auth = "device_code"` (a code to enter at the sign-in page).
    #[command(after_long_help = crate::help::LOGIN)]
    Login(LoginArgs),
    /// Daemon: sync each source on its schedule; serve /healthz, /readyz and /metrics; notify on
    /// failures; stop gracefully on SIGTERM.
    #[command(after_long_help = crate::help::RUN)]
    Run(RunArgs),
    /// Measure syncs against the simulators (injected latency) and sinks against their lower bounds.
    #[command(after_long_help = crate::help::BENCH)]
    Bench(BenchArgs),
    /// Answer questions from the SQLite sink: resources, entitlements, grants, access, who-has,
    /// people, orphans, diff. Needs no credential.
    #[command(after_long_help = crate::help::QUERY)]
    Query {
        /// The question.
        #[command(flatten)]
        args: QueryArgs,
    },
    /// Export an access review: one row per effective grant, from one frozen snapshot, to
    /// `-o FILE.csv` or `-o FILE.xlsx` (one sheet per source plus a summary).
    #[command(after_long_help = crate::help::REVIEW)]
    Review {
        /// Only this source (repeatable; default: every source of the sink).
        #[arg(long = "source")]
        sources: Vec<String>,
        /// The sqlite sink to read (default: the first one in the config).
        #[arg(long)]
        sink: Option<String>,
    },
    /// Show the audit trail of provisioning (every attempt, dry runs and refusals included).
    #[command(after_long_help = crate::help::AUDIT)]
    Audit {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        /// Only attempts at or after this RFC 3339 time, or this long ago (`24h`).
        #[arg(long)]
        since: Option<String>,
        /// At most this many rows, the newest.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// List discovered plugins: name, version, SDK interface version, resource types, capabilities.
    #[command(after_long_help = crate::help::PLUGINS)]
    Plugins {
        /// Same as `--output json`.
        #[arg(long)]
        json: bool,
    },
    /// Validate the config, load every plugin, and run each connector's connection check.
    #[command(after_long_help = crate::help::CHECK)]
    Check {
        /// Validate without any network request or secret: the config, the plugins, and each
        /// connector's settings (sources whose settings need an unset variable are checked
        /// against the plugin's settings keys only).
        #[arg(long)]
        offline: bool,
    },
    /// One complete sync of the chosen sources, concurrently. Exit code 1 if any failed.
    #[command(after_long_help = crate::help::SYNC)]
    Sync {
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
        /// failure), or one held by `max_removals`. A sync that had finished listing keeps its
        /// events: they are delivered with this one's.
        #[arg(long)]
        restart: bool,
        /// Accept what this sync removes, beyond the source's `max_removals` (a held sync is
        /// dropped and the source listed again).
        #[arg(long)]
        allow_removals: bool,
        /// Same as `--output json`: the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Commit a source's sync held by the mass-removal brake (`max_removals`), as listed,
    /// without listing again: its events, every sink's writes and the snapshot.
    #[command(after_long_help = crate::help::APPROVE)]
    Approve {
        /// The source whose held sync to commit.
        #[arg(long)]
        source: String,
        /// Same as `--output json`: the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_long_help = crate::help::COMPLETIONS)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page, or write one page per command into a directory.
    #[command(after_long_help = crate::help::MAN)]
    Man {
        /// Write `idhost.1`, `idhost-sync.1`, ... here instead of printing `idhost.1`.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration like `20s` or `5m`: {e}"))
}

/// `idhost login` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct LoginArgs {
    /// The source to sign in.
    #[arg(long)]
    pub source: String,
    /// Vault file (0600) the refresh token goes to (default: idhost-vault.jsonl beside the state
    /// database; syncs read the same path, also from IDHOST_VAULT).
    #[arg(long, env = "IDHOST_VAULT")]
    pub vault: Option<PathBuf>,
    /// Loopback port of the authorization-code redirect, `http://127.0.0.1:<port>/callback`
    /// (0: any free port; register the redirect URI with the port you choose).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// How long to wait for the browser's redirect or the device-code approval.
    #[arg(long, default_value = "5m", value_parser = duration)]
    pub timeout: Duration,
}

/// `idhost run` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
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
    /// Peak RSS of the Ironclad scenario at ¼, ½ and all of its size: flat or growing.
    Flat,
    /// Fixture plugin → SQLite sink, 1M grants: first sync, unchanged re-sync, 1%-changed
    /// re-sync, each with its wall and CPU time.
    Resync,
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
