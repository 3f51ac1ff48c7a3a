//! The load and failover figure (ignored: it runs for a few minutes). 300 fixture sources on a
//! short schedule, whose directories change with time (`churn_secs`), across 3 `idhost run`
//! replicas sharing one Postgres; a bounded loop SIGKILLs (then restarts) or SIGSTOPs (then,
//! after longer than a lease, SIGCONTs) a random replica; then everything stops and the test
//! checks, and prints as a table:
//! - every scheduled slot ran once: no (source, slot) started twice across replicas, and
//!   every slot between two consecutive starts of a source was reported missed by the later;
//! - every change event was delivered once: event ids unique across the replicas' sinks, and
//!   each source's `updated` events of user `u0` chain (the new name of one is the old name of
//!   the next): a break is a lost change, an overlap a change delivered twice;
//! - no snapshot went backwards: in the order the host computed them, each source's events move
//!   its window forward;
//! - takeover time (p50/p95): from a replica's SIGKILL/SIGSTOP to the first sync of each of its
//!   sources on another replica.
//!
//! Run: `cargo test -p idhost --test it failover -- --ignored --nocapture`.
//!
//! `IDHOST_FAILOVER_STATE` picks where the replicas keep their state: unset (or `sqlite`), each
//! replica its own SQLite file (`state_path`) — the figure then *shows* what a moved source
//! loses (its new replica has another snapshot, so changes are lost or repeated) and the test
//! asserts only what the lease table guarantees; a `postgres://…` URL, one shared state
//! (`state_url`), and every check is asserted. `IDHOST_FAILOVER_SOURCES` and
//! `IDHOST_FAILOVER_ROUNDS` scale it down (defaults 300 and 12).
//!
//! Needs Postgres on 127.0.0.1:5432 (trust auth, database `test`); prints "SKIPPED: ..." when
//! it does not answer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::daemon::{Daemon, field, message, now_ms, plugin_dir, workdir};

const PG: &str = "postgres://postgres@127.0.0.1:5432/test";
const REPLICAS: usize = 3;
const SCHEDULE_SECS: i64 = 6;
/// The fixture's directory changes every this many seconds.
const CHURN_SECS: u64 = 6;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `sql`; `None` when Postgres does not answer.
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

/// Where the replicas keep their state.
#[derive(Debug, Clone)]
enum StateAt {
    /// `state_path` in each replica's directory.
    PerReplicaSqlite,
    /// One `state_url` for all.
    Shared(String),
}

impl StateAt {
    fn from_env() -> Self {
        match std::env::var("IDHOST_FAILOVER_STATE") {
            Ok(url) if url.starts_with("postgres") => StateAt::Shared(url),
            _ => StateAt::PerReplicaSqlite,
        }
    }

    fn shared(&self) -> bool {
        matches!(self, StateAt::Shared(_))
    }

    fn describe(&self) -> String {
        match self {
            StateAt::PerReplicaSqlite => "per-replica SQLite (state_path)".into(),
            StateAt::Shared(url) => format!("shared ({url})"),
        }
    }
}

fn replica_config(dir: &Path, sources: &[String], state: &StateAt, lease_secs: u64) -> PathBuf {
    let state_line = match state {
        StateAt::PerReplicaSqlite => format!("state_path = \"{}/state.db\"", dir.display()),
        StateAt::Shared(url) => format!("state_url = \"{url}\""),
    };
    let mut text = format!(
        "plugin_dir = \"{}\"\n{state_line}\n\n[coordination]\npostgres_url = \"{PG}\"\nlease_secs = {lease_secs}\n",
        plugin_dir().display(),
    );
    for name in sources {
        text.push_str(&format!(
            "\n[sources.{name}]\nconnector = \"fixture\"\nschedule = \"{SCHEDULE_SECS}s\"\n[sources.{name}.settings]\nusers = 3\ngroups = 1\nmemberships = 2\nchurn_secs = {CHURN_SECS}\n"
        ));
    }
    // Each replica's own file (what each delivered), and one Postgres sink they all share
    // (what a deployment's receivers see: its `events.id` is unique, a redelivery ignored).
    text.push_str(&format!(
        "\n[sinks.events]\ntype = \"jsonl\"\npath = \"{}/events.jsonl\"\nrecords = [\"event\"]\n\n[sinks.shared]\ntype = \"postgres\"\nurl = \"{PG}\"\nrecords = [\"event\"]\n",
        dir.display()
    ));
    let path = dir.join("idhost.toml");
    std::fs::write(&path, text).expect("config");
    path
}

