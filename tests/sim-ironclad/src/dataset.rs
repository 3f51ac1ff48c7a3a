//! The seeded company: realistic users (names, titles, departments, department heads, sign-in
//! providers, the company's custom `managementLevel`) and groups, the same for the same seed.
//!
//! Users are serialized straight from typed structs, never through `serde_json::Value`, so
//! 50,000 users build well under a second.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use time::OffsetDateTime;

use crate::SimConfig;
use crate::schema::{CUSTOM_URN, ENTERPRISE_URN, IRONCLAD_URN, SCIM_BASE, USER_URN};
use crate::store::{GroupRecord, Store, group_id, object_id, timestamp};

const FIRST: [&str; 48] = [
    "alex",
    "jordan",
    "taylor",
    "morgan",
    "casey",
    "riley",
    "jamie",
    "avery",
    "quinn",
    "harper",
    "olivia",
    "liam",
    "emma",
    "noah",
    "ava",
    "elijah",
    "sophia",
    "lucas",
    "mia",
    "mateo",
    "amelia",
    "james",
    "isabella",
    "benjamin",
    "charlotte",
    "henry",
    "evelyn",
    "theodore",
    "luna",
    "oliver",
    "priya",
    "arjun",
    "mei",
    "hiroshi",
    "fatima",
    "omar",
    "ingrid",
    "lars",
    "sofia",
    "diego",
    "chloe",
    "samuel",
    "grace",
    "daniel",
    "zoe",
    "nathan",
    "aisha",
    "kwame",
];
const LAST: [&str; 48] = [
    "doe",
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "nguyen",
    "patel",
    "kim",
    "chen",
    "okafor",
    "larsen",
    "novak",
    "silva",
    "tanaka",
    "schmidt",
    "murphy",
];
/// `(department, titles)`; the first user of a department becomes its head.
const DEPARTMENTS: [(&str, [&str; 4]); 10] = [
    (
        "Legal",
        [
            "Counsel",
            "Senior Counsel",
            "Paralegal",
            "Legal Operations Manager",
        ],
    ),
    (
        "Sales",
        [
            "Account Executive",
            "Sales Manager",
            "Sales Development Rep",
            "Deal Desk Analyst",
        ],
    ),
    (
        "Finance",
        [
            "Financial Analyst",
            "Controller",
            "Accountant",
            "FP&A Manager",
        ],
    ),
    (
        "Procurement",
        [
            "Buyer",
            "Procurement Manager",
            "Sourcing Specialist",
            "Vendor Manager",
        ],
    ),
    (
        "Engineering",
        [
            "Software Engineer",
            "Engineering Manager",
            "Staff Engineer",
            "SRE",
        ],
    ),
    (
        "Human Resources",
        [
            "HR Business Partner",
            "Recruiter",
            "People Ops Manager",
            "HR Generalist",
        ],
    ),
    (
        "Marketing",
        [
            "Marketing Manager",
            "Content Strategist",
            "Brand Designer",
            "Growth Analyst",
        ],
    ),
    (
        "Operations",
        [
            "Operations Analyst",
            "Program Manager",
            "Business Operations Lead",
            "Coordinator",
        ],
    ),
    (
        "IT",
        [
            "IT Administrator",
            "Systems Engineer",
            "Helpdesk Specialist",
            "IT Manager",
        ],
    ),
    (
        "Security",
        [
            "Security Engineer",
            "GRC Analyst",
            "Security Manager",
            "Privacy Analyst",
        ],
    ),
];
const GROUP_SUFFIXES: [&str; 6] = [
    "Ops Group",
    "Team",
    "Approvers",
    "Contract Reviewers",
    "Signers",
    "Admins",
];
// Supported-User-Attributes article: companies add custom attribute schemas. This company's
// custom schema (`CUSTOM_URN`, listed by `/Schemas`) carries its `managementLevel`.
const LEVELS: [&str; 5] = [
    "Individual Contributor",
    "Manager",
    "Senior Manager",
    "Director",
    "Vice President",
];

/// First 4 bytes of seeded user ids; API-created users continue at `NEW_USER_PREFIX`.
const SEED_USER_PREFIX: u32 = 0x6500_0000;
pub(crate) const NEW_USER_PREFIX: u32 = 0x6700_0000;
/// 2023-03-01T09:00:00Z: the company's first user.
const EPOCH: i64 = 1_677_661_200;

#[derive(Serialize)]
struct SeedUser<'a> {
    schemas: Vec<&'static str>,
    id: &'a str,
    #[serde(rename = "userName")]
    user_name: &'a str,
    name: SeedName<'a>,
    title: &'a str,
    emails: [SeedEmail<'a>; 1],
    active: bool,
    #[serde(rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")]
    enterprise: SeedEnterprise<'a>,
    #[serde(rename = "urn:ietf:params:scim:schemas:extension:ironclad:2.0:User")]
    ironclad: SeedIronclad<'a>,
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:examplecorp:2.0:User",
        skip_serializing_if = "Option::is_none"
    )]
    custom: Option<SeedCustom>,
    meta: SeedMeta<'a>,
}

#[derive(Serialize)]
struct SeedCustom {
    #[serde(rename = "managementLevel")]
    management_level: &'static str,
}

#[derive(Serialize)]
struct SeedName<'a> {
    #[serde(rename = "givenName")]
    given_name: &'a str,
    #[serde(rename = "familyName")]
    family_name: &'a str,
}

#[derive(Serialize)]
struct SeedEmail<'a> {
    value: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    primary: bool,
}

#[derive(Serialize)]
struct SeedEnterprise<'a> {
    department: &'a str,
    #[serde(rename = "employeeNumber")]
    employee_number: String,
}

