//! Fuzzing entry point (target `graph_parse` in `fuzz/`, replayed over the stored corpus by
//! `tests/fuzz_corpus.rs`). Not part of the crate's API.
//!
//! The input is a script of Graph answers (`idhost_connector_sdk::fuzzing`); a plain JSON file
//! is one 200 answer. The connector's real code runs on it, through `list` and the provisioning
//! calls, exactly as the host drives it:
//!
//! - Graph error bodies (`error::graph_error`, `GraphError`, the `$batch` inner error);
//! - every listing in full: collection pages and their `@odata.nextLink` (checked to stay on
//!   `graph_url`), the `$batch` answers of the side-loaded members, owners and assignments
//!   (matched by id, inner 429s retried), and the managed identities;
//! - the same with plain GETs instead of `$batch`, and with the "sync from now" delta request
//!   first;
//! - delta rounds from a stored delta link (`@removed`, `members@delta`, `@odata.deltaLink`,
//!   expired links);
//! - listings resumed from the script's page token;
//! - grants and revokes of group members, app roles and directory roles.
//!
//! Nothing may panic, and a page never holds more resources than the collection page carried.

use idhost_connector_sdk::fuzzing::{Script, ScriptedHost, block_on};
use idhost_connector_sdk::{
    Connector, EntitlementRef, ErrorKind, GrantRef, HttpResponse, PageToken, ResourceRef,
    SourceInfo,
};
use serde_json::{Value, json};

use crate::Entra;
use crate::error::{GraphError, graph_error, inner_error};

const GRAPH: &str = "https://graph.microsoft.com";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/// Target `graph_parse`.
pub fn graph_parse(data: &[u8]) {
    errors(data);
    let script = Script::parse(data);
    let full = Setup::default();
    for rtype in ["user", "group", "app", "role"] {
        list(&script, full, rtype, None);
    }
    let plain = Setup {
        batch: false,
        ..full
    };
    list(&script, plain, "group", None);
    let latest_first = Setup {
        incremental: true,
        ..full
    };
    list(&script, latest_first, "user", None);
    let delta = Setup {
        incremental: true,
        stored_delta: true,
        ..full
    };
    list(&script, delta, "user", None);
    list(&script, delta, "group", None);
    if let Some(token) = &script.token {
        for rtype in ["user", "group", "app"] {
            list(&script, delta, rtype, Some(token));
        }
    }
    provision(&script);
}

/// The whole input as a Graph error body, outer and inside `$batch`.
fn errors(data: &[u8]) {
    let inner = serde_json::from_slice::<Value>(data).unwrap_or(Value::Null);
    for status in [400, 403, 404, 409, 410, 429, 503] {
        let response = HttpResponse {
            status,
            headers: vec![("retry-after".to_owned(), "5".to_owned())],
            body: data.to_vec(),
            dry_run: false,
            request_line: format!("GET {GRAPH}/v1.0/users/delta?$deltatoken=x"),
        };
        let err = graph_error(&response);
        assert_eq!(err.status, Some(status), "{err:?}");
        let parsed = GraphError::from_response(&response);
        let _ = parsed.is_already_exists(status);
        let _ = parsed.is_expired_delta(status);
        let err = inner_error("/groups/g1/members", status, &inner, &[], None);
        assert_eq!(err.status, Some(status), "{err:?}");
        if err.kind != ErrorKind::RateLimited {
            assert_eq!(err.retry_after, None);
        }
    }
}

/// The source settings a scenario runs with.
#[derive(Debug, Clone, Copy)]
struct Setup {
    batch: bool,
    incremental: bool,
    /// A delta link from an earlier sync is stored, so users and groups list incrementally.
    stored_delta: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            batch: true,
            incremental: false,
            stored_delta: false,
        }
    }
}

