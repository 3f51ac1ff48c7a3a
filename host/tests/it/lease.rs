//! Several `idhost run` replicas against one Postgres ([coordination]): every scheduled sync of
//! every source runs exactly once (or is reported missed), never on two replicas at once; the
//! sources spread over the replicas; a replica killed with SIGKILL loses its leases and the other
//! takes its sources over; a replica stopped with SIGTERM hands them over at once.
//!
//! Needs Postgres on 127.0.0.1:5432 (user postgres, trust auth, database `test`); prints
//! "SKIPPED: ..." and passes when it does not answer (and fails where `IDHOST_REQUIRE_SERVICES`
//! names `postgres`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, field, message, plugin_dir, value, workdir};

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The replicas of one test count each other in `idhost_replicas`; tests run one at a time so
/// they do not count the other test's replicas.
pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `sql` against the test database; `None` when Postgres does not answer.
fn query(sql: &str) -> Option<Vec<tokio_postgres::Row>> {
    runtime().block_on(async {
        let connect = tokio_postgres::connect(PG, tokio_postgres::NoTls);
        let (client, connection) = tokio::time::timeout(Duration::from_secs(3), connect)
            .await
            .ok()?
            .ok()?;
        tokio::spawn(connection);
        client.query(sql, &[]).await.ok()
    })
}

fn postgres_answers() -> bool {
    if query("SELECT 1").is_some() {
        return true;
    }
    idhost_e2e::services::skip(
        "postgres",
        "Postgres does not answer on 127.0.0.1:5432 (user postgres, database test)",
    );
    false
}

/// Three uniquely named sources (rows of other runs never collide).
fn sources() -> Vec<String> {
    let suffix: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(8)
        .collect();
    (1..=3).map(|i| format!("src{i}_{suffix}")).collect()
}

