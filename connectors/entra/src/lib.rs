//! # idhost connector for Microsoft Entra ID (Microsoft Graph v1.0)
//!
//! Syncs a tenant's identities and who holds what:
//!
//! | type | from | entitlements |
//! |---|---|---|
//! | `user` | `/users` (people, `account_type = human`) and managed identities (`service`) | — |
//! | `group` | `/groups`: kind, dynamic flag | `member`, `owner` |
//! | `app` | enterprise apps (`servicePrincipalType eq 'Application'`): appId, app roles | `assignment` (default access), one per app role (slug = role value), `owner` |
//! | `role` | activated `/directoryRoles`: template id | `member` |
//!
//! Members, owners and app role assignments are read with `$batch` (20 reads per request,
//! `concurrency` requests in flight) and side-loaded on the list page of their group, app or
//! role; nested groups are `group:<id>` principals, service principals are named as the type
//! they are listed as. v1.0 member and owner lists leave service principals out (a documented
//! known issue), so their group links are read from the service principals' side on the last
//! `group` page (links.rs). Directory roles are read through the unified role-assignment API,
//! one entitlement per scope (scope.rs). After the first complete sync, users and groups are
//! read through Graph delta queries (`Capability::Incremental`). Provisioning grants and
//! revokes group memberships and ownerships, app role assignments and ownerships, and
//! directory roles; what Graph would refuse is refused first (kinds.rs), and every id bound
//! for a URL is validated (ids.rs). README.md lists each Graph behaviour relied on.
//!
//! Settings: see [`config::EntraSettings`] and `config/entra.toml`.

mod assignments;
mod batch;
mod certificate;
mod client;
pub mod config;
mod consistency;
mod delta;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod ids;
mod kinds;
mod links;
mod managed;
mod mapping;
mod provision;
mod scope;
mod sync;

use idhost_connector_sdk::prelude::*;

use crate::client::Graph;
use crate::config::{EntraSettings, Options};
use crate::managed::ManagedIds;

/// The Entra connector: one per source.
pub struct Entra {
    graph: Graph,
    opts: Options,
    managed: ManagedIds,
    /// What this instance created, for revokes that race replication (consistency.rs).
    written: consistency::Written,
}

impl Connector for Entra {
    type Settings = EntraSettings;

    fn manifest() -> Manifest {
        Manifest::new(
            "entra".into(),
            env!("CARGO_PKG_VERSION").into(),
            "Microsoft Entra ID through Microsoft Graph v1.0".into(),
        )
        .with_resource_types(vec![
            ResourceTypeSpec::new("user", "Users and managed identities"),
            ResourceTypeSpec::new("group", "Groups; members and owners side-loaded"),
            ResourceTypeSpec::new(
                "app",
                "Enterprise apps; app role assignments and owners side-loaded",
            ),
            ResourceTypeSpec::new("role", "Activated directory roles; members side-loaded"),
        ])
        .with_capabilities(vec![
            Capability::Grant,
            Capability::Revoke,
            Capability::Incremental,
        ])
        .with_config_keys(config::config_keys())
    }

    async fn open(settings: EntraSettings, ctx: Context) -> Result<Self, ConnectorError> {
        let opts = settings.validate(ctx.source().read_only)?;
        let graph = Graph::new(
            ctx,
            opts.endpoints.clone(),
            &opts.client_id,
            opts.credential.clone(),
        );
        if let Some(users) = graph
            .ctx
            .state()
            .get(client::TENANT_USERS_KEY)
            .and_then(|n| n.parse().ok())
        {
            graph.knew_users(users);
        }
        tracing::debug!(graph = %opts.endpoints.graph, batch = opts.batch, concurrency = opts.concurrency, "entra connector opened");
        Ok(Self {
            graph,
            opts,
            managed: ManagedIds::default(),
            written: consistency::Written::default(),
        })
    }

    async fn validate(&self) -> Result<(), ConnectorError> {
        let url = self.graph.url("/users?$select=id&$top=1");
        self.graph
            .get_json(&url)
            .await
            .map(|_| ())
            .map_err(|e| e.context("checking access to Microsoft Graph (User.Read.All)"))
    }

    async fn login_flow(&self) -> Result<idhost_connector_sdk::login::LoginFlow, ConnectorError> {
        match self.opts.credential {
            config::Credential::DeviceCode => {
                Ok(idhost_connector_sdk::login::LoginFlow::DeviceCode(
                    idhost_connector_sdk::login::DeviceCodeLogin {
                        device_authorization_url: self.opts.endpoints.device_code_url(),
                        token_url: self.opts.endpoints.token_url(),
                        client_id: self.opts.client_id.clone(),
                        scopes: self.opts.endpoints.delegated_scopes(),
                    },
                ))
            }
            _ => Err(ConnectorError::unsupported(
                "this source signs in as its app registration (client_secret or \
                 client_certificate); set `auth = \"device_code\"` to sign in as a person",
            )),
        }
    }

    fn check_notes(&self) -> Vec<CheckNote> {
        match &self.opts.credential {
            config::Credential::Certificate(certificate) => {
                let (message, warning) = certificate.describe();
                vec![CheckNote { message, warning }]
            }
            config::Credential::Secret(_) | config::Credential::DeviceCode => Vec::new(),
        }
    }

    async fn list(&self, rtype: &str, page: PageToken) -> Result<Page<Resource>, ConnectorError> {
        match rtype {
            "user" => self.list_users(&page).await,
            "group" => self.list_groups(&page).await,
            "app" => self.list_apps(&page).await,
            "role" => self.list_roles(&page).await,
            other => Err(ConnectorError::invalid_input(format!(
                "the entra connector lists `user`, `group`, `app` and `role`, not `{other}`"
            ))),
        }
    }
}

impl Provisioner for Entra {
    async fn grant(
        &self,
        entitlement: &EntitlementRef,
        principal: &ResourceRef,
    ) -> Result<GrantOutcome, ConnectorError> {
        Entra::grant(self, entitlement, principal).await
    }

    async fn revoke(&self, grant: &GrantRef) -> Result<RevokeOutcome, ConnectorError> {
        Entra::revoke(self, grant).await
    }
}

export_connector!(Entra, provisioner);
