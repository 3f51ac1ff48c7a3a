//! The deterministic starting dataset: realistic users, sites and site memberships from a seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::SimConfig;
use crate::model::{Role, Site, User, iso_offset, iso_z};
use crate::store::{Roster, Store};

/// (display name, ASCII slug for the email). A few carry accents to catch encoding bugs.
#[rustfmt::skip]
const FIRST: &[(&str, &str)] = &[
    ("Eric", "eric"), ("Olivia", "olivia"), ("Liam", "liam"), ("Emma", "emma"),
    ("Noah", "noah"), ("Ava", "ava"), ("Sophia", "sophia"), ("Mason", "mason"),
    ("Isabella", "isabella"), ("Lucas", "lucas"), ("Mia", "mia"), ("Ethan", "ethan"),
    ("Amelia", "amelia"), ("James", "james"), ("Harper", "harper"), ("Benjamin", "benjamin"),
    ("Chloé", "chloe"), ("François", "francois"), ("Léa", "lea"), ("Hugo", "hugo"),
    ("Lukas", "lukas"), ("Jürgen", "jurgen"), ("Anna", "anna"), ("Felix", "felix"),
    ("José", "jose"), ("Lucía", "lucia"), ("Mateo", "mateo"), ("Valentina", "valentina"),
    ("Haruto", "haruto"), ("Yui", "yui"), ("Priya", "priya"), ("Arjun", "arjun"),
    ("Zoë", "zoe"), ("Björn", "bjorn"), ("Ingrid", "ingrid"), ("Sven", "sven"),
    ("Fatima", "fatima"), ("Omar", "omar"), ("Wei", "wei"), ("Mei", "mei"),
];