/// A small deterministic generator (no dependency for one random choice per round).
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One replica slot: the running process and the ones it replaced.
struct Slot {
    config: PathBuf,
    dir: tempfile::TempDir,
    live: Daemon,
    retired: Vec<Daemon>,
}

/// What the loop did to a replica.
#[derive(Debug)]
struct Fault {
    action: &'static str,
    replica: String,
    at_ms: i64,
    sources: Vec<String>,
}

/// One sync as logged.
#[derive(Debug, Clone)]
struct Started {
    source: String,
    slot: i64,
    skipped: i64,
    replica: String,
    at_ms: i64,
}

fn ts(line: &serde_json::Value) -> i64 {
    let text = line["timestamp"].as_str().unwrap_or_default();
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0)
}

fn starts(d: &Daemon) -> Vec<Started> {
    d.logs()
        .iter()
        .filter(|l| message(l) == "sync starting")
        .map(|l| Started {
            source: field(l, "source"),
            slot: field(l, "slot_ms").parse().unwrap_or(0),
            skipped: field(l, "skipped").parse().unwrap_or(0),
            replica: field(l, "replica"),
            at_ms: ts(l),
        })
        .collect()
}

/// Prints what every replica logged of the gap's source around it, and the faults then: a
/// gap is rare, and the figure's run is the only place it shows.
fn explain_gap(slots: &[Slot], faults: &[Fault], a: &Started, b: &Started) {
    for f in faults
        .iter()
        .filter(|f| f.at_ms >= a.at_ms - 10_000 && f.at_ms <= b.at_ms + 1_000)
    {
        eprintln!(
            "  fault {} {} at {} (held it: {})",
            f.action,
            f.replica,
            f.at_ms,
            f.sources.contains(&a.source)
        );
    }
    for d in slots
        .iter()
        .flat_map(|s| s.retired.iter().chain(std::iter::once(&s.live)))
    {
        for line in d.logs() {
            let at = ts(&line);
            if field(&line, "source") == a.source && at >= a.at_ms - 10_000 && at <= b.at_ms + 1_000
            {
                eprintln!(
                    "  {} {at} {} slot={} epoch={} {}",
                    d.replica,
                    message(&line),
                    field(&line, "slot_ms"),
                    field(&line, "epoch"),
                    field(&line, "error")
                );
            }
        }
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|s| format!("'{s}'"))
        .collect::<Vec<_>>()
        .join(",")
}

fn held_by(replica: &str, like: &str) -> Vec<String> {
    query(&format!(
        "SELECT source FROM idhost_leases WHERE holder = '{replica}' AND source LIKE '{like}%' AND expires_at > now()"
    ))
    .unwrap_or_default()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn signal(pid: u32, name: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// The committed part of a JSONL sink's file: its events (id, source, old and new name, at).
fn committed_events(path: &Path) -> Vec<serde_json::Value> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let marker = path.with_file_name(format!(
        "{}.idhost-commit",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    ));
    let committed = std::fs::read(&marker)
        .ok()
        .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok())
        .and_then(|m| m["committed_bytes"].as_u64())
        .map_or(0, |n| n as usize)
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[..committed])
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "event")
        .collect()
}

/// The window number in a fixture name like `User 0 (w4711)`.
fn window(name: &serde_json::Value) -> Option<i64> {
    let s = name.as_str()?;
    let start = s.rfind("(w")? + 2;
    s[start..].trim_end_matches(')').parse().ok()
}

/// (old, new) window of a churn event, from whichever field changed.
fn churn(event: &serde_json::Value) -> Option<(i64, i64)> {
    if event["event"] != "updated" || !event["subject"].as_str()?.ends_with("u0") {
        return None;
    }
    let changes = event["changes"].as_object()?;
    changes
        .values()
        .find_map(|c| Some((window(&c["old"])?, window(&c["new"])?)))
}

