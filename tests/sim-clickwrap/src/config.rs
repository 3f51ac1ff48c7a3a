//! What a simulator instance looks like: account, dataset size, credentials, limits.

use std::time::Duration;

/// How to build one simulated Clickwrap account.
///
/// Everything the simulator serves derives from these values, so two simulators built from equal
/// configs serve byte-identical users, sites and memberships (tokens excepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimConfig {
    /// The Clickwrap account id: the `{account_id}` of `/v1.1/accounts/{account_id}/members` and
    /// the `account` field of every site and membership.
    pub account_id: u64,
    /// Number of sites in the account (the first is the primary one every user belongs to).
    pub sites: usize,
    /// Number of account members generated at start.
    pub users: usize,
    /// Seed of the deterministic dataset generator.
    pub seed: u64,
    /// Latency added to every answer (applied through `sim_common::Faults`).
    pub latency: Duration,
    /// OAuth client id accepted by `POST /oauth/token`.
    pub client_id: String,
    /// OAuth client secret accepted by `POST /oauth/token`.
    pub client_secret: String,
    /// A long-lived access token accepted on every `/v1.1` call, like the one the Clickwrap UI
    /// shows once when an API key is registered (docs/getting-your-access-token).
    pub access_token: String,
    /// Whether to enforce the documented REST limits (reference/rate-limits): 2000 requests per
    /// minute per API token, 60 per minute for unauthenticated requests.
    pub rate_limits: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            account_id: 1001,
            sites: 1,
            users: 40,
            seed: 1,
            latency: Duration::ZERO,
            client_id: "clickwrap-client".to_owned(),
            client_secret: "clickwrap-secret".to_owned(),
            access_token: "clickwrap-static-token".to_owned(),
            rate_limits: true,
        }
    }
}

/// Command-line flags of the Clickwrap simulator (flattened into the `upstream-sim` binary).
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Clickwrap account id served under `/v1.1/accounts/{account_id}`.
    #[arg(long, default_value_t = 1001)]
    pub account_id: u64,
    /// Number of sites in the account.
    #[arg(long, default_value_t = 1)]
    pub sites: usize,
    /// Number of account members to generate.
    #[arg(long, default_value_t = 40)]
    pub users: usize,
    /// Seed of the deterministic dataset.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// OAuth client id accepted by `POST /oauth/token`.
    #[arg(long, default_value = "clickwrap-client")]
    pub client_id: String,
    /// OAuth client secret accepted by `POST /oauth/token`.
    #[arg(long, default_value = "clickwrap-secret")]
    pub client_secret: String,
    /// Long-lived bearer token accepted without calling `/oauth/token`.
    #[arg(long, default_value = "clickwrap-static-token")]
    pub access_token: String,
    /// Turn off the documented 2000 requests/minute/token limit.
    #[arg(long)]
    pub no_rate_limits: bool,
}

impl Args {
    /// The `SimConfig` these flags describe.
    pub fn into_config(self) -> SimConfig {
        SimConfig {
            account_id: self.account_id,
            sites: self.sites,
            users: self.users,
            seed: self.seed,
            latency: Duration::from_millis(self.latency_ms),
            client_id: self.client_id,
            client_secret: self.client_secret,
            access_token: self.access_token,
            rate_limits: !self.no_rate_limits,
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
    fn default_flags_match_default_config() {
        let cli = Cli::try_parse_from(["sim"]).expect("defaults parse");
        assert_eq!(cli.args.into_config(), SimConfig::default());
    }

    #[test]
    fn flags_map_onto_config_fields() {
        let cli = Cli::try_parse_from([
            "sim",
            "--account-id",
            "7",
            "--users",
            "20000",
            "--latency-ms",
            "15",
            "--no-rate-limits",
        ])
        .expect("flags parse");
        let config = cli.args.into_config();
        assert_eq!(config.account_id, 7);
        assert_eq!(config.users, 20_000);
        assert_eq!(config.latency, Duration::from_millis(15));
        assert!(!config.rate_limits);
    }
}
