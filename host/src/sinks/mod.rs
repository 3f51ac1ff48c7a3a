//! Sinks: where normalized records go. Each sink receives a source's sync as a session
//! (`begin` → `write`… → `commit` or `abort`), so it can make the new snapshot visible
//! atomically and keep the last good one when a sync fails. Which sinks a source reaches, and
//! which of its records, is the router's business ([`crate::route`]); the export sinks (a
//! `mapping`) live in [`crate::export`].

mod jsonl;
mod nats;
mod postgres;
mod sink;
mod sqlite;
mod webhook;

pub use jsonl::JsonlSink;
pub use nats::NatsSink;
pub use postgres::PostgresSink;
pub use sink::{Sink, SinkError, SinkSession};
pub use sqlite::SqliteSink;
pub use webhook::WebhookSink;
