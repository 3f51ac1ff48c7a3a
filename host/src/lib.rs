//! # idhost
//!
//! The connector host: loads connector plugins (Rust cdylibs speaking the stable ABI of
//! `idhost-connector-sdk`), syncs their identity data into sinks, and provisions access.
//! The binary is a thin shell over [`app::main`].

pub mod app;
pub mod audit;
pub mod cli;
pub mod color;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod export;
#[doc(hidden)]
pub mod fuzzing;
mod help;
pub mod inspect;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod plugins;
pub mod progress;
pub mod provision_guard;
pub mod redact;
pub mod retry;
pub mod schedule;
pub mod services;
pub mod sinks;
pub mod snapshot;
pub mod state;
pub mod sync;
pub mod vault;
