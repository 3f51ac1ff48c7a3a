//! What the Ironclad connector tells the host about itself.

use idhost_connector_sdk::prelude::*;

/// Name, resource types, capabilities and every settings key.
pub(crate) fn manifest() -> Manifest {
    let key = ConfigKey::optional;
    Manifest::new(
        "ironclad".into(),
        env!("CARGO_PKG_VERSION").into(),
        "Ironclad CLM users and groups over SCIM 2.0, with provisioning".into(),
    )
    .with_resource_types(vec![
        ResourceTypeSpec::new(
            "user",
            "Ironclad users (SCIM /Users), extension attributes in the profile",
        )
        .with_volatile_fields(&["profile.meta.lastModified", "profile.meta.version"]),
        ResourceTypeSpec::new(
            "group",
            "Ironclad groups (SCIM /Groups); `member` entitlements and grants come with each page",
        )
        .with_volatile_fields(&["profile.meta.lastModified", "profile.meta.version"]),
    ])
    .with_capabilities(vec![
        Capability::Grant,
        Capability::Revoke,
        Capability::CreateAccount,
        Capability::CreateResource,
        Capability::Update,
        Capability::Delete,
    ])
    .with_config_keys(vec![
        key("environment", "Ironclad region: na1 (default), eu1 or demo"),
        key(
            "base_url",
            "API origin instead of environment, e.g. https://na1.ironcladapp.com",
        ),
        key(
            "token_url",
            "OAuth token endpoint; default {base_url}/oauth/token",
        ),
        key(
            "client_id",
            "OAuth client id (client credentials or refresh token)",
        ),
        key("client_secret", "OAuth client secret").secret(),
        key(
            "auth",
            "client_credentials (default) or authorization_code (`idhost login`, refresh token in the vault)",
        ),
        key(
            "authorize_url",
            "OAuth authorization endpoint; default {base_url}/oauth/authorize",
        ),
        key("as_user_email", "Acting user's email (x-as-user-email)"),
        key(
            "as_user_id",
            "Acting user's id (x-as-user-id), instead of as_user_email",
        ),
        key(
            "bearer_token",
            "Static bearer token instead of client credentials",
        )
        .secret(),
        key(
            "refresh_token",
            "OAuth refresh token, with client_id and client_secret",
        )
        .secret(),
        key(
            "read_only",
            "Request read scopes only and refuse provisioning",
        ),
        key(
            "scopes",
            "OAuth scopes to ask for (a list or a space-separated string); default: the five \
                 Ironclad's setup guide registers (two for a read-only source)",
        ),
        key(
            "page_size",
            "Resources per list request, 1-1000 (default 1000)",
        ),
        key(
            "pages_at_once",
            "List pages fetched at once after the first, 1-16 (default 4)",
        ),
        key(
            "allow_insecure_http",
            "Allow plain http:// to non-loopback hosts",
        )
        .insecure_http_opt_in(),
    ])
}
