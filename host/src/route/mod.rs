//! The router box of DESIGN §1: from a source's pages to the sinks that take them.
//!
//! A sink says which sources feed it (`inputs`, [`Inputs`]) and which records it takes
//! (`records`, [`RecordFilter`]); the [`Router`] holds the opened sinks and tells which a source
//! reaches, and a [`RoutedSession`] is one sink's session of one sync, handed only the records
//! its filter takes. Mapping (an export's columns) belongs to the export sinks themselves
//! ([`crate::export`]).

mod filter;
mod router;
mod session;

pub use filter::{Inputs, RecordFilter};
pub use router::Router;
pub use session::RoutedSession;
