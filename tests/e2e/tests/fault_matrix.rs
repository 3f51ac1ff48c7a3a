//! Issue 8, fault matrix: every row goes through the real `idhost` binary, the real plugins and
//! the simulators (or the fixture plugin where the fault is the plugin's own), and asserts that
//! the source either completes correctly or fails cleanly with its previous snapshot intact
//! (same sync_id, same counts), and that no change event is lost: an upstream change made before
//! the faulty sync shows up as exactly one event once a later sync completes. Every row pins
//! ONE of the two outcomes, with the reason beside it.
//!
//! | fault | covered by |
//! |---|---|
//! | 429 with Retry-After | entra.rs `batches_refused_with_429_and_retry_after_finish_with_no_lost_page`; here `clickwrap_429_with_retry_after` |
//! | 429 with an absurd Retry-After (found by fuzz/) | here `clickwrap_429_with_an_absurd_retry_after` (a wait beyond the policy's `max_delay` is handed back: fails cleanly) |
//! | 429 without Retry-After | ironclad.rs `rate_limit_429_without_retry_after_is_retried_with_backoff` |
//! | 500 burst | ironclad.rs `burst_of_three_500s_on_a_user_page_is_retried` |
//! | 502 burst | here `entra_502_burst` |
//! | 503 burst | here `clickwrap_503_burst`; host/tests/it/http_policy.rs `retries_a_503_burst_for_reads_but_not_a_500_for_a_post` |
//! | 503 that never ends | here `ironclad_503_forever_fails_cleanly` |
//! | connection reset | here `ironclad_connection_reset` |
//! | slow response beyond `request_timeout_secs = 1` | here `clickwrap_one_slow_response` (retried), `clickwrap_every_response_slow_fails_cleanly` |
//! | token expiry mid-sync | ironclad.rs `token_expiring_after_the_first_user_page_is_refreshed_and_the_sync_is_complete`; here `entra_token_expiry_mid_sync`, `clickwrap_token_expiry_mid_sync` |
//! | token revocation mid-sync | here `ironclad_token_revocation_mid_sync` |
//! | malformed JSON | ironclad.rs `malformed_user_page_fails_the_source_cleanly_and_keeps_the_previous_snapshot`; here `entra_malformed_batch` |
//! | truncated body | here `clickwrap_truncated_body`; host/tests/it/http_policy.rs `a_truncated_body_is_an_error_not_a_short_page` |
//! | wrong content type | here `entra_wrong_content_type` |
//! | page token that repeats | host/tests/it/sync_fixture.rs `a_repeated_page_token_fails_the_listing_instead_of_looping` (fixture `repeat_token_on`) |
//! | empty page with has_more / nextLink | here `clickwrap_empty_page_with_has_more`, `entra_empty_page_with_next_link` |
//! | user with no email | here `clickwrap_user_without_email` |
//! | 20 MB response | here `clickwrap_20_mb_response` |
//! | plugin panics | host/tests/it/sync_fixture.rs `a_panicking_and_a_failing_source_fail_alone_and_keep_their_previous_snapshots` |
//! | plugin hangs past `call_timeout_secs` (awaiting forever, or blocking its thread) | here `fixture_plugin_hang`, `fixture_plugin_blocking_its_thread`; host/src/plugin_runtime.rs unit tests |
//! | more sources blocking their plugin threads than cores (4 on the 2-core machine) | here `fixture_more_blocking_sources_than_cores_all_time_out` (fails cleanly: every source with "did not answer within call_timeout_secs = 2", exit 1 after 2.7 s), `fixture_sigterm_with_more_blocked_sources_than_cores` (`idhost run`: `/healthz` answers, SIGTERM exits 0 after 1.1 s with `--shutdown-grace 1s`) |
//! | `open` blocking its thread | here `fixture_plugin_open_blocking_its_thread` (fails cleanly in `call_timeout_secs`) |
//! | provisioning call blocking its thread | here `fixture_provisioning_blocking_its_thread` (exit 1 in `call_timeout_secs`, audited `failed`) |
//! | a per-resource detail call fails | here `fixture_detail_call_failure_stops_the_page_at_once` (fails cleanly at the first failure: 1.3 s, not the page's 10 s of calls) |
//! | user deleted upstream between offset pages | ironclad_fidelity.rs, clickwrap_fidelity.rs `a_user_deleted_between_pages_is_relisted_and_only_that_user_is_removed` (completes: the type is listed again; that user removed once, nobody else) |
//! | offset listing that never stops shifting | ironclad_fidelity.rs, clickwrap_fidelity.rs `a_listing_that_never_stops_shifting_fails_the_source_as_incomplete_with_no_removal` (fails cleanly after 3 listings, no removal event) |
//! | plugin built against a newer 1.x SDK (unknown capability, status, account type, purpose) | forward_compat.rs `a_plugin_from_a_newer_sdk_loads_syncs_and_its_unknown_values_are_reported` (completes; the values kept as sent, warned about and counted in `counts.unknown`) |
//! | sink fails mid-write: SQLite locked by another writer (read-only mode does not stop root) | here `sqlite_sink_locked_by_another_writer_fails_cleanly` |
//! | sink fails mid-write: Postgres down | host/tests/it/sinks_postgres.rs `postgres_down_at_write_time_fails_that_source_and_keeps_its_previous_snapshot` |
//! | SIGTERM mid-sync, resumed | host/tests/it/checkpoints_resume.rs `a_stopped_sync_resumes_and_restart_starts_over_with_the_same_result`; host/tests/it/sync_fixture.rs `sigterm_mid_sync_leaves_the_previous_snapshot_whole`; host/tests/it/daemon.rs `sigterm_mid_sync_cancels_within_the_bound_and_leaves_no_partial_snapshot` |
//! | SIGKILL mid-sync, resumed | host/tests/it/checkpoints_resume.rs `a_sync_killed_mid_way_resumes_from_its_last_page_and_ends_like_an_uninterrupted_one` |
//! | sink down for two syncs while another is healthy | here `webhook_down_for_two_syncs_catches_up_exactly_once_while_sqlite_moves_on` (SQLite has each sync's data; the webhook later gets every event exactly once) |
//! | `--restart` and a config change while a sync is delivering (killed mid-POST) | here `restart_and_config_change_during_pending_delivery_lose_and_double_no_event` (one event per change in every sink); secret rotation: host/src/sync/source.rs `rotating_a_secret_keeps_the_config_hash_and_a_setting_change_does_not` |
//! | JSONL commit cut mid-append (crash) | here `jsonl_commit_cut_mid_append_shows_no_partial_sync_and_redelivery_does_not_double` (fault hook `IDHOST_FAULT_JSONL_CRASH_AFTER_BYTES`; `records = ["event"]` gets no `sync_run` line) |
//! | outbox past its cap | host/src/state/outbox.rs `a_sink_behind_keeps_the_events_it_has_not_taken_and_loses_only_past_the_cap` |
//! | half of a tenant removed upstream | here `removing_half_the_tenant_is_held_until_approve_commits_exactly_the_removals` (held, exit 1, nothing written; `idhost approve` commits exactly the removals in every sink) |
//! | a small removal; `--allow-removals` | here `a_small_removal_is_not_held_and_allow_removals_accepts_a_large_one` |
//! | one source's long diff while another syncs (fault hook `IDHOST_FAULT_SLOW_DIFF=legal:8000`) | here `a_long_diff_of_one_source_does_not_stall_another_sources_sync` (the other source finishes its whole sync inside the 8 s diff) |
//! | a held sync under `idhost run` | host/tests/it/notify.rs `a_held_sync_notifies_once_however_often_the_daemon_runs_it` (one `sync_held` notice, no event) |
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap or expect is a failed assertion, with its message"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "tests reach sinks, databases and simulators the way an outside client would"
)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use idhost_e2e::{Db, Run, Scratch, require_plugins, toml_str};
use serde_json::{Value, json};
use sim_common::{Fault, FaultAction, FaultRule, Faults, RunningServer};