#[rustfmt::skip]
const LAST: &[(&str, &str)] = &[
    ("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
    ("Jones", "jones"), ("Garcia", "garcia"), ("Miller", "miller"), ("Davis", "davis"),
    ("Martinez", "martinez"), ("Lopez", "lopez"), ("Wilson", "wilson"), ("Anderson", "anderson"),
    ("Dubois", "dubois"), ("Lefèvre", "lefevre"), ("Moreau", "moreau"), ("Girard", "girard"),
    ("Müller", "muller"), ("Schmidt", "schmidt"), ("Schäfer", "schafer"), ("Wagner", "wagner"),
    ("Fernández", "fernandez"), ("González", "gonzalez"), ("Rossi", "rossi"), ("Bianchi", "bianchi"),
    ("Tanaka", "tanaka"), ("Sato", "sato"), ("Patel", "patel"), ("Sharma", "sharma"),
    ("Andersson", "andersson"), ("Nilsson", "nilsson"), ("O'Brien", "obrien"), ("Kowalski", "kowalski"),
    ("Haddad", "haddad"), ("Chen", "chen"), ("Wang", "wang"), ("Nguyen", "nguyen"),
];

/// Reserved example domains (RFC 2606), so no generated address can reach a real mailbox.
const DOMAINS: &[&str] = &[
    "acme.example.com",
    "globex.example.com",
    "initech.example.net",
    "umbrella.example.org",
];

/// The doc example is `en-US`; the others are common BCP 47 tags.
#[rustfmt::skip]
const LOCALES: &[&str] = &[
    "en-US", "en-US", "en-US", "en-GB", "fr-FR", "de-DE", "es-ES", "pt-BR", "ja-JP", "nl-NL",
    "it-IT",
];

/// The user doc example is the abbreviation `EDT`, the site example the IANA `America/New_York`,
/// so both kinds appear.
#[rustfmt::skip]
const TIME_ZONES: &[&str] = &[
    "EDT", "CDT", "PDT", "MDT", "GMT", "CET", "America/New_York", "America/Chicago",
    "America/Los_Angeles", "Europe/London", "Europe/Paris", "Europe/Berlin", "Asia/Tokyo",
    "America/Sao_Paulo", "Asia/Kolkata",
];

/// 2015-01-01T00:00:00Z, the start of the generated account's history.
const HISTORY_START_MS: i64 = 1_420_070_400_000;
/// About ten years of history.
const HISTORY_SPAN_MS: i64 = 10 * 365 * 24 * 3600 * 1000;
const DAY_MS: i64 = 24 * 3600 * 1000;

/// Builds the starting `Store` for `config`. Same config, same store.
pub(crate) fn build(config: &SimConfig) -> Store {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut store = Store {
        account_id: config.account_id,
        ..Store::default()
    };
    let joined = generate_users(&mut store, &mut rng, config.users);
    generate_sites(&mut store, &mut rng, config);
    generate_memberships(&mut store, &mut rng, &joined);
    store
}

/// Returns each member's creation time (ms), in `store.members` order.
fn generate_users(store: &mut Store, rng: &mut StdRng, count: usize) -> Vec<i64> {
    let mut created_ms = Vec::with_capacity(count);
    store.users.reserve(count);
    store.members.reserve(count);
    store.by_email.reserve(count);
    // Ids are ascending but sparse, so a client that assumes contiguous ids fails its tests.
    let mut id: u64 = rng.gen_range(1_000..5_000);
    // Creation times ascend with ids, as they would in a real account.
    let step = HISTORY_SPAN_MS / i64::try_from(count.max(1)).unwrap_or(i64::MAX);
    for i in 0..count {
        id += rng.gen_range(1..=7);
        let (first, first_slug) = FIRST[rng.gen_range(0..FIRST.len())];
        let (last, last_slug) = LAST[rng.gen_range(0..LAST.len())];
        let domain = DOMAINS[rng.gen_range(0..DOMAINS.len())];
        let mut email = format!("{first_slug}.{last_slug}@{domain}");
        let mut n = 2;
        while store.by_email.contains_key(&email) {
            email = format!("{first_slug}.{last_slug}{n}@{domain}");
            n += 1;
        }
        let created =
            HISTORY_START_MS + step * i64::try_from(i).unwrap_or(0) + rng.gen_range(0..step.max(1));
        let verified = rng.gen_bool(0.85);
        let verified_time = verified.then(|| iso_z(created + rng.gen_range(60_000..3 * DAY_MS)));
        let photos = if rng.gen_bool(0.3) {
            vec![format!(
                "https://secure.gravatar.com/avatar/{:032x}",
                rng.r#gen::<u128>()
            )]
        } else {
            Vec::new()
        };
        let user = User {
            id,
            email: email.clone(),
            name: format!("{first} {last}"),
            locale: LOCALES[rng.gen_range(0..LOCALES.len())].to_owned(),
            time_zone: TIME_ZONES[rng.gen_range(0..TIME_ZONES.len())].to_owned(),
            verified,
            verified_time,
            created_time: iso_z(created),
            updated_time: iso_z(created + rng.gen_range(0..400 * DAY_MS)),
            photos,
            extra: serde_json::Map::new(),
        };
        store.by_email.insert(email, id);
        store.users.insert(id, user);
        store.members.push(id);
        created_ms.push(created);
    }
    created_ms
}

fn generate_sites(store: &mut Store, rng: &mut StdRng, config: &SimConfig) {
    const NAMES: &[&str] = &[
        "Customer Terms",
        "Partner Portal",
        "Mobile App",
        "Marketing Site",
        "Developer Hub",
    ];
    let owner = store.members.first().copied().unwrap_or(0);
    let base = config.account_id.saturating_mul(10);
    for k in 0..config.sites {
        let id = base + k as u64 + 1;
        let name = match NAMES.get(k) {
            Some(n) => (*n).to_owned(),
            None => format!("Site {}", k + 1),
        };
        let key = name.to_lowercase().replace(' ', "-");
        let created = HISTORY_START_MS + i64::try_from(k).unwrap_or(0) * 30 * DAY_MS;
        store.sites.push(Site {
            id,
            account: config.account_id,
            access_id: uuid::Builder::from_random_bytes(rng.r#gen())
                .into_uuid()
                .to_string(),
            url: format!("https://{key}.acme.example.com"),
            name,
            key,
            locale: "en-US".to_owned(),
            time_zone: "America/New_York".to_owned(),
            verified: true,
            verified_time: iso_offset(created + DAY_MS),
            created_time: iso_offset(created),
            created_by: owner,
            // docs/common-data-structures: "Sites can be configured as a Sandbox site or a
            // Production site." The first is the primary production site; the second a sandbox.
            sandbox: k == 1,
            primary: k == 0,
        });
    }
}

/// One owner per site (the account owner, the lowest id), a few admins, the rest members. Every
/// account member belongs to the first site; later sites get a deterministic subset.
fn generate_memberships(store: &mut Store, rng: &mut StdRng, created_ms: &[i64]) {
    let site_ids: Vec<u64> = store.sites.iter().map(|s| s.id).collect();
    let members = store.members.clone();
    for (k, site) in site_ids.into_iter().enumerate() {
        let mut roster = Roster::default();
        for (i, &uid) in members.iter().enumerate() {
            let (role, kind) = match i {
                0 => (Role::Owner, "account"),
                // Guarantees at least one admin on the primary site in small datasets.
                1 if k == 0 => (Role::Admin, "site"),
                _ if k > 0 && !rng.gen_bool(0.4) => continue,
                _ if rng.gen_bool(0.06) => (Role::Admin, "site"),
                _ => (Role::Member, "site"),
            };
            let created = created_ms.get(i).copied().unwrap_or(HISTORY_START_MS);
            let joined = created + i64::try_from(k).unwrap_or(0) * DAY_MS + 1_000;
            let m = store.new_membership(site, uid, role, kind, joined);
            roster.by_user.insert(uid, m);
            roster.order.push(uid);
        }
        store.rosters.insert(site, roster);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_builds_the_same_dataset() {
        let config = SimConfig {
            sites: 3,
            users: 500,
            ..SimConfig::default()
        };
        let a = build(&config);
        let b = build(&config);
        assert_eq!(a.members, b.members);
        for id in &a.members {
            assert_eq!(a.users.get(id), b.users.get(id));
        }
        assert_eq!(a.sites, b.sites);
        let other = build(&SimConfig { seed: 99, ..config });
        assert_ne!(
            a.members, other.members,
            "a different seed changes the data"
        );
    }

    #[test]
    fn every_member_is_on_the_first_site_with_one_owner() {
        let store = build(&SimConfig {
            sites: 2,
            users: 300,
            ..SimConfig::default()
        });
        let first = &store.rosters[&store.sites[0].id];
        assert_eq!(first.order, store.members);
        for roster in store.rosters.values() {
            let owners = roster
                .by_user
                .values()
                .filter(|m| m.role == Role::Owner)
                .count();
            assert_eq!(owners, 1);
            let admins = roster
                .by_user
                .values()
                .filter(|m| m.role == Role::Admin)
                .count();
            assert!(
                (1..roster.order.len() / 5).contains(&admins),
                "{admins} admins"
            );
        }
        let second = &store.rosters[&store.sites[1].id];
        assert!(second.order.len() < store.members.len());
    }

    #[test]
    fn emails_are_unique_and_ids_ascend() {
        let store = build(&SimConfig {
            users: 5_000,
            ..SimConfig::default()
        });
        assert_eq!(store.by_email.len(), 5_000);
        assert!(store.members.windows(2).all(|w| w[0] < w[1]));
    }
}
