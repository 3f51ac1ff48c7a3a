//! What the connector is, lists and accepts: read by the host before it opens a source.

use idhost_connector_sdk::{ConfigKey, Manifest, ResourceTypeSpec};

use crate::mapping::{SITE, USER};

/// The `clickwrap` manifest. No capabilities: the connector only reads, and the host refuses
/// provisioning commands for it before calling it.
pub(crate) fn manifest() -> Manifest {
    Manifest::new(
        "clickwrap".to_owned(),
        env!("CARGO_PKG_VERSION").to_owned(),
        "Ironclad Clickwrap (PactSafe REST API v1.1): account users and their site roles"
            .to_owned(),
    )
    .with_resource_types(vec![
        ResourceTypeSpec::new(
            USER,
            "Account members (GET /accounts/{account_id}/members) with email, name, locale, \
                 time zone and verification",
        )
        .with_volatile_fields(&["profile.profiles.updated_time"]),
        ResourceTypeSpec::new(
            SITE,
            "Clickwrap sites, with owner/admin/member role entitlements and grants \
                 side-loaded from GET /sites/{site_id}/memberships",
        ),
    ])
    .with_capabilities(Vec::new())
    .with_config_keys(vec![
        ConfigKey::required(
            "client_id",
            "API application client ID (with client_secret; or use access_token)",
        ),
        ConfigKey::required(
            "client_secret",
            "API application client secret (with client_id; or use access_token)",
        )
        .secret(),
        ConfigKey::required(
            "access_token",
            "long-lived access token (instead of client_id + client_secret)",
        )
        .secret(),
        ConfigKey::optional(
            "account_id",
            "account whose users are listed; discovered from the only visible site if unset",
        ),
        ConfigKey::optional(
            "site_id",
            "one site to sync (its account's users and this site's roles)",
        ),
        ConfigKey::optional(
            "base_url",
            "REST API root, default https://api.pactsafe.com/v1.1",
        ),
        ConfigKey::optional(
            "token_url",
            "OAuth token endpoint, default /oauth/token at the origin of base_url",
        ),
        ConfigKey::optional(
            "allow_insecure_http",
            "accept plain http:// to non-loopback hosts (default false)",
        ),
        ConfigKey::optional("per_page", "records per page, 1 to 100 (default 100)"),
    ])
}
