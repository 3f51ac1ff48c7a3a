//! Fuzzing entry point (target `scim_parse` in `fuzz/`, replayed over the stored corpus by
//! `tests/fuzz_corpus.rs`). Not part of the crate's API.
//!
//! The input is a script of upstream answers (`idhost_connector_sdk::fuzzing`); a plain JSON
//! file is one 200 answer. The connector's real code runs on it: SCIM error bodies
//! (`error::upstream_error`), `user` and `group` listings (ListResponse paging, user and group
//! mapping), from the first page and from the script's page token, and every provisioning
//! operation (the group read before a PATCH add/remove, the PatchOp built from attribute names,
//! created users and groups read back). Nothing may panic, and a listed page never holds more
//! than the ListResponse carried.

use idhost_connector_sdk::fuzzing::{Script, ScriptedHost, block_on};
use idhost_connector_sdk::prelude::*;
use idhost_connector_sdk::{EntitlementRef, GrantRef, ResourceRef};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Ironclad;

/// Target `scim_parse`.
pub fn scim_parse(data: &[u8]) {
    error_body(data);
    let script = Script::parse(data);
    for rtype in ["user", "group"] {
        list(&script, rtype, None);
        if let Some(token) = &script.token {
            list(&script, rtype, Some(token));
        }
    }
    provision(&script);
}

/// The whole input as the body of a failed SCIM call, at the statuses Ironclad documents.
fn error_body(data: &[u8]) {
    for status in [400, 401, 403, 404, 409, 429, 500, 502] {
        let response = HttpResponse {
            status,
            headers: vec![("x-ironclad-requestid".to_owned(), "fuzz-request".to_owned())],
            body: data.to_vec(),
            dry_run: false,
            request_line: "GET https://na1.ironcladapp.com/scim/v2/Users?startIndex=1".to_owned(),
        };
        let err = crate::error::upstream_error(&response);
        assert_eq!(err.status, Some(status), "{err:?}");
        assert!(
            err.message.contains("x-ironclad-requestid fuzz-request"),
            "{err:?}"
        );
    }
}

fn open(script: &Script) -> Option<Ironclad> {
    let host = ScriptedHost::new(script);
    let ctx = host.context({
        let mut built = SourceInfo::default();
        built.source = "fuzz".to_owned();
        built
    });
    let settings = serde_json::from_value(json!({
        "environment": "na1",
        "bearer_token": "fuzz-token",
        "as_user_email": "it-admin@example.com",
        "page_size": 25,
    }))
    .ok()?;
    block_on(Ironclad::open(settings, ctx)).ok()
}

/// The `Resources` of a ListResponse, read as leniently as the connector reads them (serde
/// skips unknown keys without checking their strings are UTF-8, so a `serde_json::Value` of the
/// whole body may fail where the connector's parse succeeds).
#[derive(Deserialize)]
struct Listed {
    #[serde(default, rename = "Resources", alias = "resources")]
    resources: Vec<Value>,
}

/// How many resources the first answer's ListResponse holds, and how many members in all;
/// `None` when it is no ListResponse.
fn listed(script: &Script) -> Option<(usize, usize)> {
    let body = &script.answers.first()?.body;
    let listed: Listed = serde_json::from_slice(body).ok()?;
    let members = listed
        .resources
        .iter()
        .filter_map(|r| r.get("members").and_then(Value::as_array))
        .map(Vec::len)
        .sum();
    Some((listed.resources.len(), members))
}

fn list(script: &Script, rtype: &str, token: Option<&str>) {
    let Some(connector) = open(script) else {
        return;
    };
    let token = token.map_or_else(PageToken::first, PageToken::from_string);
    let Ok(page) = block_on(connector.list(rtype, token.clone())) else {
        return;
    };
    // One request: the page is the first answer, which therefore parsed as a ListResponse.
    let Some((resources, members)) = listed(script) else {
        panic!("{rtype}: a page from an answer that is no ListResponse");
    };
    assert!(
        page.items.len() <= resources,
        "{rtype}: more items than Resources"
    );
    let prefix = format!("{rtype}:");
    assert!(page.items.iter().all(|r| r.id.starts_with(&prefix)));
    if rtype == "group" {
        assert_eq!(page.entitlements.len(), page.items.len());
        assert!(page.grants.len() <= members, "more grants than members");
    }
    if let Some(next) = &page.next {
        let index = |t: &str| {
            t.split([':', '/'])
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        };
        let start = token.as_str().map_or(Some(1), index);
        let next = index(next);
        // The next page starts at this page's last resource (one of overlap), so past where
        // this one started unless this page held that one resource only, which ends a listing.
        assert!(
            next >= start && !page.items.is_empty(),
            "the next startIndex {next:?} does not advance from {start:?}"
        );
    }
}

fn provision(script: &Script) {
    let (Some(entitlement), Some(user), Some(grant)) = (
        EntitlementRef::parse("group:g1:member"),
        ResourceRef::parse("user:u1"),
        GrantRef::parse("group:g1:member:user:u1"),
    ) else {
        return;
    };
    if let Some(c) = open(script) {
        let _ = block_on(c.grant(&entitlement, &user));
    }
    if let Some(c) = open(script) {
        let _ = block_on(c.revoke(&grant));
    }
    if let Some(c) = open(script) {
        let info = {
            let mut built = AccountInfo::default();
            built.login = "new.user@example.com".to_owned();
            built.email = Some("new.user@example.com".to_owned());
            built.given_name = Some("New".to_owned());
            built
        };
        let options = {
            let mut built = CredentialOptions::default();
            built.generate_password = true;
            built
        };
        if let Ok(created) = block_on(c.create_account(info, options)) {
            assert!(created.resource.id.starts_with("user:"));
        }
    }
    if let Some(c) = open(script) {
        let spec = {
            let mut built = ResourceSpec::default();
            built.display_name = script.token.clone().unwrap_or_else(|| "Legal".to_owned());
            built.profile = Profile::new();
            built
        };
        if let Ok(group) = block_on(c.create_resource("group", spec)) {
            assert!(group.id.starts_with("group:"));
        }
    }
    // The first answer's object, read as attribute changes: field names become PatchOp paths.
    if let Some(Value::Object(set)) = script.first_json()
        && let Some(c) = open(script)
    {
        let set = set.into_iter().take(16).collect();
        let _ = block_on(c.update(&user, {
            let mut built = Changes::default();
            built.set = set;
            built
        }));
    }
    if let Some(c) = open(script) {
        let _ = block_on(c.delete(&user));
    }
}