const SINK: &str = "\n[sinks.db]\ntype = \"sqlite\"\npath = \"idhost.db\"\ninputs = [\"*\"]\nrecords = [\"resource\", \"entitlement\", \"grant\", \"event\", \"sync_run\"]\n";

/// How a faulty sync ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    Completed,
    FailedCleanly,
}

/// One source over one simulator, in a scratch directory.
struct Case {
    s: Scratch,
    config: PathBuf,
    source: &'static str,
    faults: Faults,
    url: String,
    _server: RunningServer,
}

impl Case {
    fn db(&self) -> Db {
        self.s.db("idhost.db")
    }

    fn events_about(&self, subject: &str) -> i64 {
        self.db().count(
            "SELECT count(*) FROM events WHERE source = ?1 AND subject = ?2",
            [self.source, subject],
        )
    }

    async fn sync(&self) -> Run {
        self.s.sync(&self.config, &[]).await
    }

    /// Baseline sync, `change` upstream (it returns the resource id that disappears), `inject`,
    /// the faulty sync, then a clean recovery sync. Asserts the contract; returns how the faulty
    /// sync ended.
    async fn row<G>(
        &self,
        change: impl FnOnce() -> String,
        inject: impl FnOnce(&Faults) -> G,
    ) -> Ended {
        self.sync().await.expect_code(0);
        let before = self.db().snapshot(self.source);
        assert_eq!(before.sync_ids.len(), 1, "{before:?}");
        let gone = change();
        assert!(
            self.db().resource_ids(self.source, "user").contains(&gone),
            "{gone} is in the baseline"
        );
        // Whatever `inject` returns (a lock, say) lives for the faulty sync only.
        let guard = inject(&self.faults);
        let run = self.sync().await;
        drop(guard);
        let ended = match run.code {
            Some(0) => {
                let after = self.db().snapshot(self.source);
                assert_eq!(after.sync_ids.len(), 1, "{after:?}");
                assert_ne!(after.sync_ids, before.sync_ids, "a new snapshot");
                assert!(
                    !self.db().resource_ids(self.source, "user").contains(&gone),
                    "the completed sync saw the change\n{}",
                    run.text()
                );
                Ended::Completed
            }
            Some(1) => {
                assert_eq!(
                    self.db().snapshot(self.source),
                    before,
                    "previous snapshot intact\n{}",
                    run.text()
                );
                assert_eq!(self.events_about(&gone), 0, "no event from a failed sync");
                let row = run.source(self.source);
                eprintln!("{}: failed with: {}", self.source, row["error"]);
                assert_eq!(row["status"], "failed", "{}", run.text());
                assert!(
                    row["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "{}",
                    run.text()
                );
                Ended::FailedCleanly
            }
            _ => panic!("neither completed nor failed cleanly\n{}", run.text()),
        };
        self.faults.clear();
        self.sync().await.expect_code(0);
        assert_eq!(
            self.events_about(&gone),
            1,
            "the removal of {gone} is one event, not lost, not doubled; events: {:?}",
            self.db().strings(
                "SELECT event || ' ' || subject || ' ' || sync_id FROM events WHERE source = ?1 ORDER BY seq DESC LIMIT 8",
                [self.source]
            )
        );
        ended
    }
}

fn rule(path: &str, action: FaultAction) -> FaultRule {
    FaultRule::any(action).on_path(path)
}

// ---------------------------------------------------------------- simulators

async fn ironclad(extra: &str) -> (Case, sim_ironclad::Simulator) {
    require_plugins(&["idhost_ironclad"]);
    let sim = sim_ironclad::Simulator::new(sim_ironclad::SimConfig {
        users: 600,
        groups: 6,
        members_per_group: 10,
        ..sim_ironclad::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve sim-ironclad");
    let c = sim.config();
    let s = Scratch::new();
    let config = s.config(&format!(
        "[sources.legal]\nconnector = \"ironclad\"\nread_only = true\n{extra}\n[sources.legal.settings]\nbase_url = {}\nclient_id = {}\nclient_secret = {}\nas_user_email = {}\npage_size = 100\n{SINK}",
        toml_str(&server.url()),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        toml_str(&c.admin_email),
    ));
    let case = Case {
        s,
        config,
        source: "legal",
        faults: sim.faults().clone(),
        url: server.url(),
        _server: server,
    };
    (case, sim)
}

async fn entra(extra: &str, settings: &str) -> (Case, sim_graph::Simulator) {
    require_plugins(&["idhost_entra"]);
    let sim = sim_graph::Simulator::new(sim_graph::SimConfig {
        users: 600,
        groups: 40,
        memberships: 800,
        ..sim_graph::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve sim-graph");
    let c = sim.config();
    let s = Scratch::new();
    let config = s.config(&format!(
        "[sources.corp]\nconnector = \"entra\"\nread_only = true\n{extra}\n[sources.corp.settings]\ntenant_id = {}\nclient_id = {}\nclient_secret = {}\ngraph_url = {url}\nlogin_url = {url}\npage_size = 100\n{settings}\n{SINK}",
        toml_str(&c.tenant_id),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        url = toml_str(&server.url()),
    ));
    let case = Case {
        s,
        config,
        source: "corp",
        faults: sim.faults().clone(),
        url: server.url(),
        _server: server,
    };
    (case, sim)
}

async fn clickwrap(extra: &str) -> (Case, sim_clickwrap::Simulator) {
    require_plugins(&["idhost_clickwrap"]);
    let sim = sim_clickwrap::Simulator::new(sim_clickwrap::SimConfig {
        users: 450,
        ..sim_clickwrap::SimConfig::default()
    });
    let server = sim.serve(0).await.expect("serve sim-clickwrap");
    let c = sim.config();
    let s = Scratch::new();
    let config = s.config(&format!(
        "[sources.clickwrap]\nconnector = \"clickwrap\"\n{extra}\n[sources.clickwrap.settings]\nbase_url = {}\ntoken_url = {}\nclient_id = {}\nclient_secret = {}\naccount_id = \"{}\"\nper_page = 100\n{SINK}",
        toml_str(&format!("{}/v1.1", server.url())),
        toml_str(&format!("{}/oauth/token", server.url())),
        toml_str(&c.client_id),
        toml_str(&c.client_secret),
        c.account_id,
    ));
    let case = Case {
        s,
        config,
        source: "clickwrap",
        faults: sim.faults().clone(),
        url: server.url(),
        _server: server,
    };
    (case, sim)
}

/// The last user id (in the simulator's order) that the baseline holds as `enabled`: only an
/// active user's disappearance is a `deactivated` event.
fn enabled(case: &Case, ids: impl DoubleEndedIterator<Item = String>) -> String {
    let db = case.db();
    ids.rev()
        .find(|id| {
            db.resource(case.source, &format!("user:{id}"))
                .is_some_and(|r| r.status == "enabled")
        })
        .expect("an enabled user")
}

fn remove_ironclad_user(case: &Case, sim: &sim_ironclad::Simulator) -> String {
    let id = enabled(case, sim.user_ids().into_iter());
    assert!(sim.remove_user(&id));
    format!("user:{id}")
}

fn remove_entra_user(case: &Case, sim: &sim_graph::Simulator) -> String {
    let id = enabled(case, sim.user_ids().into_iter());
    assert!(sim.remove_user(&id));
    format!("user:{id}")
}

fn remove_clickwrap_user(case: &Case, sim: &sim_clickwrap::Simulator) -> String {
    let id = enabled(case, sim.user_ids().into_iter().map(|n| n.to_string()));
    let n: u64 = id.parse().expect("numeric id");
    assert!(sim.remove_user(n));
    format!("user:{id}")
}

/// Runs `f` once the simulator has logged `n` requests whose path contains `fragment`.
fn when_logged(
    faults: &Faults,
    fragment: &'static str,
    n: usize,
    f: impl FnOnce() + Send + 'static,
) {
    let faults = faults.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        while faults.log().count("GET", fragment) < n && started.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        f();
    });
}

// ---------------------------------------------------------------- rows

#[tokio::test]
async fn clickwrap_429_with_retry_after() {
    let (case, sim) = clickwrap("").await;
    let ended = case
        .row(
            || remove_clickwrap_user(&case, &sim),
            |f| {
                f.push(
                    rule("/members", Fault::too_many_requests(Some(1), r#"{"error":{"message":"Request limit has been reached for the current rate limit period.","status":429,"name":"RateLimitExceededError"}}"#))
                        .after(1)
                        .times(2),
                )
            },
        )
        .await;
    assert_eq!(ended, Ended::Completed);
}

#[tokio::test]
async fn entra_502_burst() {
    let (case, sim) = entra("", "").await;
    let ended = case
        .row(
            || remove_entra_user(&case, &sim),
            |f| {
                f.push(
                    rule("/users", Fault::status(502, "<html>Bad Gateway</html>"))
                        .after(1)
                        .times(3),
                )
            },
        )
        .await;
    assert_eq!(ended, Ended::Completed);
}

#[tokio::test]
async fn clickwrap_503_burst() {
    let (case, sim) = clickwrap("").await;
    let ended = case
        .row(
            || remove_clickwrap_user(&case, &sim),
            |f| f.push(rule("/members", Fault::status(503, "{}")).after(2).times(3)),
        )
        .await;
    assert_eq!(ended, Ended::Completed);
}

#[tokio::test]
async fn ironclad_503_forever_fails_cleanly() {
    let (case, sim) = ironclad("").await;
    let ended = case
        .row(
            || remove_ironclad_user(&case, &sim),
            |f| {
                f.push(
                    rule("/Users", Fault::status(503, "{}"))
                        .after(2)
                        .times(1000),
                )
            },
        )
        .await;
    assert_eq!(ended, Ended::FailedCleanly);
}

#[tokio::test]
async fn ironclad_connection_reset() {
    let (case, sim) = ironclad("").await;
    let ended = case
        .row(
            || remove_ironclad_user(&case, &sim),
            |f| {
                f.push(
                    rule("/Users", FaultAction::ResetConnection)
                        .after(2)
                        .times(1),
                )
            },
        )
        .await;
    assert_eq!(ended, Ended::Completed, "a reset read is retried");
}

#[tokio::test]
async fn clickwrap_one_slow_response() {
    let (case, sim) = clickwrap("request_timeout_secs = 1").await;
    let ended = case
        .row(
            || remove_clickwrap_user(&case, &sim),
            |f| {
                f.push(
                    rule("/members", FaultAction::Delay(Duration::from_secs(3)))
                        .after(1)
                        .times(1),
                )
            },
        )
        .await;
    assert_eq!(ended, Ended::Completed, "a timed-out read is retried");
}

#[tokio::test]
async fn clickwrap_every_response_slow_fails_cleanly() {
    let (case, sim) = clickwrap("request_timeout_secs = 1").await;
    let started = Instant::now();
    let ended = case
        .row(
            || remove_clickwrap_user(&case, &sim),
            |f| {
                f.push(
                    rule("/members", FaultAction::Delay(Duration::from_secs(3)))
                        .after(1)
                        .times(1000),
                )
            },
        )
        .await;
    assert_eq!(ended, Ended::FailedCleanly);
    assert!(
        started.elapsed() < Duration::from_secs(150),
        "bounded by timeout × attempts"
    );
}

#[tokio::test]
async fn entra_token_expiry_mid_sync() {
    let (case, sim) = entra("", "").await;
    let sim = std::sync::Arc::new(sim);
    let faults = case.faults.clone();
    let ended = case
        .row(
            || remove_entra_user(&case, &sim),
            |f| {
                f.set_latency(Duration::from_millis(20));
                let before = faults.log().count("GET", "/users");
                let sim = sim.clone();
                when_logged(f, "/users", before + 2, move || sim.expire_tokens());
            },
        )
        .await;
    assert_eq!(ended, Ended::Completed, "an expired token is fetched again");
}

#[tokio::test]
async fn clickwrap_token_expiry_mid_sync() {
    let (case, sim) = clickwrap("").await;
    let sim = std::sync::Arc::new(sim);
    let faults = case.faults.clone();
    let ended = case
        .row(
            || remove_clickwrap_user(&case, &sim),
            |f| {
                f.set_latency(Duration::from_millis(20));
                let before = faults.log().count("GET", "/members");
                let sim = sim.clone();
                when_logged(f, "/members", before + 2, move || sim.expire_tokens());
            },
        )
        .await;
    assert_eq!(ended, Ended::Completed, "an expired token is fetched again");
}

#[tokio::test]
async fn ironclad_token_revocation_mid_sync() {
    let (case, sim) = ironclad("").await;
    let sim = std::sync::Arc::new(sim);
    let faults = case.faults.clone();
    let ended = case
        .row(
            || remove_ironclad_user(&case, &sim),
            |f| {
                f.set_latency(Duration::from_millis(20));
                let before = faults.log().count("GET", "/Users");
                let revoker = sim.clone();
                when_logged(f, "/Users", before + 2, move || revoker.revoke_tokens());
                // The recovery sync runs with the credentials restored.
                let restorer = sim.clone();
                OnDrop(Some(move || restorer.restore_credentials()))
            },
        )
        .await;
    // Pinned: fails cleanly. The simulator revokes every token AND refuses the client's
    // credentials (an admin revoking the app), so the one refresh the connector makes after the
    // 401 is answered 401 `invalid_client` (Ironclad's token errors, UPSTREAMS.md; RFC 6749
    // §5.2): nothing the client can do recovers it, so the source must fail with its previous
    // snapshot, not retry for ever nor complete with the pages it had. (Expired tokens, which a
    // refresh does recover, complete: `entra_token_expiry_mid_sync` and friends.)
    assert_eq!(
        ended,
        Ended::FailedCleanly,
        "revoked credentials fail the source"
    );
}

/// Runs its closure when dropped: undoes a fault after the faulty sync.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

#[tokio::test]
async fn entra_malformed_batch() {
    let (case, sim) = entra("", "").await;
    let ended = case
        .row(
            || remove_entra_user(&case, &sim),
            |f| f.push(rule("$batch", FaultAction::MalformedJson).times(1000)),
        )
        .await;
    assert_eq!(ended, Ended::FailedCleanly);
}

#[tokio::test]
async fn clickwrap_truncated_body() {
    let (case, sim) = clickwrap("").await;
    let ended = case
        .row(
            || remove_clickwrap_user(&case, &sim),
            |f| {
                f.push(
                    rule("/members", FaultAction::TruncatedBody)
                        .after(1)
                        .times(1000),
                )
            },
        )
        .await;
    assert_eq!(
        ended,
        Ended::FailedCleanly,
        "a cut page is never a short page"
    );
}

#[tokio::test]
async fn entra_wrong_content_type() {
    let (case, sim) = entra("", "").await;
    let ended = case
        .row(
            || remove_entra_user(&case, &sim),
            |f| f.push(rule("/users", FaultAction::WrongContentType).times(1000)),
        )
        .await;
    // Pinned: completes. Graph documents JSON answers (`application/json`); this one carries
    // `text/html` over the real JSON page. What the connector trusts is the body: it parses it
    // against the documented shape and fails on anything else (an HTML error page from a proxy
    // is malformed JSON: `entra_malformed_batch`, `clickwrap_truncated_body`). So a page whose
    // header lies but whose body is the documented page loses nothing and is used, as every
    // JSON client that ignores the header would; refusing it would fail syncs for no data
    // reason.
    assert_eq!(
        ended,
        Ended::Completed,
        "a valid JSON page under a wrong content type is used"
    );
}

#[tokio::test]
async fn clickwrap_empty_page_with_has_more() {
    let (case, sim) = clickwrap("").await;
    let ended = case
        .row(
            || remove_clickwrap_user(&case, &sim),
            |f| {
                // The second member page answers empty but says there is more.
                f.push(
                    rule(
                        "/members",
                        Fault::status(
                            200,
                            r#"{"page":2,"per_page":100,"count":0,"has_more":true,"data":[]}"#,
                        ),
                    )
                    .after(1)
                    .times(1),
                )
            },
        )
        .await;
    // Pinned: fails cleanly. PactSafe pages are `page`/`per_page` with `has_more`, and the
    // docs say to loop while `has_more` is true (UPSTREAMS.md, reference/pagination); a page
    // with no items that still says `has_more` contradicts itself. Following it (page 3, ...)
    // would skip whatever page 2 should have held and deactivate those users; stopping there
    // would drop the pages after it. Only failing the source keeps every user: the previous
    // snapshot stays and the next sync lists again.
    assert_eq!(
        ended,
        Ended::FailedCleanly,
        "an empty page that claims more fails the listing"
    );
}

#[tokio::test]
async fn entra_empty_page_with_next_link() {
    // Full listings (no delta round), so the faulty sync's first request is `/users` again.
    let (case, sim) = entra("", "incremental = false").await;
    // The URL of the first /users page, from the baseline sync's request log.
    let ended = case
        .row(
            || remove_entra_user(&case, &sim),
            |f| {
                let first = f
                    .log()
                    .records()
                    .into_iter()
                    .find(|r| r.method == "GET" && r.path.ends_with("/v1.0/users"))
                    .expect("the baseline listed /users");
                let next = format!(
                    "{}{}?{}",
                    case.url.trim_end_matches('/'),
                    first.path,
                    first.query
                );
                f.push(
                    rule(
                        "/v1.0/users",
                        Fault::status(
                            200,
                            json!({"value": [], "@odata.nextLink": next}).to_string(),
                        ),
                    )
                    .times(1),
                );
            },
        )
        .await;
    assert_eq!(
        ended,
        Ended::Completed,
        "an empty page with a nextLink is followed"
    );
}

#[tokio::test]
async fn clickwrap_user_without_email() {
    let (case, sim) = clickwrap("").await;
    let id = sim.user_ids()[3];
    let ended = case
        .row(
            || {
                let cleared = sim.set_user_field(id, "email", Value::Null)
                    || sim.set_user_field(id, "email", json!(""));
                assert!(cleared, "the simulator takes an empty email");
                remove_clickwrap_user(&case, &sim)
            },
            |_| {},
        )
        .await;
    assert_eq!(ended, Ended::Completed);
    assert!(
        case.db()
            .resource(case.source, &format!("user:{id}"))
            .is_some(),
        "the user without an email is synced"
    );
}

#[tokio::test]
async fn clickwrap_20_mb_response() {
    let (case, sim) = clickwrap("").await;
    // The real first member page (the removed user is on the last one), padded with 20 MB of
    // whitespace: valid JSON, only its size is unusual.
    let ended = case
        .row(
            || remove_clickwrap_user(&case, &sim),
            |f| f.push(rule("/members", FaultAction::PaddedBody(20 * 1024 * 1024)).times(1)),
        )
        .await;
    // Pinned: completes. 20 MB of whitespace around a real page is valid JSON (RFC 8259 allows
    // any whitespace between tokens), and the host reads answers up to
    // `services::http::MAX_BODY_BYTES` (64 MiB) before refusing one as oversized, so this page
    // is read and parsed like any other; every user is there but the removed one.
    assert_eq!(
        ended,
        Ended::Completed,
        "a 20 MB page under the limit is read"
    );
    assert_eq!(
        case.db().resource_ids(case.source, "user").len(),
        sim.user_count(),
        "no user lost to the 20 MB page"
    );
}

#[tokio::test]
async fn fixture_plugin_hang() {
    fixture_hang_row("list:user:1", false).await;
}

#[tokio::test]
async fn fixture_plugin_blocking_its_thread() {
    fixture_hang_row("list:user:1", true).await;
}

/// Issue 14 point 2: `open` is bounded like every other call.
#[tokio::test]
async fn fixture_plugin_open_blocking_its_thread() {
    let log = fixture_hang_row("open", true).await;
    assert!(
        log.contains("opening connector `fixture` failed: the plugin did not answer within call_timeout_secs = 2"),
        "{log}"
    );
}

/// A plugin call that never answers (awaiting forever, or blocking the thread it is polled
/// on): the source fails once `call_timeout_secs` passes, naming the setting, and keeps its
/// previous snapshot; the next sync completes. Returns the faulty sync's log.
async fn fixture_hang_row(call: &str, blocking: bool) -> String {
    require_plugins(&["fixture_connector"]);
    let s = Scratch::new();
    let write = |sleep: bool| {
        let extra = if sleep {
            format!("sleep_on = \"{call}\"\nsleep_ms = 600000\nsleep_blocking = {blocking}\n")
        } else {
            String::new()
        };
        s.config(&format!(
            "[sources.directory]\nconnector = \"fixture\"\ncall_timeout_secs = 2\n[sources.directory.settings]\nusers = 50\ngroups = 2\nmemberships = 60\npage_size = 10\n{extra}{SINK}"
        ))
    };
    let config = write(false);
    s.sync(&config, &[]).await.expect_code(0);
    let before = s.db("idhost.db").snapshot("directory");
    let config = write(true);
    let started = Instant::now();
    let mut child = tokio::process::Command::from(idhost_e2e::idhost())
        .args(["sync", "-c"])
        .arg(&config)
        .current_dir(s.dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start idhost");
    let mut stderr = child.stderr.take().expect("stderr");
    let waited = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let Ok(status) = waited else {
        child.kill().await.expect("kill idhost");
        panic!(
            "a plugin call ({call}) hanging 600 s (blocking: {blocking}) still held the sync after 30 s"
        );
    };
    let elapsed = started.elapsed();
    let mut log = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut log)
        .await
        .expect("read stderr");
    assert_eq!(status.expect("exit status").code(), Some(1), "{log}");
    assert!(log.contains("call_timeout_secs = 2"), "{log}");
    // 2 s of timeout and the first page; exiting never waits for the stuck plugin thread.
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
    assert_eq!(
        s.db("idhost.db").snapshot("directory"),
        before,
        "previous snapshot intact"
    );
    eprintln!(
        "[matrix] plugin hang on {call} (blocking: {blocking}): exit 1 after {elapsed:.1?}, previous snapshot intact"
    );
    let config = write(false);
    s.sync(&config, &[]).await.expect_code(0);
    log
}

/// `n` fixture sources `b0`..`b{n-1}`, each blocking its thread for 600 s in its first user
/// page, under `call_timeout_secs = timeout`.
fn blocking_sources(n: usize, timeout: u64) -> String {
    (0..n)
        .map(|i| {
            format!(
                "[sources.b{i}]\nconnector = \"fixture\"\ncall_timeout_secs = {timeout}\nschedule = \"1h\"\n[sources.b{i}.settings]\nusers = 20\npage_size = 10\nsleep_on = \"list:user:0\"\nsleep_ms = 600000\nsleep_blocking = true\n"
            )
        })
        .collect()
}

/// Issue 14 point 1: more sources blocking their plugin threads than the machine has cores
/// (4 on the 2-core development machine, whose runtime has 2 workers). Plugin calls run on
/// plugin threads, so the host's timers still fire: every source fails with the timeout, in
/// `call_timeout_secs`, and the process exits 1 without waiting for the stuck threads.
#[tokio::test]
async fn fixture_more_blocking_sources_than_cores_all_time_out() {
    require_plugins(&["fixture_connector"]);
    let n = std::thread::available_parallelism().map_or(2, |n| n.get()) + 2;
    let s = Scratch::new();
    let config = s.config(&format!("{}{SINK}", blocking_sources(n, 2)));
    let run = s.sync(&config, &[]).await;
    run.expect_code(1);
    for i in 0..n {
        let row = run.source(&format!("b{i}"));
        assert_eq!(row["status"], "failed", "{}", run.text());
        assert_eq!(
            row["error"],
            format!(
                "source `b{i}`: listing `user` page 1: the plugin did not answer within call_timeout_secs = 2; the call was abandoned (unavailable)"
            ),
            "{}",
            run.text()
        );
    }
    assert!(run.elapsed < Duration::from_secs(6), "{:?}", run.elapsed);
    eprintln!(
        "[matrix] {n} blocking sources: exit 1 after {:.1?}, each failed with the timeout",
        run.elapsed
    );
}

/// Issue 14 point 1: `idhost run` with more blocked sources than cores still answers its
/// health endpoint and stops on SIGTERM within `--shutdown-grace` + the abort bound.
#[tokio::test]
async fn fixture_sigterm_with_more_blocked_sources_than_cores() {
    use tokio::io::AsyncBufReadExt as _;
    require_plugins(&["fixture_connector"]);
    let n = std::thread::available_parallelism().map_or(2, |n| n.get()) + 2;
    let s = Scratch::new();
    let config = s.config(&format!("{}{SINK}", blocking_sources(n, 600)));
    let mut child = tokio::process::Command::from(idhost_e2e::idhost())
        .args(["--log-format", "json", "run", "-c"])
        .arg(&config)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--max-jitter",
            "0s",
            "--shutdown-grace",
            "1s",
        ])
        .env_remove("IDHOST_LISTEN")
        .current_dir(s.dir())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start idhost run");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            let value = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "raw": line }));
            if lines_tx.send(value).is_err() {
                break;
            }
        }
    });
    // Every source opened its connector (and went on to block in its first page).
    let mut address = String::new();
    let mut opened = 0;
    let until = Instant::now() + Duration::from_secs(20);
    while opened < n || address.is_empty() {
        let line = tokio::time::timeout_at(until.into(), lines.recv())
            .await
            .expect("the daemon started and every source opened")
            .expect("stderr open");
        let message = line["fields"]["message"].as_str().unwrap_or_default();
        if message == "idhost run: listening" {
            address = line["fields"]["listen"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        }
        if message == "fixture opened" {
            opened += 1;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The health server still answers with every plugin thread stuck.
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(5),
        idhost_e2e::http("GET", &format!("http://{address}/healthz"), &[], ""),
    )
    .await
    .expect("/healthz answers while the plugins block");
    assert_eq!(status, 200);
    let sent = Instant::now();
    let killed = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().expect("pid").to_string())
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("idhost run exits after SIGTERM with blocked plugins")
        .expect("exit status");
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0));
    // The grace (1 s), then the cancelled syncs stop waiting for their stuck calls at once.
    assert!(took < Duration::from_secs(4), "{took:?}");
    eprintln!("[matrix] SIGTERM with {n} blocked sources: exit 0 after {took:.2?} (grace 1 s)");
}

