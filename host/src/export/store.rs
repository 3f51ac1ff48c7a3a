//! Where an export's rows live. A store loads the target, lets the engine merge into it and
//! writes it back as ONE atomic step (a renamed file, one transaction), so a reader sees the
//! target before or after a sync, never half of it, and a crash keeps the previous one.

use async_trait::async_trait;

use super::engine::Report;
use super::error::ExportError;
use super::table::{Layout, TargetTable};

/// The merge a store runs on its loaded rows.
pub(crate) type Merge = Box<dyn FnOnce(&mut TargetTable) -> Report + Send>;

/// Storage of an export target.
#[async_trait]
pub(crate) trait ExportStore: Send + Sync {
    /// The file or table written, for messages (never a credential).
    fn target(&self) -> String;

    /// Loads the target with its mapped columns lined up with `columns` (an absent target is
    /// empty), runs `merge`, and stores the result atomically.
    async fn transact(&self, columns: &[String], merge: Merge) -> Result<Report, ExportError>;
}

/// Refuses to take over a target that shares no column with the export (an unrelated file or
/// table at the configured place would otherwise be overwritten), and warns about columns a
/// changed mapping leaves behind.
pub(crate) fn check_layout(
    target: &str,
    stored: &[String],
    layout: &Layout,
    columns: &[String],
) -> Result<(), ExportError> {
    let shared = stored
        .iter()
        .filter(|s| columns.contains(s) || super::table::TRACKING.contains(&s.as_str()))
        .count();
    if !stored.is_empty() && shared == 0 {
        return Err(ExportError::Target {
            target: target.to_owned(),
            message: format!(
                "it exists but has none of this export's columns (it has: {}); move it away or point the sink elsewhere",
                stored.join(", ")
            ),
        });
    }
    if !layout.is_exact(stored.len()) {
        tracing::warn!(
            target,
            dropped = %layout.dropped.join(", "),
            "the target's columns differ from the mapping: columns are matched by name, new ones start empty, and columns no longer mapped are not written back"
        );
    }
    Ok(())
}

/// Runs blocking storage work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ExportError> + Send + 'static,
) -> Result<T, ExportError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ExportError::Task(e.to_string()))?
}
