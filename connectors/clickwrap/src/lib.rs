//! # idhost connector for Ironclad Clickwrap (PactSafe REST API v1.1)
//!
//! Brief overview: syncs the users of a Clickwrap account and their roles on its sites, the
//! data Oomnitza's "Ironclad Clickwrap" user integration imports.
//!
//! - `user`: `GET /accounts/{account_id}/members`. The user trait carries the seven fields
//!   Oomnitza maps (Email → `login` and the primary email, Name → `display_name`, Locale,
//!   Time Zone, Verified, Verified Time → `verified_at`, User Id → the resource id `user:<id>`
//!   and `profile.user_id`); `profiles[]` and any other field stay in the profile.
//! - `site`: the sites in scope, each with `owner`, `admin` and `member` entitlements (purpose
//!   `permission`) and grants from `GET /sites/{site_id}/memberships`, side-loaded on the site's
//!   pages.
//!
//! Credentials are an API application's `client_id` + `client_secret` (tokens fetched at
//! `POST /oauth/token` and renewed once after a 401) or a long-lived `access_token`. The scope is
//! `account_id`, `site_id`, or discovered from the only site the token sees. Every REST call
//! draws from one budget of 2000 requests a minute (reference/rate-limits). The connector has no
//! provisioning capabilities.
//!
//! ```toml
//! [sources.clickwrap]
//! connector = "clickwrap"
//! [sources.clickwrap.settings]
//! client_id = "6123abc0de45f6789a0b1c2d"
//! client_secret = "${CLICKWRAP_CLIENT_SECRET}"
//! account_id = 12345
//! ```

mod client;
pub mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod manifest;
mod mapping;
mod scope;
mod sync;

use idhost_connector_sdk::prelude::*;

pub use config::ClickwrapSettings;

/// The Clickwrap connector: one instance per configured source.
pub struct Clickwrap {
    client: client::Client,
    scope: scope::Scope,
    per_page: u32,
}

impl Connector for Clickwrap {
    type Settings = ClickwrapSettings;

    fn manifest() -> Manifest {
        manifest::manifest()
    }

    async fn open(settings: ClickwrapSettings, ctx: Context) -> Result<Self, ConnectorError> {
        let config = settings.validate()?;
        Ok(Self {
            client: client::Client::new(&ctx, &config),
            scope: scope::Scope::new(config.account_id, config.site_id),
            per_page: config.per_page,
        })
    }

    async fn validate(&self) -> Result<(), ConnectorError> {
        self.check().await
    }

    async fn list(&self, rtype: &str, page: PageToken) -> Result<Page<Resource>, ConnectorError> {
        match rtype {
            mapping::USER => self.list_users(&page).await,
            mapping::SITE => self.list_sites(&page).await,
            other => Err(ConnectorError::invalid_input(format!(
                "the clickwrap connector lists `user` and `site`, not `{other}`"
            ))),
        }
    }
}

export_connector!(Clickwrap);
