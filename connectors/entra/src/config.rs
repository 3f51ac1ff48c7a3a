//! Settings of the Entra connector (`[sources.X.settings]` of a source with
//! `connector = "entra"`), and their validation into the endpoints and options the rest of the
//! crate uses.

use std::net::IpAddr;

use idhost_connector_sdk::{ConfigKey, ConnectorError, SecretString};
use serde::Deserialize;

/// Settings of a Microsoft Entra ID source.
///
/// The connector signs in as an app registration with the client credentials grant and reads
/// (and, unless read-only, writes) the directory through Microsoft Graph v1.0.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraSettings {
    /// Directory (tenant) id of the Entra tenant.
    ///
    /// The GUID or a verified domain of the tenant; it is the `{tenant}` of the token URL.
    /// Example: `"72f988bf-86f1-41af-91ab-2d7cd011db47"`.
    pub tenant_id: String,

    /// Application (client) id of the app registration the connector signs in as.
    ///
    /// The app needs the application permissions User.Read.All, GroupMember.Read.All,
    /// Application.Read.All and RoleManagement.Read.Directory to sync, and
    /// GroupMember.ReadWrite.All, AppRoleAssignment.ReadWrite.All and
    /// RoleManagement.ReadWrite.Directory to provision.
    /// Example: `"00000000-1111-2222-3333-444444444444"`.
    pub client_id: String,

    /// Client secret of that app registration (or `client_certificate` instead).
    ///
    /// The secret's *value*, not its id. Redacted everywhere by the host.
    /// Example: `"${ENTRA_CLIENT_SECRET}"`.
    #[serde(default)]
    pub client_secret: Option<SecretString>,

    /// The app registration's certificate credential, instead of `client_secret`.
    ///
    /// PEM text holding the certificate (uploaded to the app registration under "Certificates &
    /// secrets") and its unencrypted private key, usually read from a 0600 file. Each token
    /// request carries a fresh client assertion signed with the key (RS256, `x5t#S256`); `idhost
    /// check` shows the certificate's subject, thumbprint and expiry and warns 30 days ahead.
    /// Example: `"${file:/etc/idhost/entra.pem}"`.
    #[serde(default)]
    pub client_certificate: Option<SecretString>,

    /// How the connector signs in: `client_credentials` (the default: `client_secret` or
    /// `client_certificate`) or `device_code`.
    ///
    /// `device_code` signs in as a person with delegated permissions: `idhost login -c FILE
    /// --source S` shows a code to enter at the Microsoft sign-in page (RFC 8628) and keeps the
    /// refresh token in the vault; syncs use it and keep the rotated ones. The app registration
    /// must allow public client flows; no secret or certificate is needed.
    /// Example: `"device_code"`.
    #[serde(default)]
    pub auth: Option<String>,

    /// Which Microsoft cloud the tenant lives in.
    ///
    /// One of `global` (login.microsoftonline.com, graph.microsoft.com; also GCC), `usgov`
    /// (GCC High: login.microsoftonline.us, graph.microsoft.us), `usgov-dod`
    /// (login.microsoftonline.us, dod-graph.microsoft.us) or `china` (21Vianet:
    /// login.chinacloudapi.cn, microsoftgraph.chinacloudapi.cn). Default `global`.
    /// Example: `"usgov"`.
    #[serde(default)]
    pub cloud: Option<String>,

    /// Origin of Microsoft Graph, overriding the cloud's.
    ///
    /// Requests go to `{graph_url}/v1.0/...` and the token scope is `{graph_url}/.default`.
    /// An origin only: no path. Used for simulators and proxies.
    /// Example: `"http://127.0.0.1:8081"`.
    #[serde(default)]
    pub graph_url: Option<String>,

    /// Origin of the Microsoft identity platform, overriding the cloud's.
    ///
    /// Tokens come from `{login_url}/{tenant_id}/oauth2/v2.0/token`. An origin only: no path.
    /// Example: `"http://127.0.0.1:8081"`.
    #[serde(default)]
    pub login_url: Option<String>,

    /// Allow plain `http://` URLs to hosts other than loopback.
    ///
    /// Off by default: the client secret and bearer tokens would cross the network in clear.
    /// Example: `false`.
    #[serde(default)]
    pub allow_insecure_http: bool,

    /// Refuse every provisioning call.
    ///
    /// Same effect as the source-level `read_only = true`; either one makes the source
    /// read-only. (Graph's client-credentials scope is always `.default`, so read-only cannot
    /// narrow the token; grant the app read permissions only for a hard guarantee.)
    /// Example: `true`.
    #[serde(default)]
    pub read_only: bool,

    /// List managed identities as `user` resources with `account_type = "service"`.
    ///
    /// Service principals of type `ManagedIdentity` are hidden from `/users`; with this on they
    /// are listed beside the people, and grants held by them name `user:<id>`. Default `true`.
    /// Example: `true`.
    #[serde(default = "default_true")]
    pub include_managed_identities: bool,

    /// Leave out groups synchronized from on-premises Active Directory.
    ///
    /// Groups with `onPremisesSyncEnabled = true` are managed in AD, not in Entra; skipping
    /// them skips their members and owners too. Default `false`.
    /// Example: `true`.
    #[serde(default)]
    pub skip_on_prem_groups: bool,

    /// Leave out enterprise apps nobody is assigned to.
    ///
    /// A tenant holds hundreds of Microsoft first-party service principals with no app role
    /// assignments; this drops every app whose `appRoleAssignedTo` is empty. Default `false`.
    /// Example: `true`.
    #[serde(default)]
    pub skip_unassigned_apps: bool,

    /// Objects per Graph page (`$top`), from 1 to 999.
    ///
    /// Applies to the user, group, app and managed-identity lists and to the member, owner and
    /// assignment lists read per group and app. Graph's maximum, 999, costs the fewest
    /// requests. Default `999`.
    /// Example: `999`.
    #[serde(default = "default_page_size")]
    pub page_size: u32,

    /// How many Graph requests (each a `$batch` of up to 20 reads) run at once.
    ///
    /// From 1 to 32. Graph throttles per app and tenant by resource units; more concurrency
    /// finishes sooner until throttling starts. Default `4`.
    /// Example: `4`.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,

    /// Read members, owners and assignments through JSON `$batch` requests.
    ///
    /// `true` sends 20 reads per request; `false` sends one GET per read (the slow path, kept
    /// for comparison and for proxies that refuse `$batch`). Default `true`.
    /// Example: `true`.
    #[serde(default = "default_true")]
    pub batch: bool,

    /// Use Graph delta queries for users and groups after the first complete sync.
    ///
    /// The first sync lists everything and keeps delta links; later syncs read only what
    /// changed (an expired link falls back to a full listing). `false` lists everything every
    /// time. Default `true`.
    /// Example: `true`.
    #[serde(default = "default_true")]
    pub incremental: bool,

    /// Attempts for reads inside a `$batch` that Graph throttled (429, 503, 504).
    ///
    /// Each retry waits the inner response's `Retry-After`; from 1 to 20. Default `6`.
    /// Example: `6`.
    #[serde(default = "default_batch_attempts")]
    pub batch_retry_attempts: u32,
}

