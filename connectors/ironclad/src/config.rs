//! Settings of the Ironclad connector (`[sources.X.settings]`), and their validation.
//!
//! The raw [`IroncladSettings`] are what serde reads; [`IroncladSettings::validate`] turns them
//! into [`Validated`], the only form the client sees. Every error names the key and shows a
//! correct value.

use idhost_connector_sdk::prelude::*;
use idhost_connector_sdk::settings;
use serde::Deserialize;
use url::Url;

/// Scopes a read-only source asks for: the read half of what Ironclad's setup guide registers
/// for an API application (ConductorOne's Ironclad guide, shared/UPSTREAMS.md "Scopes"; the SCIM
/// OpenAPI names `scim.users.readUsers` and `scim.groups.readGroups` on list and retrieve).
pub(crate) const READ_SCOPES: [&str; 2] = ["scim.users.readUsers", "scim.groups.readGroups"];

/// Scopes a provisioning source asks for by default: exactly the five the setup guide registers
/// (DESIGN §7.5). An OAuth server refuses a token request naming a scope the application is not
/// registered for (RFC 6749 §5.2 `invalid_scope`), so nothing beyond them is asked for unless
/// `scopes` says so; `scim.users.updateUsers`, `scim.groups.createGroups` and
/// `scim.schemas.readSchemas` are not among them.
pub(crate) const WRITE_SCOPES: [&str; 5] = [
    "scim.users.readUsers",
    "scim.groups.readGroups",
    "scim.groups.updateGroups",
    "scim.users.createUsers",
    "scim.users.deleteUsers",
];

/// Largest `count` the SCIM OpenAPI allows (`Count`: "maximum: 1000").
pub(crate) const MAX_PAGE_SIZE: u32 = 1000;

/// List pages fetched at once by default (`pages_at_once`): Ironclad documents no limit on
/// requests in flight, only per-minute ones, so a conservative few.
pub(crate) const DEFAULT_PAGES_AT_ONCE: u32 = 4;
/// Most list pages fetched at once.
pub(crate) const MAX_PAGES_AT_ONCE: u32 = 16;

