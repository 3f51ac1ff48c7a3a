//! A page of records as the pipeline moves it: what a connector listed, one page at a time.

use idhost_connector_sdk::{Entitlement, Grant, Resource};

/// Records of one page, routed together.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// Resources.
    pub resources: Vec<Resource>,
    /// Entitlements.
    pub entitlements: Vec<Entitlement>,
    /// Grants.
    pub grants: Vec<Grant>,
}

impl Batch {
    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.resources.len() + self.entitlements.len() + self.grants.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