fn default_true() -> bool {
    true
}
fn default_page_size() -> u32 {
    999
}
fn default_concurrency() -> u32 {
    4
}
fn default_batch_attempts() -> u32 {
    6
}

/// The manifest's `config_keys`: every field of [`EntraSettings`] (a test checks it).
pub(crate) fn config_keys() -> Vec<ConfigKey> {
    vec![
        ConfigKey::required("tenant_id", "Directory (tenant) id"),
        ConfigKey::required(
            "client_id",
            "Application (client) id of the app registration",
        ),
        ConfigKey::optional(
            "client_secret",
            "Client secret value of the app registration (or client_certificate)",
        )
        .secret(),
        ConfigKey::optional(
            "client_certificate",
            "PEM: the app's certificate and its unencrypted private key, instead of client_secret",
        )
        .secret(),
        ConfigKey::optional(
            "auth",
            "client_credentials (default) or device_code (`idhost login`, refresh token in the vault)",
        ),
        ConfigKey::optional(
            "cloud",
            "global | usgov | usgov-dod | china (default global)",
        ),
        ConfigKey::optional(
            "graph_url",
            "Graph origin overriding the cloud's; requests go to {graph_url}/v1.0",
        ),
        ConfigKey::optional(
            "login_url",
            "Login origin overriding the cloud's; tokens from {login_url}/{tenant_id}/oauth2/v2.0/token",
        ),
        ConfigKey::optional(
            "allow_insecure_http",
            "Accept plain http:// to non-loopback hosts (default false)",
        ),
        ConfigKey::optional("read_only", "Refuse provisioning (default false)"),
        ConfigKey::optional(
            "include_managed_identities",
            "List managed identities as service users (default true)",
        ),
        ConfigKey::optional(
            "skip_on_prem_groups",
            "Leave out groups synced from on-premises AD (default false)",
        ),
        ConfigKey::optional(
            "skip_unassigned_apps",
            "Leave out apps with no app role assignments (default false)",
        ),
        ConfigKey::optional("page_size", "$top of every list, 1-999 (default 999)"),
        ConfigKey::optional("concurrency", "Graph requests in flight, 1-32 (default 4)"),
        ConfigKey::optional(
            "batch",
            "Read members/owners/assignments through $batch (default true)",
        ),
        ConfigKey::optional(
            "incremental",
            "Use delta queries after the first complete sync (default true)",
        ),
        ConfigKey::optional(
            "batch_retry_attempts",
            "Attempts for throttled reads inside a $batch, 1-20 (default 6)",
        ),
    ]
}