/// Issue 14 point 2: a provisioning call that blocks its plugin thread is bounded by
/// `call_timeout_secs`: exit 1, the timeout named, the attempt audited as failed.
#[tokio::test]
async fn fixture_provisioning_blocking_its_thread() {
    require_plugins(&["fixture_connector"]);
    let s = Scratch::new();
    let config = s.config(&format!(
        "[sources.directory]\nconnector = \"fixture\"\ncall_timeout_secs = 2\n[sources.directory.settings]\nusers = 5\nsleep_on = \"delete\"\nsleep_ms = 600000\nsleep_blocking = true\n{SINK}"
    ));
    let config = config.to_string_lossy().into_owned();
    let started = Instant::now();
    let run = s
        .run(&[
            "provision",
            "-c",
            &config,
            "--source",
            "directory",
            "delete",
            "--resource",
            "user:u1",
        ])
        .await;
    let elapsed = started.elapsed();
    run.expect_code(1);
    assert!(
        run.text().contains("the plugin did not answer within call_timeout_secs = 2; the call was abandoned, and whether the upstream applied it is unknown"),
        "{}",
        run.text()
    );
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
    let audit = s.run(&["audit", "-c", &config, "-o", "json"]).await;
    audit.expect_code(0);
    let rows: Value = serde_json::from_str(&audit.stdout).expect("audit json");
    assert_eq!(rows[0]["result"], "failed", "{}", audit.text());
    eprintln!("[matrix] provisioning call blocking its thread: exit 1 after {elapsed:.1?}");
}

