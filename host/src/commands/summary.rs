//! The summary table `idhost sync` ends with.

use std::fmt::Write as _;

use crate::sync::SourceOutcome;

/// A table of outcomes, one row per source, with the errors listed below it.
pub fn summary_table(outcomes: &[SourceOutcome]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<10} {:<10} {:>9} {:>12} {:>9} {:>9} {:>8}",
        "SOURCE",
        "CONNECTOR",
        "STATUS",
        "RESOURCES",
        "ENTITLEMENTS",
        "GRANTS",
        "REQUESTS",
        "SECONDS"
    );
    for o in outcomes {
        let style = if o.status == crate::record::RunStatus::Succeeded {
            crate::color::Style::Green
        } else {
            crate::color::Style::Red
        };
        let status = crate::color::paint(
            &format!("{:<10}", o.status.as_str()),
            style,
            crate::color::stderr(),
        );
        let _ = writeln!(
            out,
            "{:<14} {:<10} {} {:>9} {:>12} {:>9} {:>9} {:>8.1}",
            o.source,
            o.connector,
            status,
            o.counts.resource_total(),
            o.counts.entitlements,
            o.counts.grants,
            o.metrics.requests(),
            o.elapsed.as_secs_f64()
        );
    }
    for o in outcomes {
        if let Some(error) = &o.error {
            let _ = writeln!(out, "\n{} {}: {error}", o.source, o.status.as_str());
        }
    }
    out
}

/// Orphans per source and reason, when `[identity]` is set.
pub(crate) type OrphanCounts = std::collections::BTreeMap<
    String,
    std::collections::BTreeMap<crate::inspect::identity::Reason, u64>,
>;

/// The lines under the table: each source's change events by kind, and its orphans.
pub fn changes_and_orphans(outcomes: &[SourceOutcome], orphans: Option<&OrphanCounts>) -> String {
    let mut out = String::new();
    let width = outcomes.iter().map(|o| o.source.len()).max().unwrap_or(0);
    let mut first = true;
    for o in outcomes.iter().filter(|o| o.error.is_none()) {
        let label = if first { "changes" } else { "" };
        first = false;
        let text = if o.counts.changes.is_empty() {
            "none".to_owned()
        } else {
            o.counts
                .changes
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "{label:<8} {:<width$}  {text}", o.source);
    }
    if let Some(orphans) = orphans {
        let mut first = true;
        for o in outcomes {
            let Some(reasons) = orphans.get(&o.source) else {
                continue;
            };
            let label = if first { "orphans" } else { "" };
            first = false;
            let total: u64 = reasons.values().sum();
            let detail = reasons
                .iter()
                .map(|(reason, n)| format!("{n} {}", reason.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
            if total == 0 {
                let _ = writeln!(out, "{label:<8} {:<width$}  0", o.source);
            } else {
                let _ = writeln!(out, "{label:<8} {:<width$}  {total} ({detail})", o.source);
            }
        }
    }
    out
}

/// Orphans per source after a sync, when `[identity]` is set and a SQLite sink holds the
/// sources (a failure to count is a warning: the sync itself is done).
pub(crate) fn orphans_after_sync(config: &crate::config::Config) -> Option<OrphanCounts> {
    let identity = config.identity.as_ref()?;
    let db = crate::inspect::db::SinkDb::open(config, None).ok()?;
    match crate::inspect::identity::correlate(&db, identity, None) {
        Ok(links) => {
            let mut counts = crate::inspect::identity::orphan_counts(&links);
            for link in &links {
                if link.account.source != identity.authoritative {
                    counts.entry(link.account.source.clone()).or_default();
                }
            }
            Some(counts)
        }
        Err(err) => {
            tracing::warn!("cannot count orphans: {err}");
            None
        }
    }
}