/// A Microsoft cloud (concepts/deployments.md, "Microsoft Graph and Graph Explorer service root
/// endpoints" and "Microsoft Entra authentication endpoints").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cloud {
    Global,
    UsGov,
    UsGovDod,
    China,
}

impl Cloud {
    const NAMES: &'static str = "`global`, `usgov`, `usgov-dod`, `china`";

    pub(crate) fn parse(name: &str) -> Result<Self, ConnectorError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "global" => Ok(Self::Global),
            "usgov" => Ok(Self::UsGov),
            "usgov-dod" => Ok(Self::UsGovDod),
            "china" => Ok(Self::China),
            _ => Err(ConnectorError::invalid_input(format!(
                "cloud must be one of {}; got `{name}`",
                Self::NAMES
            ))),
        }
    }

    /// (login origin, Graph origin).
    pub(crate) fn origins(self) -> (&'static str, &'static str) {
        match self {
            Self::Global => (
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com",
            ),
            Self::UsGov => (
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us",
            ),
            Self::UsGovDod => (
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us",
            ),
            Self::China => (
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
        }
    }
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    /// Graph origin, no trailing slash.
    pub(crate) graph: String,
    /// Login origin, no trailing slash.
    pub(crate) login: String,
    pub(crate) tenant_id: String,
}

impl Endpoints {
    /// `{graph}/v1.0`: every Graph request URL starts with it.
    pub(crate) fn api(&self) -> String {
        format!("{}/v1.0", self.graph)
    }

    pub(crate) fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.login, self.tenant_id)
    }

    /// The `.default` scope of the Graph root (tokens are per cloud).
    pub(crate) fn scope(&self) -> String {
        format!("{}/.default", self.graph)
    }

    /// `{login}/{tenant}/oauth2/v2.0/devicecode` (v2-oauth2-device-code.md).
    pub(crate) fn device_code_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/devicecode", self.login, self.tenant_id)
    }

    /// The delegated scopes of a device-code sign-in: the Graph permissions the app is
    /// consented for, and `offline_access` for a refresh token (v2-permissions-and-consent.md).
    pub(crate) fn delegated_scopes(&self) -> Vec<String> {
        vec![self.scope(), "offline_access".to_owned()]
    }

    /// `@odata.id` of a directory object, on the same root as requests (deployments.md).
    pub(crate) fn directory_object(&self, id: &str) -> String {
        format!("{}/directoryObjects/{id}", self.api())
    }
}

/// Settings after validation: what the connector runs with.
/// How the connector authenticates to the token endpoint.
#[derive(Clone)]
pub(crate) enum Credential {
    Secret(SecretString),
    Certificate(std::sync::Arc<crate::certificate::ClientCertificate>),
    /// `auth = "device_code"`: a person's refresh token from the vault.
    DeviceCode,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("Secret"),
            Self::Certificate(c) => write!(f, "Certificate({c:?})"),
            Self::DeviceCode => f.write_str("DeviceCode"),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) endpoints: Endpoints,
    pub(crate) client_id: String,
    pub(crate) credential: Credential,
    pub(crate) read_only: bool,
    pub(crate) include_managed_identities: bool,
    pub(crate) skip_on_prem_groups: bool,
    pub(crate) skip_unassigned_apps: bool,
    pub(crate) page_size: u32,
    pub(crate) concurrency: usize,
    pub(crate) batch: bool,
    pub(crate) incremental: bool,
    pub(crate) batch_retry_attempts: u32,
}