/// Issue 14 point 2: per-resource detail calls stop at the first failure. 20 roles, two at a
/// time, every grants call taking 1 s and the first role's failing: the source fails after
/// about a second, not after the whole page's ten seconds of calls.
#[tokio::test]
async fn fixture_detail_call_failure_stops_the_page_at_once() {
    require_plugins(&["fixture_connector"]);
    let s = Scratch::new();
    let config = s.config(&format!(
        "[sources.directory]\nconnector = \"fixture\"\nconcurrency = 2\n[sources.directory.settings]\nusers = 5\nroles = 20\nsleep_on = \"grants\"\nsleep_ms = 1000\nfail_on = \"grants:role:r0\"\nfail_kind = \"invalid_input\"\n{SINK}"
    ));
    let run = s.sync(&config, &[]).await;
    run.expect_code(1);
    let row = run.source("directory");
    let error = row["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("source `directory`: details of `role:r0`: GET https://fixture.invalid/grants:role:r0 answered 503"), "{}", run.text());
    assert!(run.elapsed < Duration::from_secs(5), "{:?}", run.elapsed);
    eprintln!(
        "[matrix] a failing detail call: exit 1 after {:.1?}",
        run.elapsed
    );
}

#[tokio::test]
async fn sqlite_sink_locked_by_another_writer_fails_cleanly() {
    // The brief's "SQLite file made read-only" does nothing here: the tests run as root, whom
    // file modes do not stop. Another process holding the write lock (BEGIN EXCLUSIVE) for the
    // whole sync makes the sink's commit fail the same way a read-only file would.
    let (case, sim) = clickwrap("").await;
    let db = case.s.path("idhost.db");
    let ended = case
        .row(
            || remove_clickwrap_user(&case, &sim),
            |_| {
                let conn = rusqlite::Connection::open(&db).expect("open the sink's database");
                conn.execute_batch("BEGIN EXCLUSIVE")
                    .expect("take the write lock");
                conn
            },
        )
        .await;
    assert_eq!(ended, Ended::FailedCleanly);
}

#[tokio::test]
async fn clickwrap_429_with_an_absurd_retry_after() {
    // Found by fuzz/ (sdk_response): a Retry-After beyond u64 seconds used to panic in
    // connector-sdk `parse_retry_after` (`Duration::from_secs_f64`). It now parses as a very
    // long wait, which the host does not wait out: the 429 goes back to the connector.
    let (case, sim) = clickwrap("").await;
    let ended = case
        .row(
            || remove_clickwrap_user(&case, &sim),
            |f| {
                f.push(
                    rule(
                        "/members",
                        FaultAction::Status {
                            status: 429,
                            body: "{}".to_owned(),
                            headers: vec![(
                                "retry-after".to_owned(),
                                "444444444444444444444444444444444444".to_owned(),
                            )],
                        },
                    )
                    .times(1),
                )
            },
        )
        .await;
    // The source fails cleanly as rate limited, with its previous snapshot intact.
    assert_eq!(ended, Ended::FailedCleanly);
}

// ------------------------------------------------- delivery and the brake (issue 14)

/// A webhook receiver on loopback: answers 503 while `down`, holds every POST while `hang`,
/// else 200; keeps the events of every batch it accepted (no de-duplication: a repeat shows).
#[derive(Default)]
struct Hook {
    down: bool,
    hang: bool,
    posts: usize,
    accepted: Vec<Value>,
}

type SharedHook = std::sync::Arc<std::sync::Mutex<Hook>>;

async fn hook_post(
    axum::extract::State(hook): axum::extract::State<SharedHook>,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let hang = {
        let mut h = hook.lock().unwrap();
        h.posts += 1;
        h.hang
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let mut h = hook.lock().unwrap();
    if h.down {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
    }
    let batch: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array");
    h.accepted
        .extend(batch.into_iter().filter(|v| v["kind"] == "event"));
    axum::http::StatusCode::OK
}

async fn hook_server() -> (SharedHook, String) {
    let hook = SharedHook::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook_post))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (hook, format!("http://{addr}/hook"))
}

