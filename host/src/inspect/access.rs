//! Effective access: a grant to a group counts for every member of it, through nested groups
//! however deep; a cycle stops where it closes (DESIGN §7.2).
//!
//! `via` is `None` for a direct grant, else the groups the access flows through, outermost
//! first: for `u ∈ g1 ∈ g2` and a grant to `g2`, `via = [g2, g1]`. When several paths lead to
//! the same grant, the shortest wins, and among equally short ones the least in id order, so
//! `access`, `who-has` and `review` always name the same path.
//!
//! The walks are breadth-first, one level of nesting at a time, over a [`Graph`]: the SQLite
//! sink through its `grants_principal` and `grants_entitlement` indexes for the interactive
//! commands (a handful of indexed lookups per group on the way), an in-memory index for the
//! review of a whole source ([`super::review`]).

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::params;

use super::InspectError;
use super::db::SinkDb;

/// One grant a principal holds directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held<T> {
    /// The entitlement.
    pub entitlement: T,
    /// When the entitlement is a group's membership: the group (whose own grants then count
    /// for the holder too).
    pub group: Option<T>,
}

/// Who holds what, directly.
pub trait Graph {
    /// Ids: text for the sink, interned numbers in memory (ordered like the text).
    type Id: Ord + Clone;
    /// What went wrong reading.
    type Error;
    /// The grants `principal` holds directly.
    fn held_by(&mut self, principal: &Self::Id) -> Result<Vec<Held<Self::Id>>, Self::Error>;
    /// The direct members of `group` (principals of its membership entitlement), and which of
    /// them are groups.
    fn members_of(&mut self, group: &Self::Id) -> Result<Vec<(Self::Id, bool)>, Self::Error>;
}

/// A path of groups, outermost first; `None` is a direct grant.
pub type Via<T> = Option<Vec<T>>;

/// What a walk finds: each entitlement (or holder) with its path.
pub type Found<G> = BTreeMap<<G as Graph>::Id, Via<<G as Graph>::Id>>;

/// Keeps the better of two paths of one level: the least in id order.
fn keep_least<T: Ord + Clone>(map: &mut BTreeMap<T, Vec<T>>, key: T, path: Vec<T>) {
    match map.get_mut(&key) {
        Some(existing) if *existing <= path => {}
        Some(existing) => *existing = path,
        None => {
            map.insert(key, path);
        }
    }
}

/// Everything `principal` holds, directly or through the groups it is in, with the path.
pub fn effective<G: Graph>(
    graph: &mut G,
    principal: &G::Id,
    principal_is_group: bool,
) -> Result<Found<G>, G::Error> {
    let mut result: BTreeMap<G::Id, Via<G::Id>> = BTreeMap::new();
    let mut visited: BTreeSet<G::Id> = BTreeSet::new();
    if principal_is_group {
        visited.insert(principal.clone());
    }
    // Each frontier group with its path reversed: the group first, the principal's own group last.
    let mut frontier: BTreeMap<G::Id, Vec<G::Id>> = BTreeMap::new();
    for held in graph.held_by(principal)? {
        if let Some(group) = held.group
            && !visited.contains(&group)
        {
            frontier.insert(group.clone(), vec![group]);
        }
        result.insert(held.entitlement, None);
    }
    while !frontier.is_empty() {
        visited.extend(frontier.keys().cloned());
        let mut level: BTreeMap<G::Id, Vec<G::Id>> = BTreeMap::new();
        let mut next: BTreeMap<G::Id, Vec<G::Id>> = BTreeMap::new();
        for (group, path) in &frontier {
            for held in graph.held_by(group)? {
                if !result.contains_key(&held.entitlement) {
                    keep_least(&mut level, held.entitlement, path.clone());
                }
                if let Some(outer) = held.group
                    && !visited.contains(&outer)
                {
                    let mut longer = Vec::with_capacity(path.len() + 1);
                    longer.push(outer.clone());
                    longer.extend(path.iter().cloned());
                    keep_least(&mut next, outer, longer);
                }
            }
        }
        for (entitlement, path) in level {
            result.insert(entitlement, Some(path));
        }
        frontier = next;
    }
    Ok(result)
}

