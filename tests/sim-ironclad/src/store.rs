//! The company's users and groups, kept in creation order with the indexes list requests need.
//!
//! `startIndex` is "indexed based on when they were first added" (SCIM OpenAPI `StartIndex`), so
//! resources live in append-only slots; a delete leaves a hole. A Fenwick tree over the live
//! slots finds the n-th live resource in O(log n), so paging never scans from the start, and
//! users keep their serialized JSON so a page is served by concatenation.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::schema::{GROUP_URN, SCIM_BASE};

/// Counts live slots; finds the k-th live slot in O(log n).
#[derive(Debug, Default)]
struct LiveIndex {
    /// 1-based Fenwick tree; `tree[0]` is unused.
    tree: Vec<i64>,
}

impl LiveIndex {
    fn len(&self) -> usize {
        self.tree.len().saturating_sub(1)
    }

    fn prefix(&self, mut i: usize) -> i64 {
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i &= i - 1;
        }
        sum
    }

    /// Appends one live slot.
    fn push(&mut self) {
        if self.tree.is_empty() {
            self.tree.push(0);
        }
        let i = self.tree.len();
        let low = i & i.wrapping_neg();
        let value = self.prefix(i - 1) - self.prefix(i - low) + 1;
        self.tree.push(value);
    }

    /// Marks 0-based `slot` dead.
    fn kill(&mut self, slot: usize) {
        let mut i = slot + 1;
        while i < self.tree.len() {
            self.tree[i] -= 1;
            i += i & i.wrapping_neg();
        }
    }

    /// The 0-based slot of the `k`-th (1-based) live entry.
    fn kth(&self, k: usize) -> Option<usize> {
        let n = self.len();
        if k == 0 || n == 0 {
            return None;
        }
        let mut remaining = k as i64;
        let mut pos = 0;
        let mut step = 1usize << (usize::BITS - 1 - n.leading_zeros());
        while step > 0 {
            let next = pos + step;
            if next <= n && self.tree[next] < remaining {
                pos = next;
                remaining -= self.tree[next];
            }
            step >>= 1;
        }
        (pos < n).then_some(pos)
    }
}

/// Resources in creation order, addressable by id.
#[derive(Debug)]
pub(crate) struct Table<T> {
    slots: Vec<Option<T>>,
    by_id: HashMap<Arc<str>, usize>,
    live: LiveIndex,
    len: usize,
}

impl<T> Default for Table<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            by_id: HashMap::new(),
            live: LiveIndex::default(),
            len: 0,
        }
    }
}

impl<T> Table<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    pub(crate) fn insert(&mut self, id: Arc<str>, item: T) {
        if let Some(&slot) = self.by_id.get(&id) {
            self.slots[slot] = Some(item);
            return;
        }
        self.by_id.insert(id, self.slots.len());
        self.slots.push(Some(item));
        self.live.push();
        self.len += 1;
    }

    pub(crate) fn get(&self, id: &str) -> Option<&T> {
        self.by_id.get(id).and_then(|&s| self.slots[s].as_ref())
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        let slot = *self.by_id.get(id)?;
        self.slots[slot].as_mut()
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<T> {
        let slot = self.by_id.remove(id)?;
        self.live.kill(slot);
        self.len -= 1;
        self.slots[slot].take()
    }

    /// Up to `count` resources starting at the 1-based `start_index`, in creation order.
    pub(crate) fn page(&self, start_index: usize, count: usize) -> Vec<&T> {
        let Some(first) = (count > 0).then(|| self.live.kth(start_index)).flatten() else {
            return Vec::new();
        };
        self.slots[first..].iter().flatten().take(count).collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.slots.iter_mut().flatten()
    }
}

/// One user: its upstream JSON plus the fields that are indexed or filtered on.
#[derive(Debug, Clone)]
pub(crate) struct UserRecord {
    pub(crate) id: Arc<str>,
    /// Lower-cased `userName` (caseExact false).
    pub(crate) user_name_lc: String,
    /// The JSON the API returns.
    pub(crate) json: Arc<str>,
}

