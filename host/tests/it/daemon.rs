//! `idhost run`: schedules fire, `/metrics` is Prometheus text whose counters move, probes
//! answer, and SIGTERM mid-sync stops within the bound without a half-written snapshot.

use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, plugin_dir, sqlite_count, value, workdir};

fn config(dir: &std::path::Path, sources: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
plugin_dir = "{plugins}"
state_path = "{dir}/state.db"
{sources}
[sinks.local]
type = "sqlite"
path = "{dir}/out.db"
"#,
        plugins = plugin_dir().display(),
        dir = dir.display(),
    );
    let path = dir.join("idhost.toml");
    std::fs::write(&path, text).expect("writes config");
    path
}

fn syncs(m: &crate::support::daemon::Metrics, source: &str, status: &str) -> f64 {
    value(
        m,
        &format!(r#"idhost_source_syncs_total{{source="{source}",status="{status}"}}"#),
    )
}

#[test]
fn two_schedules_fire_and_metrics_parse_with_counters_moving() {
    let dir = workdir();
    let cfg = config(
        dir.path(),
        r#"
[sources.every2]
connector = "fixture"
schedule = "2s"
[sources.every2.settings]
users = 30
page_size = 10

[sources.every3]
connector = "fixture"
schedule = "3s"
[sources.every3.settings]
users = 12
"#,
    );
    let mut daemon = Daemon::start(&cfg, &[]);
    assert_eq!(daemon.get("/healthz").0, 200);
    assert_eq!(daemon.get("/readyz").0, 200);
    std::thread::sleep(Duration::from_millis(2500));
    let early = daemon.metrics();
    std::thread::sleep(Duration::from_millis(4500));
    let late = daemon.metrics();

    // 2 s schedule over 7 s: slots at 0, 2, 4, 6; 3 s schedule: 0, 3, 6.
    let (a, b) = (
        syncs(&late, "every2", "succeeded"),
        syncs(&late, "every3", "succeeded"),
    );
    assert!(
        (3.0..=4.0).contains(&a),
        "every2 ran {a} times:\n{}",
        daemon.dump()
    );
    assert!(
        (2.0..=3.0).contains(&b),
        "every3 ran {b} times:\n{}",
        daemon.dump()
    );
    assert!(syncs(&late, "every2", "succeeded") > syncs(&early, "every2", "succeeded"));
    let records = |m: &crate::support::daemon::Metrics| {
        value(m, r#"idhost_source_records_total{source="every2"}"#)
    };
    assert!(records(&late) > records(&early), "records did not move");
    // 30 users + 2 groups + 2 entitlements + their grants per sync.
    assert_eq!(records(&late) % a, 0.0, "same records every sync");
    assert!(value(&late, r#"idhost_source_pages_total{source="every2"}"#) >= 4.0 * a);
    assert!(value(&late, r#"idhost_sink_records_written_total{sink="local"}"#) >= records(&late));
    assert_eq!(
        value(&late, r#"idhost_sink_errors_total{sink="local"}"#),
        0.0
    );
    assert_eq!(
        value(
            &late,
            r#"idhost_source_sync_failures_total{source="every2"}"#
        ),
        0.0
    );
    let last_ok = value(
        &late,
        r#"idhost_source_last_success_timestamp_seconds{source="every2"}"#,
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    assert!(now - last_ok < 3.0, "last success {last_ok} vs now {now}");
    assert_eq!(
        value(&late, r#"idhost_source_sync_running{source="every3"}"#),
        0.0
    );

    daemon.sigterm();
    let status = daemon.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
    // The sink saw exactly the syncs the metrics counted (stop may have let one more finish).
    let db = dir.path().join("out.db");
    let runs = sqlite_count(
        &db,
        "SELECT count(*) FROM sync_runs WHERE source = 'every2' AND status = 'succeeded'",
    );
    assert!(
        runs as f64 >= a && runs as f64 <= a + 1.0,
        "{runs} runs vs {a}"
    );
}

#[test]
fn sigterm_mid_sync_cancels_within_the_bound_and_leaves_no_partial_snapshot() {
    let dir = workdir();
    let cfg = config(
        dir.path(),
        r#"
[sources.slow]
connector = "fixture"
schedule = "1h"
[sources.slow.settings]
users = 50
page_size = 10
sleep_on = "list:user:3"
sleep_ms = 60000
"#,
    );
    let mut daemon = Daemon::start(&cfg, &["--shutdown-grace", "1s"]);
    // Wait until pages 0..2 are staged and the sync sits in page 3.
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let m = daemon.metrics();
        if value(&m, r#"idhost_sink_records_written_total{sink="local"}"#) >= 30.0
            && value(&m, r#"idhost_source_sync_running{source="slow"}"#) == 1.0
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "sync never reached page 3:\n{}",
            daemon.dump()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let db = dir.path().join("out.db");
    assert!(sqlite_count(&db, "SELECT count(*) FROM _staging_resources") >= 30);

    let sent = Instant::now();
    daemon.sigterm();
    // Not ready while stopping (the signal arrives asynchronously: poll briefly).
    let until = Instant::now() + Duration::from_millis(900);
    while daemon.get("/readyz").0 != 503 {
        assert!(Instant::now() < until, "still ready after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = daemon
        .wait_exit(Duration::from_secs(15))
        .unwrap_or_else(|| panic!("did not exit:\n{}", daemon.dump()));
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}");
    // Grace 1 s, then the cancelled sync aborts between pages: well inside grace + ABORT_BOUND.
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    assert_eq!(
        sqlite_count(&db, "SELECT count(*) FROM resources WHERE source = 'slow'"),
        0
    );
    assert_eq!(
        sqlite_count(&db, "SELECT count(*) FROM _staging_resources"),
        0
    );
    assert_eq!(
        sqlite_count(
            &db,
            "SELECT count(*) FROM sync_runs WHERE source = 'slow' AND status = 'cancelled'"
        ),
        1
    );
    eprintln!("SIGTERM mid-sync: exited after {took:?} (grace 1s)");
}

#[test]
fn sigterm_lets_a_short_in_flight_sync_finish_within_the_grace() {
    let dir = workdir();
    let cfg = config(
        dir.path(),
        r#"
[sources.brief]
connector = "fixture"
schedule = "1h"
[sources.brief.settings]
users = 40
page_size = 10
sleep_on = "list:user:2"
sleep_ms = 1500
"#,
    );
    let mut daemon = Daemon::start(&cfg, &["--shutdown-grace", "10s"]);
    daemon
        .wait_for_log(Duration::from_secs(10), |l| {
            crate::support::daemon::message(l) == "sync starting"
        })
        .expect("sync starts");
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    daemon.sigterm();
    let status = daemon.wait_exit(Duration::from_secs(15)).expect("exits");
    assert!(status.success());
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let db = dir.path().join("out.db");
    assert_eq!(
        sqlite_count(
            &db,
            "SELECT count(*) FROM resources WHERE source = 'brief' AND type = 'user'"
        ),
        40
    );
    assert_eq!(
        sqlite_count(
            &db,
            "SELECT count(*) FROM sync_runs WHERE source = 'brief' AND status = 'succeeded'"
        ),
        1
    );
}

#[test]
fn a_bad_notify_target_fails_startup_with_its_location() {
    let dir = workdir();
    let cfg = config(
        dir.path(),
        r#"
[sources.a]
connector = "fixture"

[notify.ops]
type = "pager"
"#,
    );
    let mut cmd = crate::support::idhost();
    cmd.args(["run", "-c"])
        .arg(&cfg)
        .args(["--listen", "127.0.0.1:0"]);
    let out = idhost_e2e::output_within(cmd, idhost_e2e::DEFAULT_TIMEOUT);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "idhost.toml:9:8: notify target type must be one of `webhook`, `email`; got `pager`"
        ),
        "{err}"
    );
}

#[test]
fn an_unreachable_coordination_database_keeps_the_daemon_unready_until_stopped() {
    let dir = workdir();
    let cfg = config(
        dir.path(),
        r#"
[coordination]
postgres_url = "postgres://idhost@127.0.0.1:1/idhost"
lease_secs = 4

[sources.a]
connector = "fixture"
"#,
    );
    let mut daemon = Daemon::spawn(&cfg, &[]);
    assert!(
        daemon
            .wait_for_log(Duration::from_secs(5), |l| crate::support::daemon::message(
                l
            )
            .contains("coordination database not reachable yet"))
            .is_some(),
        "{}",
        daemon.dump()
    );
    assert_eq!(daemon.get("/healthz").0, 200, "alive");
    assert_eq!(
        daemon.get("/readyz").0,
        503,
        "not ready without its database"
    );
    daemon.sigterm();
    let status = daemon.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
}
