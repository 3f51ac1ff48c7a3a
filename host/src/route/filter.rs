//! Which records reach a sink: the sources feeding it (`inputs`) and the records it takes
//! (`records`), as the config states them.

use std::collections::BTreeSet;

use crate::record::Batch;

/// Which sources feed a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inputs {
    /// `"*"` (or `inputs` omitted).
    All,
    /// These sources.
    Named(BTreeSet<String>),
}

impl Inputs {
    /// Whether `source` feeds the sink.
    pub fn includes(&self, source: &str) -> bool {
        match self {
            Inputs::All => true,
            Inputs::Named(names) => names.contains(source),
        }
    }
}

/// Which records a sink takes: record kinds (`resource`, `event`, ...) and, narrowing
/// `resource`, resource types (`user`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFilter {
    kinds: BTreeSet<String>,
    resource_types: BTreeSet<String>,
}

impl RecordFilter {
    /// A filter taking records of these `kinds` and resources of these `resource_types`.
    pub fn new(
        kinds: impl IntoIterator<Item = String>,
        resource_types: impl IntoIterator<Item = String>,
    ) -> Self {
        Self {
            kinds: kinds.into_iter().collect(),
            resource_types: resource_types.into_iter().collect(),
        }
    }

    /// Whether records of `kind` are wanted.
    pub fn wants_kind(&self, kind: &str) -> bool {
        self.kinds.contains(kind) || (kind == "resource" && !self.resource_types.is_empty())
    }

    /// Whether a resource of type `rtype` is wanted.
    pub fn wants_resource(&self, rtype: &str) -> bool {
        self.kinds.contains("resource") || self.resource_types.contains(rtype)
    }

    /// Whether the sink takes resources, entitlements or grants (else replays skip it).
    pub fn wants_records(&self) -> bool {
        ["resource", "entitlement", "grant"]
            .iter()
            .any(|k| self.wants_kind(k))
    }

    /// The part of `batch` this filter wants (`None` when that is all of it, to avoid a copy).
    pub fn select(&self, batch: &Batch) -> Option<Batch> {
        let all_resources = batch
            .resources
            .iter()
            .all(|r| self.wants_resource(&r.rtype));
        let ents = self.wants_kind("entitlement");
        let grants = self.wants_kind("grant");
        if all_resources
            && (ents || batch.entitlements.is_empty())
            && (grants || batch.grants.is_empty())
        {
            return None;
        }
        Some(Batch {
            resources: batch
                .resources
                .iter()
                .filter(|r| self.wants_resource(&r.rtype))
                .cloned()
                .collect(),
            entitlements: if ents {
                batch.entitlements.clone()
            } else {
                Vec::new()
            },
            grants: if grants {
                batch.grants.clone()
            } else {
                Vec::new()
            },
        })
    }
}
