//! Deterministic attribute values for generated objects.
//!
//! Nothing here is stored: a user's name, department or creation date is a pure function of
//! `(seed, index)`, which is what keeps a 100,000-user tenant to a few megabytes.

use crate::ids::mix;

const GIVEN: &[&str] = &[
    "Adele",
    "Alex",
    "Allan",
    "Bianca",
    "Brian",
    "Cameron",
    "Christie",
    "Debra",
    "Diego",
    "Emily",
    "Enrico",
    "Grady",
    "Henrietta",
    "Irvin",
    "Isaiah",
    "Johanna",
    "Joni",
    "Lee",
    "Lidia",
    "Lynne",
    "Megan",
    "Miriam",
    "Nestor",
    "Patti",
    "Pradeep",
    "Raul",
    "Sara",
    "Tomas",
    "Wanda",
    "Zoe",
];
const SURNAMES: &[&str] = &[
    "Vance",
    "Wilber",
    "Deyoung",
    "Kuo",
    "Johnson",
    "White",
    "Cline",
    "Berger",
    "Siciliani",
    "Braun",
    "Gray",
    "Archie",
    "Gonzalez",
    "Bellow",
    "Holt",
    "Lambert",
    "Sherman",
    "Gu",
    "Ryan",
    "Robbins",
    "Bowen",
    "Graham",
    "Kennedy",
    "Fernandez",
    "Gupta",
    "Rodriguez",
    "Davis",
    "Ward",
    "Lewis",
    "Chen",
];
pub(crate) const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Legal",
    "Operations",
    "Human Resources",
    "Support",
    "Research",
    "IT",
];
const TITLES: &[&str] = &[
    "Engineer",
    "Senior Engineer",
    "Manager",
    "Director",
    "Analyst",
    "Specialist",
    "Consultant",
    "Administrator",
    "Designer",
    "Coordinator",
];
const LANGUAGES: &[Option<&str>] = &[
    Some("en-US"),
    Some("en-US"),
    Some("de-DE"),
    Some("fr-FR"),
    Some("ja-JP"),
    None,
];
const GROUP_NOUNS: &[&str] = &["Team", "Project", "Readers", "Approvers", "Owners", "Guild"];
const APP_NAMES: &[&str] = &[
    "Contoso Expenses",
    "Fabrikam HR",
    "Woodgrove Wiki",
    "Tailspin CRM",
    "Northwind Travel",
    "Litware Payroll",
    "Adatum Tickets",
    "Proseware Docs",
];
pub(crate) const APP_ROLE_NAMES: &[&str] = &["Reader", "Contributor", "Approver", "Admin"];

/// Built-in Microsoft Entra roles: display name, template id (which is also the
/// unifiedRoleDefinition id of a built-in role, rbacapplication-post-roleassignments.md), and a
/// description. Template ids are the public ones from "Microsoft Entra built-in roles".
pub(crate) const ROLE_TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "Global Administrator",
        "62e90394-69f5-4237-9190-012177145e10",
        "Can manage all aspects of Microsoft Entra ID and Microsoft services that use Microsoft Entra identities.",
    ),
    (
        "User Administrator",
        "fe930be7-5e62-47db-91af-98c3a49a38b1",
        "Can manage all aspects of users and groups, including resetting passwords for limited admins.",
    ),
    (
        "Groups Administrator",
        "fdd7a751-b60b-444a-984c-02652fe8fa1c",
        "Members of this role can create/manage groups, create/manage groups settings like naming and expiration policies, and view groups activity and audit reports.",
    ),
    (
        "Application Administrator",
        "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3",
        "Can create and manage all aspects of app registrations and enterprise apps.",
    ),
    (
        "Global Reader",
        "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
        "Can read everything that a Global Administrator can, but not update anything.",
    ),
    (
        "Helpdesk Administrator",
        "729827e3-9c14-49f7-bb1b-9608f156bbb8",
        "Can reset passwords for non-administrators and Helpdesk Administrators.",
    ),
    (
        "Security Administrator",
        "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Can read security information and reports, and manage configuration in Microsoft Entra ID and Office 365.",
    ),
    (
        "Cloud Application Administrator",
        "158c047a-c907-4556-b7ef-446551a6b5f7",
        "Can create and manage all aspects of app registrations and enterprise apps except App Proxy.",
    ),
    (
        "Privileged Role Administrator",
        "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "Can manage role assignments in Microsoft Entra ID, and all aspects of Privileged Identity Management.",
    ),
    (
        "Exchange Administrator",
        "29232cdf-9323-42fd-ade2-1d097af3e4de",
        "Can manage all aspects of the Exchange product.",
    ),
    (
        "SharePoint Administrator",
        "f28a1f50-f6e7-4571-818b-6a12f2af6b6c",
        "Can manage all aspects of the SharePoint service.",
    ),
    (
        "Directory Readers",
        "88d8e3e3-8f55-4a1e-953a-9b9898b8876b",
        "Can read basic directory information. Commonly used to grant directory read access to applications and guests.",
    ),
    (
        "Security Reader",
        "5d6b6bb7-de71-4623-b4af-96380a352509",
        "Can read security information and reports in Microsoft Entra ID and Office 365.",
    ),
    (
        "Authentication Administrator",
        "c4e39bd9-1100-46d3-8c65-fb160da0071f",
        "Can access to view, set and reset authentication method information for any non-admin user.",
    ),
];

