//! The pipeline's vocabulary: what moves from a listing to the journal and the sinks. Pages of
//! records ([`Batch`]), the change events a complete sync produces ([`ChangeEvent`]), the run
//! every sink records ([`SyncRun`]) and the wire form they share. Nothing here does I/O or knows
//! a sink, the state database or the config, so every stage can speak it.

mod batch;
mod event;
mod run;
mod wire;

pub use batch::Batch;
pub use event::{ChangeEvent, EventKind, event_id};
pub use run::{Counts, RunStatus, SyncRun};
pub use wire::{RECORD_KINDS, wire_object};