impl UserRecord {
    /// The user as a JSON value.
    pub(crate) fn value(&self) -> Value {
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

/// One group.
#[derive(Debug, Clone)]
pub(crate) struct GroupRecord {
    pub(crate) id: Arc<str>,
    pub(crate) display_name: String,
    pub(crate) external_id: Option<String>,
    pub(crate) members: Vec<Arc<str>>,
    member_set: HashSet<Arc<str>>,
    /// Cached full JSON, rebuilt on every change.
    json: Arc<str>,
}

#[derive(Serialize)]
struct GroupOut<'a> {
    schemas: [&'static str; 1],
    id: &'a str,
    #[serde(rename = "displayName")]
    display_name: &'a str,
    #[serde(rename = "externalId", skip_serializing_if = "Option::is_none")]
    external_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    members: Option<Vec<MemberOut<'a>>>,
    meta: GroupMeta,
}

// SCIM OpenAPI GroupResponseObject: members are `{type: "User", value}` (no `display`), and
// group `meta` documents only resourceType and location.
#[derive(Serialize)]
struct MemberOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    value: &'a str,
}

#[derive(Serialize)]
struct GroupMeta {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    location: String,
}

impl GroupRecord {
    pub(crate) fn new(
        id: Arc<str>,
        display_name: String,
        external_id: Option<String>,
        members: Vec<Arc<str>>,
    ) -> Self {
        let mut group = Self {
            id,
            display_name,
            external_id,
            members: Vec::new(),
            member_set: HashSet::new(),
            json: Arc::from(""),
        };
        group.set_members(members);
        group
    }

    /// The group's JSON, without `members` when `with_members` is false.
    pub(crate) fn render(&self, with_members: bool) -> String {
        let out = GroupOut {
            schemas: [GROUP_URN],
            id: &self.id,
            display_name: &self.display_name,
            external_id: self.external_id.as_deref(),
            members: with_members.then(|| {
                self.members
                    .iter()
                    .map(|m| MemberOut {
                        kind: "User",
                        value: m,
                    })
                    .collect()
            }),
            meta: GroupMeta {
                resource_type: "Group",
                location: format!("{SCIM_BASE}/Groups/{}", self.id),
            },
        };
        serde_json::to_string(&out).unwrap_or_default()
    }

    pub(crate) fn json(&self) -> Arc<str> {
        self.json.clone()
    }

    fn refresh(&mut self) {
        self.json = Arc::from(self.render(true));
    }

    pub(crate) fn has_member(&self, user_id: &str) -> bool {
        self.member_set.contains(user_id)
    }

    /// Replaces the member list, dropping duplicates but keeping order.
    pub(crate) fn set_members(&mut self, members: Vec<Arc<str>>) {
        self.member_set.clear();
        self.members.clear();
        for m in members {
            if self.member_set.insert(m.clone()) {
                self.members.push(m);
            }
        }
        self.refresh();
    }

    pub(crate) fn set_names(&mut self, display_name: String, external_id: Option<String>) {
        self.display_name = display_name;
        self.external_id = external_id;
        self.refresh();
    }

    /// Removes members; absent ones are ignored. Returns whether anything changed.
    pub(crate) fn remove_members(&mut self, ids: &[&str]) -> bool {
        let before = self.members.len();
        for id in ids {
            self.member_set.remove(*id);
        }
        let set = &self.member_set;
        self.members.retain(|m| set.contains(m));
        let changed = self.members.len() != before;
        if changed {
            self.refresh();
        }
        changed
    }
}

/// Everything the company holds.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) users: Table<UserRecord>,
    /// Lower-cased userName → id.
    user_names: HashMap<String, Arc<str>>,
    pub(crate) groups: Table<GroupRecord>,
    /// Lower-cased displayName → id (Group displayName is caseExact false).
    group_names: HashMap<String, Arc<str>>,
    ids: IdGen,
}

impl Store {
    pub(crate) fn new(seed: u64, first_new_user: u32) -> Self {
        Self {
            users: Table::default(),
            user_names: HashMap::new(),
            groups: Table::default(),
            group_names: HashMap::new(),
            ids: IdGen {
                rng: StdRng::seed_from_u64(seed ^ 0x1d_c1ad),
                next_user: first_new_user,
            },
        }
    }

    pub(crate) fn user_id_by_name(&self, user_name: &str) -> Option<Arc<str>> {
        self.user_names.get(&user_name.to_lowercase()).cloned()
    }

    pub(crate) fn group_id_by_name(&self, display_name: &str) -> Option<Arc<str>> {
        self.group_names.get(&display_name.to_lowercase()).cloned()
    }

    /// A fresh user id shaped like Ironclad's (24 hex digits, e.g. "6660d37dec0eac3deffb680e").
    pub(crate) fn new_user_id(&mut self) -> Arc<str> {
        loop {
            let id = self.ids.user_id();
            if !self.users.contains(&id) {
                return id;
            }
        }
    }

    /// A fresh group id shaped like Ironclad's (a UUID, e.g. "74906dd6-f2c6-4442-8875-57846f15b061").
    pub(crate) fn new_group_id(&mut self) -> Arc<str> {
        loop {
            let id = group_id(&mut self.ids.rng);
            if !self.groups.contains(&id) {
                return id;
            }
        }
    }

