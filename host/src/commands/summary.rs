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
        let _ = writeln!(
            out,
            "{:<14} {:<10} {:<10} {:>9} {:>12} {:>9} {:>9} {:>8.1}",
            o.source,
            o.connector,
            o.status.as_str(),
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