/// A webhook sink taking events only, giving up after one attempt.
fn hook_sink(url: &str) -> String {
    format!(
        "\n[sinks.hook]\ntype = \"webhook\"\nurl = {}\nrecords = [\"event\"]\nmax_attempts = 1\nrequest_timeout_secs = 5\n",
        toml_str(url)
    )
}

impl Case {
    fn append_config(&self, text: &str) {
        let mut config = std::fs::read_to_string(&self.config).unwrap();
        config.push_str(text);
        std::fs::write(&self.config, config).unwrap();
    }

    fn event_ids(&self) -> std::collections::BTreeSet<String> {
        self.db()
            .set("SELECT id FROM events WHERE source = ?1", [self.source])
    }
}

/// Runs `cmd` to its end without blocking the test's runtime (the simulators run on it).
async fn output_async(cmd: std::process::Command) -> std::process::Output {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("idhost finished within 120 s")
        .expect("start idhost")
}

fn ids_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Issue 14.5: a webhook sink down for two syncs does not freeze the source: SQLite takes
/// both syncs (their data and events), and once the webhook is back it receives every event
/// of both, exactly once each, in one delivery.
#[tokio::test]
async fn webhook_down_for_two_syncs_catches_up_exactly_once_while_sqlite_moves_on() {
    let (case, sim) = ironclad("").await;
    let (hook, url) = hook_server().await;
    case.append_config(&hook_sink(&url));
    case.sync().await.expect_code(0);
    hook.lock().unwrap().down = true;
    let first = remove_ironclad_user(&case, &sim);
    let run = case.sync().await;
    run.expect_code(1);
    assert!(
        !case.db().resource_ids(case.source, "user").contains(&first),
        "SQLite has sync 2's data\n{}",
        run.text()
    );
    let second = remove_ironclad_user(&case, &sim);
    let run = case.sync().await;
    run.expect_code(1);
    assert!(
        !case
            .db()
            .resource_ids(case.source, "user")
            .contains(&second),
        "SQLite has sync 3's data\n{}",
        run.text()
    );
    assert_eq!(
        run.source(case.source)["sinks_behind"][0]["sink"],
        "hook",
        "{}",
        run.text()
    );
    assert!(hook.lock().unwrap().accepted.is_empty());
    hook.lock().unwrap().down = false;
    case.sync().await.expect_code(0);
    let received = ids_of(&hook.lock().unwrap().accepted);
    let unique: std::collections::BTreeSet<String> = received.iter().cloned().collect();
    // The pinned outcome: every event SQLite has, once each.
    assert_eq!(
        (received.len(), unique),
        (case.event_ids().len(), case.event_ids()),
        "the webhook got every event exactly once"
    );
}

