//! Issue 6: the webhook sink against a local axum receiver: signed batches, retries on 5xx
//! with the same idempotency key, and events kept (not dropped) when the receiver stays
//! down, delivered by the next sync with the same ids.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::support::events::{Scratch, text};
use crate::support::events::{config, sqlite_events, sync_ok};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::Value;
use sha2::Sha256;

const SECRET: &str = "hook-secret-1";

/// One POST the receiver saw.
#[derive(Debug, Clone)]
struct Delivery {
    key: String,
    signature: String,
    body: Vec<u8>,
    accepted: bool,
}

#[derive(Default)]
struct Receiver {
    /// Answer 500 to this many more POSTs.
    fail_next: u32,
    /// Answer 503 to everything.
    down: bool,
    /// Answer 422 to everything.
    reject: bool,
    seen: Vec<Delivery>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn hook(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut r = shared.lock().unwrap();
    let status = if r.reject {
        StatusCode::UNPROCESSABLE_ENTITY
    } else if r.down {
        StatusCode::SERVICE_UNAVAILABLE
    } else if r.fail_next > 0 {
        r.fail_next -= 1;
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    r.seen.push(Delivery {
        key: header("idempotency-key"),
        signature: header("x-idhost-signature"),
        body: body.to_vec(),
        accepted: status == StatusCode::OK,
    });
    status
}

/// Starts the receiver on loopback; the runtime keeps it up for the test.
fn receiver() -> (tokio::runtime::Runtime, Shared, String) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let shared = Shared::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(shared.clone());
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move { axum::serve(listener, app).await });
    (rt, shared, format!("http://{addr}/hook"))
}

fn sinks(url: &str, max_attempts: u32) -> String {
    format!(
        r#"
[sinks.db]
type = "sqlite"
path = "out.db"
records = ["resource", "entitlement", "grant", "event", "sync_run"]

[sinks.hook]
type = "webhook"
url = "{url}"
secret = "{SECRET}"
batch_size = 4
max_attempts = {max_attempts}
retry_backoff_ms = 20
"#
    )
}

const BASE: &str = "users = 20\ngroups = 3\nroles = 1\npage_size = 7\nmemberships = 30";
const CHANGED: &str = "users = 20\ngroups = 3\nroles = 1\npage_size = 7\nmemberships = 33\nmissing_users = [5]\ndisabled_users = [2]\nrename_users = [3]";

fn signed(d: &Delivery) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&d.body);
    d.signature == format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The events of accepted deliveries, once per idempotency key.
fn accepted_events(seen: &[Delivery]) -> Vec<Value> {
    let mut by_key: BTreeMap<&str, &Delivery> = BTreeMap::new();
    for d in seen.iter().filter(|d| d.accepted) {
        by_key.entry(&d.key).or_insert(d);
    }
    by_key
        .values()
        .flat_map(|d| serde_json::from_slice::<Vec<Value>>(&d.body).expect("a JSON array"))
        .filter(|v| v["kind"] == "event")
        .collect()
}

#[test]
fn a_receiver_failing_the_first_deliveries_ends_with_every_event_once_by_idempotency_key() {
    let (_rt, shared, url) = receiver();
    let s = Scratch::new();
    sync_ok(&s, &config(&s, BASE, &sinks(&url, 6)), &[]);
    shared.lock().unwrap().fail_next = 3;
    sync_ok(&s, &config(&s, CHANGED, &sinks(&url, 6)), &[]);

    let seen = shared.lock().unwrap().seen.clone();
    assert!(
        seen.iter().all(signed),
        "every POST carries the HMAC of its body"
    );
    // The first batch of the second sync was refused three times, then accepted: four POSTs
    // with one key and one body.
    let second: Vec<&Delivery> = seen.iter().skip(1).collect();
    assert!(second[..3].iter().all(|d| !d.accepted) && second[3].accepted);
    assert!(
        second[..4]
            .iter()
            .all(|d| d.key == second[0].key && d.body == second[0].body)
    );
    let mut bodies: BTreeMap<&str, &Vec<u8>> = BTreeMap::new();
    for d in &seen {
        assert_eq!(
            *bodies.entry(&d.key).or_insert(&d.body),
            &d.body,
            "a key always names the same batch"
        );
    }

    let events = accepted_events(&seen);
    let ids: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no event twice");
    let stored: BTreeSet<String> = sqlite_events(&s).into_iter().map(|e| e.0).collect();
    assert_eq!(stored.len(), 9);
    assert_eq!(
        unique,
        stored.iter().map(String::as_str).collect(),
        "every event, once"
    );
    let batches: BTreeSet<&str> = seen
        .iter()
        .filter(|d| d.accepted)
        .map(|d| d.key.as_str())
        .collect();
    // Two sync_run batches (one per sync) and 9 events in batches of at most 4.
    assert_eq!(batches.len(), 2 + 3);
}

#[test]
fn a_webhook_that_stays_down_fails_the_sync_and_the_next_sync_delivers_the_same_events() {
    let (_rt, shared, url) = receiver();
    let s = Scratch::new();
    sync_ok(&s, &config(&s, BASE, &sinks(&url, 2)), &[]);

    shared.lock().unwrap().down = true;
    let c = config(&s, CHANGED, &sinks(&url, 2));
    let out = s.output(&["sync", "-c", c.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("gave up on a batch of 4") && log.contains("after 2 attempts"),
        "{log}"
    );
    assert!(!log.contains(SECRET), "{log}");
    // SQLite took the events and committed; the webhook has accepted none.
    let stored = sqlite_events(&s);
    assert_eq!(stored.len(), 9);
    assert!(accepted_events(&shared.lock().unwrap().seen).is_empty());

    // The receiver is back: the next sync (a new one: the failing sink held nobody back)
    // delivers the kept events, to the webhook only.
    shared.lock().unwrap().down = false;
    let log = sync_ok(&s, &c, &[]);
    assert!(!log.contains("resuming"), "{log}");
    let delivered = accepted_events(&shared.lock().unwrap().seen);
    let ids: BTreeSet<String> = delivered
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered.len(), 9);
    assert_eq!(
        ids,
        stored.iter().map(|e| e.0.clone()).collect(),
        "the same ids SQLite got"
    );
    assert_eq!(
        sqlite_events(&s).len(),
        9,
        "SQLite, already committed, is not sent them again"
    );

    // And the next sync has nothing to report.
    let log = sync_ok(&s, &c, &[]);
    assert!(!log.contains("resuming"), "{log}");
    assert_eq!(accepted_events(&shared.lock().unwrap().seen).len(), 9);
}

#[test]
fn a_4xx_answer_fails_the_delivery_at_once_without_retries() {
    let (_rt, shared, url) = receiver();
    let s = Scratch::new();
    sync_ok(&s, &config(&s, BASE, &sinks(&url, 6)), &[]);
    shared.lock().unwrap().reject = true;
    let before = shared.lock().unwrap().seen.len();
    let c = config(&s, CHANGED, &sinks(&url, 6));
    let out = s.output(&["sync", "-c", c.to_str().unwrap()]);
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("answered 422") && log.contains("not retried"),
        "{log}"
    );
    let seen = shared.lock().unwrap().seen.len() - before;
    // The first batch once, then the failed run's own record once.
    assert_eq!(seen, 2, "no retries of a 4xx");
}