/// Settings of an Ironclad source.
///
/// Authenticate with exactly one of: `client_id` + `client_secret` (the client-credentials
/// grant, which also needs `as_user_email` or `as_user_id`), `bearer_token` (a static token),
/// or `refresh_token` + `client_id` + `client_secret`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IroncladSettings {
    /// Ironclad region to talk to.
    ///
    /// One of `na1` (the default), `eu1` or `demo`; it picks `https://{environment}.ironcladapp.com`.
    /// Leave it out when `base_url` is set.
    /// Example: `environment = "eu1"`
    #[serde(default)]
    pub environment: Option<String>,

    /// Origin of the Ironclad API, instead of `environment`.
    ///
    /// SCIM is called at `{base_url}/scim/v2` and tokens are fetched from `{base_url}/oauth/token`
    /// unless `token_url` is set. Plain `http://` is accepted only for loopback hosts unless
    /// `allow_insecure_http` is true.
    /// Example: `base_url = "https://na1.ironcladapp.com"`
    #[serde(default)]
    pub base_url: Option<String>,

    /// Full URL of the OAuth token endpoint.
    ///
    /// Defaults to `{base_url}/oauth/token` (or the environment's).
    /// Example: `token_url = "https://na1.ironcladapp.com/oauth/token"`
    #[serde(default)]
    pub token_url: Option<String>,

    /// OAuth client id of the Ironclad API application.
    ///
    /// Used with `client_secret` for the client-credentials grant, or with `refresh_token`.
    /// Example: `client_id = "${IRONCLAD_CLIENT_ID}"`
    #[serde(default)]
    pub client_id: Option<String>,

    /// OAuth client secret of the Ironclad API application (secret).
    ///
    /// Sent in the JSON body of `POST /oauth/token`; redacted everywhere by the host.
    /// Example: `client_secret = "${IRONCLAD_CLIENT_SECRET}"`
    #[serde(default)]
    pub client_secret: Option<SecretString>,

    /// How the connector signs in: `client_credentials` (the default) or `authorization_code`.
    ///
    /// `authorization_code` signs in as a person: `idhost login -c FILE --source S` opens
    /// Ironclad's consent page (authorization code with PKCE on a loopback redirect) and keeps
    /// the refresh token in the vault; syncs use it and keep the rotated ones. It needs
    /// `client_id` + `client_secret` and no acting user (the token is the person's).
    /// Example: `auth = "authorization_code"`
    #[serde(default)]
    pub auth: Option<String>,

    /// Full URL of the OAuth authorization endpoint, for `auth = "authorization_code"`.
    ///
    /// Defaults to `{base_url}/oauth/authorize` (or the environment's).
    /// Example: `authorize_url = "https://na1.ironcladapp.com/oauth/authorize"`
    #[serde(default)]
    pub authorize_url: Option<String>,

    /// Email of the Ironclad user the connector acts as (`x-as-user-email`).
    ///
    /// Ironclad requires an acting user on every SCIM call made with a client-credentials or
    /// legacy token; that user's permissions apply. Give this or `as_user_id`, not both.
    /// Example: `as_user_email = "it-admin@example.com"`
    #[serde(default)]
    pub as_user_email: Option<String>,

    /// Id of the Ironclad user the connector acts as (`x-as-user-id`).
    ///
    /// The alternative to `as_user_email`.
    /// Example: `as_user_id = "5f0375c4cdc1927a3c5edcd3"`
    #[serde(default)]
    pub as_user_id: Option<String>,

    /// A static bearer token (secret), instead of client credentials.
    ///
    /// Never refreshed: a 401 fails the call as unauthenticated. The acting-user header is
    /// still sent when `as_user_email` or `as_user_id` is set (legacy tokens need it).
    /// Example: `bearer_token = "${IRONCLAD_SCIM_TOKEN}"`
    #[serde(default)]
    pub bearer_token: Option<SecretString>,

    /// An OAuth refresh token (secret), used with `client_id` and `client_secret`.
    ///
    /// Access tokens are obtained with the `refresh_token` grant; a rotated refresh token
    /// from the answer is used for the next refresh (for the life of the process).
    /// Example: `refresh_token = "${IRONCLAD_REFRESH_TOKEN}"`
    #[serde(default)]
    pub refresh_token: Option<SecretString>,

    /// Request read scopes only and refuse every provisioning call.
    ///
    /// Same effect as the source-level `read_only = true`; either one makes the source read-only.
    /// Example: `read_only = true`
    #[serde(default)]
    pub read_only: bool,

    /// OAuth scopes to ask for: a list, or one space-separated string.
    ///
    /// Defaults to exactly what Ironclad's setup guide registers for the API application:
    /// `scim.users.readUsers scim.groups.readGroups` for a read-only source, plus
    /// `scim.groups.updateGroups scim.users.createUsers scim.users.deleteUsers` otherwise.
    /// Ironclad refuses a token request that names a scope the application is not registered
    /// for, so add a scope here only after registering it in Ironclad. An operation that needs a
    /// scope not asked for is refused before any request, naming it: updating a user needs
    /// `scim.users.updateUsers`, creating a group `scim.groups.createGroups`, and setting a
    /// company-defined (custom schema) attribute `scim.schemas.readSchemas`.
    /// Example: `scopes = ["scim.users.readUsers", "scim.groups.readGroups", "scim.users.updateUsers"]`
    #[serde(default)]
    pub scopes: Option<ScopeList>,

    /// Resources per list request (SCIM `count`).
    ///
    /// 1 to 1000; defaults to 1000, the documented maximum, which keeps request counts low.
    /// Example: `page_size = 1000`
    #[serde(default)]
    pub page_size: Option<u32>,

    /// List pages fetched at once, once the first page has given `totalResults`.
    ///
    /// 1 to 16; defaults to 4. Ironclad documents a per-minute request limit
    /// (developer.ironcladapp.com/reference/clm-api-rate-limits: 600 GET /Users and 600 /Groups
    /// requests per minute) but no limit on requests in flight, so the default is conservative;
    /// the per-minute budgets pace whatever this allows.
    /// Example: `pages_at_once = 4`
    #[serde(default)]
    pub pages_at_once: Option<u32>,

    /// Allow plain `http://` URLs to hosts that are not loopback.
    ///
    /// Off by default: credentials would cross the network in clear text.
    /// Example: `allow_insecure_http = false`
    #[serde(default)]
    pub allow_insecure_http: bool,
}