/// Issue 14.4: a sync killed while it delivers (the webhook holding its POST), then run again
/// with `--restart` and a changed config: its events are neither thrown away nor recomputed
/// under new ids; each sink ends with the removal as exactly one event.
#[tokio::test]
async fn restart_and_config_change_during_pending_delivery_lose_and_double_no_event() {
    let (case, sim) = ironclad("").await;
    let (hook, url) = hook_server().await;
    case.append_config(&hook_sink(&url));
    case.sync().await.expect_code(0);
    let gone = remove_ironclad_user(&case, &sim);
    hook.lock().unwrap().hang = true;
    let mut child = tokio::process::Command::from(case.s.command(&[
        "sync",
        "-c",
        case.config.to_str().unwrap(),
    ]));
    child.kill_on_drop(true);
    let mut child = child.spawn().expect("spawn idhost");
    let started = Instant::now();
    // Killed once the webhook holds its POST and SQLite has committed the sync: SQLite has
    // the removal, the webhook not yet.
    while hook.lock().unwrap().posts == 0 || case.events_about(&gone) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the delivery never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().await.expect("kill");
    hook.lock().unwrap().hang = false;
    // Another config (a smaller page) and --restart: the old checkpoint does not fit.
    let config = std::fs::read_to_string(&case.config).unwrap();
    std::fs::write(
        &case.config,
        config.replace("page_size = 100", "page_size = 50"),
    )
    .unwrap();
    let run = case.s.sync(&case.config, &["--restart"]).await;
    run.expect_code(0);
    let hook_events: Vec<Value> = hook.lock().unwrap().accepted.clone();
    let about = |events: &[Value]| {
        events
            .iter()
            .filter(|e| e["subject"] == gone.as_str())
            .count()
    };
    assert_eq!(
        (case.events_about(&gone), about(&hook_events)),
        (1, 1),
        "one event about {gone} in SQLite and at the webhook\n{}",
        run.text()
    );
}

