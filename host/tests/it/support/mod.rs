//! What the host's integration tests share. Running the binary, the scratch directory, the
//! plugin directory and the SQLite readers are the workspace's one test support library
//! (`idhost-e2e`, `tests/e2e/src/lib.rs`); the modules here add what only some host tests need:
//! [`daemon`] (a running `idhost run`, Prometheus text), [`events`] (change events, the local
//! PostgreSQL and NATS) and [`export`] (CSV targets read back).
#![allow(dead_code, unreachable_pub)]

pub(crate) mod daemon;
pub(crate) mod events;
pub(crate) mod export;

pub(crate) use idhost_e2e::{Scratch, count, idhost, plugin_dir, text};