/// The `scopes` setting: a TOML array of scope names, or one space-separated string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ScopeList {
    /// `scopes = ["scim.users.readUsers", "scim.groups.readGroups"]`
    List(Vec<String>),
    /// `scopes = "scim.users.readUsers scim.groups.readGroups"`
    Text(String),
}

impl ScopeList {
    fn names(&self) -> Vec<String> {
        let words: Vec<&str> = match self {
            ScopeList::List(items) => items.iter().flat_map(|s| s.split_whitespace()).collect(),
            ScopeList::Text(text) => text.split_whitespace().collect(),
        };
        let mut names: Vec<String> = Vec::new();
        for w in words {
            if !names.iter().any(|n| n == w) {
                names.push(w.to_owned());
            }
        }
        names
    }
}

/// How the connector obtains its bearer token.
#[derive(Debug)]
pub(crate) enum Auth {
    /// Client-credentials grant.
    ClientCredentials {
        client_id: String,
        client_secret: SecretString,
    },
    /// Refresh-token grant.
    RefreshToken {
        client_id: String,
        client_secret: SecretString,
        refresh_token: SecretString,
    },
    /// A static token.
    Static(SecretString),
    /// `auth = "authorization_code"`: the refresh token `idhost login` put in the vault.
    AuthorizationCode {
        client_id: String,
        client_secret: SecretString,
    },
}

/// The acting-user header Ironclad wants on SCIM calls.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    /// `x-as-user-email` or `x-as-user-id`.
    pub(crate) header: &'static str,
    pub(crate) value: String,
}

/// Settings after validation.
#[derive(Debug)]
pub(crate) struct Validated {
    /// `{origin}/scim/v2`, no trailing slash.
    pub(crate) scim_base: String,
    pub(crate) token_url: String,
    /// `{origin}/oauth/authorize` or `authorize_url`.
    pub(crate) authorize_url: String,
    pub(crate) auth: Auth,
    pub(crate) actor: Option<Actor>,
    pub(crate) read_only: bool,
    /// The scopes the token request asks for, in order.
    pub(crate) scopes: Vec<String>,
    pub(crate) page_size: u32,
    pub(crate) pages_at_once: u32,
}

impl Validated {
    /// Whether the scopes asked for decide what the connector may do: true for the OAuth
    /// grants, false for a static `bearer_token`, whose scopes Ironclad alone knows.
    pub(crate) fn scopes_apply(&self) -> bool {
        !matches!(self.auth, Auth::Static(_))
    }
}

fn invalid(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::invalid(key, message)
}