/// Issue 14.6: a JSONL commit cut by a crash part-way leaves no partial sync visible (the
/// file's committed part, per its `.idhost-commit` marker, ends where the last whole sync
/// ends, and the next commit truncates the cut tail), and the redelivery appends the sync
/// once. A sink with `records = ["event"]` gets event lines only, each with its sync_id.
#[tokio::test]
async fn jsonl_commit_cut_mid_append_shows_no_partial_sync_and_redelivery_does_not_double() {
    let (case, sim) = ironclad("").await;
    case.append_config(
        "\n[sinks.all]\ntype = \"jsonl\"\npath = \"all.jsonl\"\nrecords = [\"resource\", \"grant\", \"event\", \"sync_run\"]\n\n[sinks.ev]\ntype = \"jsonl\"\npath = \"events.jsonl\"\nrecords = [\"event\"]\n",
    );
    case.sync().await.expect_code(0);
    let committed = std::fs::read(case.s.path("all.jsonl")).unwrap();
    let gone = remove_ironclad_user(&case, &sim);
    let mut cmd = case
        .s
        .command(&["sync", "-c", case.config.to_str().unwrap()]);
    cmd.env("IDHOST_FAULT_JSONL_CRASH_AFTER_BYTES", "5000");
    let out = output_async(cmd).await;
    assert_ne!(
        out.status.code(),
        Some(0),
        "the fault hook aborts the process"
    );
    let marker: Value =
        serde_json::from_slice(&std::fs::read(case.s.path("all.jsonl.idhost-commit")).unwrap())
            .unwrap();
    let cut = std::fs::read(case.s.path("all.jsonl")).unwrap();
    assert!(
        cut.len() > committed.len(),
        "the crash left a partial append"
    );
    assert_eq!(
        marker["committed_bytes"].as_u64(),
        Some(committed.len() as u64),
        "the marker still ends the committed part at the first sync"
    );
    case.sync().await.expect_code(0);
    let text = std::fs::read_to_string(case.s.path("all.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("whole lines only"))
        .collect();
    let runs = lines.iter().filter(|l| l["kind"] == "sync_run").count();
    let about = lines
        .iter()
        .filter(|l| l["kind"] == "event" && l["subject"] == gone.as_str())
        .count();
    let events = std::fs::read_to_string(case.s.path("events.jsonl")).unwrap();
    let event_lines: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().all(|l| l["sync_id"].is_string()),
        "every line has its sync_id"
    );
    assert!(
        event_lines.iter().all(|l| l["kind"] == "event"),
        "records = [\"event\"] gets events only"
    );
    // The pinned outcome: two whole syncs, the removal once.
    assert_eq!((runs, about), (2, 1), "{text:.2000}");
}

/// A JSONL commit marker that no longer parses (edited by hand, cut by a full disk outside
/// idhost): the committed length of the file is unknown, so the commit is refused naming the
/// marker, and the file keeps every byte it had; the SQLite sink moves on. Once the operator
/// removes the marker (the whole file then counts as committed), the next sync hands the JSONL
/// sink the event it missed, exactly once.
#[tokio::test]
async fn jsonl_marker_unreadable_refuses_the_commit_and_keeps_the_file() {
    let (case, sim) = ironclad("").await;
    case.append_config(
        "\n[sinks.ev]\ntype = \"jsonl\"\npath = \"events.jsonl\"\nrecords = [\"event\"]\n",
    );
    case.sync().await.expect_code(0);
    let file = case.s.path("events.jsonl");
    let marker = case.s.path("events.jsonl.idhost-commit");
    std::fs::write(&marker, b"{\"committed_bytes\": ").unwrap();
    let before = std::fs::read(&file).unwrap_or_default();
    let gone = remove_ironclad_user(&case, &sim);
    let run = case.sync().await;
    run.expect_code(1);
    assert!(
        run.text().contains(&*marker.to_string_lossy())
            && run.text().contains("is not a valid marker"),
        "the error names the marker and what is wrong with it\n{}",
        run.text()
    );
    assert_eq!(
        std::fs::read(&file).unwrap_or_default(),
        before,
        "nothing appended to a file whose committed length is unknown"
    );
    assert_eq!(case.events_about(&gone), 1, "the SQLite sink moved on");
    std::fs::remove_file(&marker).unwrap();
    case.sync().await.expect_code(0);
    let text = std::fs::read_to_string(&file).unwrap();
    let about = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("whole lines only"))
        .filter(|l| l["subject"] == gone.as_str())
        .count();
    assert_eq!(
        about, 1,
        "the missed event once, after the marker was removed\n{text:.2000}"
    );
}

