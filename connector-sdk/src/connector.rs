//! The traits connector authors implement, and the types they exchange with the host.

use std::future::Future;

use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::error::ConnectorError;
use crate::model::{Entitlement, EntitlementRef, Grant, GrantRef, Profile, Resource, ResourceRef};

/// What a connector is and can do; the host reads it before opening the connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Manifest {
    /// The name configs use in `connector = "..."`.
    pub name: String,
    /// The connector's own version.
    pub version: String,
    /// One line on what it connects to.
    #[serde(default)]
    pub description: String,
    /// The resource types it lists, in the order the host should sync them.
    pub resource_types: Vec<ResourceTypeSpec>,
    /// What it can do beyond listing.
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// The settings it accepts.
    #[serde(default)]
    pub config_keys: Vec<ConfigKey>,
}

impl Manifest {
    /// A manifest of connector `name`, version `version`, with no resource type, capability
    /// or setting yet (add them with the `with_` methods).
    pub fn new(name: String, version: String, description: String) -> Self {
        Self {
            name,
            version,
            description,
            resource_types: Vec::new(),
            capabilities: Vec::new(),
            config_keys: Vec::new(),
        }
    }

    /// With these resource types, in sync order.
    pub fn with_resource_types(mut self, types: Vec<ResourceTypeSpec>) -> Self {
        self.resource_types = types;
        self
    }

    /// With these capabilities.
    pub fn with_capabilities(mut self, capabilities: Vec<Capability>) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// With these settings.
    pub fn with_config_keys(mut self, keys: Vec<ConfigKey>) -> Self {
        self.config_keys = keys;
        self
    }

    /// Whether the manifest advertises `capability`.
    pub fn can(&self, capability: Capability) -> bool {
        self.capabilities.contains(&capability)
    }

    /// The spec of resource type `rtype`, if the connector lists it.
    pub fn resource_type(&self, rtype: &str) -> Option<&ResourceTypeSpec> {
        self.resource_types.iter().find(|r| r.name == rtype)
    }

    /// Names of the settings marked secret.
    pub fn secret_keys(&self) -> impl Iterator<Item = &str> {
        self.config_keys
            .iter()
            .filter(|k| k.secret)
            .map(|k| k.name.as_str())
    }

    /// The setting that opts a source in to plain `http://` to hosts that are not loopback
    /// ([`ConfigKey::insecure_http_opt_in`]), if the connector has one.
    pub fn insecure_http_key(&self) -> Option<&str> {
        self.config_keys
            .iter()
            .find(|k| k.insecure_http_opt_in)
            .map(|k| k.name.as_str())
    }

    /// Whether `settings` (the source's settings table as JSON) opt in to plain `http://`: the
    /// value of [`Manifest::insecure_http_key`] is `true`. So the host reads the opt-in without
    /// knowing any connector's key names.
    pub fn allows_insecure_http(&self, settings: &serde_json::Value) -> bool {
        self.insecure_http_key()
            .and_then(|key| settings.get(key))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }
}

/// One resource type a connector lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResourceTypeSpec {
    /// `user`, `group`, `app`, `role` or a connector-specific name.
    pub name: String,
    /// Human-readable description.
    #[serde(default)]
    pub description: String,
    /// Whether the host should call [`Connector::entitlements`] and [`Connector::grants`] for
    /// each listed resource of this type. Connectors that side-load entitlements and grants in
    /// their list pages (SCIM groups carry their members) leave it `false` and save the calls.
    #[serde(default)]
    pub per_resource_details: bool,
    /// Record field paths that never count as a change when the host diffs two snapshots
    /// (dotted, as in the record's JSON; through a list the rest of the path applies to each
    /// item), e.g. `profile.meta.lastModified`: bookkeeping the upstream bumps on every write.
    #[serde(default)]
    pub volatile_fields: Vec<String>,
}

impl ResourceTypeSpec {
    /// A type whose entitlements and grants come side-loaded with its list pages.
    pub fn new(name: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            per_resource_details: false,
            volatile_fields: Vec::new(),
        }
    }

    /// Declares record field paths that never count as a change (see
    /// [`ResourceTypeSpec::volatile_fields`]).
    pub fn with_volatile_fields(mut self, paths: &[&str]) -> Self {
        self.volatile_fields = paths.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// Asks the host to call `entitlements` and `grants` for each resource of this type.
    pub fn with_per_resource_details(mut self) -> Self {
        self.per_resource_details = true;
        self
    }
}

