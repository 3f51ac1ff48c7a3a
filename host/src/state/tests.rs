//! The state test suite, written once and run against both backends: each case is an async
//! fn over a [`StateStore`], instantiated for SQLite (a temporary file) and for Postgres
//! (127.0.0.1:5432, database `test`, a schema of its own per case so cases run in parallel;
//! skipped with a printed reason when Postgres is not there, unless `IDHOST_REQUIRE_SERVICES`
//! names `postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use idhost_connector_sdk::{Grant, Resource, Status};

use super::{Checkpoint, Fence, Phase, RecordTable, StateError, StateStore};
use crate::record::Batch;

fn user(n: u32, name: &str, status: Status) -> Resource {
    let mut r = Resource::new("user", &format!("u{n}"), name);
    r.status = status;
    r
}

fn batch(resources: Vec<Resource>, grants: Vec<Grant>) -> Arc<Batch> {
    Arc::new(Batch {
        resources,
        entitlements: Vec::new(),
        grants,
    })
}

fn grant(g: u32, u: u32) -> Grant {
    Grant::new(&format!("group:g{g}:member"), &format!("user:u{u}"))
}

/// Runs one whole sync of `source`: begin, one page, diff, commit. Returns the checkpoint
/// (after the diff) and the number of events.
async fn sync(
    store: &StateStore,
    source: &str,
    sync_id: &str,
    page: Arc<Batch>,
) -> (Checkpoint, u64) {
    let base = store
        .committed_snapshot(source)
        .await
        .unwrap()
        .map(|(g, _)| g);
    let mut cp = Checkpoint::new(
        sync_id.into(),
        "t0".into(),
        "h".into(),
        vec!["user".into()],
        base,
    );
    store.begin_sync(source, &cp).await.unwrap();
    cp.pages = 1;
    store
        .stage_page(source, &cp, "user", page, Vec::new())
        .await
        .unwrap();
    cp.type_index = 1;
    let events = store
        .diff(source, &mut cp, "t1".into(), &BTreeMap::new())
        .await
        .unwrap();
    (cp, events)
}

async fn pages_are_staged_with_their_checkpoint_and_resume_from_it(store: StateStore) {
    let mut cp = Checkpoint::new(
        "s1".into(),
        "t0".into(),
        "h".into(),
        vec!["user".into()],
        None,
    );
    store.begin_sync("a", &cp).await.unwrap();
    cp.pages = 1;
    cp.page_token = Some("next".into());
    let page = batch(
        vec![
            user(2, "B", Status::Enabled),
            user(1, "A", Status::Enabled),
            user(1, "A2", Status::Enabled),
        ],
        vec![grant(1, 1)],
    );
    store
        .stage_page("a", &cp, "user", page, Vec::new())
        .await
        .unwrap();
    let resumed = store.checkpoint("a").await.unwrap().expect("checkpoint");
    assert_eq!(resumed.pages, 1);
    assert_eq!(resumed.page_token.as_deref(), Some("next"));
    assert_eq!(resumed.phase, Phase::Listing);
    let (replayed, last) = store
        .replay_chunk("a", 1, RecordTable::Resources, String::new(), 10)
        .await
        .unwrap();
    let names: Vec<&str> = replayed
        .resources
        .iter()
        .map(|r| r.display_name.as_str())
        .collect();
    assert_eq!(
        names,
        ["A2", "B"],
        "id order, a record listed twice keeps its last version"
    );
    assert_eq!(last.as_deref(), Some("user:u2"));
    let (after, _) = store
        .replay_chunk("a", 1, RecordTable::Resources, "user:u1".into(), 10)
        .await
        .unwrap();
    assert_eq!(after.resources.len(), 1);
    let (grants, _) = store
        .replay_chunk("a", 1, RecordTable::Grants, String::new(), 10)
        .await
        .unwrap();
    assert_eq!(grants.grants, vec![grant(1, 1)]);
    assert!(store.committed_snapshot("a").await.unwrap().is_none());
}

