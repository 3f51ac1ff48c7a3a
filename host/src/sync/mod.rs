//! Running syncs: every chosen source concurrently, each in its own task, each failing alone.
//!
//! One source's sync ([`sync_source`]) lists every page into the source's sinks (through the
//! router, [`crate::route`]) and, page by page, into the journal with a checkpoint
//! ([`crate::state`]); a sync stopped or killed part-way resumes there next time. A complete
//! listing is diffed against the last snapshot, the change events go to the sinks that take
//! them, every sink commits, and only then does the journal's snapshot (and the connector
//! state) advance.
//!
//! [`SyncEnv::open`] is the one way to open what a sync needs; [`run`] syncs the chosen sources
//! of a command, [`sync_source`] one source (the daemon calls it per schedule).

mod connector;
mod ctx;
mod deliver;
mod env;
mod listing;
mod options;
mod run;
mod source;

pub use connector::open_connector;
pub use env::{EnvError, EnvSetup, LeaseCheck, SyncEnv, SyncLease};
pub use options::{SourceOutcome, SyncOptions};
pub use run::run;
pub use source::sync_source;