impl EntraSettings {
    /// Checks every setting; errors name the key and show a correct value.
    pub(crate) fn validate(&self, source_read_only: bool) -> Result<Options, ConnectorError> {
        let tenant_id = self.tenant_id.trim();
        if tenant_id.is_empty() || tenant_id.contains(['/', '?', '#', ' ']) {
            return Err(ConnectorError::invalid_input(format!(
                "tenant_id must be the directory (tenant) id, e.g. `72f988bf-86f1-41af-91ab-2d7cd011db47`; got `{}`",
                self.tenant_id
            )));
        }
        if self.client_id.trim().is_empty() {
            return Err(ConnectorError::invalid_input(
                "client_id must be the application (client) id of the app registration, e.g. `00000000-1111-2222-3333-444444444444`",
            ));
        }
        let device_code = match self.auth.as_deref().map(str::trim) {
            None | Some("client_credentials") => false,
            Some("device_code") => true,
            Some(other) => {
                return Err(ConnectorError::invalid_input(format!(
                    "auth must be `client_credentials` or `device_code`; got `{other}`"
                )));
            }
        };
        let credential = match (&self.client_secret, &self.client_certificate) {
            _ if device_code => Credential::DeviceCode,
            (Some(secret), None) => Credential::Secret(secret.clone()),
            (None, Some(pem)) => Credential::Certificate(std::sync::Arc::new(
                crate::certificate::ClientCertificate::from_pem(pem)?,
            )),
            (Some(_), Some(_)) => {
                return Err(ConnectorError::invalid_input(
                    "set client_secret or client_certificate, not both",
                ));
            }
            (None, None) => {
                return Err(ConnectorError::invalid_input(
                    "set client_secret (the app registration's secret value) or \
                     client_certificate (a PEM with its certificate and private key)",
                ));
            }
        };
        let cloud = match &self.cloud {
            Some(name) => Cloud::parse(name)?,
            None => Cloud::Global,
        };
        let (login, graph) = cloud.origins();
        let graph = match &self.graph_url {
            Some(url) => origin("graph_url", url, self.allow_insecure_http)?,
            None => graph.to_owned(),
        };
        let login = match &self.login_url {
            Some(url) => origin("login_url", url, self.allow_insecure_http)?,
            None => login.to_owned(),
        };
        if !(1..=999).contains(&self.page_size) {
            return Err(ConnectorError::invalid_input(format!(
                "page_size must be between 1 and 999 (Graph's `$top` limit), e.g. `999`; got `{}`",
                self.page_size
            )));
        }
        if !(1..=32).contains(&self.concurrency) {
            return Err(ConnectorError::invalid_input(format!(
                "concurrency must be between 1 and 32, e.g. `4`; got `{}`",
                self.concurrency
            )));
        }
        if !(1..=20).contains(&self.batch_retry_attempts) {
            return Err(ConnectorError::invalid_input(format!(
                "batch_retry_attempts must be between 1 and 20, e.g. `6`; got `{}`",
                self.batch_retry_attempts
            )));
        }
        Ok(Options {
            endpoints: Endpoints {
                graph,
                login,
                tenant_id: tenant_id.to_owned(),
            },
            client_id: self.client_id.trim().to_owned(),
            credential,
            read_only: self.read_only || source_read_only,
            include_managed_identities: self.include_managed_identities,
            skip_on_prem_groups: self.skip_on_prem_groups,
            skip_unassigned_apps: self.skip_unassigned_apps,
            page_size: self.page_size,
            concurrency: self.concurrency as usize,
            batch: self.batch,
            incremental: self.incremental,
            batch_retry_attempts: self.batch_retry_attempts,
        })
    }
}

