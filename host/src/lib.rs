//! # idhost
//!
//! The connector host: loads connector plugins (Rust cdylibs speaking the stable ABI of
//! `idhost-connector-sdk`), syncs their identity data into sinks, and provisions access.
//! The binary is a thin shell over [`app::main`]; `ARCHITECTURE.md` at the repository root
//! walks through the modules in the order a sync meets them.

pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod color;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod db;
pub mod exit;
pub mod export;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod help;
pub mod inspect;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod pg;
pub mod plugin_files;
pub mod plugin_runtime;
pub mod plugins;
pub mod progress;
pub mod provision_guard;
pub mod record;
pub mod redact;
pub mod retry;
pub mod route;
pub mod schedule;
pub mod services;
pub mod sign;
pub mod sinks;
pub mod state;
pub mod sync;
pub mod vault;