/// An optional ability a connector advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// Grant an entitlement.
    Grant,
    /// Revoke a grant.
    Revoke,
    /// Create a user account.
    CreateAccount,
    /// Create a non-user resource (e.g. a group).
    CreateResource,
    /// Update a resource's attributes.
    Update,
    /// Delete a resource.
    Delete,
    /// Incremental syncs from connector-kept state (e.g. Graph delta links).
    Incremental,
    /// A capability this SDK does not know (from a newer 1.x SDK), kept as sent. A host never
    /// relies on one it does not know.
    Other(crate::wire::UnknownName),
}

crate::wire::wire_enum!(Capability {
    Grant => "grant",
    Revoke => "revoke",
    CreateAccount => "create_account",
    CreateResource => "create_resource",
    Update => "update",
    Delete => "delete",
    Incremental => "incremental",
});

/// One setting a connector accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConfigKey {
    /// Key under `[sources.X.settings]`.
    pub name: String,
    /// Whether the connector refuses to open without it (alone or with alternatives).
    #[serde(default)]
    pub required: bool,
    /// Whether its value is a credential: the host redacts it everywhere.
    #[serde(default)]
    pub secret: bool,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Whether `true` here lets the source use plain `http://` to hosts that are not loopback
    /// (the host then allows such URLs for this source; see [`Manifest::allows_insecure_http`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_http_opt_in: bool,
}

impl ConfigKey {
    /// An optional, non-secret setting.
    pub fn optional(name: &str, description: &str) -> Self {
        Self {
            name: name.to_owned(),
            required: false,
            secret: false,
            description: description.to_owned(),
            insecure_http_opt_in: false,
        }
    }
    /// A required, non-secret setting.
    pub fn required(name: &str, description: &str) -> Self {
        Self {
            required: true,
            ..Self::optional(name, description)
        }
    }
    /// Marks the setting as a secret.
    pub fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    /// Marks the boolean setting that opts the source in to plain `http://` (by convention
    /// [`crate::settings::INSECURE_HTTP_KEY`], `allow_insecure_http`).
    pub fn insecure_http_opt_in(mut self) -> Self {
        self.insecure_http_opt_in = true;
        self
    }
}

/// Where a listing continues: opaque to the host, meaningful to the connector.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PageToken(Option<String>);

impl PageToken {
    /// The first page.
    pub fn first() -> Self {
        Self(None)
    }
    /// A page the connector named earlier.
    pub fn from_string(token: impl Into<String>) -> Self {
        Self(Some(token.into()))
    }
    /// The token, `None` for the first page.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_deref()
    }
    /// Whether this is the first page.
    pub fn is_first(&self) -> bool {
        self.0.is_none()
    }
}

/// One page of a listing.
///
/// A resource page may side-load the entitlements and grants of the resources on it (a SCIM
/// group carries its members; a Graph `$batch` fetches 20 groups' members at once), which saves
/// the host a call per resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Page<T> {
    /// The records on this page.
    pub items: Vec<T>,
    /// The next page, `None` when this is the last.
    #[serde(default)]
    pub next: Option<String>,
    /// Entitlements of the resources on this page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entitlements: Vec<Entitlement>,
    /// Grants on the resources on this page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// `true` when this listing is incremental (e.g. from a Graph delta link): the items,
    /// entitlements and grants are upserts, `removed` names what disappeared, and everything
    /// else of this resource type carries over from the source's last complete snapshot.
    /// Set it on every page of an incremental listing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incremental: bool,
    /// For incremental pages: ids of resources, entitlements or grants that were removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
    /// Set (with the reason) when the upstream's listing shifted under this listing, e.g. an
    /// offset-paged collection lost a record between two pages so a later page skipped one:
    /// "discard what was listed of this type in this sync and list it again from the first
    /// page". Such a page carries no records. A host that cannot relist fails the source instead
    /// (the plugin glue turns the page into an error), so an unstable listing never reaches the
    /// diff as if it were complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relist: Option<String>,
}