fn remove_half_of_ironclad(
    case: &Case,
    sim: &sim_ironclad::Simulator,
) -> std::collections::BTreeSet<String> {
    let db = case.db();
    let ids = sim.user_ids();
    let mut gone = std::collections::BTreeSet::new();
    let admin = sim.config().admin_email.clone();
    // Never the user the connector acts as.
    for id in ids
        .iter()
        .filter(|id| !sim.user(id).is_some_and(|u| u.to_string().contains(&admin)))
        .take(ids.len() / 2)
    {
        if db
            .resource(case.source, &format!("user:{id}"))
            .is_some_and(|r| r.status == "enabled")
        {
            gone.insert(format!("user:{id}"));
        }
        assert!(sim.remove_user(id));
    }
    gone
}

/// Issue 14.7, DESIGN §7.1: half of the tenant removed upstream → the sync is held (exit 1,
/// `"status": "held"` with both counts, every sink and the snapshot untouched, no event);
/// `idhost approve` then commits it without listing: exactly the removals as events, in
/// every sink.
#[tokio::test]
async fn removing_half_the_tenant_is_held_until_approve_commits_exactly_the_removals() {
    let (case, sim) = ironclad("").await;
    case.append_config(
        "\n[sinks.ev]\ntype = \"jsonl\"\npath = \"events.jsonl\"\nrecords = [\"event\"]\n",
    );
    case.sync().await.expect_code(0);
    let before = case.db().snapshot(case.source);
    let jsonl_before = std::fs::read(case.s.path("events.jsonl")).unwrap_or_default();
    let gone = remove_half_of_ironclad(&case, &sim);
    let run = case.sync().await;
    run.expect_code(1);
    let row = run.source(case.source);
    assert_eq!(row["status"], "held", "{}", run.text());
    assert!(
        row["removals"]["resources"].as_u64().unwrap() >= gone.len() as u64,
        "{row}"
    );
    assert!(row["removals"]["grants"].is_u64(), "{row}");
    assert!(
        row["error"].as_str().unwrap().contains("idhost approve"),
        "{row}"
    );
    assert_eq!(
        case.db().snapshot(case.source),
        before,
        "the snapshot is untouched"
    );
    assert_eq!(case.event_ids().len(), 0, "no event");
    assert_eq!(
        std::fs::read(case.s.path("events.jsonl")).unwrap_or_default(),
        jsonl_before
    );
    // Run again: still held, without listing.
    let requests = case.faults.log().count("GET", "/Users");
    case.sync().await.expect_code(1);
    assert_eq!(
        case.faults.log().count("GET", "/Users"),
        requests,
        "a held sync is not listed again"
    );

    let config = case.config.to_str().unwrap().to_owned();
    let approve = case
        .s
        .run(&["approve", "-c", &config, "--source", case.source, "--json"])
        .await;
    approve.expect_code(0);
    assert_eq!(
        case.faults.log().count("GET", "/Users"),
        requests,
        "approve does not list"
    );
    let deactivated = case.db().set(
        "SELECT subject FROM events WHERE source = ?1 AND event = 'deactivated'",
        [case.source],
    );
    let jsonl: std::collections::BTreeSet<String> =
        std::fs::read_to_string(case.s.path("events.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|e| e["event"] == "deactivated")
            .map(|e| e["subject"].as_str().unwrap().to_owned())
            .collect();
    // The pinned outcome: exactly the removed users, in both sinks.
    assert_eq!((&deactivated, &jsonl), (&gone, &gone), "{}", approve.text());
}

/// DESIGN §7.1: a removal of at most 10 is never held, and `--allow-removals` lists and
/// accepts a large one in one go.
#[tokio::test]
async fn a_small_removal_is_not_held_and_allow_removals_accepts_a_large_one() {
    let (case, sim) = ironclad("").await;
    case.sync().await.expect_code(0);
    for _ in 0..5 {
        remove_ironclad_user(&case, &sim);
    }
    let small = case.sync().await;
    small.expect_code(0);
    let gone = remove_half_of_ironclad(&case, &sim);
    let run = case.sync().await;
    assert_eq!(run.source(case.source)["status"], "held", "{}", run.text());
    let accepted = case.s.sync(&case.config, &["--allow-removals"]).await;
    accepted.expect_code(0);
    let deactivated = case.db().set(
        "SELECT subject FROM events WHERE source = ?1 AND event = 'deactivated' AND sync_id = ?2",
        [
            case.source,
            accepted.source(case.source)["sync_id"].as_str().unwrap(),
        ],
    );
    assert_eq!(deactivated, gone, "{}", accepted.text());
}

/// Issue 14.3: one source's long diff (made 8 s longer by the fault hook) holds nothing
/// another source waits for: a source still listing beside it (its pages slowed down)
/// stages its pages, diffs, delivers and commits while the long diff runs.
#[tokio::test]
async fn a_long_diff_of_one_source_does_not_stall_another_sources_sync() {
    let (legal, ironclad_sim) = ironclad("").await;
    let (clickwrap_case, clickwrap_sim) = clickwrap("").await;
    // One config with both sources (each case's source section, one sink).
    let section = |case: &Case| {
        let text = std::fs::read_to_string(&case.config).unwrap();
        let text = text.split("\n[sinks.db]").next().unwrap();
        text.lines()
            .filter(|l| !l.starts_with("plugin_dir") && !l.starts_with("state_path"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let config = legal.s.config(&format!(
        "{}\n{}\n{SINK}",
        section(&legal),
        section(&clickwrap_case)
    ));
    legal.s.sync(&config, &[]).await.expect_code(0);
    remove_ironclad_user(&legal, &ironclad_sim);
    // Read through the shared sink, which lives in `legal`'s directory.
    let id = clickwrap_sim
        .user_ids()
        .into_iter()
        .rev()
        .find(|n| {
            legal
                .db()
                .resource("clickwrap", &format!("user:{n}"))
                .is_some_and(|r| r.status == "enabled")
        })
        .expect("an enabled clickwrap user");
    assert!(clickwrap_sim.remove_user(id));
    let gone = format!("user:{id}");
    clickwrap_case.faults.push(
        rule("/members", FaultAction::Delay(Duration::from_millis(1500)))
            .after(1)
            .times(3),
    );
    let mut cmd = legal
        .s
        .command(&["sync", "-c", config.to_str().unwrap(), "--json"]);
    cmd.env("IDHOST_FAULT_SLOW_DIFF", "legal:8000");
    let out = output_async(cmd).await;
    let text = idhost_e2e::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let seconds = |source: &str| {
        rows.iter()
            .find(|r| r["source"] == source)
            .and_then(|r| r["seconds"].as_f64())
            .unwrap()
    };
    assert_eq!(
        legal.db().count(
            "SELECT count(*) FROM events WHERE source = 'clickwrap' AND subject = ?1",
            [gone.as_str()]
        ),
        1,
        "{text}"
    );
    // The pinned outcome: clickwrap finished its whole sync inside legal's 8 s diff.
    assert!(
        seconds("clickwrap") < 7.0 && seconds("legal") >= 8.0,
        "clickwrap {:.1} s, legal {:.1} s\n{text}",
        seconds("clickwrap"),
        seconds("legal")
    );
}
