//! Shared plumbing for the upstream simulators.
//!
//! Every simulator is an axum `Router` built by its own crate from the upstream's public
//! documentation. This crate only holds what is *not* upstream-specific: serving a router on
//! loopback, injected latency, scripted faults, a fixed-window rate limiter and a request log
//! that tests and benchmarks read to count upstream requests.
//!
//! It deliberately knows nothing about SCIM, Graph or PactSafe, so a misreading of one upstream's
//! docs cannot leak into another simulator through here.

mod faults;
mod rate;
mod server;

pub use faults::{
    Fault, FaultAction, FaultRule, Faults, Hook, RequestLog, RequestRecord, fault_layer,
};
pub use rate::FixedWindow;
pub use server::{RunningServer, serve, unexpected_route};
