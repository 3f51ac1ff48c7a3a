//! Issue 6 benchmarks (ignored; they print their figures). Run on a release build:
//!
//! ```text
//! cargo build --release -p idhost -p fixture-connector
//! cargo test --release -p idhost --test events_bench -- --ignored --nocapture --test-threads 1
//! ```
//!
//! - `bench_events_for_100k_users_with_5_percent_changed`: the state database's page staging,
//!   diff, event read-out and snapshot commit for a 100k-user source (plus 1M grants, to show
//!   the diff's memory does not grow with the source);
//! - `bench_postgres_snapshot_load_of_1m_grants`: the postgres sink loading 1M grants, then
//!   the same snapshot with 1% changed (needs the local PostgreSQL);
//! - `bench_end_to_end_sync_with_events`: the release binary syncing 100k users and 900k
//!   memberships from the fixture plugin into SQLite, then again with 5% of users changed.

use std::sync::Arc;
use std::time::Instant;

use idhost::record::{Batch, Counts, RunStatus, SyncRun};
use idhost::state::Checkpoint;
use idhost::state::StateStore;
use idhost_connector_sdk::{Email, Grant, Resource, Status, UserTrait};

fn user(n: u64, renamed: bool, disabled: bool) -> Resource {
    let mut r = Resource::new(
        "user",
        &format!("u{n}"),
        if renamed {
            format!("User {n} (renamed)")
        } else {
            format!("User {n}")
        },
    );
    let login = format!("user{n}@example.com");
    r.user = Some({
        let mut built = UserTrait::default();
        built.login = Some(login.clone());
        built.emails = vec![Email::new(login, true)];
        built.department = Some(format!("Dept {}", n % 7));
        built
    });
    if disabled {
        r.status = Status::Disabled;
    }
    r
}

fn grant(g: u64, u: u64) -> Grant {
    Grant::new(&format!("group:g{g}:member"), &format!("user:u{u}"))
}

