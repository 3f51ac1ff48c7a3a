//! Fuzzing entry point (target `clickwrap_parse` in `fuzz/`, replayed over the stored corpus by
//! `tests/fuzz_corpus.rs`). Not part of the crate's API.
//!
//! The input is a script of REST answers (`idhost_connector_sdk::fuzzing`); a plain JSON file
//! is one 200 answer. The connector's real code runs on it, through `list` and `validate` as the
//! host drives them: error envelopes (`error::upstream_error`), the collection envelope and its
//! paging (`has_more`, `per_page`), user mapping, the scope (`GET /sites/{id}`, `GET /sites`
//! pages, discovery of the only site), site memberships and their role grants, from the first
//! page and from the script's page token. Nothing may panic, and a page never holds more users
//! or grants than the envelope's `data` carried.

use idhost_connector_sdk::fuzzing::{Script, ScriptedHost, block_on};
use idhost_connector_sdk::{Connector, HttpResponse, PageToken, SourceInfo};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::json;

use crate::Clickwrap;

/// Target `clickwrap_parse`.
pub fn clickwrap_parse(data: &[u8]) {
    error_body(data);
    let script = Script::parse(data);
    let account = Scope {
        account_id: Some(1001),
        site_id: None,
    };
    let site = Scope {
        account_id: Some(1001),
        site_id: Some(10011),
    };
    let only_site = Scope {
        account_id: None,
        site_id: None,
    };
    for scope in [account, site, only_site] {
        for rtype in ["user", "site"] {
            list(&script, scope, rtype, None);
            if let Some(token) = &script.token {
                list(&script, scope, rtype, Some(token));
            }
        }
        if let Some(c) = open(&script, scope) {
            let _ = block_on(c.validate());
        }
    }
}

/// The whole input as the body of a failed call.
fn error_body(data: &[u8]) {
    for status in [400, 401, 403, 404, 429, 500, 502] {
        let response = HttpResponse {
            status,
            headers: vec![("retry-after".to_owned(), "9".to_owned())],
            body: data.to_vec(),
            dry_run: false,
            request_line: "GET https://api.pactsafe.com/v1.1/accounts/1001/members?page=1"
                .to_owned(),
        };
        for hint in [None, Some("renew the token")] {
            let err = crate::error::upstream_error(&response, hint);
            assert_eq!(err.status, Some(status), "{err:?}");
            if let Some(hint) = hint {
                assert!(err.message.ends_with(hint), "{}", err.message);
            }
        }
    }
}

/// `account_id` and `site_id` of a scenario.
#[derive(Debug, Clone, Copy)]
struct Scope {
    account_id: Option<u64>,
    site_id: Option<u64>,
}

fn open(script: &Script, scope: Scope) -> Option<Clickwrap> {
    let host = ScriptedHost::new(script);
    let ctx = host.context({
        let mut built = SourceInfo::default();
        built.source = "fuzz".to_owned();
        built
    });
    let mut settings = json!({ "access_token": "fuzz-token", "per_page": 100 });
    if let Some(id) = scope.account_id {
        settings["account_id"] = json!(id);
    }
    if let Some(id) = scope.site_id {
        settings["site_id"] = json!(id);
    }
    let settings = serde_json::from_value(settings).ok()?;
    block_on(Clickwrap::open(settings, ctx)).ok()
}

/// A collection envelope's `data`, counted as leniently as the connector reads it (serde skips
/// unknown keys without checking their strings are UTF-8, so a `serde_json::Value` of the whole
/// body may fail where the connector's parse succeeds).
#[derive(Deserialize)]
struct Counted {
    #[serde(default)]
    data: Vec<IgnoredAny>,
}

/// The length of the `data` array of answer `index` (0 when it is no envelope).
fn data_len(script: &Script, index: usize) -> usize {
    script
        .answers
        .get(index)
        .and_then(|a| serde_json::from_slice::<Counted>(&a.body).ok())
        .map_or(0, |c| c.data.len())
}

fn list(script: &Script, scope: Scope, rtype: &str, token: Option<&str>) {
    let Some(connector) = open(script, scope) else {
        return;
    };
    let token = token.map_or_else(PageToken::first, PageToken::from_string);
    let Ok(page) = block_on(connector.list(rtype, token)) else {
        return;
    };
    let prefix = format!("{rtype}:");
    assert!(page.items.iter().all(|r| r.id.starts_with(&prefix)));
    match (rtype, scope.account_id, scope.site_id) {
        // Users of a configured account: one request, the first answer.
        ("user", Some(_), _) => assert!(page.items.len() <= data_len(script, 0)),
        // One configured site: `GET /sites/{id}`, then its memberships.
        ("site", _, Some(_)) => {
            assert!(page.items.len() <= 1);
            assert!(page.grants.len() <= data_len(script, 1));
        }
        _ => {}
    }
}