async fn the_second_sync_emits_created_updated_removed_and_grant_events(store: StateStore) {
    let first = batch(
        vec![user(1, "A", Status::Enabled), user(2, "B", Status::Enabled)],
        vec![grant(1, 1)],
    );
    let (cp, events) = sync(&store, "a", "s1", first).await;
    assert_eq!(events, 0, "the first sync is the baseline");
    assert!(
        store
            .commit_sync("a", &cp, "t1".into())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.committed_snapshot("a").await.unwrap(),
        Some((1, "s1".to_owned()))
    );
    let second = batch(
        vec![
            user(1, "A renamed", Status::Enabled),
            user(3, "C", Status::Enabled),
        ],
        vec![grant(2, 3)],
    );
    let (cp, events) = sync(&store, "a", "s2", second).await;
    let removals = store.removals("a", &cp).await.unwrap();
    assert_eq!(
        (
            removals.resources,
            removals.resources_before,
            removals.grants,
            removals.grants_before
        ),
        (1, 2, 1, 1)
    );
    assert_eq!(events, 5);
    let counts: HashMap<String, u64> = store
        .event_counts("a", "s2")
        .await
        .unwrap()
        .into_iter()
        .collect();
    for kind in [
        "created",
        "updated",
        "deactivated",
        "grant_added",
        "grant_removed",
    ] {
        assert_eq!(counts.get(kind), Some(&1), "{kind}: {counts:?}");
    }
    let (positions, end) = store
        .open_delivery("a", "s2", vec!["fast".into(), "slow".into()])
        .await
        .unwrap();
    assert_eq!(positions.len(), 2);
    let from = positions[0].1;
    let out = store.events_after("a", from, 100).await.unwrap();
    assert_eq!(out.len(), 5);
    let updated = out
        .iter()
        .find(|(_, e)| e.subject == "user:u1")
        .expect("u1's event");
    assert_eq!(
        updated.1.changes["display_name"],
        serde_json::json!({"old": "A", "new": "A renamed"})
    );
    let removed = out
        .iter()
        .find(|(_, e)| e.subject == "user:u2")
        .expect("u2's event");
    assert_eq!(
        removed.1.changes["status"],
        serde_json::json!({"old": "enabled", "new": "deleted"})
    );
    assert_eq!(out.last().map(|(seq, _)| *seq), Some(end));
    store
        .record_delivery("a", "s2", "fast", Some(end))
        .await
        .unwrap();
    assert_eq!(
        store.delivered_sinks("a", "s2").await.unwrap(),
        ["fast".to_owned()].into_iter().collect()
    );
    let lag = store.sink_lag("a").await.unwrap();
    assert_eq!(
        lag.iter()
            .map(|l| (l.sink.as_str(), l.events))
            .collect::<Vec<_>>(),
        [("fast", 0), ("slow", 5)]
    );
    store.commit_sync("a", &cp, "t2".into()).await.unwrap();
    // `slow` still gets every event it has not taken, after the snapshot moved on.
    let (positions, _) = store
        .open_delivery("a", "s3", vec!["fast".into(), "slow".into()])
        .await
        .unwrap();
    let slow = positions.iter().find(|(s, _)| s == "slow").unwrap().1;
    assert_eq!(store.events_after("a", slow, 100).await.unwrap().len(), 5);
    // Back after a disappearance: reactivated, not created.
    let third = batch(
        vec![
            user(1, "A renamed", Status::Enabled),
            user(2, "B", Status::Enabled),
            user(3, "C", Status::Enabled),
        ],
        vec![grant(2, 3)],
    );
    let (_, events) = sync(&store, "a", "s4", third).await;
    assert_eq!(events, 1);
    assert_eq!(
        store.event_counts("a", "s4").await.unwrap(),
        vec![("reactivated".to_owned(), 1)]
    );
}

