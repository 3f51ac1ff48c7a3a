//! The host's integration tests, in ONE test binary (ripgrep's layout: `autotests = false`
//! and one `[[test]]` in `host/Cargo.toml`), so the whole host is linked once, not once per
//! file. Each module is one area; `support` is what they share.
//!
//! They run the real `idhost` binary and load the real plugins from `target/debug`, so the
//! workspace is built first: `cargo build --workspace && cargo test --workspace`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests reach sinks, databases and simulators the way an outside client would"
)]

mod support;

mod checkpoints_resume;
mod daemon;
mod daemon_listener;
mod daemon_manifests;
mod day_two;
mod events_bench;
mod events_fixture;
mod events_incremental;
mod example_configs;
mod export_clickwrap;
mod export_csv;
mod export_postgres;
mod export_sources;
mod failover;
mod fuzz_corpus;
mod http_policy;
mod lease;
mod notify;
mod pg_tls;
mod plugins_and_config;
mod provision_cli;
mod query_cli;
mod rate_limits;
mod resync_fixture;
mod sinks_nats;
mod sinks_postgres;
mod sinks_sqlite;
mod sinks_webhook;
mod state_postgres;
mod sync_fixture;