fn conflict(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::conflict(key, message)
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl IroncladSettings {
    /// Checks the settings; `source_read_only` is the source-level `read_only`.
    pub(crate) fn validate(self, source_read_only: bool) -> Result<Validated, SettingsError> {
        let origin = self.origin()?;
        let token_url = match present(&self.token_url) {
            Some(url) => checked_url("token_url", url, self.allow_insecure_http)?.to_string(),
            None => format!("{origin}/oauth/token"),
        };
        let authorize_url = match present(&self.authorize_url) {
            Some(url) => checked_url("authorize_url", url, self.allow_insecure_http)?.to_string(),
            None => format!("{origin}/oauth/authorize"),
        };
        let actor = self.actor()?;
        let auth = self.auth(actor.is_some())?;
        let read_only = self.read_only || source_read_only;
        let scopes = match self.scopes.as_ref().map(ScopeList::names) {
            Some(names) if names.is_empty() => {
                return Err(invalid(
                    "scopes",
                    "`scopes` is empty; leave it out for the defaults, or list scopes, e.g. \
                     `scopes = [\"scim.users.readUsers\", \"scim.groups.readGroups\"]`",
                ));
            }
            Some(names) => names,
            None if read_only => READ_SCOPES.map(str::to_owned).to_vec(),
            None => WRITE_SCOPES.map(str::to_owned).to_vec(),
        };
        let page_size = match self.page_size {
            None => MAX_PAGE_SIZE,
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            Some(n) => {
                return Err(invalid(
                    "page_size",
                    format!(
                        "page_size must be between 1 and {MAX_PAGE_SIZE} (e.g. `page_size = 1000`); got `{n}`"
                    ),
                ));
            }
        };
        let pages_at_once = match self.pages_at_once {
            None => DEFAULT_PAGES_AT_ONCE,
            Some(n) if (1..=MAX_PAGES_AT_ONCE).contains(&n) => n,
            Some(n) => {
                return Err(invalid(
                    "pages_at_once",
                    format!(
                        "pages_at_once must be between 1 and {MAX_PAGES_AT_ONCE} (e.g. `pages_at_once = 4`); got `{n}`"
                    ),
                ));
            }
        };
        Ok(Validated {
            scim_base: format!("{origin}/scim/v2"),
            token_url,
            authorize_url,
            auth,
            actor,
            read_only,
            scopes,
            page_size,
            pages_at_once,
        })
    }

    /// The API origin from `environment` or `base_url`, without a trailing slash.
    fn origin(&self) -> Result<String, SettingsError> {
        match (present(&self.environment), present(&self.base_url)) {
            (Some(_), Some(_)) => Err(conflict(
                "base_url",
                "set either `environment` or `base_url`, not both \
                 (e.g. `environment = \"na1\"`, or `base_url = \"https://na1.ironcladapp.com\"`)",
            )),
            (None, Some(raw)) => {
                let url = checked_url("base_url", raw, self.allow_insecure_http)?;
                let origin = url.as_str().trim_end_matches('/').to_owned();
                if origin.ends_with("/scim/v2") || origin.ends_with("/oauth") {
                    return Err(invalid(
                        "base_url",
                        format!(
                            "base_url is the origin, e.g. `base_url = \"https://na1.ironcladapp.com\"` \
                             (SCIM is called at {{base_url}}/scim/v2); got `{raw}`"
                        ),
                    ));
                }
                Ok(origin)
            }
            (env, None) => match env.unwrap_or("na1") {
                env @ ("na1" | "eu1" | "demo") => Ok(format!("https://{env}.ironcladapp.com")),
                other => Err(invalid(
                    "environment",
                    format!("environment must be one of `na1`, `eu1`, `demo`; got `{other}`"),
                )),
            },
        }
    }

    fn actor(&self) -> Result<Option<Actor>, SettingsError> {
        match (present(&self.as_user_email), present(&self.as_user_id)) {
            (Some(_), Some(_)) => Err(conflict(
                "as_user_id",
                "set either `as_user_email` or `as_user_id`, not both \
                 (e.g. `as_user_email = \"it-admin@example.com\"`)",
            )),
            (Some(email), None) if !email.contains('@') => Err(invalid(
                "as_user_email",
                format!(
                    "as_user_email must be the acting user's email, e.g. \
                     `as_user_email = \"it-admin@example.com\"`; got `{email}`"
                ),
            )),
            (Some(email), None) => Ok(Some(Actor {
                header: "x-as-user-email",
                value: email.to_owned(),
            })),
            (None, Some(id)) => Ok(Some(Actor {
                header: "x-as-user-id",
                value: id.to_owned(),
            })),
            (None, None) => Ok(None),
        }
    }

    fn auth(&self, has_actor: bool) -> Result<Auth, SettingsError> {
        let secret = |s: &Option<SecretString>| {
            s.as_ref()
                .filter(|s| !s.expose_secret().trim().is_empty())
                .cloned()
        };
        let client_id = present(&self.client_id).map(str::to_owned);
        let client_secret = secret(&self.client_secret);
        let refresh_token = secret(&self.refresh_token);
        match present(&self.auth) {
            None | Some("client_credentials") => {}
            Some("authorization_code") => {
                if self.bearer_token.is_some() || refresh_token.is_some() {
                    return Err(conflict(
                        "auth",
                        "`auth = \"authorization_code\"` keeps its refresh token in the vault \
                         (`idhost login`); remove `bearer_token` / `refresh_token`",
                    ));
                }
                let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else {
                    return Err(SettingsError::missing(
                        "client_secret",
                        "`auth = \"authorization_code\"` needs the API application's \
                         `client_id` and `client_secret`",
                    ));
                };
                return Ok(Auth::AuthorizationCode {
                    client_id,
                    client_secret,
                });
            }
            Some(other) => {
                return Err(invalid(
                    "auth",
                    format!(
                        "auth must be `client_credentials` or `authorization_code`; got `{other}`"
                    ),
                ));
            }
        }
        if let Some(token) = secret(&self.bearer_token) {
            if client_id.is_some() || client_secret.is_some() || refresh_token.is_some() {
                return Err(conflict(
                    "bearer_token",
                    "`bearer_token` replaces `client_id`/`client_secret`/`refresh_token`; \
                     set only one way to authenticate",
                ));
            }
            return Ok(Auth::Static(token));
        }
        let key = if client_id.is_some() {
            "client_secret"
        } else {
            "client_id"
        };
        let (Some(client_id), Some(client_secret)) = (client_id, client_secret) else {
            return Err(SettingsError::missing(
                key,
                "Ironclad needs credentials: `client_id` + `client_secret` \
                 (e.g. `client_id = \"${IRONCLAD_CLIENT_ID}\"`, \
                 `client_secret = \"${IRONCLAD_CLIENT_SECRET}\"`), or `bearer_token`, \
                 or `refresh_token` with `client_id` + `client_secret`",
            ));
        };
        if let Some(refresh_token) = refresh_token {
            return Ok(Auth::RefreshToken {
                client_id,
                client_secret,
                refresh_token,
            });
        }
        // SCIM OpenAPI, XAsUserEmail: "This or `x-as-user-id` is required when the associated
        // token was produced from the Client Credentials grant".
        if !has_actor {
            return Err(SettingsError::missing(
                "as_user_email",
                "the client-credentials grant needs an acting user: set `as_user_email` \
                 (e.g. `as_user_email = \"it-admin@example.com\"`) or `as_user_id`",
            ));
        }
        Ok(Auth::ClientCredentials {
            client_id,
            client_secret,
        })
    }
}

/// Parses `raw` as an http(s) URL; plain http only to loopback unless allowed.
fn checked_url(key: &str, raw: &str, allow_insecure_http: bool) -> Result<Url, SettingsError> {
    settings::checked_url(key, raw, "https://na1.ironcladapp.com", allow_insecure_http)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: serde_json::Value) -> Result<Validated, SettingsError> {
        let s: IroncladSettings = settings::from_value(json)?;
        s.validate(false)
    }

    fn creds() -> serde_json::Value {
        serde_json::json!({"client_id": "id", "client_secret": "s", "as_user_email": "a@b.co"})
    }

    fn with(extra: serde_json::Value) -> serde_json::Value {
        let mut base = creds();
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    }

    #[test]
    fn environment_defaults_to_na1_and_names_the_valid_values() {
        let v = settings(creds()).expect("valid");
        assert_eq!(v.scim_base, "https://na1.ironcladapp.com/scim/v2");
        assert_eq!(v.token_url, "https://na1.ironcladapp.com/oauth/token");
        let v = settings(with(serde_json::json!({"environment": "eu1"}))).expect("valid");
        assert_eq!(v.scim_base, "https://eu1.ironcladapp.com/scim/v2");
        let err = settings(with(serde_json::json!({"environment": "us2"}))).expect_err("invalid");
        assert_eq!(
            err.message,
            "environment must be one of `na1`, `eu1`, `demo`; got `us2`"
        );
    }

    #[test]
    fn base_url_is_an_origin_and_plain_http_needs_loopback_or_opt_in() {
        let v = settings(with(
            serde_json::json!({"base_url": "http://127.0.0.1:8080/"}),
        ))
        .expect("loopback http is fine");
        assert_eq!(v.scim_base, "http://127.0.0.1:8080/scim/v2");
        assert_eq!(v.token_url, "http://127.0.0.1:8080/oauth/token");
        let err = settings(with(
            serde_json::json!({"base_url": "http://ironclad.internal"}),
        ))
        .expect_err("insecure");
        assert!(err.message.contains("base_url") && err.message.contains("allow_insecure_http"));
        settings(with(serde_json::json!({
            "base_url": "http://ironclad.internal", "allow_insecure_http": true
        })))
        .expect("opted in");
        let err = settings(with(serde_json::json!({
            "base_url": "https://na1.ironcladapp.com/scim/v2"
        })))
        .expect_err("not an origin");
        assert!(err.message.contains("origin"));
        let err = settings(with(serde_json::json!({
            "base_url": "https://x.example", "token_url": "http://10.0.0.1/oauth/token"
        })))
        .expect_err("insecure token url");
        assert!(err.message.starts_with("`token_url`"));
        assert_eq!(err.key.as_deref(), Some("token_url"));
    }

    #[test]
    fn credentials_need_one_way_and_an_actor_for_client_credentials() {
        let err = settings(serde_json::json!({"client_id": "id", "client_secret": "s"}))
            .expect_err("no actor");
        assert!(err.message.contains("as_user_email"));
        let err = settings(serde_json::json!({})).expect_err("no credentials");
        assert!(err.message.contains("client_id"));
        let v = settings(serde_json::json!({"bearer_token": "t"})).expect("static token");
        assert!(matches!(v.auth, Auth::Static(_)) && v.actor.is_none());
        let err = settings(with(serde_json::json!({"bearer_token": "t"}))).expect_err("both");
        assert!(err.message.contains("bearer_token"));
        let v = settings(serde_json::json!({
            "client_id": "id", "client_secret": "s", "refresh_token": "r"
        }))
        .expect("refresh token needs no actor");
        assert!(matches!(v.auth, Auth::RefreshToken { .. }));
        let err = settings(with(serde_json::json!({"as_user_id": "u1"}))).expect_err("two actors");
        assert!(err.message.contains("as_user_id"));
    }

    #[test]
    fn read_only_asks_for_read_scopes_only() {
        let v = settings(with(serde_json::json!({"read_only": true}))).expect("valid");
        assert_eq!(v.scopes, READ_SCOPES);
        assert!(v.read_only);
        let s: IroncladSettings = serde_json::from_value(creds()).expect("parses");
        let v = s.validate(true).expect("valid");
        assert_eq!(v.scopes, READ_SCOPES);
        let v = settings(creds()).expect("valid");
        assert!(v.scopes.iter().any(|s| s == "scim.users.deleteUsers"));
        assert!(v.scopes.iter().any(|s| s == "scim.groups.updateGroups"));
    }

    #[test]
    fn default_scopes_are_exactly_the_five_the_setup_guide_registers() {
        // DESIGN §7.5; the connector used to ask for seven, two of them unregistered.
        let v = settings(creds()).expect("valid");
        assert_eq!(
            v.scopes.join(" "),
            "scim.users.readUsers scim.groups.readGroups scim.groups.updateGroups \
             scim.users.createUsers scim.users.deleteUsers"
        );
        for form in [
            serde_json::json!({"scopes": ["scim.users.readUsers", "scim.users.updateUsers"]}),
            serde_json::json!({"scopes": "scim.users.readUsers  scim.users.updateUsers"}),
        ] {
            let v = settings(with(form)).expect("a list or a string");
            assert_eq!(v.scopes, ["scim.users.readUsers", "scim.users.updateUsers"]);
        }
        let err = settings(with(serde_json::json!({"scopes": []}))).expect_err("empty");
        assert_eq!(err.key.as_deref(), Some("scopes"));
    }

    #[test]
    fn page_size_is_bounded_by_the_documented_maximum() {
        assert_eq!(settings(creds()).expect("valid").page_size, 1000);
        let err = settings(with(serde_json::json!({"page_size": 5000}))).expect_err("too big");
        assert!(err.message.contains("page_size"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = settings::from_value::<IroncladSettings>(with(serde_json::json!({"tenant": 1})))
            .expect_err("unknown key");
        assert!(err.to_string().contains("tenant"));
        assert_eq!(
            (err.kind, err.key.as_deref()),
            (SettingsErrorKind::Unknown, Some("tenant"))
        );
    }
}
