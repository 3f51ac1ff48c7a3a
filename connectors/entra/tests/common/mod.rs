//! Shared helpers: a simulator on loopback, the connector opened against it, and a listing
//! loop that (unlike the SDK's `list_all`) keeps the `incremental` flags and removed ids.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use idhost_connector_sdk::testing::TestServices;
use idhost_connector_sdk::{Connector, ConnectorError, Context, PageToken, Resource, SourceInfo};
use idhost_entra::Entra;
use idhost_entra::config::EntraSettings;
use serde_json::{Value, json};
use sim_common::RunningServer;
use sim_graph::{SimConfig, Simulator};

/// A running simulator.
pub(crate) struct Sim {
    pub(crate) sim: Simulator,
    pub(crate) server: RunningServer,
}

impl Sim {
    pub(crate) async fn start(config: SimConfig) -> Self {
        let sim = Simulator::new(config);
        let server = sim.serve(0).await.expect("simulator binds to loopback");
        Self { sim, server }
    }

    /// Settings pointing the connector at this simulator, with `extra` merged in.
    pub(crate) fn settings(&self, extra: Value) -> Value {
        let config = self.sim.config();
        let mut settings = json!({
            "tenant_id": config.tenant_id,
            "client_id": config.client_id,
            "client_secret": config.client_secret,
            "graph_url": self.server.url(),
            "login_url": self.server.url(),
        });
        if let (Some(base), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        settings
    }

    /// Opens the connector with default source facts.
    pub(crate) async fn open(&self, extra: Value, services: Arc<TestServices>) -> Entra {
        self.open_with(extra, services, SourceInfo::default()).await
    }

    /// Opens the connector with the given source facts (read_only, full_sync, ...).
    pub(crate) async fn open_with(
        &self,
        extra: Value,
        services: Arc<TestServices>,
        info: SourceInfo,
    ) -> Entra {
        let settings: EntraSettings =
            serde_json::from_value(self.settings(extra)).expect("settings parse");
        let info = {
            let mut built = info;
            built.source = "corp".into();
            built
        };
        Entra::open(settings, Context::new(services, info))
            .await
            .expect("connector opens")
    }

    /// Outer requests the simulator answered so far.
    pub(crate) fn requests(&self) -> usize {
        self.sim.faults().log().len()
    }
}

/// Everything a listing of some resource types produced, flags included.
#[derive(Debug, Default)]
pub(crate) struct Listed {
    pub(crate) resources: BTreeMap<String, Vec<Resource>>,
    pub(crate) entitlements: BTreeSet<String>,
    pub(crate) grants: BTreeSet<String>,
    pub(crate) removed: BTreeSet<String>,
    /// Per type: whether its pages were incremental (all pages must agree).
    pub(crate) incremental: BTreeMap<String, bool>,
    pub(crate) pages: usize,
}

impl Listed {
    pub(crate) fn ids(&self, rtype: &str) -> BTreeSet<String> {
        self.resources
            .get(rtype)
            .map(|rs| rs.iter().map(|r| r.id.clone()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn count(&self, rtype: &str) -> usize {
        self.resources.get(rtype).map_or(0, Vec::len)
    }

    /// Grants on entitlements whose id ends with `:{slug}` of resources of `rtype`.
    pub(crate) fn grants_of(&self, rtype: &str, slug: &str) -> usize {
        self.grants
            .iter()
            .filter(|g| g.starts_with(&format!("{rtype}:")) && g.split(':').nth(2) == Some(slug))
            .count()
    }
}

/// Lists `types` to the end, as the host does, keeping flags and removals.
pub(crate) async fn list(connector: &Entra, types: &[&str]) -> Result<Listed, ConnectorError> {
    let mut out = Listed::default();
    for rtype in types {
        let mut token = PageToken::first();
        let mut seen = BTreeSet::new();
        loop {
            let page = connector.list(rtype, token.clone()).await?;
            out.pages += 1;
            let flag = out
                .incremental
                .entry((*rtype).to_owned())
                .or_insert(page.incremental);
            assert_eq!(
                *flag, page.incremental,
                "pages of one `{rtype}` listing disagree on `incremental`"
            );
            for e in page.entitlements {
                out.entitlements.insert(e.id);
            }
            for g in page.grants {
                assert!(
                    out.grants.insert(g.id.clone()),
                    "grant {} listed twice",
                    g.id
                );
            }
            out.removed.extend(page.removed);
            out.resources
                .entry((*rtype).to_owned())
                .or_default()
                .extend(page.items);
            match page.next {
                None => break,
                Some(next) => {
                    assert!(seen.insert(next.clone()), "page token repeated: {next}");
                    token = PageToken::from_string(next);
                }
            }
        }
    }
    Ok(out)
}

pub(crate) const ALL: &[&str] = &["user", "group", "app", "role"];

/// The connector's listing against the simulator's own counts: every object and every edge.
pub(crate) fn assert_matches_counts(listed: &Listed, sim: &Simulator) {
    let c = sim.counts();
    assert_eq!(
        listed.count("user"),
        c.users + c.managed_identities,
        "users + managed identities"
    );
    assert_eq!(listed.count("group"), c.groups, "groups");
    assert_eq!(listed.count("app"), c.apps, "apps");
    assert_eq!(listed.count("role"), c.roles, "roles");
    assert_eq!(
        listed.grants_of("group", "member"),
        c.memberships,
        "group memberships"
    );
    assert_eq!(listed.grants_of("group", "owner"), c.owners, "group owners");
    assert_eq!(listed.grants_of("app", "owner"), c.app_owners, "app owners");
    let app_grants = listed
        .grants
        .iter()
        .filter(|g| g.starts_with("app:"))
        .count();
    assert_eq!(
        app_grants - c.app_owners,
        c.app_role_assignments,
        "app role assignments"
    );
    assert_eq!(
        listed.grants_of("role", "member"),
        c.role_assignments,
        "role members"
    );
    let users: BTreeSet<String> = sim
        .user_ids()
        .iter()
        .map(|id| format!("user:{id}"))
        .collect();
    let mis: BTreeSet<String> = sim
        .managed_identity_ids()
        .iter()
        .map(|id| format!("user:{id}"))
        .collect();
    let expected: BTreeSet<String> = users.union(&mis).cloned().collect();
    assert_eq!(listed.ids("user"), expected, "user ids");
}
