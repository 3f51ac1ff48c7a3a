//! Simulator of Ironclad's SCIM 2.0 API and OAuth token endpoint, from Ironclad's public developer docs.
//!
//! # Brief overview
//!
//! [`Simulator`] holds one in-memory Ironclad company (a deterministic, seeded set of users and
//! groups) and serves it at the real host's paths: `POST /oauth/token` and `/scim/v2/...`. It is
//! built from developer.ironcladapp.com (the SCIM and OAuth 2.0 OpenAPI documents, the
//! client-credentials guide, the rate-limit page) and RFC 7643/7644, never from a client's
//! behaviour, so a connector tested against it is tested against the documented contract. Each
//! behaviour cites its source in a comment next to the code.
//!
//! What it enforces: bearer tokens with scopes (401/403), the `x-as-user-email`/`x-as-user-id`
//! actor header (403), the documented password policy, `startIndex`/`count` paging and `eq`
//! filters, `active: false` meaning deletion, and the per-account rate limits (429 without
//! `Retry-After`). `sim_common::Faults` adds latency and scripted failures on top.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sim_ironclad::{SimConfig, Simulator};
//!
//! let sim = Simulator::new(SimConfig { users: 200, groups: 10, ..SimConfig::default() });
//! let server = sim.serve(0).await?;
//! println!("token endpoint: {}/oauth/token", server.url());
//! println!("SCIM base:      {}/scim/v2", server.url());
//! assert_eq!(sim.user_count(), 200);
//! # Ok(()) }
//! ```

mod config;
mod dataset;
mod filter;
mod groups;
mod guard;
mod oauth;
mod patch;
mod respond;
mod schema;
mod sim;
mod store;
mod user_model;
mod users;

pub use config::{Args, SimConfig, TotalResults};
pub use schema::CUSTOM_URN as CUSTOM_SCHEMA_URN;
pub use sim::Simulator;
