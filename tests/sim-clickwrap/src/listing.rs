//! Turns a `ListQuery` and an id-ordered collection into one page of the collection envelope.

use serde_json::Value;

use crate::model::{Membership, Site, User};
use crate::query::{ListQuery, cmp_values};

/// An item of a listed collection.
pub(crate) trait Record {
    /// Values at a dotted path, for `filter` and `sort`.
    fn lookup(&self, path: &str) -> Vec<Value>;
    /// The documented JSON shape.
    fn render(&self) -> Value;
}

impl Record for &User {
    fn lookup(&self, path: &str) -> Vec<Value> {
        User::lookup(self, path)
    }
    fn render(&self) -> Value {
        self.to_json()
    }
}

impl Record for &Site {
    fn lookup(&self, path: &str) -> Vec<Value> {
        Site::lookup(self, path)
    }
    fn render(&self) -> Value {
        self.to_json()
    }
}

/// A membership with the user it embeds.
pub(crate) struct MembershipRecord<'a> {
    pub(crate) membership: &'a Membership,
    pub(crate) user: &'a User,
    pub(crate) account: u64,
}

impl Record for MembershipRecord<'_> {
    fn lookup(&self, path: &str) -> Vec<Value> {
        self.membership.lookup(self.account, self.user, path)
    }
    fn render(&self) -> Value {
        self.membership.to_json(self.account, self.user)
    }
}

/// One page of `ordered` (ids in ascending order) as the documented envelope.
///
/// Without `filter` and with id order (the default, "stable order by id") the page is a slice of
/// `ordered`: O(page size), whatever the collection size. `filter` or another `sort` scans the
/// candidates, which `hint` may narrow (an email index for `email==x`).
pub(crate) fn page<R: Record>(
    q: &ListQuery,
    ordered: &[u64],
    hint: Option<Vec<u64>>,
    fetch: impl Fn(u64) -> Option<R>,
) -> Value {
    let start = q.offset();
    if let (true, Some(descending)) = (q.filter.is_empty(), q.id_order()) {
        let total = ordered.len();
        let end = start.saturating_add(q.per_page).min(total);
        let ids: Vec<u64> = if start >= total {
            Vec::new()
        } else if descending {
            ordered[total - end..total - start]
                .iter()
                .rev()
                .copied()
                .collect()
        } else {
            ordered[start..end].to_vec()
        };
        let data = ids
            .into_iter()
            .filter_map(&fetch)
            .map(|r| q.project(r.render()))
            .collect();
        return q.envelope(total, data);
    }

    let candidates = hint.unwrap_or_else(|| ordered.to_vec());
    let mut hits: Vec<R> = candidates
        .into_iter()
        .filter_map(&fetch)
        .filter(|r| q.filter.iter().all(|c| c.matches(&r.lookup(&c.path))))
        .collect();
    if !q.sort.is_empty() {
        let mut keyed: Vec<(Vec<Option<Value>>, R)> = hits
            .into_iter()
            .map(|r| {
                let keys = q
                    .sort
                    .iter()
                    .map(|k| r.lookup(&k.path).into_iter().next())
                    .collect();
                (keys, r)
            })
            .collect();
        // A stable sort on id-ordered input: ties keep id order.
        keyed.sort_by(|(a, _), (b, _)| {
            for (i, key) in q.sort.iter().enumerate() {
                let ord = cmp_values(a[i].as_ref(), b[i].as_ref());
                let ord = if key.descending { ord.reverse() } else { ord };
                if ord.is_ne() {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
        hits = keyed.into_iter().map(|(_, r)| r).collect();
    }
    let total = hits.len();
    let data = hits
        .into_iter()
        .skip(start)
        .take(q.per_page)
        .map(|r| q.project(r.render()))
        .collect();
    q.envelope(total, data)
}
