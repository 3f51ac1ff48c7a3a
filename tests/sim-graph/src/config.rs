//! What the simulated tenant looks like: sizes, credentials, seed and behaviour switches.

use std::time::Duration;

/// Shape and behaviour of one simulated Microsoft Entra tenant.
///
/// Everything the simulator serves is derived from these values and `seed`, so two simulators
/// built from equal configs answer every request identically.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Tenant in the token URL path (`/{tenant_id}/oauth2/v2.0/token`); any other tenant is unknown.
    ///
    /// Example: `contoso-tenant`.
    pub tenant_id: String,
    /// The one registered application (client) id allowed to get tokens.
    ///
    /// Example: `graph-client`.
    pub client_id: String,
    /// The client secret value of that application.
    ///
    /// Example: `graph-secret`.
    pub client_secret: String,
    /// The certificate (PEM) registered on that application under "Certificates & secrets":
    /// a client assertion signed by its key authenticates the app instead of the secret.
    pub client_certificate: Option<String>,
    /// How long a device code of `/devicecode` is good for (the docs' example: 900 s).
    pub device_code_ttl: Duration,
    /// The polling interval `/devicecode` answers (the docs' example: 5 s).
    pub device_code_interval: Duration,
    /// Number of users (members and, every tenth, guests).
    pub users: usize,
    /// Number of service principals of type `ManagedIdentity`.
    pub managed_identities: usize,
    /// Number of groups (security, Microsoft 365, dynamic, on-premises synced).
    pub groups: usize,
    /// Total group -> member edges, spread unevenly over groups; some members are groups.
    ///
    /// No group gets more than 90% of the users (so every group has room for one more), which
    /// caps the total at about `groups * users * 0.9`.
    pub memberships: usize,
    /// Enterprise apps (service principals of type `Application`) with 1-4 app roles each.
    pub apps: usize,
    /// Activated directory roles, each with a few members.
    pub roles: usize,
    /// Seed every generated name, id, size and shuffle is derived from.
    pub seed: u64,
    /// Latency added to every answer (through `sim_common::Faults`).
    pub latency: Duration,
    /// Apply the identity-and-access resource-unit token bucket (per app + tenant).
    pub throttle: bool,
    /// How long an issued `@odata.deltaLink` stays valid (directory objects: 7 days).
    pub delta_link_ttl: Duration,
    /// Administrative units, the scopes a directory role can be assigned at besides the tenant
    /// (`directoryScopeId` `/administrativeUnits/{id}`, unifiedroleassignment.md).
    pub administrative_units: usize,
    /// Directory replication lag, counted in Graph calls: a membership, ownership, app role
    /// assignment or role assignment written through Graph stays invisible to reads (and a
    /// `DELETE` of it answers 404) until this many more calls have been answered.
    ///
    /// Microsoft Entra is eventually consistent: "A successful write to Microsoft Entra does
    /// not guarantee that an immediate read will reflect that change", and "a newly created
    /// object [may] return a 'Not Found'" (Microsoft Entra identity blog, "Designing for
    /// Eventual Consistency for Microsoft Entra", devblogs.microsoft.com/identity/
    /// designing-for-eventual-consistency-for-microsoft-entra/). Counting calls instead of
    /// time keeps tests deterministic. `0` (the default) is a single consistent replica.
    pub replication_lag: u32,
    /// The published throttling figures (concepts/throttling-limits.md); tests shrink them.
    pub limits: crate::throttle::Limits,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            tenant_id: "contoso-tenant".to_owned(),
            client_id: "graph-client".to_owned(),
            client_secret: "graph-secret".to_owned(),
            client_certificate: None,
            device_code_ttl: Duration::from_secs(900),
            device_code_interval: Duration::from_secs(5),
            users: 50,
            managed_identities: 2,
            groups: 10,
            memberships: 200,
            apps: 3,
            roles: 4,
            seed: 42,
            latency: Duration::ZERO,
            throttle: true,
            // concepts/delta-query-overview.md, "Token duration": seven days for directory objects.
            delta_link_ttl: Duration::from_secs(7 * 24 * 3600),
            administrative_units: 2,
            replication_lag: 0,
            limits: crate::throttle::Limits::default(),
        }
    }
}

/// Command-line flags for the `upstream-sim` binary and `idhost demo`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Tenant id accepted in the token URL.
    #[arg(long, default_value = "contoso-tenant")]
    pub tenant_id: String,
    /// Application (client) id allowed to get tokens.
    #[arg(long, default_value = "graph-client")]
    pub client_id: String,
    /// Client secret of that application.
    #[arg(long, default_value = "graph-secret")]
    pub client_secret: String,
    /// Number of users.
    #[arg(long, default_value_t = 50)]
    pub users: usize,
    /// Number of managed identities.
    #[arg(long, default_value_t = 2)]
    pub managed_identities: usize,
    /// Number of groups.
    #[arg(long, default_value_t = 10)]
    pub groups: usize,
    /// Total group membership edges.
    #[arg(long, default_value_t = 200)]
    pub memberships: usize,
    /// Number of enterprise apps.
    #[arg(long, default_value_t = 3)]
    pub apps: usize,
    /// Number of activated directory roles.
    #[arg(long, default_value_t = 4)]
    pub roles: usize,
    /// Seed of the generated dataset.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Turn the resource-unit throttle off.
    #[arg(long)]
    pub no_throttle: bool,
}

impl Args {
    /// The simulator configuration these flags describe.
    pub fn into_config(self) -> SimConfig {
        SimConfig {
            tenant_id: self.tenant_id,
            client_id: self.client_id,
            client_secret: self.client_secret,
            users: self.users,
            managed_identities: self.managed_identities,
            groups: self.groups,
            memberships: self.memberships,
            apps: self.apps,
            roles: self.roles,
            seed: self.seed,
            latency: Duration::from_millis(self.latency_ms),
            throttle: !self.no_throttle,
            ..SimConfig::default()
        }
    }
}