fn replica_config(dir: &Path, sources: &[String], lease_secs: u64) -> PathBuf {
    let mut text = format!(
        "plugin_dir = \"{}\"\nstate_path = \"{}/state.db\"\n\n[coordination]\npostgres_url = \"{PG}\"\nlease_secs = {lease_secs}\n",
        plugin_dir().display(),
        dir.display()
    );
    for name in sources {
        text.push_str(&format!(
            "\n[sources.{name}]\nconnector = \"fixture\"\nschedule = \"2s\"\n[sources.{name}.settings]\nusers = 5\n"
        ));
    }
    text.push_str(&format!(
        "\n[sinks.local]\ntype = \"sqlite\"\npath = \"{}/out.db\"\n",
        dir.display()
    ));
    let path = dir.join("idhost.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// Which sources each replica says it holds.
fn holdings(replicas: &[&Daemon], sources: &[String]) -> Vec<BTreeSet<String>> {
    replicas
        .iter()
        .map(|d| {
            let m = d.metrics();
            sources
                .iter()
                .filter(|s| {
                    value(&m, &format!(r#"idhost_source_lease_held{{source="{s}"}}"#)) == 1.0
                })
                .cloned()
                .collect()
        })
        .collect()
}

fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One sync as logged: source, slot, skipped slots, replica, start and end (ms).
#[derive(Debug, Clone)]
struct Run {
    source: String,
    slot: i64,
    skipped: i64,
    replica: String,
    started: i64,
    finished: Option<i64>,
}

fn ts(line: &serde_json::Value) -> i64 {
    let text = line["timestamp"].as_str().unwrap_or_default();
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0)
}

fn runs(d: &Daemon) -> Vec<Run> {
    let logs = d.logs();
    let mut out: Vec<Run> = Vec::new();
    for line in &logs {
        match message(line).as_str() {
            "sync starting" => out.push(Run {
                source: field(line, "source"),
                slot: field(line, "slot_ms").parse().unwrap_or(0),
                skipped: field(line, "skipped").parse().unwrap_or(0),
                replica: field(line, "replica"),
                started: ts(line),
                finished: None,
            }),
            "sync finished" => {
                let source = field(line, "source");
                if let Some(run) = out
                    .iter_mut()
                    .rev()
                    .find(|r| r.source == source && r.finished.is_none())
                {
                    run.finished = Some(ts(line));
                }
            }
            _ => {}
        }
    }
    out
}

/// Every slot ran once or was reported skipped; no two syncs of a source overlapped.
fn check_exactly_once(all: &[Run], sources: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for source in sources {
        let mut mine: Vec<&Run> = all.iter().filter(|r| &r.source == source).collect();
        mine.sort_by_key(|r| r.slot);
        assert!(mine.len() >= 2, "{source} synced {} times", mine.len());
        for pair in mine.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            assert_ne!(
                a.slot, b.slot,
                "slot {} of {source} ran twice: {a:?} {b:?}",
                a.slot
            );
            assert_eq!(
                b.slot - a.slot,
                2000 * (b.skipped + 1),
                "{source}: a slot between {a:?} and {b:?} neither ran nor was reported missed"
            );
            let a_end = a.finished.unwrap_or(i64::MAX);
            assert!(
                a_end <= b.started,
                "{source}: syncs overlapped: {a:?} {b:?}"
            );
        }
        counts.insert(source.clone(), mine.len());
    }
    counts
}

fn cleanup(sources: &[String], replicas: &[&str]) {
    let names: Vec<String> = sources.iter().map(|s| format!("'{s}'")).collect();
    let _ = query(&format!(
        "DELETE FROM idhost_leases WHERE source IN ({})",
        names.join(",")
    ));
    let ids: Vec<String> = replicas.iter().map(|r| format!("'{r}'")).collect();
    let _ = query(&format!(
        "DELETE FROM idhost_replicas WHERE holder IN ({})",
        ids.join(",")
    ));
}

#[test]
fn two_replicas_run_every_slot_once_and_a_killed_replicas_sources_move_over() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !postgres_answers() {
        return;
    }
    let names = sources();
    let (dir_a, dir_b) = (workdir(), workdir());
    let mut a = Daemon::start(&replica_config(dir_a.path(), &names, 3), &[]);
    std::thread::sleep(Duration::from_millis(500));
    let mut b = Daemon::start(&replica_config(dir_b.path(), &names, 3), &[]);

    // The three sources spread over both replicas, each held by exactly one.
    wait_until(
        Duration::from_secs(10),
        "the sources to spread over both replicas",
        || {
            let h = holdings(&[&a, &b], &names);
            h[0].len() + h[1].len() == 3
                && h[0].is_disjoint(&h[1])
                && !h[0].is_empty()
                && !h[1].is_empty()
        },
    );
    std::thread::sleep(Duration::from_secs(8));
    let before: Vec<Run> = runs(&a).into_iter().chain(runs(&b)).collect();
    let counts = check_exactly_once(&before, &names);
    eprintln!("syncs per source over ~9 s with two replicas: {counts:?}");
    for (source, n) in &counts {
        assert!(*n >= 4, "{source} ran {n} times in ~9 s on a 2 s schedule");
    }

    // Kill the replica holding more sources; the other takes them over once the leases expire.
    let h = holdings(&[&a, &b], &names);
    let (victim, survivor, taken) = if h[0].len() >= h[1].len() {
        (&mut a, &b, h[0].clone())
    } else {
        (&mut b, &a, h[1].clone())
    };
    let victim_id = victim.replica.clone();
    let killed_at = Instant::now();
    victim.kill9();
    let killed_ms = crate::support::daemon::now_ms();
    wait_until(
        Duration::from_secs(15),
        "the survivor to sync the killed replica's sources",
        || {
            let r = runs(survivor);
            taken.iter().all(|s| {
                r.iter()
                    .any(|run| &run.source == s && run.started > killed_ms)
            })
        },
    );
    let takeover = killed_at.elapsed();
    eprintln!("takeover after SIGKILL with lease_secs = 3: {takeover:?}");
    let held = holdings(&[survivor], &names);
    assert_eq!(
        held[0].len(),
        3,
        "the survivor holds every source: {held:?}"
    );
    let holders = query(&format!(
        "SELECT DISTINCT holder FROM idhost_leases WHERE source IN ({})",
        names
            .iter()
            .map(|s| format!("'{s}'"))
            .collect::<Vec<_>>()
            .join(",")
    ))
    .expect("query");
    let holders: Vec<String> = holders.iter().map(|r| r.get::<_, String>(0)).collect();
    assert_eq!(holders, vec![survivor.replica.clone()]);
    std::thread::sleep(Duration::from_secs(3));
    let all: Vec<Run> = before
        .iter()
        .filter(|r| r.replica == victim_id)
        .cloned()
        .chain(runs(survivor))
        .collect();
    check_exactly_once(&all, &names);
    let survivor_id = survivor.replica.clone();
    cleanup(&names, &[&victim_id, &survivor_id]);
}

#[test]
fn a_replica_stopped_with_sigterm_hands_its_sources_over_at_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    if !postgres_answers() {
        return;
    }
    let names = sources();
    let (dir_a, dir_b) = (workdir(), workdir());
    // A long lease: a takeover faster than it can only come from the release.
    let mut a = Daemon::start(&replica_config(dir_a.path(), &names, 12), &[]);
    wait_until(
        Duration::from_secs(10),
        "the first replica to hold everything",
        || holdings(&[&a], &names)[0].len() == 3,
    );
    let b = Daemon::start(&replica_config(dir_b.path(), &names, 12), &[]);
    std::thread::sleep(Duration::from_secs(1));
    let a_id = a.replica.clone();
    let stopped = Instant::now();
    a.sigterm();
    assert!(
        a.wait_exit(Duration::from_secs(15))
            .is_some_and(|s| s.success())
    );
    wait_until(
        Duration::from_secs(8),
        "the other replica to hold every source",
        || holdings(&[&b], &names)[0].len() == 3,
    );
    let handover = stopped.elapsed();
    eprintln!("handover after SIGTERM with lease_secs = 12: {handover:?}");
    assert!(
        handover < Duration::from_secs(8),
        "took {handover:?}: waited for expiry instead of the release"
    );
    let replicas = query(&format!(
        "SELECT count(*) FROM idhost_replicas WHERE holder = '{a_id}'"
    ))
    .expect("query");
    assert_eq!(
        replicas[0].get::<_, i64>(0),
        0,
        "a stopped replica leaves the replica list"
    );
    let b_id = b.replica.clone();
    cleanup(&names, &[&a_id, &b_id]);
}