impl<T> Page<T> {
    /// The last page, holding `items`.
    pub fn last(items: Vec<T>) -> Self {
        Self {
            items,
            next: None,
            entitlements: Vec::new(),
            grants: Vec::new(),
            incremental: false,
            removed: Vec::new(),
            relist: None,
        }
    }
    /// A page holding `items`, followed by the page `next` (if any).
    pub fn new(items: Vec<T>, next: Option<String>) -> Self {
        Self {
            next,
            ..Self::last(items)
        }
    }
    /// An empty last page.
    pub fn empty() -> Self {
        Self::last(Vec::new())
    }
    /// Side-loads entitlements.
    pub fn with_entitlements(mut self, entitlements: Vec<Entitlement>) -> Self {
        self.entitlements = entitlements;
        self
    }
    /// Side-loads grants.
    pub fn with_grants(mut self, grants: Vec<Grant>) -> Self {
        self.grants = grants;
        self
    }
    /// Marks the page as part of an incremental listing, with the ids that were removed.
    pub fn incremental(mut self, removed: Vec<String>) -> Self {
        self.incremental = true;
        self.removed = removed;
        self
    }

    /// A page that asks to list this type again from the first page, because the upstream's
    /// listing shifted (`reason` says how); see the `relist` field.
    pub fn relist(reason: impl Into<String>) -> Self {
        Self {
            relist: Some(reason.into()),
            ..Self::empty()
        }
    }
}

/// What a grant call did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GrantOutcome {
    /// The grant as it now exists.
    pub grant: Grant,
    /// `true` when the principal already held the entitlement (nothing was changed).
    pub already: bool,
}

impl GrantOutcome {
    /// `grant` now exists; `already`: it did before the call.
    pub fn new(grant: Grant, already: bool) -> Self {
        Self { grant, already }
    }
}

/// What a revoke call did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RevokeOutcome {
    /// `true` when the grant was already absent (nothing was changed).
    pub already: bool,
}

impl RevokeOutcome {
    /// `already`: the grant was absent before the call.
    pub fn new(already: bool) -> Self {
        Self { already }
    }
}

/// The account to create.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccountInfo {
    /// Sign-in name.
    pub login: String,
    /// Primary email.
    #[serde(default)]
    pub email: Option<String>,
    /// Given name.
    #[serde(default)]
    pub given_name: Option<String>,
    /// Family name.
    #[serde(default)]
    pub family_name: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Further attributes, connector-specific.
    #[serde(default)]
    pub profile: Profile,
}

/// How to credential a new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CredentialOptions {
    /// Generate a password meeting the upstream's policy and hand it back.
    #[serde(default)]
    pub generate_password: bool,
}

/// A created account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccountCreated {
    /// The new resource.
    pub resource: Resource,
    /// The generated password, if one was asked for: handed to the host's vault, never logged.
    #[serde(default, with = "crate::secret_serde")]
    pub password: Option<SecretString>,
}

impl AccountCreated {
    /// `resource` was created; `password` if one was generated.
    pub fn new(resource: Resource, password: Option<SecretString>) -> Self {
        Self { resource, password }
    }
}

/// A non-user resource to create (e.g. a group).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResourceSpec {
    /// Display name.
    pub display_name: String,
    /// Further attributes, connector-specific.
    #[serde(default)]
    pub profile: Profile,
}

/// Attribute changes: field path → new value (`null` clears it).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Changes {
    /// The changes, in the order given.
    pub set: Profile,
}

/// One thing `idhost check` prints about a source's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckNote {
    /// The text, e.g. a certificate's subject, thumbprint and expiry.
    pub message: String,
    /// Whether it needs attention (`check` prints it as a warning).
    #[serde(default)]
    pub warning: bool,
}

impl CheckNote {
    /// A plain fact.
    pub fn info(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            warning: false,
        }
    }
    /// Something to act on.
    pub fn warning(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            warning: true,
        }
    }
}

