//! The account's mutable state, with the indexes that keep page lookups O(page size).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use crate::model::{Membership, Role, Site, User, iso_z, now_ms};

/// Everything the simulator serves. Lives behind one `RwLock` in `Simulator`; nothing here is
/// async, so no lock is ever held across an await.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) account_id: u64,
    /// Every user ever created, removed ones included, so `restore` brings back the same fields.
    pub(crate) users: HashMap<u64, User>,
    /// Users currently removed from the account.
    pub(crate) removed: HashSet<u64>,
    /// Active account members, sorted by id: page `n` is a slice, found without a scan.
    pub(crate) members: Vec<u64>,
    /// Lower-cased email → user id, so `filter=email==x` does not scan.
    pub(crate) by_email: HashMap<String, u64>,
    /// Sites in id order.
    pub(crate) sites: Vec<Site>,
    /// Per site: memberships of every user (kept while removed) and the sorted active user ids.
    pub(crate) rosters: HashMap<u64, Roster>,
    /// Counter for new membership ids.
    pub(crate) membership_seq: u64,
}

/// One site's memberships.
#[derive(Debug, Default)]
pub(crate) struct Roster {
    pub(crate) by_user: HashMap<u64, Membership>,
    /// Active members' user ids, sorted: the stable listing order of `/sites/{id}/memberships`.
    pub(crate) order: Vec<u64>,
}

impl Store {
    /// An active member, or `None` if unknown or removed.
    pub(crate) fn active_user(&self, id: u64) -> Option<&User> {
        if self.removed.contains(&id) {
            return None;
        }
        self.users.get(&id)
    }

    pub(crate) fn site(&self, id: u64) -> Option<&Site> {
        self.sites
            .binary_search_by_key(&id, |s| s.id)
            .ok()
            .and_then(|i| self.sites.get(i))
    }

    /// Takes a user out of the account member list and out of every site's membership list.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        if !self.users.contains_key(&id) || self.removed.contains(&id) {
            return false;
        }
        self.removed.insert(id);
        remove_sorted(&mut self.members, id);
        for roster in self.rosters.values_mut() {
            remove_sorted(&mut roster.order, id);
        }
        true
    }

    /// Puts a removed user back, with the same fields and the same site roles.
    pub(crate) fn restore(&mut self, id: u64) -> bool {
        if !self.removed.remove(&id) {
            return false;
        }
        insert_sorted(&mut self.members, id);
        for roster in self.rosters.values_mut() {
            if roster.by_user.contains_key(&id) {
                insert_sorted(&mut roster.order, id);
            }
        }
        true
    }

    /// Invites `email` to the account and to the first site as a `member`.
    ///
    /// Support article "Manage Clickwrap Users": users added on first SSO login "are added to
    /// Clickwrap as Members". A Clickwrap user is one global login, so inviting an email that
    /// already has a user returns that user (re-adding it if it was removed) instead of creating
    /// a second one.
    pub(crate) fn add(&mut self, email: &str, name: &str) -> u64 {
        if let Some(&id) = self.by_email.get(&email.to_lowercase()) {
            self.restore(id);
            return id;
        }
        let id = self.users.keys().max().map_or(1, |m| m + 1);
        let now = now_ms();
        let user = User {
            id,
            email: email.to_owned(),
            name: name.to_owned(),
            locale: "en-US".to_owned(),
            time_zone: "America/New_York".to_owned(),
            // A freshly invited user has not verified an email address yet.
            verified: false,
            verified_time: None,
            created_time: iso_z(now),
            updated_time: iso_z(now),
            photos: Vec::new(),
            extra: serde_json::Map::new(),
        };
        self.by_email.insert(email.to_lowercase(), id);
        self.users.insert(id, user);
        insert_sorted(&mut self.members, id);
        if let Some(site) = self.sites.first().map(|s| s.id) {
            let membership = self.new_membership(site, id, Role::Member, "site", now);
            let roster = self.rosters.entry(site).or_default();
            roster.by_user.insert(id, membership);
            insert_sorted(&mut roster.order, id);
        }
        id
    }

    /// A membership with a fresh ObjectId-like id (4-byte seconds, then a counter), so ids of
    /// later memberships sort after earlier ones, as MongoDB ids do.
    pub(crate) fn new_membership(
        &mut self,
        site: u64,
        user: u64,
        role: Role,
        membership_type: &'static str,
        created_ms: i64,
    ) -> Membership {
        self.membership_seq += 1;
        let secs = u32::try_from(created_ms.max(0) / 1000).unwrap_or(u32::MAX);
        Membership {
            id: format!("{secs:08x}{:016x}", self.membership_seq),
            site,
            user,
            role,
            membership_type,
            created_time: iso_z(created_ms),
            updated_time: iso_z(created_ms),
        }
    }

    /// Changes one user field. Documented fields keep their JSON type; other names are added to
    /// the object as-is. `id` and `profiles` are derived and cannot be set.
    pub(crate) fn set_field(&mut self, id: u64, field: &str, value: Value) -> bool {
        let Some(user) = self.users.get_mut(&id) else {
            return false;
        };
        let ok = match (field, value) {
            ("id" | "profiles", _) => false,
            ("email", Value::String(s)) => {
                let key = s.to_lowercase();
                if self.by_email.get(&key).is_some_and(|&other| other != id) {
                    return false;
                }
                self.by_email.remove(&user.email.to_lowercase());
                self.by_email.insert(key, id);
                user.email = s;
                true
            }
            ("name", Value::String(s)) => {
                user.name = s;
                true
            }
            ("locale", Value::String(s)) => {
                user.locale = s;
                true
            }
            ("time_zone", Value::String(s)) => {
                user.time_zone = s;
                true
            }
            ("verified", Value::Bool(b)) => {
                user.verified = b;
                true
            }
            ("verified_time", Value::String(s)) => {
                user.verified_time = Some(s);
                true
            }
            ("verified_time", Value::Null) => {
                user.verified_time = None;
                true
            }
            ("email" | "name" | "locale" | "time_zone" | "verified" | "verified_time", _) => false,
            (other, v) => {
                user.extra.insert(other.to_owned(), v);
                true
            }
        };
        if ok {
            user.updated_time = iso_z(now_ms());
        }
        ok
    }
}

fn remove_sorted(ids: &mut Vec<u64>, id: u64) {
    if let Ok(i) = ids.binary_search(&id) {
        ids.remove(i);
    }
}

fn insert_sorted(ids: &mut Vec<u64>, id: u64) {
    if let Err(i) = ids.binary_search(&id) {
        ids.insert(i, id);
    }
}
