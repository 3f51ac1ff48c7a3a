//! The Clickwrap connector against the `sim-clickwrap` simulator, in process.
//!
//! `TestServices` sends requests as they are, with no retries and no rate budgets (the host does
//! those), so these tests see the connector's own behaviour: paging, mapping, scope discovery,
//! token renewal, error kinds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

mod abi;
mod auth;
mod common;
mod config_example;
mod discovery;
mod faults;
mod fidelity;
mod listing;
