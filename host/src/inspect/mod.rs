//! The day-two surface: reading what syncs wrote into the SQLite sink, without a credential.
//!
//! - [`db`]: the sink to read (from the config) and one read transaction over it, so every
//!   answer comes from one frozen snapshot even while a sync commits;
//! - [`lookup`]: principals by id, login or email, entitlements and resources by id;
//! - [`access`]: effective access through nested groups, both ways (`access`, `who-has`);
//! - [`identity`]: correlation of accounts to the people of the authoritative source;
//! - [`review`]: the access review export (CSV, XLSX);
//! - [`diff`]: change events made readable;
//! - [`output`]: rows as a table, JSON or CSV (formula-safe).

pub mod access;
pub mod db;
pub mod diff;
mod error;
pub mod identity;
pub mod lookup;
pub mod output;
pub mod review;

pub use error::InspectError;
