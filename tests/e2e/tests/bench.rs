//! Issue 8: `idhost bench --scale 0.01` runs every scenario quickly (real binary, real plugins,
//! in-process simulators) and prints one table row per scenario.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]

use std::time::Duration;

use idhost_e2e::{Scratch, bin_dir, require_plugins};

const SCENARIOS: [&str; 12] = [
    "entra",
    "ironclad",
    "clickwrap",
    "all",
    "sqlite",
    "postgres",
    "jsonl",
    "plugin",
    "flat",
    "resync-1st",
    "resync-0%",
    "resync-1%",
];

#[tokio::test]
async fn bench_at_small_scale_prints_a_row_for_every_scenario() {
    require_plugins(&[
        "idhost_entra",
        "idhost_ironclad",
        "idhost_clickwrap",
        "fixture_connector",
    ]);
    let s = Scratch::new();
    let dir = bin_dir().to_string_lossy().into_owned();
    let run = s
        .run_for(
            &[
                "bench",
                "--scale",
                "0.01",
                "--plugin-dir",
                &dir,
                "--log-level",
                "warn",
            ],
            Duration::from_secs(120),
        )
        .await;
    run.expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let header = lines.first().copied().unwrap_or_default();
    for column in [
        "scenario", "requests", "bound", "wall", "CPU", "ratio", "rec/s", "peak RSS",
    ] {
        assert!(
            header.contains(column),
            "no `{column}` column\n{}",
            run.text()
        );
    }
    for scenario in SCENARIOS {
        let row = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(scenario))
            .unwrap_or_else(|| panic!("no `{scenario}` row\n{}", run.text()));
        assert!(!row.contains("FAILED"), "{row}\n{}", run.text());
        if row.contains("SKIPPED") {
            // Only the postgres scenario needs a service the bench cannot start.
            idhost_e2e::services::skip("postgres", row);
            continue;
        }
        let cells: Vec<&str> = row.split_whitespace().collect();
        // records (column 7) must be positive, peak RSS (column 9) in MB.
        let records: u64 = cells[6]
            .parse()
            .unwrap_or_else(|_| panic!("records in {row}"));
        assert!(records > 0, "{row}");
        assert!(cells[8].ends_with("MB"), "{row}");
        if ["entra", "ironclad", "clickwrap", "all", "flat"].contains(&scenario) {
            let requests: usize = cells[1]
                .parse()
                .unwrap_or_else(|_| panic!("requests in {row}"));
            assert!(requests > 0, "{row}");
            assert!(
                cells[2].ends_with('s') && cells[5] != "-",
                "bound and ratio in {row}"
            );
        }
    }
}