    /// Inserts or replaces a user whose lower-cased userName is already known.
    pub(crate) fn put_user_indexed(&mut self, id: Arc<str>, user_name_lc: String, json: String) {
        if let Some(old) = self.users.get(&id)
            && old.user_name_lc != user_name_lc
        {
            self.user_names.remove(&old.user_name_lc);
        }
        self.user_names.insert(user_name_lc.clone(), id.clone());
        self.users.insert(
            id.clone(),
            UserRecord {
                id,
                user_name_lc,
                json: Arc::from(json),
            },
        );
    }

    /// Deletes a user and takes it out of every group.
    pub(crate) fn delete_user(&mut self, id: &str) -> bool {
        let Some(user) = self.users.remove(id) else {
            return false;
        };
        self.user_names.remove(&user.user_name_lc);
        for group in self.groups.iter_mut() {
            if group.has_member(id) {
                group.remove_members(&[id]);
            }
        }
        true
    }

    pub(crate) fn put_group(&mut self, group: GroupRecord) {
        if let Some(old) = self.groups.get(&group.id) {
            self.group_names.remove(&old.display_name.to_lowercase());
        }
        self.group_names
            .insert(group.display_name.to_lowercase(), group.id.clone());
        self.groups.insert(group.id.clone(), group);
    }

    /// Renames a group, keeping the name index right.
    pub(crate) fn rename_group(
        &mut self,
        id: &str,
        display_name: String,
        external_id: Option<String>,
    ) {
        let Some(group) = self.groups.get_mut(id) else {
            return;
        };
        let old = group.display_name.to_lowercase();
        let id = group.id.clone();
        group.set_names(display_name, external_id);
        let new = group.display_name.to_lowercase();
        self.group_names.remove(&old);
        self.group_names.insert(new, id);
    }

    pub(crate) fn delete_group(&mut self, id: &str) -> bool {
        let Some(group) = self.groups.remove(id) else {
            return false;
        };
        self.group_names.remove(&group.display_name.to_lowercase());
        true
    }
}

#[derive(Debug)]
struct IdGen {
    rng: StdRng,
    next_user: u32,
}

impl IdGen {
    fn user_id(&mut self) -> Arc<str> {
        let prefix = self.next_user;
        self.next_user = self.next_user.wrapping_add(1);
        Arc::from(object_id(prefix, &mut self.rng))
    }
}

/// A MongoDB-style object id: a 4-byte counter/timestamp then 8 random bytes, as hex.
pub(crate) fn object_id(prefix: u32, rng: &mut StdRng) -> String {
    format!("{prefix:08x}{:016x}", rng.r#gen::<u64>())
}

/// A random UUID drawn from `rng`.
pub(crate) fn group_id(rng: &mut StdRng) -> Arc<str> {
    let bytes: [u8; 16] = rng.r#gen();
    Arc::from(
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string(),
    )
}

/// `2025-03-26T18:33:48.336Z`, the timestamp format of the documented `meta` example.
pub(crate) fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Keys of `object` in order, used to keep the documented attribute order stable.
pub(crate) fn ordered(
    object: Map<String, Value>,
    first: &[&str],
    last: &[&str],
) -> Map<String, Value> {
    let mut object = object;
    let mut out = Map::new();
    for key in first {
        if let Some(v) = object.remove(*key) {
            out.insert((*key).to_owned(), v);
        }
    }
    let tail: Vec<(String, Value)> = last
        .iter()
        .filter_map(|k| object.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect();
    out.extend(object);
    out.extend(tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kth_live_slot_skips_deleted_slots() {
        let mut t: Table<u32> = Table::default();
        for i in 0..10u32 {
            t.insert(Arc::from(i.to_string()), i);
        }
        t.remove("0");
        t.remove("4");
        t.remove("5");
        assert_eq!(t.len(), 7);
        let all: Vec<u32> = t.page(1, 100).into_iter().copied().collect();
        assert_eq!(all, vec![1, 2, 3, 6, 7, 8, 9]);
        let page: Vec<u32> = t.page(4, 2).into_iter().copied().collect();
        assert_eq!(page, vec![6, 7]);
        assert!(t.page(8, 5).is_empty());
        assert!(t.page(1, 0).is_empty());
        t.insert(Arc::from("10"), 10);
        let tail: Vec<u32> = t.page(7, 5).into_iter().copied().collect();
        assert_eq!(tail, vec![9, 10]);
    }

    #[test]
    fn timestamps_have_millisecond_precision_and_a_z() {
        assert_eq!(
            timestamp(OffsetDateTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        let t = OffsetDateTime::from_unix_timestamp(1_743_014_028).unwrap()
            + time::Duration::milliseconds(336);
        assert_eq!(timestamp(t), "2025-03-26T18:33:48.336Z");
    }
}