async fn an_incremental_listing_carries_over_what_it_did_not_see(store: StateStore) {
    let first = batch(
        vec![
            user(1, "A", Status::Enabled),
            user(2, "B", Status::Enabled),
            user(3, "C", Status::Enabled),
        ],
        Vec::new(),
    );
    let (cp, _) = sync(&store, "a", "s1", first).await;
    store.commit_sync("a", &cp, "t1".into()).await.unwrap();
    let mut cp = Checkpoint::new(
        "s2".into(),
        "t0".into(),
        "h".into(),
        vec!["user".into()],
        Some(1),
    );
    cp.incremental_types.insert("user".into());
    store.begin_sync("a", &cp).await.unwrap();
    store
        .stage_page(
            "a",
            &cp,
            "user",
            batch(vec![user(1, "A2", Status::Enabled)], Vec::new()),
            vec!["user:u3".into()],
        )
        .await
        .unwrap();
    let (carried, last) = store
        .carry_chunk("a", &cp, RecordTable::Resources, String::new(), 10)
        .await
        .unwrap();
    let ids: Vec<&str> = carried.resources.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["user:u2"], "not re-listed, not named removed");
    let copied = store
        .keep_carried(
            "a",
            &cp,
            RecordTable::Resources,
            String::new(),
            last.unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(copied, 1);
    let (again, _) = store
        .carry_chunk("a", &cp, RecordTable::Resources, String::new(), 10)
        .await
        .unwrap();
    assert!(again.resources.is_empty(), "a resume repeats nothing");
    let events = store
        .diff("a", &mut cp, "t2".into(), &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(events, 2, "u1 updated, u3 deactivated; u2 untouched");
}

async fn connector_state_commits_and_clears(store: StateStore) {
    assert!(store.connector_state("a").await.unwrap().is_empty());
    let staged: HashMap<String, Option<String>> = [
        ("delta".to_owned(), Some("link-1".to_owned())),
        ("other".to_owned(), Some("x".to_owned())),
    ]
    .into_iter()
    .collect();
    store.commit_connector_state("a", staged).await.unwrap();
    let removed: HashMap<String, Option<String>> =
        [("other".to_owned(), None)].into_iter().collect();
    store.commit_connector_state("a", removed).await.unwrap();
    let state = store.connector_state("a").await.unwrap();
    assert_eq!(state.len(), 1);
    assert_eq!(state["delta"], "link-1");
    assert!(store.connector_state("b").await.unwrap().is_empty());
    // Committed with the snapshot, never before it.
    let (mut cp, _) = sync(&store, "b", "s1", batch(Vec::new(), Vec::new())).await;
    cp.staged_state
        .insert("delta".into(), Some("link-b".into()));
    store.commit_sync("b", &cp, "t".into()).await.unwrap();
    assert_eq!(store.connector_state("b").await.unwrap()["delta"], "link-b");
    store.clear_connector_state("a").await.unwrap();
    assert!(store.connector_state("a").await.unwrap().is_empty());
}

async fn a_held_sync_waits_and_only_a_listing_one_is_discarded(store: StateStore) {
    let (cp, _) = sync(
        &store,
        "a",
        "s1",
        batch(vec![user(1, "A", Status::Enabled)], Vec::new()),
    )
    .await;
    store.commit_sync("a", &cp, "t".into()).await.unwrap();
    let mut cp = Checkpoint::new(
        "s2".into(),
        "t0".into(),
        "h".into(),
        vec!["user".into()],
        Some(1),
    );
    store.begin_sync("a", &cp).await.unwrap();
    cp.phase = Phase::Held;
    cp.removals = Some(store.removals("a", &cp).await.unwrap());
    store.save_checkpoint("a", &cp).await.unwrap();
    let held = store.checkpoint("a").await.unwrap().unwrap();
    assert_eq!(held.phase, Phase::Held);
    assert_eq!(held.removals.map(|r| r.resources), Some(1));
    // `idhost approve` goes on from the held checkpoint: the diff and the commit.
    let mut approved = held.clone();
    let events = store
        .diff("a", &mut approved, "t".into(), &BTreeMap::new())
        .await
        .unwrap();
    assert_eq!(events, 1);
    assert!(
        store.discard_sync("a").await.is_err(),
        "a delivering sync is never discarded"
    );
    store.commit_sync("a", &approved, "t".into()).await.unwrap();
    assert!(store.checkpoint("a").await.unwrap().is_none());
    let cp = Checkpoint::new(
        "s3".into(),
        "t0".into(),
        "h".into(),
        vec!["user".into()],
        Some(2),
    );
    store.begin_sync("a", &cp).await.unwrap();
    store.discard_sync("a").await.unwrap();
    assert!(store.checkpoint("a").await.unwrap().is_none());
    assert_eq!(
        store.committed_snapshot("a").await.unwrap(),
        Some((2, "s2".to_owned()))
    );
}

/// Defines each case as a test of both backends.
macro_rules! both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::StateStore::open(&dir.path().join("state.db")).unwrap();
                    super::$case(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $case() {
                    let Some((store, _)) = super::pg_store(stringify!($case)).await else {
                        return;
                    };
                    super::$case(store).await;
                }
            )*
        }
    };
}

both_backends!(
    pages_are_staged_with_their_checkpoint_and_resume_from_it,
    the_second_sync_emits_created_updated_removed_and_grant_events,
    an_incremental_listing_carries_over_what_it_did_not_see,
    connector_state_commits_and_clears,
    a_held_sync_waits_and_only_a_listing_one_is_discarded,
);

