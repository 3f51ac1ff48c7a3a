//! Builds the initial tenant from a [`SimConfig`], deterministically from its seed.
//!
//! Sizes are skewed (a few big groups, many small ones) because that is what real tenants look
//! like and what exercises paging. Members of a group are drawn with an affine permutation of the
//! user indexes (`start + i * step mod n` with `step` coprime to `n`), which yields distinct
//! members without a hash set: one million edges take milliseconds.

use crate::config::SimConfig;
use crate::directory::{AppAssignment, Directory, GroupRec, RoleAssignment, SpRec, UserRec};
use crate::ids::{IdCodec, ObjRef, Rng};
use crate::profile::{self, GroupFlavor};

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `count` distinct values of `0..n`, in a seed-dependent order.
fn distinct(rng: &mut Rng, n: u64, count: u64) -> impl Iterator<Item = u64> + use<> {
    let start = rng.below(n.max(1));
    let mut step = 1 + rng.below(n.max(1));
    while n > 1 && gcd(step, n) != 1 {
        step += 1;
    }
    (0..count.min(n)).map(move |i| (start + i * step) % n.max(1))
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Splits `total` over `weights`, never giving a slot more than `caps[i]`.
fn split(total: usize, weights: &[f64], caps: &[usize]) -> Vec<usize> {
    let sum: f64 = weights.iter().sum();
    let mut sizes: Vec<usize> = weights
        .iter()
        .zip(caps)
        .map(|(w, cap)| ((total as f64 * w / sum.max(f64::MIN_POSITIVE)) as usize).min(*cap))
        .collect();
    let mut missing = total.saturating_sub(sizes.iter().sum());
    while missing > 0 {
        let mut progressed = false;
        for (size, cap) in sizes.iter_mut().zip(caps) {
            if missing == 0 {
                break;
            }
            let room = cap.saturating_sub(*size);
            if room > 0 {
                let add = room.min(missing.div_ceil(weights.len().max(1))).max(1);
                *size += add;
                missing -= add;
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    sizes
}

/// The tenant described by `config`.
pub(crate) fn generate(config: &SimConfig) -> Directory {
    let mut rng = Rng::new(config.seed ^ 0x5eed);
    let n_users = config.users as u64;
    let n_groups = config.groups;
    let apps = to_u32(config.apps);
    let n_sps = config.apps + config.managed_identities;
    let role_count = config.roles.max(profile::ROLE_TEMPLATES.len());

    // Group sizes: nested groups and service principals come out of each group's share. Only
    // security groups hold anything but users, and no Microsoft 365 group is a member of
    // another group (group-post-members.md, the table of member types per group kind).
    let takes_non_users = |g: usize| GroupFlavor::of(to_u32(g)) == GroupFlavor::Security;
    let nested: Vec<Vec<u32>> = (0..n_groups)
        .map(|g| {
            if g % 8 == 5 && g + 1 < n_groups && takes_non_users(g) {
                let span = (n_groups - g - 1) as u64;
                distinct(&mut rng, span, 2)
                    .map(|k| to_u32(g + 1 + k as usize))
                    .filter(|child| GroupFlavor::of(*child) != GroupFlavor::Unified)
                    .collect()
            } else {
                Vec::new()
            }
        })
        .collect();
    let mi_member: Vec<Option<u32>> = (0..n_groups)
        .map(|g| {
            (config.managed_identities > 0 && g % 16 == 3 && takes_non_users(g))
                .then(|| apps + rng.below(config.managed_identities as u64) as u32)
        })
        .collect();
    // Enterprise apps are members of some security groups and own some (service principals
    // can be both: group-post-members.md, group-post-owners.md).
    let app_member: Vec<Option<u32>> = (0..n_groups)
        .map(|g| (apps > 0 && g % 16 == 9 && takes_non_users(g)).then(|| to_u32(g) % apps))
        .collect();
    let app_owner: Vec<Option<u32>> = (0..n_groups)
        .map(|g| (apps > 0 && g % 12 == 6 && takes_non_users(g)).then(|| to_u32(g / 12) % apps))
        .collect();
    let weights: Vec<f64> = (0..n_groups)
        .map(|_| {
            let u = rng.unit();
            0.05 + u * u * u * 20.0
        })
        .collect();
    // No group holds every user, so any group has room for a provisioning test to add one.
    let user_cap = if config.users > 1 {
        config.users * 9 / 10
    } else {
        config.users
    };
    let caps: Vec<usize> = (0..n_groups)
        .map(|g| {
            user_cap
                + nested[g].len()
                + usize::from(mi_member[g].is_some())
                + usize::from(app_member[g].is_some())
        })
        .collect();
    let sizes = split(config.memberships, &weights, &caps);

    let groups: Vec<GroupRec> = (0..n_groups)
        .map(|g| {
            let mut members: Vec<ObjRef> = Vec::with_capacity(sizes[g]);
            let mut room = sizes[g];
            for child in &nested[g] {
                if room > 0 {
                    members.push(ObjRef::group(*child));
                    room -= 1;
                }
            }
            for sp in [mi_member[g], app_member[g]].into_iter().flatten() {
                if room > 0 {
                    members.push(ObjRef::sp(sp));
                    room -= 1;
                }
            }
            members
                .extend(distinct(&mut rng, n_users, room as u64).map(|u| ObjRef::user(u as u32)));
            members.sort_unstable();
            let owner_count = 1 + rng.below(2);
            let mut owners: Vec<ObjRef> = distinct(&mut rng, n_users, owner_count)
                .map(|u| ObjRef::user(u as u32))
                .collect();
            owners.extend(app_owner[g].map(ObjRef::sp));
            // Graph shows no owners of groups managed in Exchange or on-premises
            // (group-list-owners.md), so the tenant has none the simulator could not show.
            if !GroupFlavor::of(to_u32(g)).owners_in_graph() {
                owners.clear();
            }
            owners.sort_unstable();
            GroupRec { members, owners }
        })
        .collect();

    let mut app_assignments = Vec::new();
    let mut sps: Vec<SpRec> = (0..n_sps).map(|_| SpRec::default()).collect();
    for sp in 0..apps {
        let profile = profile::SpProfile::generated(config.seed, sp, apps);
        let owner_count = 1 + rng.below(2);
        let mut owners: Vec<ObjRef> = distinct(&mut rng, n_users, owner_count)
            .map(|u| ObjRef::user(u as u32))
            .collect();
        owners.sort_unstable();
        let per_app = (5 + n_users / 20).min(300);
        let mut principals: Vec<ObjRef> = distinct(&mut rng, n_users, per_app)
            .map(|u| ObjRef::user(u as u32))
            .collect();
        if n_groups > 0 {
            principals.push(ObjRef::group(rng.below(n_groups as u64) as u32));
        }
        let record = &mut sps[sp as usize];
        record.owners = owners;
        for principal in principals {
            let role = Some(rng.below(u64::from(profile.role_count)) as u8);
            record.assigned_to.push(to_u32(app_assignments.len()));
            app_assignments.push(AppAssignment {
                principal,
                sp,
                role,
                created_minutes: 500_000 + app_assignments.len() as u64 * 3,
                removed: false,
            });
        }
    }

    let mut roles = vec![false; role_count];
    let mut role_assignments = Vec::new();
    for role in 0..config.roles.min(role_count) {
        roles[role] = true;
        let member_count = 1 + rng.below(3);
        for u in distinct(&mut rng, n_users, member_count) {
            role_assignments.push(RoleAssignment {
                principal: ObjRef::user(u as u32),
                role: to_u32(role),
                scope: "/".into(),
                removed: false,
            });
        }
        // Apps hold directory roles too; give the Application Administrator slot one.
        if role == 3 && apps > 0 {
            role_assignments.push(RoleAssignment {
                principal: ObjRef::sp(0),
                role: to_u32(role),
                scope: "/".into(),
                removed: false,
            });
        }
    }

    Directory {
        seed: config.seed,
        codec: IdCodec::new(config.seed, &config.tenant_id),
        domain: format!(
            "{}.onmicrosoft.com",
            profile::slug(&config.tenant_id).replace('.', "")
        ),
        apps,
        users: vec![UserRec::default(); config.users],
        groups,
        sps,
        roles,
        app_assignments,
        role_assignments,
        changes: Vec::new(),
        admin_units: to_u32(config.administrative_units),
        lagging: std::collections::HashMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_total_is_exact_and_members_are_distinct() {
        let config = SimConfig {
            users: 300,
            groups: 40,
            memberships: 2_000,
            ..SimConfig::default()
        };
        let dir = generate(&config);
        let total: usize = dir.groups.iter().map(|g| g.members.len()).sum();
        assert_eq!(total, 2_000);
        for g in &dir.groups {
            let mut copy = g.members.clone();
            copy.dedup();
            assert_eq!(copy.len(), g.members.len());
        }
        let nested = dir
            .groups
            .iter()
            .flat_map(|g| &g.members)
            .filter(|m| m.kind() == crate::ids::ObjKind::Group)
            .count();
        assert!(nested > 0, "some groups are nested");
        assert_eq!(GroupFlavor::of(0), GroupFlavor::Security);
    }

    #[test]
    fn memberships_beyond_capacity_are_capped() {
        let config = SimConfig {
            users: 3,
            groups: 2,
            memberships: 100,
            managed_identities: 0,
            ..SimConfig::default()
        };
        let dir = generate(&config);
        assert!(
            dir.groups.iter().all(|g| g.members.len() <= 2),
            "90% of 3 users"
        );
    }
}
