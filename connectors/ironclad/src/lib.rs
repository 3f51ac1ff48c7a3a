//! # Ironclad connector
//!
//! Syncs an Ironclad CLM company over its SCIM 2.0 API (developer.ironcladapp.com, "SCIM"):
//!
//! - `user`: every user, with the user trait filled from the core, enterprise and Ironclad
//!   schemas and every other attribute (custom extension attributes included) in the profile;
//! - `group`: every group (kind `scim`, member count), its `member` entitlement and one grant
//!   per member, side-loaded on the group pages.
//!
//! Provisioning (unless the source is read-only): grant/revoke group membership with SCIM
//! PATCH add/remove, create users (optionally with a generated password), update user
//! attributes, delete users, create groups.
//!
//! Auth is OAuth client credentials (with the `x-as-user-email`/`x-as-user-id` actor Ironclad
//! requires), a refresh token, or a static bearer token. Requests draw from budgets stating
//! Ironclad's documented per-account rate limits. Settings: [`IroncladSettings`].

mod attributes;
mod client;
mod config;
mod error;
mod filter;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod manifest;
mod mapping;
mod provision;
mod schemas;
mod scopes;
mod sync;

use idhost_connector_sdk::prelude::*;

pub use config::IroncladSettings;

/// The Ironclad connector.
pub struct Ironclad {
    client: client::Client,
    /// From the source's `read_only` or the `read_only` setting: refuse every write.
    read_only: bool,
    /// A `--dry-run`: writes are intercepted by the host.
    dry_run: bool,
}

impl Connector for Ironclad {
    type Settings = IroncladSettings;

    fn manifest() -> Manifest {
        manifest::manifest()
    }

    async fn open(settings: IroncladSettings, ctx: Context) -> Result<Self, ConnectorError> {
        let settings = settings.validate(ctx.source().read_only)?;
        let read_only = settings.read_only;
        let dry_run = ctx.source().dry_run;
        // No request here: the token is fetched on first use.
        let client = client::Client::new(&ctx, settings)?;
        Ok(Self {
            client,
            read_only,
            dry_run,
        })
    }

    async fn validate(&self) -> Result<(), ConnectorError> {
        self.client.check_access().await
    }

    async fn login_flow(&self) -> Result<idhost_connector_sdk::login::LoginFlow, ConnectorError> {
        match &self.client.login {
            Some(login) => Ok(idhost_connector_sdk::login::LoginFlow::AuthorizationCode(
                login.flow.clone(),
            )),
            None => Err(ConnectorError::unsupported(
                "this source signs in with client credentials or a token from the config; set \
                 `auth = \"authorization_code\"` in its settings to sign in as a person",
            )),
        }
    }

    async fn list(&self, rtype: &str, page: PageToken) -> Result<Page<Resource>, ConnectorError> {
        match rtype {
            "user" => self.client.list_users(&page).await,
            "group" => self.client.list_groups(&page).await,
            other => Err(ConnectorError::invalid_input(format!(
                "Ironclad lists `user` and `group`; got resource type `{other}`"
            ))),
        }
    }
}

export_connector!(Ironclad, provisioner);
