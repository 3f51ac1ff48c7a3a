//! Settings: what `[sources.X.settings]` may say, and how `open` validates them.
//!
//! [`ClickwrapSettings`] is the raw, serde-facing form; [`ClickwrapSettings::validate`] turns it
//! into the [`Config`] the rest of the crate uses, with errors that name the key and show a
//! correct value.

use idhost_connector_sdk::settings;
use idhost_connector_sdk::{ExposeSecret, SecretString, SettingsError};
use serde::Deserialize;
use url::Url;

/// The REST API root every reference page names as its server (`servers[0].url`).
pub(crate) const DEFAULT_BASE_URL: &str = "https://api.pactsafe.com/v1.1";
/// The token endpoint of reference/createregenerate-access-token, relative to the API origin.
const TOKEN_PATH: &str = "/oauth/token";
/// reference/pagination: "Keep per_page no greater than 100".
pub(crate) const MAX_PER_PAGE: u32 = 100;

/// Settings of the `clickwrap` connector, from `[sources.X.settings]`.
///
/// Credentials are either an API application's `client_id` + `client_secret` (the connector
/// fetches and renews access tokens) or a long-lived `access_token`. The scope is an
/// `account_id`, a `site_id`, or neither when the token sees exactly one site.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickwrapSettings {
    /// Client ID of the Clickwrap API application used to fetch access tokens.
    ///
    /// Shown under *User Profile → API Keys* when the application is registered. Use together
    /// with `client_secret`, instead of `access_token`.
    ///
    /// Example: `client_id = "6123abc0de45f6789a0b1c2d"`
    #[serde(default)]
    client_id: Option<String>,

    /// Client secret of the API application named by `client_id`.
    ///
    /// Shown once when the application is registered. The host redacts it everywhere.
    ///
    /// Example: `client_secret = "${CLICKWRAP_CLIENT_SECRET}"`
    #[serde(default)]
    client_secret: Option<SecretString>,

    /// A long-lived access token, instead of `client_id` + `client_secret`.
    ///
    /// Shown once when an API application is registered. It carries the permissions of the user
    /// who created it and is never renewed by the connector: when the API refuses it, syncs fail
    /// as unauthenticated until it is replaced.
    ///
    /// Example: `access_token = "${CLICKWRAP_ACCESS_TOKEN}"`
    #[serde(default)]
    access_token: Option<SecretString>,

    /// The Clickwrap account whose users are listed.
    ///
    /// Users come from `GET /accounts/{account_id}/members`; sites are those the token can see
    /// in this account. A number, or a string of digits (so `${VAR}` works).
    ///
    /// Example: `account_id = 12345`
    #[serde(default)]
    account_id: Option<NumericId>,

    /// One Clickwrap site to sync, instead of (or besides) `account_id`.
    ///
    /// The users are those of the site's account; only this site's roles are listed. With
    /// `account_id` too, the site must belong to that account. Without either, the connector
    /// uses the only site the token can see, and fails listing them if there are several.
    ///
    /// Example: `site_id = 12346`
    #[serde(default)]
    site_id: Option<NumericId>,

    /// The REST API root, including the version.
    ///
    /// Defaults to `https://api.pactsafe.com/v1.1`. Override it for a proxy or a simulator.
    ///
    /// Example: `base_url = "http://127.0.0.1:8080/v1.1"`
    #[serde(default)]
    base_url: Option<String>,

    /// The OAuth token endpoint used with `client_id` + `client_secret`.
    ///
    /// Defaults to `/oauth/token` at the origin of `base_url`, which is
    /// `https://api.pactsafe.com/oauth/token` for the default `base_url`.
    ///
    /// Example: `token_url = "https://api.pactsafe.com/oauth/token"`
    #[serde(default)]
    token_url: Option<String>,

    /// Whether plain `http://` URLs to non-loopback hosts are accepted.
    ///
    /// Off by default: credentials would travel in clear text. Loopback addresses
    /// (`127.0.0.0/8`, `::1`, `localhost`) are always accepted, for simulators.
    ///
    /// Example: `allow_insecure_http = false`
    #[serde(default)]
    allow_insecure_http: bool,

    /// Records requested per page, from 1 to 100.
    ///
    /// Defaults to 100, the most the API docs recommend (reference/pagination), which needs the
    /// fewest requests.
    ///
    /// Example: `per_page = 100`
    #[serde(default)]
    per_page: Option<i64>,
}

/// An id setting: a TOML integer, or a string of digits (what `${VAR}` substitution yields).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum NumericId {
    Number(i64),
    Text(String),
}

/// An API application's client credentials, exchanged at `token_url`.
pub(crate) struct ClientCredentials {
    pub(crate) client_id: String,
    pub(crate) client_secret: SecretString,
    pub(crate) token_url: String,
}

/// How the connector authenticates.
pub(crate) enum Credentials {
    /// Client credentials only: tokens are fetched and renewed.
    Client(ClientCredentials),
    /// A long-lived token used as-is; with client credentials too, they are the fallback once
    /// the API refuses the token (so the token endpoint is called only then).
    AccessToken {
        token: SecretString,
        fallback: Option<ClientCredentials>,
    },
}