/// A Postgres state store in a fresh schema named after `case`, and its URL; `None` (with
/// `SKIPPED:` printed) when Postgres is not on 127.0.0.1:5432.
pub(crate) async fn pg_store(case: &str) -> Option<(StateStore, secrecy::SecretString)> {
    let base = "postgres://postgres@127.0.0.1:5432/test";
    let target = crate::pg::parse_url(base).unwrap();
    let client = match crate::pg::connect(&target, "test").await {
        Ok((client, _)) => client,
        Err(e) => {
            let required = std::env::var("IDHOST_REQUIRE_SERVICES").is_ok_and(|l| {
                l.split(',')
                    .any(|s| s.trim().eq_ignore_ascii_case("postgres"))
            });
            assert!(!required, "Postgres on 127.0.0.1:5432 is required: {e}");
            eprintln!("SKIPPED: no Postgres on 127.0.0.1:5432 ({e})");
            return None;
        }
    };
    let schema = format!("state_{}_{}", std::process::id(), case);
    let schema = &schema[..schema.len().min(63)];
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
        ))
        .await
        .unwrap();
    let url = secrecy::SecretString::from(format!("{base}?options=-csearch_path%3D{schema}"));
    let store = StateStore::connect(&url).await.unwrap();
    Some((store, url))
}

#[tokio::test]
async fn postgres_refuses_every_commit_of_a_sync_whose_lease_moved_on() {
    let Some((store, url)) = pg_store("fenced").await else {
        return;
    };
    let fence = |epoch| Fence {
        source: "a".into(),
        holder: "replica-1".into(),
        epoch,
    };
    let fenced = store.fenced(fence(1));
    let cp = Checkpoint::new(
        "s1".into(),
        "t0".into(),
        "h".into(),
        vec!["user".into()],
        None,
    );
    let refused = fenced.begin_sync("a", &cp).await.unwrap_err();
    assert!(
        matches!(&refused, StateError::Fenced { source, epoch: 1 } if source == "a"),
        "no lease row: {refused}"
    );
    // Another source is not fenced by this handle.
    fenced.begin_sync("b", &cp).await.unwrap();
    let target = {
        use secrecy::ExposeSecret as _;
        crate::pg::parse_url(url.expose_secret()).unwrap()
    };
    let (client, _) = crate::pg::connect(&target, "test").await.unwrap();
    client
        .execute(
            "INSERT INTO idhost_leases (source, holder, epoch) VALUES ('a', 'replica-1', 1)",
            &[],
        )
        .await
        .unwrap();
    fenced.begin_sync("a", &cp).await.unwrap();
    fenced
        .stage_page(
            "a",
            &cp,
            "user",
            batch(vec![user(1, "A", Status::Enabled)], Vec::new()),
            Vec::new(),
        )
        .await
        .unwrap();
    // Another replica takes the source over: epoch 2.
    client
        .execute(
            "UPDATE idhost_leases SET holder = 'replica-2', epoch = 2 WHERE source = 'a'",
            &[],
        )
        .await
        .unwrap();
    let mut cp2 = cp.clone();
    let staged = fenced
        .stage_page(
            "a",
            &cp,
            "user",
            batch(vec![user(2, "B", Status::Enabled)], Vec::new()),
            Vec::new(),
        )
        .await;
    assert!(
        matches!(staged, Err(StateError::Fenced { epoch: 1, .. })),
        "{staged:?}"
    );
    assert!(matches!(
        fenced.save_checkpoint("a", &cp).await,
        Err(StateError::Fenced { .. })
    ));
    assert!(matches!(
        fenced
            .diff("a", &mut cp2, "t".into(), &BTreeMap::new())
            .await,
        Err(StateError::Fenced { .. })
    ));
    assert!(matches!(
        fenced.commit_sync("a", &cp, "t".into()).await,
        Err(StateError::Fenced { .. })
    ));
    assert!(matches!(
        fenced.record_delivery("a", "s1", "db", Some(1)).await,
        Err(StateError::Fenced { .. })
    ));
    let staged_state: HashMap<String, Option<String>> =
        [("delta".to_owned(), Some("x".to_owned()))]
            .into_iter()
            .collect();
    assert!(matches!(
        fenced.commit_connector_state("a", staged_state).await,
        Err(StateError::Fenced { .. })
    ));
    assert!(store.committed_snapshot("a").await.unwrap().is_none());
    let (kept, _) = store
        .replay_chunk("a", 1, RecordTable::Resources, String::new(), 10)
        .await
        .unwrap();
    assert_eq!(
        kept.resources.len(),
        1,
        "the page after the takeover never landed"
    );
    // The new holder's handle commits.
    let new_holder = store.fenced(Fence {
        source: "a".into(),
        holder: "replica-2".into(),
        epoch: 2,
    });
    new_holder.save_checkpoint("a", &cp).await.unwrap();
}