/// Validates an origin setting (`scheme://host[:port]`, no path) and returns it without a
/// trailing slash. Plain `http://` is accepted for loopback hosts only, unless allowed.
fn origin(key: &str, raw: &str, allow_insecure_http: bool) -> Result<String, ConnectorError> {
    let example = "e.g. `https://graph.microsoft.com`";
    let url = url::Url::parse(raw.trim()).map_err(|err| {
        ConnectorError::invalid_input(format!(
            "{key} must be an origin URL, {example}; got `{raw}` ({err})"
        ))
    })?;
    let host = match url.host_str() {
        Some(host) if matches!(url.scheme(), "http" | "https") => host.to_owned(),
        _ => {
            return Err(ConnectorError::invalid_input(format!(
                "{key} must be an http(s) origin URL, {example}; got `{raw}`"
            )));
        }
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(ConnectorError::invalid_input(format!(
            "{key} must be an origin without a path (the connector appends `/v1.0/...` or \
             `/{{tenant_id}}/oauth2/v2.0/token`), {example}; got `{raw}`"
        )));
    }
    if url.scheme() == "http" && !allow_insecure_http && !is_loopback(&host) {
        return Err(ConnectorError::invalid_input(format!(
            "{key} uses plain http to `{host}`, which would send credentials in clear: use \
             https ({example}) or set allow_insecure_http = true"
        )));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: serde_json::Value) -> EntraSettings {
        let mut base = serde_json::json!({
            "tenant_id": "contoso",
            "client_id": "app",
            "client_secret": "s3cret",
        });
        if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        match serde_json::from_value(base) {
            Ok(s) => s,
            Err(e) => panic!("settings do not parse: {e}"),
        }
    }

    fn endpoints(extra: serde_json::Value) -> Result<Endpoints, ConnectorError> {
        settings(extra).validate(false).map(|o| o.endpoints)
    }

    #[test]
    fn each_cloud_builds_its_documented_hosts() {
        let cases = [
            (
                "global",
                "https://login.microsoftonline.com/contoso/oauth2/v2.0/token",
                "https://graph.microsoft.com",
            ),
            (
                "usgov",
                "https://login.microsoftonline.us/contoso/oauth2/v2.0/token",
                "https://graph.microsoft.us",
            ),
            (
                "usgov-dod",
                "https://login.microsoftonline.us/contoso/oauth2/v2.0/token",
                "https://dod-graph.microsoft.us",
            ),
            (
                "china",
                "https://login.chinacloudapi.cn/contoso/oauth2/v2.0/token",
                "https://microsoftgraph.chinacloudapi.cn",
            ),
        ];
        for (cloud, token_url, graph) in cases {
            let e = endpoints(serde_json::json!({ "cloud": cloud })).expect("valid");
            assert_eq!(e.token_url(), token_url, "{cloud}");
            assert_eq!(e.api(), format!("{graph}/v1.0"), "{cloud}");
            assert_eq!(e.scope(), format!("{graph}/.default"), "{cloud}");
            assert_eq!(
                e.directory_object("u1"),
                format!("{graph}/v1.0/directoryObjects/u1")
            );
        }
        let default = endpoints(serde_json::json!({})).expect("valid");
        assert_eq!(default.graph, "https://graph.microsoft.com");
    }

    #[test]
    fn graph_url_and_login_url_override_the_cloud() {
        let e = endpoints(serde_json::json!({
            "cloud": "china",
            "graph_url": "http://127.0.0.1:9000/",
            "login_url": "http://localhost:9001",
        }))
        .expect("valid");
        assert_eq!(e.api(), "http://127.0.0.1:9000/v1.0");
        assert_eq!(e.scope(), "http://127.0.0.1:9000/.default");
        assert_eq!(
            e.token_url(),
            "http://localhost:9001/contoso/oauth2/v2.0/token"
        );
        let only_graph =
            endpoints(serde_json::json!({ "graph_url": "https://proxy.example" })).expect("ok");
        assert_eq!(only_graph.graph, "https://proxy.example");
        assert_eq!(only_graph.login, "https://login.microsoftonline.com");
    }

    #[test]
    fn bad_settings_name_the_key_and_a_correct_value() {
        let err = endpoints(serde_json::json!({ "cloud": "mars" })).expect_err("invalid");
        assert!(
            err.message.contains("cloud must be one of `global`"),
            "{err}"
        );
        assert!(err.message.contains("`mars`"), "{err}");
        let err = endpoints(serde_json::json!({ "graph_url": "http://graph.example" }))
            .expect_err("insecure");
        assert!(err.message.contains("graph_url") && err.message.contains("allow_insecure_http"));
        let ok = endpoints(serde_json::json!({
            "graph_url": "http://graph.example", "allow_insecure_http": true
        }));
        assert!(ok.is_ok());
        let err = endpoints(serde_json::json!({ "graph_url": "https://graph.microsoft.com/v1.0" }))
            .expect_err("path");
        assert!(err.message.contains("without a path"), "{err}");
        let err = settings(serde_json::json!({ "page_size": 1000 }))
            .validate(false)
            .expect_err("page size");
        assert!(err.message.contains("page_size must be between 1 and 999"));
        let err = settings(serde_json::json!({ "concurrency": 0 }))
            .validate(false)
            .expect_err("concurrency");
        assert!(err.message.contains("concurrency"));
        assert!(endpoints(serde_json::json!({ "login_url": "http://[::1]:80" })).is_ok());
    }

    #[test]
    fn source_read_only_or_setting_makes_the_source_read_only() {
        assert!(
            settings(serde_json::json!({}))
                .validate(true)
                .expect("ok")
                .read_only
        );
        assert!(
            settings(serde_json::json!({ "read_only": true }))
                .validate(false)
                .expect("ok")
                .read_only
        );
        assert!(
            !settings(serde_json::json!({}))
                .validate(false)
                .expect("ok")
                .read_only
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let parsed: Result<EntraSettings, _> = serde_json::from_value(serde_json::json!({
            "tenant_id": "t", "client_id": "c", "client_secret": "s", "clound": "global"
        }));
        assert!(parsed.is_err());
    }
}