fn open(script: &Script, setup: Setup) -> Option<Entra> {
    let host = ScriptedHost::new(script);
    if setup.stored_delta {
        for (key, path) in [
            (crate::delta::USERS.key, "users"),
            (crate::delta::GROUPS.key, "groups"),
        ] {
            let link = format!("{GRAPH}/v1.0/{path}/delta?$deltatoken=stored");
            host.set_state(key, &format!("{TENANT} {link}"));
        }
    }
    let ctx = host.context({
        let mut built = SourceInfo::default();
        built.source = "fuzz".to_owned();
        built
    });
    let settings = serde_json::from_value(json!({
        "tenant_id": TENANT,
        "client_id": "00000000-1111-2222-3333-444444444444",
        "client_secret": "fuzz-secret",
        "page_size": 999,
        "concurrency": 4,
        "batch": setup.batch,
        "incremental": setup.incremental,
        "batch_retry_attempts": 3,
    }))
    .ok()?;
    block_on(Entra::open(settings, ctx)).ok()
}

/// How many objects the first answer's `value` holds.
fn first_values(script: &Script) -> usize {
    script
        .first_json()
        .as_ref()
        .and_then(|b| b.get("value"))
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn list(script: &Script, setup: Setup, rtype: &str, token: Option<&str>) {
    let Some(connector) = open(script, setup) else {
        return;
    };
    let token = token.map_or_else(PageToken::first, PageToken::from_string);
    let first = token.is_first();
    let Ok(page) = block_on(connector.list(rtype, token)) else {
        return;
    };
    let prefix = format!("{rtype}:");
    assert!(page.items.iter().all(|r| r.id.starts_with(&prefix)));
    // The first page of a full user or group listing, or of a delta round, is the first
    // answer; its resources (and removals) come from that answer's `value` alone.
    // Unless the first answer failed: a stored link Graph says expired (400 syncStateNotFound,
    // 410) falls back to a full listing, and a 401 is retried with a new token, so the page then
    // comes from later answers.
    let first_ok = script
        .answers
        .first()
        .is_some_and(|a| (200..300).contains(&a.status));
    let first_page = first && first_ok && matches!(rtype, "user" | "group");
    let from_first_answer = first_page && !setup.incremental;
    let delta_round = first_page && setup.stored_delta;
    if from_first_answer || delta_round {
        let values = first_values(script);
        assert!(
            page.items.len() <= values,
            "{rtype}: {} items from {values} values",
            page.items.len()
        );
    }
    if delta_round && rtype == "user" {
        assert!(page.items.len() + page.removed.len() <= first_values(script));
    }
    // Every grant is on an entitlement of this resource type.
    assert!(
        page.grants
            .iter()
            .all(|g| g.entitlement.starts_with(&prefix))
    );
}

/// Object ids (GUIDs, as Graph's are: anything else is refused before a request).
const GROUP: &str = "6ea91a8d-e32e-41a1-b7bd-d2d185eed0e0";
const APP: &str = "11111111-2222-4333-8444-555555555555";
const ROLE: &str = "62e90394-69f5-4237-9190-012177145e10";
const UNIT: &str = "99999999-8888-4777-8666-555555555555";
const USER: &str = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee";

fn provision(script: &Script) {
    let refs = (
        EntitlementRef::parse(&format!("group:{GROUP}:member")),
        EntitlementRef::parse(&format!("app:{APP}:reader")),
        EntitlementRef::parse(&format!("role:{ROLE}:member")),
        EntitlementRef::parse(&format!("role:{ROLE}:member.administrativeUnits.{UNIT}")),
        ResourceRef::parse(&format!("user:{USER}")),
    );
    let (Some(member), Some(app_role), Some(role), Some(scoped), Some(user)) = refs else {
        return;
    };
    for entitlement in [&member, &app_role, &role, &scoped] {
        if let Some(c) = open(script, Setup::default()) {
            let _ = block_on(c.grant(entitlement, &user));
        }
        let grant = GrantRef {
            entitlement: entitlement.clone(),
            principal: user.clone(),
        };
        if let Some(c) = open(script, Setup::default()) {
            let _ = block_on(c.revoke(&grant));
        }
    }
}
