//! Test support for connector crates (feature `testing`): in-process host services over
//! reqwest, and a compliance harness every connector runs against its simulator.
//!
//! These services are deliberately plain (no retries, no budgets): connector unit tests check
//! the connector's own logic; the host's HTTP policy is tested in the host, and end-to-end tests
//! load the real plugin into the real host.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::connector::{Connector, PageToken};
use crate::context::{Context, SourceInfo};
use crate::error::ConnectorError;
use crate::http::{HttpRequest, HttpResponse};
use crate::model::{Entitlement, Grant, Resource};
use crate::paging::{CursorGuard, MAX_RELISTS};
use crate::services::{HostServices, LogRecord};

/// Host services for in-process connector tests: real HTTP (reqwest, no retries), state in a
/// map, logs captured, sleeps on tokio.
#[derive(Default)]
pub struct TestServices {
    client: reqwest::Client,
    state: Mutex<BTreeMap<String, String>>,
    logs: Mutex<Vec<LogRecord>>,
    requests: Mutex<Vec<String>>,
}

impl std::fmt::Debug for TestServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServices").finish_non_exhaustive()
    }
}

impl TestServices {
    /// Fresh services.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Log records the connector emitted through `HostServices::log` (in-process, `tracing`
    /// events go to the test's own subscriber instead).
    pub fn logs(&self) -> Vec<LogRecord> {
        self.logs.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// `METHOD url` of every request sent, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The connector state staged so far.
    pub fn state(&self) -> BTreeMap<String, String> {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl HostServices for TestServices {
    fn http(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, ConnectorError>> {
        let client = self.client.clone();
        let line = format!("{} {}", request.method, request.url);
        if let Ok(mut r) = self.requests.lock() {
            r.push(line.clone());
        }
        Box::pin(async move {
            let method = reqwest::Method::from_bytes(request.method.as_bytes())
                .map_err(|e| ConnectorError::invalid_input(format!("bad method: {e}")))?;
            let mut builder = client.request(method, &request.url);
            for (k, v) in &request.headers {
                builder = builder.header(k, v);
            }
            if !request.body.is_empty() {
                builder = builder.body(request.body.clone());
            }
            if let Some(ms) = request.options.timeout_ms {
                builder = builder.timeout(Duration::from_millis(ms));
            }
            let response = builder
                .send()
                .await
                .map_err(|e| ConnectorError::unavailable(format!("{line}: {e}")))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let body = response
                .bytes()
                .await
                .map_err(|e| ConnectorError::unavailable(format!("{line}: reading the body: {e}")))?
                .to_vec();
            Ok(HttpResponse {
                status,
                headers,
                body,
                dry_run: false,
                request_line: line,
            })
        })
    }

    fn log(&self, record: LogRecord) {
        if let Ok(mut l) = self.logs.lock() {
            l.push(record);
        }
    }

    fn state_get(&self, key: &str) -> Option<String> {
        self.state.lock().ok()?.get(key).cloned()
    }

    fn state_set(&self, key: &str, value: Option<String>) {
        if let Ok(mut s) = self.state.lock() {
            match value {
                Some(v) => s.insert(key.to_owned(), v),
                None => s.remove(key),
            };
        }
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Opens connector `C` in-process with `settings` (JSON, as the host would pass them).
pub async fn open<C: Connector>(
    settings: serde_json::Value,
    services: Arc<TestServices>,
) -> Result<C, ConnectorError> {
    let settings: C::Settings = crate::settings::from_value(settings)
        .map_err(|e| ConnectorError::from(e.context("invalid settings")))?;
    let ctx = Context::new(
        services,
        SourceInfo {
            source: "test".to_owned(),
            ..SourceInfo::default()
        },
    );
    C::open(settings, ctx).await
}

/// Everything one full listing produced.
#[derive(Debug, Default)]
pub struct Listing {
    /// Resources by type, in listing order.
    pub resources: BTreeMap<String, Vec<Resource>>,
    /// All entitlements (side-loaded and per resource).
    pub entitlements: Vec<Entitlement>,
    /// All grants (side-loaded and per resource).
    pub grants: Vec<Grant>,
    /// Pages fetched.
    pub pages: usize,
    /// Times a page asked to list its type again from the first page.
    pub relists: usize,
}

/// Lists every resource type of `C` to the end, the way a host that supports relisting does,
/// checking as it goes: a repeated page token is an error, and a page that asks for a relist
/// ([`crate::Page::relist`]) discards what was listed of that type and lists it again from the
/// first page, at most [`crate::paging::MAX_RELISTS`] times (counted in [`Listing::relists`]).
pub async fn list_all<C: Connector>(connector: &C) -> Result<Listing, ConnectorError> {
    let mut listing = Listing::default();
    for spec in C::manifest().resource_types {
        let mut relists = 0;
        'fresh: loop {
            let mut resources = Vec::new();
            let mut entitlements = Vec::new();
            let mut grants = Vec::new();
            let mut guard = CursorGuard::new(format!("`{}`", spec.name));
            let mut token = PageToken::first();
            loop {
                let page = connector.list(&spec.name, token.clone()).await?;
                listing.pages += 1;
                if let Some(reason) = page.relist {
                    relists += 1;
                    listing.relists += 1;
                    if relists > MAX_RELISTS {
                        return Err(ConnectorError::unavailable(format!(
                            "listing `{}` kept shifting ({reason}); gave up after {MAX_RELISTS} relists",
                            spec.name
                        )));
                    }
                    continue 'fresh;
                }
                entitlements.extend(page.entitlements);
                grants.extend(page.grants);
                for resource in &page.items {
                    if spec.per_resource_details {
                        entitlements.extend(
                            connector
                                .entitlements(resource, PageToken::first())
                                .await?
                                .items,
                        );
                        grants.extend(connector.grants(resource, PageToken::first()).await?.items);
                    }
                }
                resources.extend(page.items);
                match guard.follow(page.next.as_deref())? {
                    None => break,
                    Some(next) => token = next,
                }
            }
            listing
                .resources
                .entry(spec.name.clone())
                .or_default()
                .extend(resources);
            listing.entitlements.extend(entitlements);
            listing.grants.extend(grants);
            break;
        }
    }
    Ok(listing)
}

/// The checks every connector must pass against its simulator (the SDK's compliance harness):
/// ids follow the `"<type>:<id>"` convention and are unique; every entitlement is on a listed
/// resource; every grant's entitlement exists and its principal is a listed resource or a
/// resource id of a listed type; and listing twice gives the same result (idempotent reads).
pub async fn assert_connector_compliance<C: Connector>(connector: &C) -> Listing {
    let first = match list_all(connector).await {
        Ok(l) => l,
        Err(e) => panic!("listing failed: {e}"),
    };
    let manifest = C::manifest();
    let mut ids = HashSet::new();
    for (rtype, resources) in &first.resources {
        assert!(
            manifest.resource_type(rtype).is_some(),
            "type `{rtype}` is not in the manifest"
        );
        for r in resources {
            assert_eq!(&r.rtype, rtype, "resource {} listed under `{rtype}`", r.id);
            assert!(
                r.id.starts_with(&format!("{rtype}:")) && r.id.len() > rtype.len() + 1,
                "resource id `{}` does not follow `<type>:<id>`",
                r.id
            );
            assert!(ids.insert(r.id.clone()), "resource `{}` listed twice", r.id);
        }
    }
    let mut ent_ids = HashMap::new();
    for e in &first.entitlements {
        assert!(
            ids.contains(&e.resource),
            "entitlement `{}` is on an unlisted resource",
            e.id
        );
        assert_eq!(
            e.id,
            format!("{}:{}", e.resource, e.slug),
            "entitlement id `{}`",
            e.id
        );
        ent_ids.insert(e.id.clone(), e);
    }
    let mut grant_ids = HashSet::new();
    for g in &first.grants {
        assert!(
            ent_ids.contains_key(&g.entitlement),
            "grant `{}` names a missing entitlement",
            g.id
        );
        assert_eq!(
            g.id,
            format!("{}:{}", g.entitlement, g.principal),
            "grant id `{}`",
            g.id
        );
        assert!(
            grant_ids.insert(g.id.clone()),
            "grant `{}` listed twice",
            g.id
        );
    }
    let second = match list_all(connector).await {
        Ok(l) => l,
        Err(e) => panic!("second listing failed: {e}"),
    };
    let count = |l: &Listing| l.resources.values().map(Vec::len).sum::<usize>();
    assert_eq!(
        count(&first),
        count(&second),
        "listing twice gave different resources"
    );
    assert_eq!(
        first.grants.len(),
        second.grants.len(),
        "listing twice gave different grants"
    );
    first
}
