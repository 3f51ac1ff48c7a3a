//! Which service principals are managed identities.
//!
//! Managed identities are listed as `user` resources and other service principals as `app`, so
//! a principal id needs the service principal's type. Member and owner lists carry it
//! (`$select=id,servicePrincipalType`), but `members@delta` and appRoleAssignment
//! `principalType` say only "servicePrincipal": for those the connector looks the id up in the
//! set of managed identity ids, kept for a few minutes and refreshed by every user listing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idhost_connector_sdk::ConnectorError;
use serde_json::Value;

use crate::Entra;
use crate::client::encode;
use crate::mapping;

/// How long a fetched id set is trusted by pages that did not list the identities themselves.
const FRESH_FOR: Duration = Duration::from_secs(600);

/// Lower-cased ids of managed identities.
#[derive(Debug, Default)]
pub(crate) struct IdSet(HashSet<String>);

impl IdSet {
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.0.contains(&id.to_ascii_lowercase())
    }

    /// The ids, sorted (so reads are issued in a stable order).
    pub(crate) fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.0.iter().cloned().collect();
        ids.sort();
        ids
    }
}

/// The cached set.
#[derive(Default)]
pub(crate) struct ManagedIds {
    cache: Mutex<Option<(Instant, Arc<IdSet>)>>,
}

impl ManagedIds {
    fn store(&self, items: &[Value]) -> Arc<IdSet> {
        let set = Arc::new(IdSet(
            items
                .iter()
                .filter_map(mapping::id)
                .map(str::to_ascii_lowercase)
                .collect(),
        ));
        if let Ok(mut cache) = self.cache.lock() {
            *cache = Some((Instant::now(), set.clone()));
        }
        set
    }

    fn url(c: &Entra, select: &str) -> String {
        c.graph.url(&format!(
            "/servicePrincipals?$filter={}&$select={}&$top={}",
            encode("servicePrincipalType eq 'ManagedIdentity'"),
            encode(select),
            c.opts.page_size
        ))
    }

    /// Every managed identity, with the properties a `user` resource needs; refreshes the set.
    pub(crate) async fn load_all(&self, c: &Entra) -> Result<Vec<Value>, ConnectorError> {
        let items = c.graph.get_all(&Self::url(c, mapping::MI_SELECT)).await?;
        self.store(&items);
        Ok(items)
    }

    /// The id set, fetched when missing or stale.
    pub(crate) async fn get(&self, c: &Entra) -> Result<Arc<IdSet>, ConnectorError> {
        let cached = self.cache.lock().ok().and_then(|cache| {
            cache
                .as_ref()
                .filter(|(at, _)| at.elapsed() < FRESH_FOR)
                .map(|(_, set)| set.clone())
        });
        if let Some(set) = cached {
            return Ok(set);
        }
        let items = c.graph.get_all(&Self::url(c, "id")).await?;
        Ok(self.store(&items))
    }
}