/// Everyone who holds `entitlement`: its direct holders (`via` `None`), and the members of
/// every group among them, however deep, with the path from the holder down.
pub fn holders<G: Graph>(graph: &mut G, direct: Vec<(G::Id, bool)>) -> Result<Found<G>, G::Error> {
    let mut result: BTreeMap<G::Id, Via<G::Id>> = BTreeMap::new();
    let mut visited: BTreeSet<G::Id> = BTreeSet::new();
    let mut frontier: BTreeMap<G::Id, Vec<G::Id>> = BTreeMap::new();
    for (principal, is_group) in direct {
        if is_group {
            frontier.insert(principal.clone(), vec![principal.clone()]);
        }
        result.insert(principal, None);
    }
    while !frontier.is_empty() {
        visited.extend(frontier.keys().cloned());
        let mut level: BTreeMap<G::Id, Vec<G::Id>> = BTreeMap::new();
        let mut next: BTreeMap<G::Id, Vec<G::Id>> = BTreeMap::new();
        for (group, path) in &frontier {
            for (member, is_group) in graph.members_of(group)? {
                if !result.contains_key(&member) {
                    keep_least(&mut level, member.clone(), path.clone());
                }
                if is_group && !visited.contains(&member) {
                    let mut longer = path.clone();
                    longer.push(member.clone());
                    keep_least(&mut next, member, longer);
                }
            }
        }
        for (member, path) in level {
            result.insert(member, Some(path));
        }
        frontier = next;
    }
    Ok(result)
}

/// The membership entitlement of a group resource (Baton ids: `group:<id>:member`).
pub fn membership_of(group: &str) -> String {
    format!("{group}:member")
}

/// The sink as a [`Graph`] of one source.
pub struct SinkGraph<'a> {
    db: &'a SinkDb,
    source: String,
}

impl<'a> SinkGraph<'a> {
    /// The grants of `source` in `db`.
    pub fn new(db: &'a SinkDb, source: &str) -> Self {
        Self {
            db,
            source: source.to_owned(),
        }
    }
}

impl Graph for SinkGraph<'_> {
    type Id = String;
    type Error = InspectError;

    fn held_by(&mut self, principal: &String) -> Result<Vec<Held<String>>, InspectError> {
        let db = self.db;
        let mut stmt = db
            .conn()
            .prepare_cached(
                "SELECT g.entitlement, e.resource, e.slug, r.type FROM grants g
                 LEFT JOIN entitlements e ON e.source = g.source AND e.id = g.entitlement
                 LEFT JOIN resources r ON r.source = e.source AND r.id = e.resource
                 WHERE g.principal = ?2 AND g.source = ?1",
            )
            .map_err(|e| db.fail(e))?;
        stmt.query_map(params![self.source, principal], |r| {
            let entitlement: String = r.get(0)?;
            let resource: Option<String> = r.get(1)?;
            let slug: Option<String> = r.get(2)?;
            let rtype: Option<String> = r.get(3)?;
            let group = match (resource, slug.as_deref(), rtype.as_deref()) {
                (Some(resource), Some("member"), Some("group")) => Some(resource),
                _ => None,
            };
            Ok(Held { entitlement, group })
        })
        .and_then(|rows| rows.collect())
        .map_err(|e| db.fail(e))
    }

    fn members_of(&mut self, group: &String) -> Result<Vec<(String, bool)>, InspectError> {
        principals_of(self.db, &self.source, &membership_of(group))
    }
}

