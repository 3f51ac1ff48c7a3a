//! Simulator of Microsoft Graph v1.0 (identity endpoints, $batch, delta, throttling) and the
//! Microsoft identity platform token endpoint, from Microsoft's public docs.
//!
//! # Brief overview
//!
//! One router serves both origins, so a connector is configured with
//! `login_url = graph_url = simulator origin`:
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: client credentials, `scope={origin}/.default`;
//! - `/v1.0/...`: users, groups, service principals (with `memberOf`, `ownedObjects` and the
//!   principal-side `appRoleAssignments`), directory roles, unified role assignments (scoped to
//!   the tenant or an administrative unit), members/owners `$ref` writes, app role assignments,
//!   `users/delta`, `groups/delta`, `$batch`.
//!
//! It is as strict as the documented service: v1.0 member and owner lists leave service
//! principals out (the known issue), writes Graph refuses for a group's kind are refused with
//! Graph's answers, role assignments need a filter, undocumented filters are refused, expired
//! delta links answer every documented 40X shape, writes can lag behind reads
//! (`SimConfig::replication_lag`), and every published throttling limit applies.
//!
//! Every behaviour cites the learn.microsoft.com page (microsoft-graph-docs-contrib path) it
//! comes from; where the docs are silent the code says what it assumed. Links (`@odata.nextLink`,
//! `@odata.deltaLink`) are absolute and built from the request's `Host`.
//!
//! ```
//! # async fn demo() -> std::io::Result<()> {
//! use sim_graph::{SimConfig, Simulator};
//! let sim = Simulator::new(SimConfig { users: 500, ..SimConfig::default() });
//! let server = sim.serve(0).await?;
//! println!("token URL: {}/{}/oauth2/v2.0/token", server.url(), sim.config().tenant_id);
//! assert_eq!(sim.counts().users, 500);
//! # Ok(()) }
//! ```
//!
//! The dataset is generated from `seed`: 100,000 users, 10,000 groups and 1,000,000
//! memberships build in well under a second and a few tens of megabytes, because objects are
//! `u32` references whose ids and attributes are computed, not stored.

mod auth;
mod batch;
mod config;
mod dataset;
mod directory;
mod ids;
mod profile;
mod query;
mod render;
mod reply;
mod routes;
mod sim;
mod state;
mod throttle;

pub use config::{Args, SimConfig};
pub use sim::{Counts, Simulator};
pub use throttle::Limits;
