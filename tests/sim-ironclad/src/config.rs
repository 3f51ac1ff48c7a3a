//! What the simulated Ironclad company looks like: dataset size, credentials, limits.

use std::time::Duration;

/// Client id accepted by `POST /oauth/token` unless configured otherwise.
pub(crate) const DEFAULT_CLIENT_ID: &str = "ironclad-client";
/// Client secret accepted by `POST /oauth/token` unless configured otherwise.
pub(crate) const DEFAULT_CLIENT_SECRET: &str = "ironclad-secret";
/// The static ("legacy") bearer token accepted unless configured otherwise.
pub(crate) const DEFAULT_BEARER_TOKEN: &str = "ironclad-legacy-token";
/// The admin user that exists in every dataset and may act as `x-as-user-email`.
pub(crate) const DEFAULT_ADMIN_EMAIL: &str = "it-admin@example.com";

/// The scopes the API application is registered for unless configured otherwise: the five
/// ConductorOne's Ironclad setup guide has an admin register (read users and groups; update
/// groups, create and delete users), shared/UPSTREAMS.md "Scopes".
pub(crate) const GUIDE_SCOPES: [&str; 5] = [
    "scim.users.readUsers",
    "scim.groups.readGroups",
    "scim.groups.updateGroups",
    "scim.users.createUsers",
    "scim.users.deleteUsers",
];

/// What a ListResponse says in `totalResults`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TotalResults {
    /// The number of matching resources (RFC 7644 §3.4.2; what Ironclad documents).
    #[default]
    Exact,
    /// Left out: not Ironclad's documented behaviour; a fault for clients' robustness.
    Omitted,
    /// The number of resources on the page: a misreport (not documented behaviour) that makes
    /// a client trusting it stop after one page.
    PageSize,
}

/// Shape and behaviour of one simulated Ironclad company (one "account" in the rate-limit docs).
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Users in the seeded dataset, the admin included (it is always user 1, so at least one
    /// user exists even when this is 0).
    pub users: usize,
    /// Groups in the seeded dataset.
    pub groups: usize,
    /// Members of every seeded group (capped at the number of users).
    pub members_per_group: usize,
    /// Seed of the dataset: the same seed gives the same users, ids and groups.
    pub seed: u64,
    /// Latency added to every answer (applied by `sim_common::fault_layer`).
    pub latency: Duration,
    /// Lifetime of access tokens from the client-credentials and refresh-token grants.
    pub token_ttl: Duration,
    /// Enforce the documented per-account rate limits (answering 429 without `Retry-After`).
    pub rate_limits: bool,
    /// OAuth client id of the registered client application.
    pub client_id: String,
    /// OAuth client secret of the registered client application.
    pub client_secret: String,
    /// Scopes the client application is registered for: a token request naming any other is
    /// refused `invalid_scope` (OAuth OpenAPI `scope`: "must be equal to or a subset of the
    /// client application's registered scopes"). Defaults to the setup guide's five.
    pub registered_scopes: Vec<String>,
    /// What `totalResults` says (a fault switch; [`TotalResults::Exact`] is the real service).
    pub total_results: TotalResults,
    /// A static "legacy" bearer token, accepted with every SCIM scope. Empty disables it.
    pub bearer_token: String,
    /// `userName` of the admin user, the natural `x-as-user-email` actor.
    pub admin_email: String,
    /// The company has a SAML configuration, so `password` is optional on user creation.
    ///
    /// Defaults to `true`: support.ironcladapp.com "Use Okta SCIM in Ironclad" says "You must
    /// have a SAML SSO connector configured in your Ironclad company before provisioning users
    /// with SCIM".
    pub saml: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            users: 50,
            groups: 5,
            members_per_group: 10,
            seed: 7,
            latency: Duration::ZERO,
            token_ttl: Duration::from_secs(3600),
            rate_limits: true,
            client_id: DEFAULT_CLIENT_ID.to_owned(),
            client_secret: DEFAULT_CLIENT_SECRET.to_owned(),
            registered_scopes: GUIDE_SCOPES.map(str::to_owned).to_vec(),
            total_results: TotalResults::Exact,
            bearer_token: DEFAULT_BEARER_TOKEN.to_owned(),
            admin_email: DEFAULT_ADMIN_EMAIL.to_owned(),
            saml: true,
        }
    }
}

/// Command-line flags for the Ironclad simulator (flattened into `upstream-sim`).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Users in the seeded dataset, the admin included.
    #[arg(long, default_value_t = 50)]
    pub users: usize,
    /// Groups in the seeded dataset.
    #[arg(long, default_value_t = 5)]
    pub groups: usize,
    /// Members of every seeded group.
    #[arg(long, default_value_t = 10)]
    pub members_per_group: usize,
    /// Dataset seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Access-token lifetime, in seconds.
    #[arg(long, default_value_t = 3600)]
    pub token_ttl_secs: u64,
    /// Do not enforce the documented rate limits.
    #[arg(long)]
    pub no_rate_limits: bool,
    /// OAuth client id.
    #[arg(long, default_value = DEFAULT_CLIENT_ID)]
    pub client_id: String,
    /// OAuth client secret.
    #[arg(long, default_value = DEFAULT_CLIENT_SECRET)]
    pub client_secret: String,
    /// Static legacy bearer token (empty disables it).
    #[arg(long, default_value = DEFAULT_BEARER_TOKEN)]
    pub bearer_token: String,
    /// `userName` of the admin user.
    #[arg(long, default_value = DEFAULT_ADMIN_EMAIL)]
    pub admin_email: String,
    /// Simulate a company without SAML: user creation then requires a password.
    #[arg(long)]
    pub no_saml: bool,
}

impl Args {
    /// The configuration these flags describe.
    pub fn into_config(self) -> SimConfig {
        SimConfig {
            users: self.users,
            groups: self.groups,
            members_per_group: self.members_per_group,
            seed: self.seed,
            latency: Duration::from_millis(self.latency_ms),
            token_ttl: Duration::from_secs(self.token_ttl_secs),
            rate_limits: !self.no_rate_limits,
            client_id: self.client_id,
            client_secret: self.client_secret,
            registered_scopes: GUIDE_SCOPES.map(str::to_owned).to_vec(),
            total_results: TotalResults::Exact,
            bearer_token: self.bearer_token,
            admin_email: self.admin_email,
            saml: !self.no_saml,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_default_to_the_default_config_and_negative_flags_switch_off() {
        let config = Cli::parse_from(["sim"]).args.into_config();
        let default = SimConfig::default();
        assert_eq!(format!("{config:?}"), format!("{default:?}"));
        let config = Cli::parse_from([
            "sim",
            "--users",
            "50000",
            "--latency-ms",
            "25",
            "--token-ttl-secs",
            "60",
            "--no-rate-limits",
            "--no-saml",
            "--admin-email",
            "root@example.com",
        ])
        .args
        .into_config();
        assert_eq!(config.users, 50_000);
        assert_eq!(config.latency, Duration::from_millis(25));
        assert_eq!(config.token_ttl, Duration::from_secs(60));
        assert!(!config.rate_limits && !config.saml);
        assert_eq!(config.admin_email, "root@example.com");
    }
}
