//! Shared set-up: a simulator on loopback and the connector opened against it.

use std::sync::Arc;

use idhost_clickwrap::Clickwrap;
use idhost_connector_sdk::testing::{self, Listing, TestServices};
use idhost_connector_sdk::{ConnectorError, Resource};
use serde_json::{Value, json};
use sim_clickwrap::{SimConfig, Simulator};
use sim_common::RunningServer;

/// A running simulator and the services the connector sends through.
pub(crate) struct Env {
    pub(crate) sim: Simulator,
    pub(crate) server: RunningServer,
    pub(crate) services: Arc<TestServices>,
}

impl Env {
    pub(crate) async fn start(config: SimConfig) -> Self {
        let sim = Simulator::new(config);
        let server = match sim.serve(0).await {
            Ok(s) => s,
            Err(e) => panic!("simulator did not start: {e}"),
        };
        Self {
            sim,
            server,
            services: TestServices::new(),
        }
    }

    /// Settings with the simulator's client credentials, plus `extra`.
    pub(crate) fn client_settings(&self, extra: Value) -> Value {
        let config = self.sim.config();
        merge(
            json!({
                "client_id": config.client_id,
                "client_secret": config.client_secret,
                "base_url": format!("{}/v1.1", self.server.url()),
            }),
            extra,
        )
    }

    /// Settings with the simulator's long-lived access token, plus `extra`.
    pub(crate) fn token_settings(&self, extra: Value) -> Value {
        merge(
            json!({
                "access_token": self.sim.config().access_token,
                "base_url": format!("{}/v1.1", self.server.url()),
            }),
            extra,
        )
    }

    pub(crate) async fn open(&self, settings: Value) -> Result<Clickwrap, ConnectorError> {
        testing::open::<Clickwrap>(settings, self.services.clone()).await
    }

    /// Opens with client credentials scoped to the simulated account.
    pub(crate) async fn open_account(&self) -> Clickwrap {
        let settings = self.client_settings(json!({"account_id": self.sim.config().account_id}));
        match self.open(settings).await {
            Ok(c) => c,
            Err(e) => panic!("connector did not open: {e}"),
        }
    }

    /// Requests the simulator answered with `method` on paths containing `fragment`.
    pub(crate) fn count(&self, method: &str, fragment: &str) -> usize {
        self.sim.faults().log().count(method, fragment)
    }

    /// `GET /accounts/{id}/members` requests (a plain `count("GET", "/members")` would also
    /// count `/sites/{id}/memberships`).
    pub(crate) fn member_pages(&self) -> usize {
        let records = self.sim.faults().log().records();
        records
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with("/members"))
            .count()
    }
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// A complete listing of every resource type, or the error that stopped it.
pub(crate) async fn list_all(connector: &Clickwrap) -> Result<Listing, ConnectorError> {
    testing::list_all(connector).await
}

/// The `user` resources of a complete listing.
pub(crate) async fn users(connector: &Clickwrap) -> Vec<Resource> {
    match list_all(connector).await {
        Ok(mut l) => l.resources.remove("user").unwrap_or_default(),
        Err(e) => panic!("listing failed: {e}"),
    }
}

/// `user:<id>` for each simulator user id.
pub(crate) fn user_ids(ids: impl IntoIterator<Item = u64>) -> Vec<String> {
    ids.into_iter().map(|id| format!("user:{id}")).collect()
}