/// A connector that lists identity data. Write plain `async fn`s; the SDK does the rest.
///
/// ```no_run
/// use idhost_connector_sdk::prelude::*;
///
/// struct Acme;
///
/// impl Connector for Acme {
///     type Settings = ();
///     fn manifest() -> Manifest {
///         Manifest::new("acme".into(), "1.0.0".into(), String::new())
///             .with_resource_types(vec![ResourceTypeSpec::new("user", "Acme users")])
///     }
///     async fn open(_settings: (), _ctx: Context) -> Result<Self, ConnectorError> {
///         Ok(Acme)
///     }
///     async fn list(&self, _rtype: &str, _page: PageToken) -> Result<Page<Resource>, ConnectorError> {
///         Ok(Page::last(vec![Resource::new("user", "42", "Alex Doe")]))
///     }
/// }
/// idhost_connector_sdk::export_connector!(Acme);
/// ```
pub trait Connector: Send + Sync + Sized + 'static {
    /// The connector's settings, deserialized from `[sources.X.settings]`.
    type Settings: DeserializeOwned + Send;

    /// What the connector is and can do.
    fn manifest() -> Manifest;

    /// Builds the connector from its settings. Validate settings here: the error names the key.
    fn open(
        settings: Self::Settings,
        ctx: Context,
    ) -> impl Future<Output = Result<Self, ConnectorError>> + Send;

    /// Checks the connection and permissions with a cheap upstream call.
    fn validate(&self) -> impl Future<Output = Result<(), ConnectorError>> + Send {
        async { Ok(()) }
    }

    /// Facts about the source's credentials that `idhost check` prints (a certificate's
    /// subject, thumbprint and expiry; a warning when it expires soon). None by default.
    fn check_notes(&self) -> Vec<CheckNote> {
        Vec::new()
    }

    /// The interactive flow `idhost login` runs for this source, with its endpoints. A source
    /// that signs in without a person (client credentials, a certificate, a static token)
    /// answers `Unsupported`, the default.
    fn login_flow(
        &self,
    ) -> impl Future<Output = Result<crate::login::LoginFlow, ConnectorError>> + Send {
        async {
            Err(ConnectorError::unsupported(
                "this source signs in without a person: there is nothing to log in to",
            ))
        }
    }

    /// One page of resources of type `rtype`.
    fn list(
        &self,
        rtype: &str,
        page: PageToken,
    ) -> impl Future<Output = Result<Page<Resource>, ConnectorError>> + Send;

    /// One page of the entitlements on `resource` (only for types with `per_resource_details`).
    fn entitlements(
        &self,
        resource: &Resource,
        page: PageToken,
    ) -> impl Future<Output = Result<Page<Entitlement>, ConnectorError>> + Send {
        let _ = (resource, page);
        async { Ok(Page::empty()) }
    }

    /// One page of the grants on `resource` (only for types with `per_resource_details`).
    fn grants(
        &self,
        resource: &Resource,
        page: PageToken,
    ) -> impl Future<Output = Result<Page<Grant>, ConnectorError>> + Send {
        let _ = (resource, page);
        async { Ok(Page::empty()) }
    }
}

/// A connector that can also change the upstream. Advertise each operation in the manifest's
/// capabilities; the default bodies answer [`crate::ErrorKind::Unsupported`].
///
/// Every operation is idempotent from the caller's view: granting what is held or revoking
/// what is absent succeeds with `already: true`.
pub trait Provisioner: Connector {
    /// Grants `entitlement` to `principal`.
    fn grant(
        &self,
        entitlement: &EntitlementRef,
        principal: &ResourceRef,
    ) -> impl Future<Output = Result<GrantOutcome, ConnectorError>> + Send {
        let _ = (entitlement, principal);
        async { Err(ConnectorError::unsupported("grant is not supported")) }
    }

    /// Revokes `grant`.
    fn revoke(
        &self,
        grant: &GrantRef,
    ) -> impl Future<Output = Result<RevokeOutcome, ConnectorError>> + Send {
        let _ = grant;
        async { Err(ConnectorError::unsupported("revoke is not supported")) }
    }

    /// Creates a user account.
    fn create_account(
        &self,
        info: AccountInfo,
        credentials: CredentialOptions,
    ) -> impl Future<Output = Result<AccountCreated, ConnectorError>> + Send {
        let _ = (info, credentials);
        async {
            Err(ConnectorError::unsupported(
                "create-account is not supported",
            ))
        }
    }

    /// Creates a non-user resource of type `rtype` (e.g. a group).
    fn create_resource(
        &self,
        rtype: &str,
        spec: ResourceSpec,
    ) -> impl Future<Output = Result<Resource, ConnectorError>> + Send {
        let _ = (rtype, spec);
        async {
            Err(ConnectorError::unsupported(
                "create-resource is not supported",
            ))
        }
    }

    /// Updates attributes of `resource`.
    fn update(
        &self,
        resource: &ResourceRef,
        changes: Changes,
    ) -> impl Future<Output = Result<(), ConnectorError>> + Send {
        let _ = (resource, changes);
        async { Err(ConnectorError::unsupported("update is not supported")) }
    }

    /// Deletes `resource`.
    fn delete(
        &self,
        resource: &ResourceRef,
    ) -> impl Future<Output = Result<(), ConnectorError>> + Send {
        let _ = resource;
        async { Err(ConnectorError::unsupported("delete is not supported")) }
    }
}