/// Per source, in the order the host computed them, each `u0` change must start where the
/// previous one ended: (changes lost, changes delivered twice, moves backwards).
fn chain_breaks(events: &[&serde_json::Value]) -> (usize, usize, usize) {
    let mut chains: BTreeMap<String, Vec<(String, i64, i64)>> = BTreeMap::new();
    for e in events {
        if let Some((old, new)) = churn(e) {
            chains
                .entry(e["source"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push((e["at"].as_str().unwrap_or_default().to_owned(), old, new));
        }
    }
    let (mut lost, mut repeated, mut backwards) = (0, 0, 0);
    for chain in chains.values_mut() {
        chain.sort();
        for pair in chain.windows(2) {
            let (prev, next) = (&pair[0], &pair[1]);
            if next.2 < prev.2 {
                backwards += 1;
            }
            match next.1.cmp(&prev.2) {
                std::cmp::Ordering::Greater => lost += 1,
                std::cmp::Ordering::Less => repeated += 1,
                std::cmp::Ordering::Equal => {}
            }
        }
    }
    (lost, repeated, backwards)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[test]
#[ignore = "the load and failover figure: minutes of three replicas under faults"]
fn failover_figure_three_replicas_under_sigkill_and_sigstop() {
    let _serial = crate::lease::SERIAL
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if query("SELECT 1").is_none() {
        idhost_e2e::services::skip(
            "postgres",
            "Postgres does not answer on 127.0.0.1:5432 (user postgres, database test)",
        );
        return;
    }
    let state = StateAt::from_env();
    let n_sources = env_number("IDHOST_FAILOVER_SOURCES", 300).max(1);
    let rounds = env_number("IDHOST_FAILOVER_ROUNDS", 12);
    let lease_secs = env_number("IDHOST_FAILOVER_LEASE_SECS", 3).max(3) as u64;
    let suffix: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .take(6)
        .collect();
    let prefix = format!("fo{suffix}_");
    let names: Vec<String> = (0..n_sources).map(|i| format!("{prefix}{i:03}")).collect();
    // Replicas of earlier runs that died without leaving would count towards the fair share.
    let _ = query("DELETE FROM idhost_replicas WHERE seen_at < now() - interval '30 seconds'");
    let begun = Instant::now();

    let mut slots: Vec<Slot> = (0..REPLICAS)
        .map(|_| {
            let dir = workdir();
            let config = replica_config(dir.path(), &names, &state, lease_secs);
            let live = Daemon::start(&config, &[]);
            Slot {
                config,
                dir,
                live,
                retired: Vec::new(),
            }
        })
        .collect();
    // Every source held before the faults begin (bounded).
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let held = query(&format!(
            "SELECT count(*) FROM idhost_leases WHERE source LIKE '{prefix}%' AND holder IS NOT NULL AND expires_at > now()"
        ))
        .and_then(|r| r.first().map(|r| r.get::<_, i64>(0)))
        .unwrap_or(0);
        if held as usize == n_sources || Instant::now() > until {
            eprintln!(
                "{held} of {n_sources} sources held after {:?}",
                begun.elapsed()
            );
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(SCHEDULE_SECS as u64 * 2));

    let mut dice = Dice(now_ms() as u64 | 1);
    let mut faults: Vec<Fault> = Vec::new();
    for round in 0..rounds {
        let i = dice.roll(REPLICAS);
        let slot = &mut slots[i];
        let replica = slot.live.replica.clone();
        let sources = held_by(&replica, &prefix);
        let at_ms = now_ms();
        if dice.roll(2) == 0 {
            slot.live.kill9();
            faults.push(Fault {
                action: "SIGKILL",
                replica,
                at_ms,
                sources,
            });
            std::thread::sleep(Duration::from_secs(1));
            let fresh = Daemon::start(&slot.config, &[]);
            slot.retired.push(std::mem::replace(&mut slot.live, fresh));
        } else {
            signal(slot.live.pid(), "STOP");
            faults.push(Fault {
                action: "SIGSTOP",
                replica,
                at_ms,
                sources,
            });
            // Longer than a lease: the others take its sources while it cannot notice.
            std::thread::sleep(Duration::from_secs(lease_secs * 2));
            signal(slot.live.pid(), "CONT");
        }
        eprintln!(
            "round {round}: {} {} (held {} sources)",
            faults[faults.len() - 1].action,
            faults[faults.len() - 1].replica,
            faults[faults.len() - 1].sources.len()
        );
        std::thread::sleep(Duration::from_secs(lease_secs + 2));
    }
    std::thread::sleep(Duration::from_secs(SCHEDULE_SECS as u64));
    for slot in &slots {
        slot.live.sigterm();
    }
    for slot in &mut slots {
        if slot.live.wait_exit(Duration::from_secs(30)).is_none() {
            slot.live.kill9();
        }
    }
    let ran_for = begun.elapsed();

    // Slots: once each, and gaps reported.
    let all: Vec<Started> = slots
        .iter()
        .flat_map(|s| s.retired.iter().chain(std::iter::once(&s.live)))
        .flat_map(starts)
        .filter(|r| r.source.starts_with(&prefix))
        .collect();
    // What stopped the stale holders: the fence before a sink commit, or the lapse noticed.
    let (mut fenced, mut cut) = (0usize, 0usize);
    for d in slots
        .iter()
        .flat_map(|s| s.retired.iter().chain(std::iter::once(&s.live)))
    {
        for line in d.logs() {
            match message(&line).as_str() {
                "sync finished" if field(&line, "error").contains("the lease of epoch") => {
                    fenced += 1
                }
                "lease lapsed mid-sync; cancelling it so no other replica syncs alongside" => {
                    cut += 1
                }
                _ => {}
            }
        }
    }
    let mut by_source: BTreeMap<&str, Vec<&Started>> = BTreeMap::new();
    for run in &all {
        by_source.entry(run.source.as_str()).or_default().push(run);
    }
    // Between two logged starts of a source, every slot that no log shows started must have
    // been reported missed by the later one. Reporting more than that is allowed: a replica
    // that logged a start and died (or paused) before recording it has that slot reported
    // missed by the next holder, which cannot know it started.
    let (mut twice, mut unaccounted, mut overreported, mut missed) = (0usize, 0usize, 0i64, 0i64);
    for runs in by_source.values_mut() {
        runs.sort_by_key(|r| (r.slot, r.at_ms));
        for pair in runs.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let step = SCHEDULE_SECS * 1000;
            let unrun = (b.slot - a.slot) / step - 1;
            if a.slot == b.slot {
                twice += 1;
                eprintln!("slot ran twice: {a:?} {b:?}");
            } else if (b.slot - a.slot) % step != 0 || unrun > b.skipped {
                unaccounted += 1;
                eprintln!("slot gap not reported: {a:?} {b:?}");
                explain_gap(&slots, &faults, a, b);
            } else if unrun < b.skipped {
                overreported += b.skipped - unrun;
            }
            missed += b.skipped;
        }
    }

    // Events: unique ids, an unbroken chain per source, never backwards — in the shared sink
    // (what receivers see) and in the union of the replicas' own files (what each delivered).
    let mut files: Vec<serde_json::Value> = Vec::new();
    for slot in &slots {
        files.extend(committed_events(&slot.dir.path().join("events.jsonl")));
    }
    let files: Vec<serde_json::Value> = files
        .into_iter()
        .filter(|e| e["source"].as_str().is_some_and(|s| s.starts_with(&prefix)))
        .collect();
    let file_ids: BTreeSet<&str> = files.iter().filter_map(|e| e["id"].as_str()).collect();
    let redelivered = files.len() - file_ids.len();
    let mut seen = BTreeSet::new();
    let files_once: Vec<&serde_json::Value> = files
        .iter()
        .filter(|e| seen.insert(e["id"].as_str().unwrap_or_default().to_owned()))
        .collect();
    let (files_lost, files_repeated, files_backwards) = chain_breaks(&files_once);
    let shared: Vec<serde_json::Value> = query(&format!(
        "SELECT id, source, event, subject, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US'), changes::text FROM events WHERE source LIKE '{prefix}%'"
    ))
    .unwrap_or_default()
    .iter()
    .map(|r| {
        serde_json::json!({
            "id": r.get::<_, String>(0), "source": r.get::<_, String>(1),
            "event": r.get::<_, String>(2), "subject": r.get::<_, String>(3),
            "at": r.get::<_, String>(4),
            "changes": serde_json::from_str::<serde_json::Value>(&r.get::<_, String>(5)).unwrap_or_default(),
        })
    })
    .collect();
    let shared_ids: BTreeSet<&str> = shared.iter().filter_map(|e| e["id"].as_str()).collect();
    let duplicate_ids = shared.len() - shared_ids.len();
    let (lost, repeated, backwards) = chain_breaks(&shared.iter().collect::<Vec<_>>());
    let events = shared;

    // A source the victim took back itself (SIGCONT before anyone took it) before the next
    // fault is no takeover; it is counted apart.
    let mut takeovers: Vec<i64> = Vec::new();
    let mut kept = 0usize;
    for (k, fault) in faults.iter().enumerate() {
        let next = faults.get(k + 1).map_or(i64::MAX, |f| f.at_ms);
        for source in &fault.sources {
            let first = all
                .iter()
                .filter(|r| &r.source == source && r.at_ms > fault.at_ms && r.at_ms < next)
                .min_by_key(|r| r.at_ms);
            match first {
                Some(r) if r.replica != fault.replica => takeovers.push(r.at_ms - fault.at_ms),
                _ => kept += 1,
            }
        }
    }
    takeovers.sort_unstable();
    let kills = faults.iter().filter(|f| f.action == "SIGKILL").count();

    println!();
    println!(
        "failover figure: {n_sources} sources every {SCHEDULE_SECS}s, {REPLICAS} replicas, lease_secs = {lease_secs}, state {}",
        state.describe()
    );
    println!(
        "{} faults ({kills} SIGKILL + restart, {} SIGSTOP {}s + SIGCONT) over {:.0}s",
        faults.len(),
        faults.len() - kills,
        lease_secs * 2,
        ran_for.as_secs_f64()
    );
    println!("| check | value |");
    println!("|---|---|");
    println!("| syncs started | {} |", all.len());
    println!("| slots started twice | {twice} |");
    println!("| slot gaps not reported missed | {unaccounted} |");
    println!(
        "| slots reported missed that had started (their replica died or paused before recording the start) | {overreported} |"
    );
    println!("| slots reported missed (during takeovers) | {missed} |");
    println!("| change events in the shared sink | {} |", events.len());
    println!("| duplicate event ids in the shared sink | {duplicate_ids} |");
    println!("| changes lost (chain breaks), shared sink | {lost} |");
    println!("| changes delivered twice (chain overlaps), shared sink | {repeated} |");
    println!("| snapshots gone backwards, shared sink | {backwards} |");
    println!(
        "| replicas' own files: events / same id delivered by two replicas | {} / {redelivered} |",
        files.len()
    );
    println!(
        "| replicas' own files, ids deduplicated: lost / twice / backwards | {files_lost} / {files_repeated} / {files_backwards} |"
    );
    println!(
        "| takeover p50 / p95 / max (ms, {} moved sources) | {} / {} / {} |",
        takeovers.len(),
        percentile(&takeovers, 50.0),
        percentile(&takeovers, 95.0),
        takeovers.last().copied().unwrap_or(0)
    );
    println!("| sources the victim kept (resumed before a takeover) | {kept} |");
    println!("| syncs cut when their lease lapsed | {cut} |");
    println!("| sink commits refused by the fence | {fenced} |");
    println!();

    let _ = query(&format!(
        "DELETE FROM idhost_leases WHERE source IN ({})",
        quoted(&names)
    ));
    let _ = query(&format!("DELETE FROM events WHERE source LIKE '{prefix}%'"));
    assert!(
        !all.is_empty() && !events.is_empty(),
        "nothing ran or nothing was delivered"
    );
    assert_eq!(twice, 0, "a slot ran on two replicas");
    assert_eq!(unaccounted, 0, "a slot neither ran nor was reported missed");
    assert_eq!(
        duplicate_ids, 0,
        "an event id reached the shared sink twice"
    );
    if state.shared() {
        assert_eq!(lost, 0, "changes were lost across takeovers");
        assert_eq!(repeated, 0, "changes were delivered twice across takeovers");
        assert_eq!(backwards, 0, "a snapshot went backwards");
    } else if lost + repeated + backwards > 0 {
        // (per-replica state: shown, not asserted)
        println!(
            "per-replica state: a moved source starts from another replica's snapshot, so {lost} changes were lost and {repeated} repeated; set IDHOST_FAILOVER_STATE=postgres://… for shared state"
        );
    }
}