#[tokio::test]
async fn audit_rows_live_in_the_postgres_state_database() {
    let Some((_store, url)) = pg_store("audit").await else {
        return;
    };
    use secrecy::ExposeSecret as _;
    let text = format!(
        "state_url = \"{}\"\n[sources.corp]\nconnector = \"fixture\"\n",
        url.expose_secret()
    );
    let config =
        crate::config::parse(std::path::Path::new("idhost.toml"), text, &|_| None).unwrap();
    let mut record = crate::audit::AuditRecord {
        at: "2026-01-01T00:00:00Z".into(),
        actor: "ops".into(),
        source: "corp".into(),
        operation: "grant".into(),
        target: "group:g1:member user:u1".into(),
        dry_run: false,
        result: "pending".into(),
        detail: "intent".into(),
    };
    let id = tokio::task::spawn_blocking({
        let (config, record) = (config.clone(), record.clone());
        move || crate::audit::append_in(&config, &record)
    })
    .await
    .unwrap()
    .unwrap();
    record.result = "changed".into();
    let finished = tokio::task::spawn_blocking({
        let config = config.clone();
        move || crate::audit::finish_in(&config, id, &record)
    })
    .await
    .unwrap();
    finished.unwrap();
    let target = crate::pg::parse_url(url.expose_secret()).unwrap();
    let (client, _) = crate::pg::connect(&target, "test").await.unwrap();
    let row = client
        .query_one(
            "SELECT result, actor FROM idhost_state_audit WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        ("changed".to_owned(), "ops".to_owned())
    );
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

/// Stages `users` users in pages of 1,000 as sync `sync_id` (every tenth renamed when
/// `renamed`), diffs and commits; returns (stage seconds, diff seconds, events).
async fn timed_sync(
    store: &StateStore,
    sync_id: &str,
    users: u32,
    renamed: bool,
) -> (f64, f64, u64) {
    let base = store
        .committed_snapshot("big")
        .await
        .unwrap()
        .map(|(g, _)| g);
    let mut cp = Checkpoint::new(
        sync_id.into(),
        "t0".into(),
        "h".into(),
        vec!["user".into()],
        base,
    );
    store.begin_sync("big", &cp).await.unwrap();
    let started = std::time::Instant::now();
    for page in 0..users / 1000 {
        let resources = (page * 1000..(page + 1) * 1000)
            .map(|n| {
                let name = if renamed && n % 10 == 0 {
                    format!("User {n} (renamed)")
                } else {
                    format!("User {n}")
                };
                user(n, &name, Status::Enabled)
            })
            .collect();
        cp.pages += 1;
        store
            .stage_page("big", &cp, "user", batch(resources, Vec::new()), Vec::new())
            .await
            .unwrap();
    }
    let staged = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let events = store
        .diff("big", &mut cp, "t".into(), &BTreeMap::new())
        .await
        .unwrap();
    let diffed = started.elapsed().as_secs_f64();
    store.commit_sync("big", &cp, "t".into()).await.unwrap();
    (staged, diffed, events)
}

/// A figure, not a check: `cargo test -p idhost --lib state::tests::backend_figures --
/// --ignored --nocapture` prints staging and diff times of 100k users on both backends.
#[tokio::test]
#[ignore = "a figure, printed; run with --ignored --nocapture"]
async fn backend_figures() {
    const USERS: u32 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let mut backends = vec![(
        "sqlite",
        StateStore::open(&dir.path().join("state.db")).unwrap(),
    )];
    if let Some((store, _)) = pg_store("figures").await {
        backends.push(("postgres", store));
    }
    println!("backend   users  stage s  users/s  diff s  events  peak RSS MiB");
    for (name, store) in backends {
        timed_sync(&store, "s1", USERS, false).await;
        let (staged, diffed, events) = timed_sync(&store, "s2", USERS, true).await;
        println!(
            "{name:<8} {USERS:>6} {staged:>8.2} {:>8.0} {diffed:>7.2} {events:>7} {:>12.0}",
            f64::from(USERS) / staged,
            peak_rss_mib()
        );
        assert_eq!(events, u64::from(USERS / 10));
    }
}
