//! Shared test plumbing: a simulator on loopback, settings pointing at it, and host services
//! for read-only and dry-run sources.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use idhost_connector_sdk::services::{HostServices, LogRecord};
use idhost_connector_sdk::testing::{self, TestServices};
use idhost_connector_sdk::{
    Connector, ConnectorError, Context, HttpRequest, HttpResponse, SourceInfo,
};
use idhost_ironclad::{Ironclad, IroncladSettings};
use serde_json::{Value, json};
use sim_common::RunningServer;
use sim_ironclad::{SimConfig, Simulator};

/// A running simulator and its handle.
pub struct Upstream {
    pub sim: Simulator,
    pub server: RunningServer,
}

impl Upstream {
    pub async fn start(config: SimConfig) -> Self {
        let sim = Simulator::new(config);
        let server = sim.serve(0).await.expect("simulator binds to loopback");
        Self { sim, server }
    }

    /// Client-credentials settings for this simulator.
    pub fn settings(&self) -> Value {
        let c = self.sim.config();
        json!({
            "base_url": self.server.url(),
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "as_user_email": c.admin_email,
        })
    }

    /// `settings()` asking for every SCIM scope (for a simulator registered for them).
    pub fn settings_with_every_scope(&self) -> Value {
        self.settings_with(json!({ "scopes": EVERY_SCOPE }))
    }

    /// `settings()` with `extra` merged in.
    pub fn settings_with(&self, extra: Value) -> Value {
        let mut s = self.settings();
        if let (Some(s), Some(extra)) = (s.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                if v.is_null() {
                    s.remove(k);
                } else {
                    s.insert(k.clone(), v.clone());
                }
            }
        }
        s
    }

    /// Opens the connector over plain test services.
    pub async fn open(&self, settings: Value) -> Result<Ironclad, ConnectorError> {
        testing::open::<Ironclad>(settings, TestServices::new()).await
    }

    /// Opens the connector with `info` for its source (read-only, dry-run) over `services`.
    pub async fn open_as(
        &self,
        settings: Value,
        services: Arc<dyn HostServices>,
        info: SourceInfo,
    ) -> Result<Ironclad, ConnectorError> {
        let settings: IroncladSettings = serde_json::from_value(settings)
            .map_err(|e| ConnectorError::invalid_input(e.to_string()))?;
        Ironclad::open(settings, Context::new(services, info)).await
    }

    /// Requests the simulator answered with `status`.
    pub fn answered(&self, status: u16) -> usize {
        self.sim
            .faults()
            .log()
            .records()
            .iter()
            .filter(|r| r.status == status)
            .count()
    }
}

/// Every SCIM scope Ironclad names (SCIM OpenAPI, per operation).
pub const EVERY_SCOPE: [&str; 9] = [
    "scim.users.readUsers",
    "scim.users.createUsers",
    "scim.users.updateUsers",
    "scim.users.deleteUsers",
    "scim.groups.readGroups",
    "scim.groups.createGroups",
    "scim.groups.updateGroups",
    "scim.groups.deleteGroups",
    "scim.schemas.readSchemas",
];

/// A small company: 50 users, 5 groups of 10, its API application registered for the scopes
/// of the setup guide (the simulator's default).
pub fn small() -> SimConfig {
    SimConfig {
        users: 50,
        groups: 5,
        members_per_group: 10,
        ..SimConfig::default()
    }
}

/// [`small`] with the API application registered for every SCIM scope.
pub fn small_with_every_scope() -> SimConfig {
    SimConfig {
        registered_scopes: EVERY_SCOPE.map(str::to_owned).to_vec(),
        ..small()
    }
}

/// Host services that intercept writes the way the host does under `--dry-run`: nothing is
/// sent, the answer is 202 with an empty body and `dry_run: true`.
pub struct DryRunServices(pub Arc<TestServices>);

impl HostServices for DryRunServices {
    fn http(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, ConnectorError>> {
        if request.is_write() {
            let line = format!("{} {}", request.method, request.url);
            return Box::pin(async move {
                Ok(HttpResponse {
                    status: 202,
                    headers: Vec::new(),
                    body: Vec::new(),
                    dry_run: true,
                    request_line: line,
                })
            });
        }
        self.0.http(request)
    }
    fn log(&self, record: LogRecord) {
        self.0.log(record);
    }
    fn state_get(&self, key: &str) -> Option<String> {
        self.0.state_get(key)
    }
    fn state_set(&self, key: &str, value: Option<String>) {
        self.0.state_set(key, value);
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.0.sleep(duration)
    }
}

/// Source facts of a source named `test`.
pub fn source(read_only: bool, dry_run: bool) -> SourceInfo {
    {
        let mut built = SourceInfo::default();
        built.source = "test".into();
        built.read_only = read_only;
        built.dry_run = dry_run;
        built.full_sync = true;
        built
    }
}

/// Host services that remember every request (method, URL, headers, body) before sending it.
#[derive(Default)]
pub struct RecordingServices {
    pub inner: Arc<TestServices>,
    pub sent: std::sync::Mutex<Vec<HttpRequest>>,
}

impl RecordingServices {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: TestServices::new(),
            sent: std::sync::Mutex::default(),
        })
    }

    /// Requests whose URL contains `fragment`.
    pub fn sent_to(&self, fragment: &str) -> Vec<HttpRequest> {
        self.sent
            .lock()
            .map(|s| {
                s.iter()
                    .filter(|r| r.url.contains(fragment))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl HostServices for RecordingServices {
    fn http(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, ConnectorError>> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(request.clone());
        }
        self.inner.http(request)
    }
    fn log(&self, record: LogRecord) {
        self.inner.log(record);
    }
    fn state_get(&self, key: &str) -> Option<String> {
        self.inner.state_get(key)
    }
    fn state_set(&self, key: &str, value: Option<String>) {
        self.inner.state_set(key, value);
    }
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.inner.sleep(duration)
    }
}