#[derive(Serialize)]
struct SeedIronclad<'a> {
    #[serde(rename = "departmentHead", skip_serializing_if = "Option::is_none")]
    department_head: Option<&'a str>,
    provider: &'static str,
    #[serde(rename = "allowProviderConversion")]
    allow_provider_conversion: bool,
}

#[derive(Serialize)]
struct SeedMeta<'a> {
    #[serde(rename = "resourceType")]
    resource_type: &'static str,
    created: &'a str,
    #[serde(rename = "lastModified")]
    last_modified: &'a str,
    location: String,
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The sign-in provider (SCIM OpenAPI enum local|magicLink|saml|google); mostly SAML when the
/// company has SAML.
fn provider(rng: &mut StdRng, saml: bool) -> &'static str {
    let roll = rng.gen_range(0..100);
    match (saml, roll) {
        (true, 0..80) | (false, 95..) => "saml",
        (false, 0..75) | (true, 80..90) => "local",
        (_, r) if r % 2 == 0 => "google",
        _ => "magicLink",
    }
}

/// Builds the seeded company.
pub(crate) fn build(config: &SimConfig) -> Store {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut store = Store::new(config.seed, NEW_USER_PREFIX);
    let n = config.users.max(1);
    let mut ids: Vec<Arc<str>> = Vec::with_capacity(n);
    let mut heads: [Option<String>; DEPARTMENTS.len()] = Default::default();

    for i in 0..n {
        let id = object_id(SEED_USER_PREFIX.wrapping_add(i as u32), &mut rng);
        let (given, family, user_name, dept) = if i == 0 {
            let local = config.admin_email.split('@').next().unwrap_or("admin");
            let mut parts = local.split(['.', '-', '_']).filter(|p| !p.is_empty());
            let given = parts.next().map(capitalize).unwrap_or_else(|| "It".into());
            let family = parts
                .next()
                .map(capitalize)
                .unwrap_or_else(|| "Admin".into());
            (given, family, config.admin_email.to_lowercase(), 8)
        } else {
            let given = FIRST.choose(&mut rng).copied().unwrap_or("alex");
            let family = LAST.choose(&mut rng).copied().unwrap_or("doe");
            let user_name = format!("{given}.{family}{i}@example.com");
            (
                capitalize(given),
                capitalize(family),
                user_name,
                rng.gen_range(0..DEPARTMENTS.len()),
            )
        };
        let (dept_name, titles) = DEPARTMENTS[dept];
        let is_head = heads[dept].is_none();
        let head_title;
        let title = if i == 0 {
            "IT Administrator"
        } else if is_head {
            head_title = format!("Head of {dept_name}");
            &head_title
        } else {
            titles.choose(&mut rng).copied().unwrap_or("Analyst")
        };
        let level = if is_head {
            Some("Director")
        } else if rng.gen_ratio(1, 3) {
            LEVELS.choose(&mut rng).copied()
        } else {
            None
        };
        let created_at = OffsetDateTime::from_unix_timestamp(EPOCH + i as i64 * 37 * 60)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            + time::Duration::milliseconds(rng.gen_range(0..1000));
        let modified_at = created_at + time::Duration::minutes(rng.gen_range(0..60 * 24 * 90));
        let (created, last_modified) = (timestamp(created_at), timestamp(modified_at));
        let user = SeedUser {
            schemas: match level {
                Some(_) => vec![USER_URN, ENTERPRISE_URN, IRONCLAD_URN, CUSTOM_URN],
                None => vec![USER_URN, ENTERPRISE_URN, IRONCLAD_URN],
            },
            id: &id,
            user_name: &user_name,
            name: SeedName {
                given_name: &given,
                family_name: &family,
            },
            title,
            emails: [SeedEmail {
                value: &user_name,
                kind: "work",
                primary: true,
            }],
            active: true,
            enterprise: SeedEnterprise {
                department: dept_name,
                employee_number: format!("E{:05}", 10_000 + i),
            },
            ironclad: SeedIronclad {
                department_head: heads[dept].as_deref(),
                provider: if i == 0 {
                    "local"
                } else {
                    provider(&mut rng, config.saml)
                },
                allow_provider_conversion: rng.gen_ratio(1, 10),
            },
            custom: level.map(|management_level| SeedCustom { management_level }),
            meta: SeedMeta {
                resource_type: "User",
                created: &created,
                last_modified: &last_modified,
                location: format!("{SCIM_BASE}/Users/{id}"),
            },
        };
        let json = serde_json::to_string(&user).unwrap_or_default();
        if is_head {
            heads[dept] = Some(user_name.clone());
        }
        let id: Arc<str> = Arc::from(id);
        store.put_user_indexed(id.clone(), user_name.to_lowercase(), json);
        ids.push(id);
    }

    let per_group = config.members_per_group.min(ids.len());
    let combos = DEPARTMENTS.len() * GROUP_SUFFIXES.len();
    for g in 0..config.groups {
        let (dept, suffix) = (
            DEPARTMENTS[g % DEPARTMENTS.len()].0,
            GROUP_SUFFIXES[(g / DEPARTMENTS.len()) % GROUP_SUFFIXES.len()],
        );
        let round = g / combos;
        let display_name = if round == 0 {
            format!("{dept} {suffix}")
        } else {
            format!("{dept} {suffix} {}", round + 1)
        };
        let id = group_id(&mut rng);
        let mut picks = rand::seq::index::sample(&mut rng, ids.len(), per_group).into_vec();
        picks.sort_unstable();
        let members = picks.into_iter().map(|p| ids[p].clone()).collect();
        let external_id = (g % 2 == 0).then(|| (100 + g).to_string());
        store.put_group(GroupRecord::new(id, display_name, external_id, members));
    }
    store
}