fn pick<T: Copy>(table: &[T], h: u64) -> T {
    table[(h % table.len() as u64) as usize]
}

fn h(seed: u64, salt: u64, index: u32) -> u64 {
    mix(seed ^ salt.rotate_left(17) ^ u64::from(index).wrapping_mul(0x2545_f491_4f6c_dd1d))
}

/// `2020-01-01T00:00:00Z` plus `minutes`, in Graph's `createdDateTime` format.
pub(crate) fn timestamp(minutes: u64) -> String {
    let base = time::macros::datetime!(2020-01-01 00:00:00 UTC);
    let at = base + time::Duration::minutes(i64::try_from(minutes % 2_000_000).unwrap_or(0));
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.format(&f).unwrap_or_default()
}

/// Lower-case ASCII letters and digits only, for mail nicknames.
pub(crate) fn slug(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == ' ' || *c == '.')
        .map(|c| {
            if c == ' ' {
                '.'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Generated attributes of user `index`.
#[derive(Debug, Clone)]
pub(crate) struct UserProfile {
    pub(crate) given: String,
    pub(crate) surname: String,
    pub(crate) display_name: String,
    pub(crate) nickname: String,
    pub(crate) guest: bool,
    pub(crate) enabled: bool,
    pub(crate) department: &'static str,
    pub(crate) job_title: &'static str,
    pub(crate) language: Option<&'static str>,
    pub(crate) has_other_mail: bool,
    pub(crate) created_minutes: u64,
    pub(crate) last_sign_in_minutes: u64,
}

impl UserProfile {
    pub(crate) fn generated(seed: u64, index: u32) -> Self {
        let h = h(seed, 1, index);
        let given = pick(GIVEN, h).to_owned();
        let surname = pick(SURNAMES, h >> 8).to_owned();
        let display_name = format!("{given} {surname}");
        let nickname = format!("{}.{}{index}", slug(&given), slug(&surname));
        Self::finish(h, index, given, surname, display_name, nickname)
    }

    /// A user added at run time with only a display name.
    pub(crate) fn named(seed: u64, index: u32, display_name: &str) -> Self {
        let h = h(seed, 1, index);
        let mut words = display_name.split_whitespace();
        let given = words.next().unwrap_or("User").to_owned();
        let surname = words.last().unwrap_or("").to_owned();
        let base = slug(display_name);
        let nickname = if base.is_empty() {
            format!("user{index}")
        } else {
            format!("{base}{index}")
        };
        let mut profile = Self::finish(h, index, given, surname, display_name.to_owned(), nickname);
        profile.guest = false;
        profile.enabled = true;
        profile
    }

    fn finish(
        h: u64,
        index: u32,
        given: String,
        surname: String,
        display_name: String,
        nickname: String,
    ) -> Self {
        Self {
            given,
            surname,
            display_name,
            nickname,
            guest: index % 10 == 9,
            enabled: index % 25 != 24,
            department: pick(DEPARTMENTS, h >> 16),
            job_title: pick(TITLES, h >> 24),
            language: pick(LANGUAGES, h >> 32),
            has_other_mail: (h >> 40).is_multiple_of(4),
            created_minutes: u64::from(index) * 7 + (h >> 44) % 7,
            last_sign_in_minutes: 2_000_000 - (h >> 20) % 100_000,
        }
    }
}

/// What kind of group index `g` is: fixed by index so tests can rely on group 0 being a plain,
/// cloud-managed security group. The kinds are those of groups-overview.md ("Group types in
/// Microsoft Entra ID and Microsoft Graph"): security, Microsoft 365, mail-enabled security and
/// distribution groups, each with assigned or dynamic membership, cloud-only or synchronized
/// from on-premises Active Directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupFlavor {
    Security,
    Unified,
    Dynamic,
    OnPremSynced,
    /// `mailEnabled` and `securityEnabled`, no `Unified`: created and managed in Exchange.
    MailEnabledSecurity,
    /// `mailEnabled`, not `securityEnabled`, no `Unified`: an Exchange distribution list.
    Distribution,
}

impl GroupFlavor {
    pub(crate) fn of(index: u32) -> Self {
        if index % 10 == 7 {
            Self::Dynamic
        } else if index % 20 == 13 {
            Self::OnPremSynced
        } else if index % 20 == 11 {
            Self::Distribution
        } else if index % 20 == 19 {
            Self::MailEnabledSecurity
        } else if index % 3 == 1 {
            Self::Unified
        } else {
            Self::Security
        }
    }

    /// Why Graph refuses member writes to this kind of group, if it does: dynamic groups
    /// compute their members from a rule (group-delete-members.md: "You can't remove a member
    /// from groups with dynamic memberships"); on-premises-synced groups are managed in Active
    /// Directory; mail-enabled security and distribution groups in Exchange (groups-overview.md:
    /// "Only Microsoft 365 and security groups can be managed through the Microsoft Graph groups
    /// API. Mail-enabled and distribution groups are read-only through Microsoft Graph").
    pub(crate) fn members_managed_elsewhere(self) -> Option<Elsewhere> {
        match self {
            Self::Dynamic => Some(Elsewhere::Rule),
            Self::OnPremSynced | Self::MailEnabledSecurity | Self::Distribution => {
                Some(Elsewhere::ExternalService)
            }
            Self::Security | Self::Unified => None,
        }
    }

    /// Whether Graph shows and changes the group's owners: group-list-owners.md, "Owners are
    /// currently not available in Microsoft Graph for groups that were created in Exchange,
    /// distribution groups, or groups that are synchronized from an on-premises environment".
    pub(crate) fn owners_in_graph(self) -> bool {
        !matches!(
            self,
            Self::OnPremSynced | Self::MailEnabledSecurity | Self::Distribution
        )
    }
}

/// Where the members of a group that refuses member writes are managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elsewhere {
    /// A dynamic membership rule.
    Rule,
    /// Exchange Online or on-premises Active Directory.
    ExternalService,
}

/// Generated attributes of group `index`.
#[derive(Debug, Clone)]
pub(crate) struct GroupProfile {
    pub(crate) display_name: String,
    pub(crate) nickname: String,
    pub(crate) department: &'static str,
    pub(crate) flavor: GroupFlavor,
    pub(crate) public: bool,
    pub(crate) created_minutes: u64,
}

impl GroupProfile {
    pub(crate) fn generated(seed: u64, index: u32) -> Self {
        let h = h(seed, 2, index);
        let department = pick(DEPARTMENTS, h);
        let display_name = format!("{department} {} {index}", pick(GROUP_NOUNS, h >> 8));
        Self {
            nickname: slug(&display_name),
            display_name,
            department,
            flavor: GroupFlavor::of(index),
            public: (h >> 16).is_multiple_of(2),
            created_minutes: u64::from(index) * 31 + (h >> 24) % 31,
        }
    }
}

/// Generated attributes of service principal `index` (apps first, then managed identities).
#[derive(Debug, Clone)]
pub(crate) struct SpProfile {
    pub(crate) display_name: String,
    pub(crate) managed: bool,
    pub(crate) role_count: u32,
    pub(crate) assignment_required: bool,
}

impl SpProfile {
    pub(crate) fn generated(seed: u64, index: u32, apps: u32) -> Self {
        let h = h(seed, 3, index);
        if index < apps {
            let base = APP_NAMES[index as usize % APP_NAMES.len()];
            let display_name = if (index as usize) < APP_NAMES.len() {
                base.to_owned()
            } else {
                format!("{base} {index}")
            };
            Self {
                display_name,
                managed: false,
                role_count: 1 + (h % 4) as u32,
                assignment_required: index.is_multiple_of(2),
            }
        } else {
            Self {
                display_name: format!(
                    "mi-{}-{}",
                    pick(&["batch", "web", "etl", "func"], h),
                    index - apps
                ),
                managed: true,
                role_count: 0,
                assignment_required: false,
            }
        }
    }
}

/// Name, template id and description of role definition `index`; indexes past the built-in
/// table become synthetic roles.
pub(crate) fn role_template(index: u32) -> (String, Option<&'static str>, String) {
    match ROLE_TEMPLATES.get(index as usize) {
        Some((name, id, description)) => ((*name).to_owned(), Some(*id), (*description).to_owned()),
        None => (
            format!("Custom Role {index}"),
            None,
            format!("Synthetic role {index} of the simulator."),
        ),
    }
}
