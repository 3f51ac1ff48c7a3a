//! The tenant's state: objects, relationships, assignments and the change log delta reads.
//!
//! Every mutation appends to `changes`; a delta token is just a position in that log, so "what
//! changed since token T" is the slice `changes[T..]`.

use std::collections::HashMap;

use crate::ids::{IdCodec, ObjKind, ObjRef, ns};
use crate::profile::{self, GroupProfile, SpProfile, UserProfile};

/// A group relationship a `$ref` write or a delta query can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Rel {
    Members,
    Owners,
}

impl Rel {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Members => "members",
            Self::Owners => "owners",
        }
    }
}

/// One entry of the change log.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change {
    /// User created or deleted.
    User(u32),
    /// Group member or owner added or removed (the current state says which).
    Link { rel: Rel, group: u32, obj: ObjRef },
    /// A write users/groups delta does not report (app owners, app role and directory role
    /// assignments); it still advances the log, as every directory write does.
    Other,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct UserRec {
    /// Display name of a user added at run time; generated users have none stored.
    pub(crate) name: Option<Box<str>>,
    pub(crate) removed: bool,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct GroupRec {
    /// Sorted by `ObjRef`.
    pub(crate) members: Vec<ObjRef>,
    /// Sorted by `ObjRef`.
    pub(crate) owners: Vec<ObjRef>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SpRec {
    pub(crate) owners: Vec<ObjRef>,
    /// Indexes into `Directory::app_assignments` of assignments *to* this resource.
    pub(crate) assigned_to: Vec<u32>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct AppAssignment {
    pub(crate) principal: ObjRef,
    pub(crate) sp: u32,
    /// `None` is the default access role (`00000000-0000-0000-0000-000000000000`).
    pub(crate) role: Option<u8>,
    pub(crate) created_minutes: u64,
    pub(crate) removed: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct RoleAssignment {
    pub(crate) principal: ObjRef,
    pub(crate) role: u32,
    pub(crate) scope: Box<str>,
    pub(crate) removed: bool,
}

/// The default access app role id, valid for any resource (approleassignment resource docs).
pub(crate) const DEFAULT_ACCESS_ROLE: &str = "00000000-0000-0000-0000-000000000000";

/// Something written through Graph that a lagging replica may not show yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Written {
    Link { rel: Rel, group: u32, obj: ObjRef },
    AppAssignment(u32),
    RoleAssignment(u32),
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    AlreadyExists,
    Absent,
}

/// The whole tenant.
#[derive(Debug, Clone)]
pub(crate) struct Directory {
    pub(crate) seed: u64,
    pub(crate) codec: IdCodec,
    pub(crate) domain: String,
    pub(crate) apps: u32,
    pub(crate) users: Vec<UserRec>,
    pub(crate) groups: Vec<GroupRec>,
    pub(crate) sps: Vec<SpRec>,
    /// Activated flag per role definition.
    pub(crate) roles: Vec<bool>,
    pub(crate) app_assignments: Vec<AppAssignment>,
    pub(crate) role_assignments: Vec<RoleAssignment>,
    pub(crate) changes: Vec<Change>,
    /// Administrative units (ids in their own namespace; only their existence is modelled).
    pub(crate) admin_units: u32,
    /// Writes not yet replicated: the Graph call number from which each is visible.
    pub(crate) lagging: HashMap<Written, u64>,
}

impl Directory {
    /// Whether `written` is visible to a call numbered `call` (see `SimConfig::replication_lag`).
    pub(crate) fn replicated(&self, written: Written, call: u64) -> bool {
        self.lagging.get(&written).is_none_or(|from| call >= *from)
    }

    /// Records that `written` becomes visible from call `from` on.
    pub(crate) fn lag(&mut self, written: Written, from: u64) {
        self.lagging.insert(written, from);
    }

    /// The administrative unit an id names.
    pub(crate) fn resolve_admin_unit(&self, id: &str) -> Option<u32> {
        match self.codec.parse(id)? {
            (ns::ADMIN_UNIT, i) => u32::try_from(i).ok().filter(|i| *i < self.admin_units),
            _ => None,
        }
    }

    pub(crate) fn admin_unit_id(&self, index: u32) -> String {
        self.codec.format(ns::ADMIN_UNIT, u64::from(index))
    }

    /// Whether `scope` is a `directoryScopeId` this tenant has: `/` (the tenant),
    /// `/administrativeUnits/{id}`, or `/{id}` of a directory object
    /// (unifiedroleassignment.md, directoryScopeId).
    pub(crate) fn valid_scope(&self, scope: &str) -> bool {
        if scope == "/" {
            return true;
        }
        let rest = match scope.strip_prefix('/') {
            Some(rest) => rest,
            None => return false,
        };
        match rest.split_once('/') {
            Some(("administrativeUnits", id)) => self.resolve_admin_unit(id).is_some(),
            Some(_) => false,
            None => self.resolve(rest).is_some(),
        }
    }

    /// Groups service principal `sp` is a direct member of (or owns), in id order.
    pub(crate) fn groups_with(&self, rel: Rel, obj: ObjRef) -> Vec<u32> {
        (0..self.groups.len() as u32)
            .filter(|g| self.links(rel, *g).binary_search(&obj).is_ok())
            .collect()
    }

    /// Current position of the change log (what a delta token records).
    pub(crate) fn seq(&self) -> u64 {
        self.changes.len() as u64
    }

    pub(crate) fn exists(&self, obj: ObjRef) -> bool {
        let i = obj.index() as usize;
        match obj.kind() {
            ObjKind::User => self.users.get(i).is_some_and(|u| !u.removed),
            ObjKind::Group => i < self.groups.len(),
            ObjKind::ServicePrincipal => i < self.sps.len(),
        }
    }

    /// The live object an id names.
    pub(crate) fn resolve(&self, id: &str) -> Option<ObjRef> {
        self.codec.parse_obj(id).filter(|o| self.exists(*o))
    }

    pub(crate) fn resolve_kind(&self, id: &str, kind: ObjKind) -> Option<u32> {
        self.resolve(id)
            .filter(|o| o.kind() == kind)
            .map(ObjRef::index)
    }

    pub(crate) fn id(&self, obj: ObjRef) -> String {
        self.codec.obj_id(obj)
    }

    pub(crate) fn is_app(&self, sp: u32) -> bool {
        sp < self.apps
    }

    pub(crate) fn user_profile(&self, index: u32) -> UserProfile {
        match self
            .users
            .get(index as usize)
            .and_then(|u| u.name.as_deref())
        {
            Some(name) => UserProfile::named(self.seed, index, name),
            None => UserProfile::generated(self.seed, index),
        }
    }

    pub(crate) fn group_profile(&self, index: u32) -> GroupProfile {
        GroupProfile::generated(self.seed, index)
    }

    pub(crate) fn sp_profile(&self, index: u32) -> SpProfile {
        SpProfile::generated(self.seed, index, self.apps)
    }

    pub(crate) fn display_name(&self, obj: ObjRef) -> String {
        match obj.kind() {
            ObjKind::User => self.user_profile(obj.index()).display_name,
            ObjKind::Group => self.group_profile(obj.index()).display_name,
            ObjKind::ServicePrincipal => self.sp_profile(obj.index()).display_name,
        }
    }

    pub(crate) fn app_role_id(&self, sp: u32, role: Option<u8>) -> String {
        match role {
            Some(k) => self
                .codec
                .format(ns::APP_ROLE, u64::from(sp) * 8 + u64::from(k)),
            None => DEFAULT_ACCESS_ROLE.to_owned(),
        }
    }

    /// The role of resource `sp` an appRoleId names: `Some(None)` is default access.
    pub(crate) fn parse_app_role(&self, sp: u32, id: &str) -> Option<Option<u8>> {
        if id == DEFAULT_ACCESS_ROLE {
            return Some(None);
        }
        let (namespace, index) = self.codec.parse(id)?;
        let count = u64::from(self.sp_profile(sp).role_count);
        (namespace == ns::APP_ROLE && index / 8 == u64::from(sp) && index % 8 < count)
            .then_some(Some((index % 8) as u8))
    }

    pub(crate) fn role_definition_id(&self, role: u32) -> String {
        match profile::role_template(role).1 {
            Some(template) => template.to_owned(),
            None => self.codec.format(ns::ROLE_TEMPLATE, u64::from(role)),
        }
    }

    pub(crate) fn resolve_role_definition(&self, id: &str) -> Option<u32> {
        let by_template = profile::ROLE_TEMPLATES
            .iter()
            .position(|(_, t, _)| t.eq_ignore_ascii_case(id));
        let index = match by_template {
            Some(i) => u32::try_from(i).ok()?,
            None => match self.codec.parse(id)? {
                (ns::ROLE_TEMPLATE, i) => u32::try_from(i).ok()?,
                _ => return None,
            },
        };
        ((index as usize) < self.roles.len()).then_some(index)
    }

    pub(crate) fn directory_role_id(&self, role: u32) -> String {
        self.codec.format(ns::DIRECTORY_ROLE, u64::from(role))
    }

    /// An activated directory role by object id or `roleTemplateId={id}` key.
    pub(crate) fn resolve_directory_role(&self, key: &str) -> Option<u32> {
        let index = match key.strip_prefix("roleTemplateId=") {
            Some(template) => self.resolve_role_definition(template.trim_matches('\''))?,
            None => match self.codec.parse(key)? {
                (ns::DIRECTORY_ROLE, i) => u32::try_from(i).ok()?,
                _ => return None,
            },
        };
        self.roles
            .get(index as usize)
            .copied()
            .unwrap_or(false)
            .then_some(index)
    }

    pub(crate) fn links(&self, rel: Rel, group: u32) -> &[ObjRef] {
        match self.groups.get(group as usize) {
            Some(g) => match rel {
                Rel::Members => &g.members,
                Rel::Owners => &g.owners,
            },
            None => &[],
        }
    }

    fn links_mut(&mut self, rel: Rel, group: u32) -> Option<&mut Vec<ObjRef>> {
        let g = self.groups.get_mut(group as usize)?;
        Some(match rel {
            Rel::Members => &mut g.members,
            Rel::Owners => &mut g.owners,
        })
    }

    pub(crate) fn add_link(&mut self, rel: Rel, group: u32, obj: ObjRef) -> Result<(), Refusal> {
        if !self.exists(obj) {
            return Err(Refusal::Absent);
        }
        let list = self.links_mut(rel, group).ok_or(Refusal::Absent)?;
        match list.binary_search(&obj) {
            Ok(_) => Err(Refusal::AlreadyExists),
            Err(at) => {
                list.insert(at, obj);
                self.changes.push(Change::Link { rel, group, obj });
                Ok(())
            }
        }
    }

    pub(crate) fn remove_link(&mut self, rel: Rel, group: u32, obj: ObjRef) -> Result<(), Refusal> {
        let list = self.links_mut(rel, group).ok_or(Refusal::Absent)?;
        match list.binary_search(&obj) {
            Ok(at) => {
                list.remove(at);
                self.changes.push(Change::Link { rel, group, obj });
                Ok(())
            }
            Err(_) => Err(Refusal::Absent),
        }
    }

    pub(crate) fn add_sp_owner(&mut self, sp: u32, obj: ObjRef) -> Result<(), Refusal> {
        if !self.exists(obj) {
            return Err(Refusal::Absent);
        }
        let owners = &mut self.sps.get_mut(sp as usize).ok_or(Refusal::Absent)?.owners;
        match owners.binary_search(&obj) {
            Ok(_) => Err(Refusal::AlreadyExists),
            Err(at) => {
                owners.insert(at, obj);
                self.changes.push(Change::Other);
                Ok(())
            }
        }
    }

    pub(crate) fn remove_sp_owner(&mut self, sp: u32, obj: ObjRef) -> Result<(), Refusal> {
        let owners = &mut self.sps.get_mut(sp as usize).ok_or(Refusal::Absent)?.owners;
        match owners.binary_search(&obj) {
            Ok(at) => {
                owners.remove(at);
                self.changes.push(Change::Other);
                Ok(())
            }
            Err(_) => Err(Refusal::Absent),
        }
    }

    /// Live assignments to resource `sp`, as indexes into `app_assignments`.
    pub(crate) fn assignments_to(&self, sp: u32) -> impl Iterator<Item = u32> + '_ {
        self.sps
            .get(sp as usize)
            .map(|s| s.assigned_to.as_slice())
            .unwrap_or_default()
            .iter()
            .copied()
            .filter(|a| {
                self.app_assignments
                    .get(*a as usize)
                    .is_some_and(|x| !x.removed)
            })
    }

    pub(crate) fn add_app_assignment(
        &mut self,
        sp: u32,
        principal: ObjRef,
        role: Option<u8>,
    ) -> Result<u32, Refusal> {
        if !self.exists(principal) {
            return Err(Refusal::Absent);
        }
        let duplicate = self.assignments_to(sp).any(|a| {
            let x = &self.app_assignments[a as usize];
            x.principal == principal && x.role == role
        });
        if duplicate {
            return Err(Refusal::AlreadyExists);
        }
        let index = u32::try_from(self.app_assignments.len()).map_err(|_| Refusal::Absent)?;
        let created_minutes = 1_000_000 + self.seq();
        self.app_assignments.push(AppAssignment {
            principal,
            sp,
            role,
            created_minutes,
            removed: false,
        });
        self.sps
            .get_mut(sp as usize)
            .ok_or(Refusal::Absent)?
            .assigned_to
            .push(index);
        self.changes.push(Change::Other);
        Ok(index)
    }

    pub(crate) fn remove_app_assignment(&mut self, sp: u32, index: u32) -> bool {
        match self.app_assignments.get_mut(index as usize) {
            Some(a) if a.sp == sp && !a.removed => {
                a.removed = true;
                self.changes.push(Change::Other);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn live_role_assignments(&self) -> impl Iterator<Item = u32> + '_ {
        self.role_assignments
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.removed)
            .map(|(i, _)| i as u32)
    }

    pub(crate) fn add_role_assignment(
        &mut self,
        principal: ObjRef,
        role: u32,
        scope: &str,
    ) -> Result<u32, Refusal> {
        if !self.exists(principal) {
            return Err(Refusal::Absent);
        }
        let duplicate = self.role_assignments.iter().any(|a| {
            !a.removed && a.principal == principal && a.role == role && &*a.scope == scope
        });
        if duplicate {
            return Err(Refusal::AlreadyExists);
        }
        let index = u32::try_from(self.role_assignments.len()).map_err(|_| Refusal::Absent)?;
        self.role_assignments.push(RoleAssignment {
            principal,
            role,
            scope: scope.into(),
            removed: false,
        });
        // Assigning a built-in role through the unified RBAC API activates its directoryRole.
        if let Some(active) = self.roles.get_mut(role as usize) {
            *active = true;
        }
        self.changes.push(Change::Other);
        Ok(index)
    }

    pub(crate) fn remove_role_assignment(&mut self, index: u32) -> bool {
        match self.role_assignments.get_mut(index as usize) {
            Some(a) if !a.removed => {
                a.removed = true;
                self.changes.push(Change::Other);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn add_user(&mut self, display_name: &str) -> ObjRef {
        let index = self.users.len() as u32;
        self.users.push(UserRec {
            name: Some(display_name.into()),
            removed: false,
        });
        self.changes.push(Change::User(index));
        ObjRef::user(index)
    }

    /// Deletes a user and, as the directory does, every membership, ownership and assignment
    /// that pointed at it (each recorded, so group delta reports the member as removed).
    pub(crate) fn remove_user(&mut self, index: u32) -> bool {
        let obj = ObjRef::user(index);
        if !self.exists(obj) {
            return false;
        }
        for group in 0..self.groups.len() as u32 {
            for rel in [Rel::Members, Rel::Owners] {
                let _ = self.remove_link(rel, group, obj);
            }
        }
        for sp in 0..self.sps.len() as u32 {
            let _ = self.remove_sp_owner(sp, obj);
        }
        let assignments: Vec<(u32, u32)> = self
            .app_assignments
            .iter()
            .enumerate()
            .filter(|(_, a)| !a.removed && a.principal == obj)
            .map(|(i, a)| (a.sp, i as u32))
            .collect();
        for (sp, a) in assignments {
            self.remove_app_assignment(sp, a);
        }
        let roles: Vec<u32> = self
            .live_role_assignments()
            .filter(|a| self.role_assignments[*a as usize].principal == obj)
            .collect();
        for a in roles {
            self.remove_role_assignment(a);
        }
        if let Some(user) = self.users.get_mut(index as usize) {
            user.removed = true;
        }
        self.changes.push(Change::User(index));
        true
    }
}