/// Validated settings.
pub(crate) struct Config {
    pub(crate) credentials: Credentials,
    pub(crate) account_id: Option<u64>,
    pub(crate) site_id: Option<u64>,
    /// API root without a trailing slash.
    pub(crate) base_url: String,
    pub(crate) per_page: u32,
}

impl ClickwrapSettings {
    /// Checks every setting and resolves defaults. Errors name the key and show a valid value.
    pub(crate) fn validate(self) -> Result<Config, SettingsError> {
        let insecure = self.allow_insecure_http;
        let base = parse_url(
            "base_url",
            self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
            insecure,
        )?;
        if base.path().trim_end_matches('/').is_empty() {
            return Err(SettingsError::invalid(
                "base_url",
                format!(
                    "`base_url` is the API root including the version, e.g. `{DEFAULT_BASE_URL}`; \
                     got `{base}`"
                ),
            ));
        }
        let base_url = base.as_str().trim_end_matches('/').to_owned();
        let per_page = match self.per_page {
            None => MAX_PER_PAGE,
            Some(n) if (1..=i64::from(MAX_PER_PAGE)).contains(&n) => {
                u32::try_from(n).unwrap_or(MAX_PER_PAGE)
            }
            Some(n) => {
                return Err(SettingsError::invalid(
                    "per_page",
                    format!(
                        "`per_page` must be between 1 and {MAX_PER_PAGE} (the API docs recommend \
                         at most 100 per page); got {n}"
                    ),
                ));
            }
        };
        let credentials = credentials(
            self.client_id,
            self.client_secret,
            self.access_token,
            self.token_url.as_deref(),
            &base,
            insecure,
        )?;
        Ok(Config {
            credentials,
            account_id: numeric_id("account_id", self.account_id)?,
            site_id: numeric_id("site_id", self.site_id)?,
            base_url,
            per_page,
        })
    }
}

fn credentials(
    client_id: Option<String>,
    client_secret: Option<SecretString>,
    access_token: Option<SecretString>,
    token_url: Option<&str>,
    base: &Url,
    insecure: bool,
) -> Result<Credentials, SettingsError> {
    let blank = |s: &SecretString| s.expose_secret().trim().is_empty();
    let client_id = client_id.filter(|s| !s.trim().is_empty());
    let client = match (client_id, client_secret) {
        (Some(client_id), Some(client_secret)) => {
            if blank(&client_secret) {
                return Err(SettingsError::invalid(
                    "client_secret",
                    "`client_secret` is empty, e.g. `client_secret = \"${CLICKWRAP_CLIENT_SECRET}\"`",
                ));
            }
            let token_url = match token_url {
                Some(raw) => parse_url("token_url", raw, insecure)?,
                None => base.join(TOKEN_PATH).map_err(|e| {
                    SettingsError::invalid(
                        "token_url",
                        format!(
                            "cannot derive `token_url` from `base_url` `{base}` ({e}); set \
                             `token_url = \"https://api.pactsafe.com/oauth/token\"`"
                        ),
                    )
                })?,
            };
            Some(ClientCredentials {
                client_id,
                client_secret,
                token_url: token_url.into(),
            })
        }
        (Some(_), None) => {
            return Err(SettingsError::missing(
                "client_secret",
                "`client_secret` is required with `client_id`, e.g. \
                 `client_secret = \"${CLICKWRAP_CLIENT_SECRET}\"`",
            ));
        }
        (None, Some(_)) => {
            return Err(SettingsError::missing(
                "client_id",
                "`client_id` is required with `client_secret` (the API application's client ID)",
            ));
        }
        (None, None) => None,
    };
    match (access_token, client) {
        (Some(token), fallback) => {
            if blank(&token) {
                return Err(SettingsError::invalid(
                    "access_token",
                    "`access_token` is empty; paste the token shown when the API key was \
                     registered, e.g. `access_token = \"${CLICKWRAP_ACCESS_TOKEN}\"`",
                ));
            }
            Ok(Credentials::AccessToken { token, fallback })
        }
        (None, Some(client)) => Ok(Credentials::Client(client)),
        (None, None) => Err(SettingsError::missing(
            "access_token",
            "no credentials: set `access_token`, or `client_id` + `client_secret` (an API \
             application's, from User Profile → API Keys)",
        )),
    }
}

fn numeric_id(key: &str, value: Option<NumericId>) -> Result<Option<u64>, SettingsError> {
    let parsed = match &value {
        None => return Ok(None),
        Some(NumericId::Number(n)) => u64::try_from(*n).ok(),
        Some(NumericId::Text(s)) => s.trim().parse::<u64>().ok(),
    };
    match parsed {
        Some(n) if n > 0 => Ok(Some(n)),
        _ => {
            let shown = match value {
                Some(NumericId::Number(n)) => n.to_string(),
                Some(NumericId::Text(s)) => format!("`{s}`"),
                None => String::new(),
            };
            Err(SettingsError::invalid(
                key,
                format!("`{key}` must be a positive integer, e.g. `{key} = 12345`; got {shown}"),
            ))
        }
    }
}

