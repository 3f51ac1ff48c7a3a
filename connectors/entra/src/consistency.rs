//! Read-your-writes over an eventually consistent directory.
//!
//! "A successful write to Microsoft Entra does not guarantee that an immediate read will
//! reflect that change … it is normal for … a newly created object to return a 'Not Found'"
//! (Microsoft Entra identity blog, "Designing for Eventual Consistency for Microsoft Entra";
//! group-post-members.md says the same of members added to a group just created). So a revoke
//! right after a grant can find nothing, or have its `DELETE` answered 404, by a replica that
//! has not seen the grant yet — and reporting "already revoked" then would be wrong.
//!
//! The connector remembers what this instance created (the grant id and, for assignments, the
//! id Graph gave it). A revoke of such a grant that finds nothing, or gets a 404, tries again
//! after 1, 2, 4, 8 and 16 s; if Graph still does not show it, the revoke fails as unavailable
//! (retryable) rather than reporting success. Grants this instance did not create get Graph's
//! answer at once: a 404 there means absent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after a write a 404 is read as "not replicated yet" rather than "absent".
const REPLICATION_WINDOW: Duration = Duration::from_secs(300);

/// Waits before each retry of a revoke of something this instance created.
pub(crate) const RETRY_WAITS: [Duration; 5] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
];

/// One thing this instance created.
#[derive(Debug, Clone)]
struct Created {
    at: Instant,
    /// The assignment id Graph answered (app role and directory role assignments).
    assignment: Option<String>,
}

/// What this connector instance created, by grant id.
#[derive(Debug, Default)]
pub(crate) struct Written {
    created: Mutex<HashMap<String, Created>>,
}

impl Written {
    /// Records that this instance created `grant` (with Graph's `assignment` id, if any).
    pub(crate) fn created(&self, grant: &str, assignment: Option<String>) {
        if let Ok(mut created) = self.created.lock() {
            created.retain(|_, c| c.at.elapsed() < REPLICATION_WINDOW);
            created.insert(
                grant.to_owned(),
                Created {
                    at: Instant::now(),
                    assignment,
                },
            );
        }
    }

    /// Whether this instance created `grant` recently enough that a 404 may be replication.
    /// `Some(assignment id)` when Graph gave one.
    pub(crate) fn recent(&self, grant: &str) -> Option<Option<String>> {
        let created = self.created.lock().ok()?;
        created
            .get(grant)
            .filter(|c| c.at.elapsed() < REPLICATION_WINDOW)
            .map(|c| c.assignment.clone())
    }

    /// Forgets `grant` (it was revoked).
    pub(crate) fn revoked(&self, grant: &str) {
        if let Ok(mut created) = self.created.lock() {
            created.remove(grant);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_it_created_until_revoked() {
        let w = Written::default();
        assert_eq!(w.recent("group:g:member:user:u"), None);
        w.created("group:g:member:user:u", None);
        w.created("app:a:assignment:user:u", Some("abc".into()));
        assert_eq!(w.recent("group:g:member:user:u"), Some(None));
        assert_eq!(
            w.recent("app:a:assignment:user:u"),
            Some(Some("abc".to_owned()))
        );
        w.revoked("group:g:member:user:u");
        assert_eq!(w.recent("group:g:member:user:u"), None);
    }
}