/// Peak resident memory of this process so far, in MiB.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Stages `pages` as one sync of `source` (on top of `base`), diffs, reads the events out and
/// commits; prints the timings and returns the number of events.
async fn one_sync(
    state: &StateStore,
    source: &str,
    base: Option<i64>,
    rtype: &str,
    pages: impl IntoIterator<Item = Batch>,
    label: &str,
) -> u64 {
    let mut cp = Checkpoint::new(
        uuid::Uuid::now_v7().to_string(),
        "2026-01-01T00:00:00Z".into(),
        "h".into(),
        vec![rtype.into()],
        base,
    );
    state.begin_sync(source, &cp).await.expect("begin");
    let mut records = 0;
    let started = Instant::now();
    for batch in pages {
        records += batch.len();
        cp.pages += 1;
        state
            .stage_page(source, &cp, rtype, Arc::new(batch), Vec::new())
            .await
            .expect("stage");
    }
    cp.type_index = 1;
    let staged = started.elapsed();
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let events = state
        .diff(
            source,
            &mut cp,
            "2026-01-01T00:00:00Z".into(),
            &Default::default(),
        )
        .await
        .expect("diff");
    let diffed = started.elapsed();
    let started = Instant::now();
    let (mut after, mut read) = (0, 0usize);
    loop {
        let chunk = state
            .events_after(source, after, 2000)
            .await
            .expect("events");
        let Some((last, _)) = chunk.last() else { break };
        after = *last;
        read += chunk.len();
    }
    let read_out = started.elapsed();
    let started = Instant::now();
    state
        .commit_sync(source, &cp, "2026-01-01T00:00:01Z".into())
        .await
        .expect("commit");
    let committed = started.elapsed();
    println!(
        "{label}: staged {records} records in {:.2}s ({:.0}/s); diff {:.3}s -> {events} events; read out {read} events in {:.3}s; snapshot commit {:.3}s; peak RSS {:.0} MiB before the diff, {:.0} MiB after",
        staged.as_secs_f64(),
        records as f64 / staged.as_secs_f64(),
        diffed.as_secs_f64(),
        read_out.as_secs_f64(),
        committed.as_secs_f64(),
        rss_before,
        peak_rss_mib()
    );
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture on a release build"]
async fn bench_events_for_100k_users_with_5_percent_changed() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = StateStore::open(&dir.path().join("state.db")).expect("state");
    const USERS: u64 = 100_000;
    let pages = |f: &dyn Fn(u64) -> Option<Resource>| -> Vec<Batch> {
        let all: Vec<Resource> = (0..USERS + 1000).filter_map(f).collect();
        all.chunks(1000)
            .map(|c| Batch {
                resources: c.to_vec(),
                ..Batch::default()
            })
            .collect()
    };
    one_sync(
        &state,
        "corp",
        None,
        "user",
        pages(&|n| (n < USERS).then(|| user(n, false, false))),
        "100k users, baseline",
    )
    .await;
    // 5% changed: 2,000 renamed, 1,000 disabled, 1,000 gone, 1,000 new.
    let changed = pages(&|n| match n {
        n if n < 2000 => Some(user(n, true, false)),
        n if n < 3000 => Some(user(n, false, true)),
        n if n < 4000 => None,
        n => Some(user(n, false, false)),
    });
    let events = one_sync(
        &state,
        "corp",
        Some(1),
        "user",
        changed,
        "100k users, 5% changed",
    )
    .await;
    assert_eq!(events, 5000);

    // Made page by page (never all in memory), listed group by group as a connector pages
    // through each group's members.
    let grants = |skip: u64, extra: u64| {
        (0..(1_000_000u64 + extra).div_ceil(10_000)).map(move |page| Batch {
            grants: (page * 10_000..((page + 1) * 10_000).min(1_000_000 + extra))
                .filter(|k| *k >= skip)
                .map(|k| grant(k / 1000, k % 1000))
                .collect(),
            ..Batch::default()
        })
    };
    one_sync(
        &state,
        "groups",
        None,
        "group",
        grants(0, 0),
        "1M grants, baseline",
    )
    .await;
    let events = one_sync(
        &state,
        "groups",
        Some(1),
        "group",
        grants(5000, 5000),
        "1M grants, 1% changed",
    )
    .await;
    assert_eq!(events, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture on a release build"]
async fn bench_postgres_snapshot_load_of_1m_grants() {
    let (client, schema, url) = match crate::support::events::pg_schema("idhost_bench").await {
        Ok(x) => x,
        Err(reason) => {
            idhost_e2e::services::skip("postgres", &reason);
            return;
        }
    };
    let _cleanup = crate::support::events::DropSchema(schema.clone());
    let text = format!(
        "[sources.bench]\nconnector = \"fixture\"\n[sinks.pg]\ntype = \"postgres\"\nurl = \"{url}\"\n"
    );
    let config =
        idhost::config::parse(std::path::Path::new("bench.toml"), text, &|_| None).expect("config");
    let router = idhost::route::Router::open(&config.sinks)
        .await
        .expect("sink");
    let sinks = router.sinks();
    let sink = &sinks[0];
    for (label, skip, extra) in [
        ("1M grants, first load", 0u64, 0u64),
        ("1M grants, 1% changed", 5000, 5000),
    ] {
        let sync_id = uuid::Uuid::now_v7().to_string();
        let started = Instant::now();
        let mut session = sink.begin("bench", &sync_id).await.expect("begin");
        let all: Vec<Grant> = (skip..1_000_000u64 + extra)
            .map(|k| grant(k / 1000, k % 1000))
            .collect();
        for chunk in all.chunks(10_000) {
            session
                .write(&Batch {
                    grants: chunk.to_vec(),
                    ..Batch::default()
                })
                .await
                .expect("write");
        }
        let copied = started.elapsed();
        let run = SyncRun {
            source: "bench".into(),
            sync_id,
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            status: RunStatus::Succeeded,
            counts: Counts::default(),
            error: None,
        };
        let started = Instant::now();
        session.commit(&run).await.expect("commit");
        let swapped = started.elapsed();
        println!(
            "postgres {label}: COPY of {} grants {:.2}s ({:.0}/s); swap transaction {:.2}s; total {:.2}s",
            all.len(),
            copied.as_secs_f64(),
            all.len() as f64 / copied.as_secs_f64(),
            swapped.as_secs_f64(),
            (copied + swapped).as_secs_f64()
        );
    }
    let rows: i64 = client
        .query_one(&format!("SELECT count(*) FROM {schema}.grants"), &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 1_000_000);
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture on a release build"]
fn bench_end_to_end_sync_with_events() {
    let s = crate::support::events::Scratch::new();
    let settings = |extra: &str| {
        format!("users = 100000\ngroups = 1000\nmemberships = 900000\npage_size = 5000\n{extra}")
    };
    let sinks = r#"
[sinks.db]
type = "sqlite"
path = "out.db"
records = ["resource", "entitlement", "grant", "event", "sync_run"]
"#;
    for (label, extra) in [
        ("baseline", String::new()),
        (
            "5% of users changed",
            format!(
                "rename_users = [{}]\ndisabled_users = [{}]\nmissing_users = [{}]",
                (0..2500)
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                (2500..3750)
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                (3750..5000)
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
    ] {
        let c = crate::support::events::config(&s, &settings(&extra), sinks);
        let started = Instant::now();
        crate::support::events::sync_ok(&s, &c, &[]);
        let took = started.elapsed().as_secs_f64();
        let db = s.db("out.db");
        let records = crate::support::events::count(&db, "SELECT count(*) FROM resources")
            + crate::support::events::count(&db, "SELECT count(*) FROM entitlements")
            + crate::support::events::count(&db, "SELECT count(*) FROM grants");
        let events = crate::support::events::count(&db, "SELECT count(*) FROM events");
        println!(
            "end to end, {label}: {records} records in {took:.2}s ({:.0} records/s), {events} events in the sink so far",
            records as f64 / took
        );
    }
}
