//! The journal: the state database (`state_path`), where a source's syncs are recorded page by
//! page and a complete one becomes the snapshot the next one is diffed against. Per source it
//! holds the connector state (delta links and other opaque values, [`connector`]), the last
//! complete snapshot, the checkpoint of a sync under way ([`checkpoint`]) and the change events
//! waiting for delivery ([`outbox`]). A sync stages its changes and commits them only when it
//! completes, so a failed sync never advances a connector's state or the snapshot the next diff
//! is made against.
//!
//! Per source the host keeps its last complete snapshot as *generation* `g` of three tables
//! (`snap_resources`, `snap_entitlements`, `snap_grants`). A sync writes generation `g + 1`
//! page by page ([`stage`]), each page in one transaction together with the sync's checkpoint (where the
//! listing goes on, counts, staged connector state), so a sync killed or stopped at any point
//! resumes from its last committed page and never holds more than a page in memory. When the
//! listing is complete:
//! 1. resource types listed incrementally carry over what the delta did not touch from
//!    generation `g` ([`carry`]), so `g + 1` is a complete snapshot again;
//! 2. the mass-removal brake counts what the listing removes; over `max_removals` the sync
//!    is held (phase `held`: nothing diffed, delivered or committed) until `idhost approve`;
//! 3. the diff of `g` against `g + 1` runs inside SQLite ([`diff`]) and writes change events
//!    into the `events` outbox, then marks the sync `delivering`;
//! 4. each sink takes the events after its own position in the outbox ([`outbox`]) and
//!    commits; the host records every sink that did, with its new position;
//! 5. one transaction makes `g + 1` the snapshot, drops `g`, commits the connector state,
//!    clears the checkpoint, and drops the events every sink has taken.
//!
//! A sink that fails in 4 keeps its position: the snapshot still advances and the next sync
//! lists again; the failing sink gets every event it missed (same ids, in order, once) when
//! it next commits. A sync killed in 4 stays `delivering` and the next run finishes it; one
//! that `--restart` or a config change would start over is committed first, never dropped.
//! The first sync of a source is its baseline: it emits no events (a new source's whole
//! directory is not a change).

mod carry;
mod checkpoint;
mod connector;
mod diff;
mod fence;
mod functions;
mod outbox;
mod stage;
mod store;

pub use checkpoint::{Checkpoint, Phase, Removals};
pub use fence::Fence;
pub use functions::field_changes;
pub use outbox::{OUTBOX_CAP, SinkLag};
pub use stage::{Discarded, RecordTable};
pub use store::{StateError, StateStore};