/// Parses an http(s) URL and refuses clear-text http to anything but loopback unless allowed.
fn parse_url(key: &str, raw: &str, allow_insecure_http: bool) -> Result<Url, SettingsError> {
    settings::checked_url(key, raw, DEFAULT_BASE_URL, allow_insecure_http)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<Config, SettingsError> {
        let raw: ClickwrapSettings = settings::from_value(json)?;
        raw.validate()
    }

    fn err(json: serde_json::Value) -> String {
        match settings(json) {
            Ok(_) => panic!("settings were accepted"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn defaults_point_at_the_public_api() {
        let c =
            settings(serde_json::json!({"client_id": "id", "client_secret": "s"})).expect("valid");
        assert_eq!(c.base_url, DEFAULT_BASE_URL);
        assert_eq!(c.per_page, 100);
        match c.credentials {
            Credentials::Client(client) => {
                assert_eq!(client.token_url, "https://api.pactsafe.com/oauth/token");
            }
            Credentials::AccessToken { .. } => panic!("client credentials expected"),
        }
    }

    #[test]
    fn token_url_follows_an_overridden_base_url() {
        let c = settings(serde_json::json!({
            "client_id": "id", "client_secret": "s", "base_url": "http://127.0.0.1:9/v1.1/"
        }))
        .expect("valid");
        assert_eq!(c.base_url, "http://127.0.0.1:9/v1.1");
        match c.credentials {
            Credentials::Client(client) => {
                assert_eq!(client.token_url, "http://127.0.0.1:9/oauth/token");
            }
            Credentials::AccessToken { .. } => panic!("client credentials expected"),
        }
    }

    #[test]
    fn plain_http_needs_loopback_or_the_opt_in() {
        let m = err(
            serde_json::json!({"access_token": "t", "base_url": "http://api.example.com/v1.1"}),
        );
        assert!(
            m.contains("`base_url`") && m.contains("allow_insecure_http"),
            "{m}"
        );
        let e = settings(
            serde_json::json!({"access_token": "t", "base_url": "http://api.example.com/v1.1"}),
        )
        .err()
        .expect("refused");
        assert_eq!(e.key.as_deref(), Some("base_url"));
        for ok in [
            "http://localhost:1/v1.1",
            "http://[::1]:1/v1.1",
            "http://127.8.0.1/v1.1",
        ] {
            settings(serde_json::json!({"access_token": "t", "base_url": ok})).expect(ok);
        }
        settings(serde_json::json!({
            "access_token": "t", "base_url": "http://api.example.com/v1.1", "allow_insecure_http": true
        }))
        .expect("opted in");
        let m = err(serde_json::json!({
            "client_id": "i", "client_secret": "s", "token_url": "http://auth.example.com/oauth/token"
        }));
        assert!(m.contains("`token_url`"), "{m}");
    }

    #[test]
    fn base_url_must_name_the_api_version() {
        let m =
            err(serde_json::json!({"access_token": "t", "base_url": "https://api.pactsafe.com"}));
        assert!(m.contains("https://api.pactsafe.com/v1.1"), "{m}");
    }

    #[test]
    fn credentials_are_one_complete_mode() {
        assert!(err(serde_json::json!({})).contains("no credentials"));
        assert!(err(serde_json::json!({"client_id": "i"})).contains("`client_secret` is required"));
        assert!(err(serde_json::json!({"client_secret": "s"})).contains("`client_id` is required"));
        // Both: the static token is preferred, the client credentials are its fallback.
        let both = settings(
            serde_json::json!({"client_id": "i", "client_secret": "s", "access_token": "t"}),
        )
        .expect("both");
        assert!(matches!(
            both.credentials,
            Credentials::AccessToken {
                fallback: Some(_),
                ..
            }
        ));
        assert!(err(serde_json::json!({"access_token": " "})).contains("`access_token` is empty"));
    }

    #[test]
    fn ids_accept_numbers_and_digit_strings() {
        let c =
            settings(serde_json::json!({"access_token": "t", "account_id": 12, "site_id": "34"}))
                .expect("valid");
        assert_eq!((c.account_id, c.site_id), (Some(12), Some(34)));
        let m = err(serde_json::json!({"access_token": "t", "account_id": "acme"}));
        assert!(m.contains("`account_id` must be a positive integer"), "{m}");
        let m = err(serde_json::json!({"access_token": "t", "site_id": 0}));
        assert!(m.contains("`site_id`"), "{m}");
    }

    #[test]
    fn per_page_stays_within_the_documented_range() {
        for bad in [0, -1, 101] {
            let m = err(serde_json::json!({"access_token": "t", "per_page": bad}));
            assert!(m.contains("`per_page` must be between 1 and 100"), "{m}");
        }
        let c = settings(serde_json::json!({"access_token": "t", "per_page": 7})).expect("valid");
        assert_eq!(c.per_page, 7);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let m = err(serde_json::json!({"access_token": "t", "acount_id": 1}));
        assert!(m.contains("acount_id"), "{m}");
    }
}
