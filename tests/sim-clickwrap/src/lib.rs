//! Simulator of the Ironclad Clickwrap (PactSafe) REST API v1.1, from its public developer docs.
//!
//! # Brief overview
//!
//! An in-memory Clickwrap account served by an axum `Router`, so the Clickwrap connector, `idhost
//! demo` and the benchmarks can run against something that behaves like `https://api.pactsafe.com`
//! without network access or credentials. Every behaviour is taken from the public reference at
//! clickwrap-developer.ironcladapp.com (cited next to the code); where the docs are silent the
//! code says `[UNVERIFIED]` and does what OAuth2 and REST conventions suggest.
//!
//! Served:
//! - `POST /oauth/token`: client credentials → bearer token.
//! - `GET /v1.1/sites`, `GET /v1.1/sites/{site_id}`
//! - `GET /v1.1/accounts/{account_id}/members`: the account's users.
//! - `GET /v1.1/sites/{site_id}/memberships`: users with their site role.
//!
//! Anything else answers 500 "unexpected {method} {path}", so a client calling an endpoint the
//! simulator does not know fails its test instead of passing by accident.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! use sim_clickwrap::{SimConfig, Simulator};
//!
//! let sim = Simulator::new(SimConfig { users: 100, ..SimConfig::default() });
//! let server = sim.serve(0).await?;
//! // GET {server.url()}/v1.1/accounts/1001/members with `Authorization: Bearer clickwrap-static-token`
//! assert_eq!(sim.user_count(), 100);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod config;
mod dataset;
mod error;
mod listing;
mod model;
mod query;
mod routes;
mod sim;
mod store;

pub use config::{Args, SimConfig};
pub use sim::Simulator;