/// The direct holders of `entitlement` in `source`, and which are groups.
pub fn principals_of(
    db: &SinkDb,
    source: &str,
    entitlement: &str,
) -> Result<Vec<(String, bool)>, InspectError> {
    let mut stmt = db
        .conn()
        .prepare_cached(
            "SELECT g.principal, r.type FROM grants g
             LEFT JOIN resources r ON r.source = g.source AND r.id = g.principal
             WHERE g.entitlement = ?2 AND g.source = ?1",
        )
        .map_err(|e| db.fail(e))?;
    stmt.query_map(params![source, entitlement], |r| {
        let principal: String = r.get(0)?;
        let rtype: Option<String> = r.get(1)?;
        let is_group = rtype.as_deref() == Some("group");
        Ok((principal, is_group))
    })
    .and_then(|rows| rows.collect())
    .map_err(|e| db.fail(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// Grants as `(entitlement, principal)`; groups are `g*`, their membership `g*:member`.
    struct Memory(Vec<(&'static str, &'static str)>);

    impl Graph for Memory {
        type Id = String;
        type Error = Infallible;
        fn held_by(&mut self, p: &String) -> Result<Vec<Held<String>>, Infallible> {
            Ok(self
                .0
                .iter()
                .filter(|(_, q)| q == p)
                .map(|(e, _)| Held {
                    entitlement: (*e).to_owned(),
                    group: e.strip_suffix(":member").map(str::to_owned),
                })
                .collect())
        }
        fn members_of(&mut self, g: &String) -> Result<Vec<(String, bool)>, Infallible> {
            let ent = membership_of(g);
            Ok(self
                .0
                .iter()
                .filter(|(e, _)| *e == ent)
                .map(|(_, p)| ((*p).to_owned(), p.starts_with('g')))
                .collect())
        }
    }

    fn via(ids: &[&str]) -> Via<String> {
        Some(ids.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn nesting_is_followed_outermost_first_and_a_cycle_stops() {
        // u ∈ g1 ∈ g2 ∈ g3, g3 ∈ g1 (a cycle); g3 holds app; u also holds g2 directly.
        let mut graph = Memory(vec![
            ("g1:member", "u"),
            ("g2:member", "g1"),
            ("g3:member", "g2"),
            ("g1:member", "g3"),
            ("app:a:assignment", "g3"),
            ("role:r:member", "g2"),
        ]);
        let access = effective(&mut graph, &"u".to_owned(), false).unwrap();
        assert_eq!(access["g1:member"], None);
        assert_eq!(access["g2:member"], via(&["g1"]));
        assert_eq!(access["g3:member"], via(&["g2", "g1"]));
        assert_eq!(access["role:r:member"], via(&["g2", "g1"]));
        assert_eq!(access["app:a:assignment"], via(&["g3", "g2", "g1"]));
        assert_eq!(access.len(), 5);

        let direct = graph.members_of(&"g3".to_owned()).unwrap();
        let who = holders(&mut graph, vec![("g3".to_owned(), true)]).unwrap();
        assert_eq!(direct, vec![("g2".to_owned(), true)]);
        assert_eq!(who["g3"], None);
        assert_eq!(who["g2"], via(&["g3"]));
        assert_eq!(who["g1"], via(&["g3", "g2"]));
        assert_eq!(who["u"], via(&["g3", "g2", "g1"]));
        assert_eq!(who.len(), 4, "the cycle back to g3 adds nobody");
    }

    #[test]
    fn the_shortest_path_wins_then_the_least_in_id_order() {
        let mut graph = Memory(vec![
            ("gb:member", "u"),
            ("ga:member", "u"),
            ("gc:member", "ga"),
            ("gc:member", "gb"),
            ("app:x:assignment", "gc"),
            ("app:x:assignment", "u"),
            ("app:y:assignment", "gc"),
        ]);
        let access = effective(&mut graph, &"u".to_owned(), false).unwrap();
        assert_eq!(access["app:x:assignment"], None, "direct beats inherited");
        assert_eq!(access["gc:member"], via(&["ga"]));
        assert_eq!(access["app:y:assignment"], via(&["gc", "ga"]));
        let who = holders(&mut graph, vec![("gc".to_owned(), true)]).unwrap();
        assert_eq!(who["u"], via(&["gc", "ga"]));
    }
}
