//! Correlation (`[identity]`): the users of the authoritative source are the people; every
//! account of the other sources is linked to one of them by the ordered rules (`email`,
//! `login`, `employee_id`), compared case-insensitively after trimming. The first rule that
//! matches exactly one person wins; a rule matching several is skipped.
//!
//! An account is an orphan when no rule links it (`no_match`), or when its person is
//! disabled (`disabled_in_authoritative`) or gone (`deleted_in_authoritative`) in the
//! authoritative source. A person is gone when the authoritative source lists them as
//! `deleted`, or no longer lists them at all: the SQLite sink keeps the last record of every
//! user a snapshot dropped (`departed_users`), which is how the leaver who still has an
//! Ironclad account is found after they were deleted from Entra.

use std::collections::{BTreeMap, HashMap};

use rusqlite::params;

use super::InspectError;
use super::db::SinkDb;
use super::lookup::{ACCOUNT_COLUMNS, Account};
use crate::config::{IdentityConfig, MatchRule};

/// Why an account is an orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// Its person was deleted in the authoritative source.
    DeletedInAuthoritative,
    /// Its person is disabled in the authoritative source.
    DisabledInAuthoritative,
    /// No rule links it to a person.
    NoMatch,
}

impl Reason {
    /// The name `query orphans` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoMatch => "no_match",
            Self::DisabledInAuthoritative => "disabled_in_authoritative",
            Self::DeletedInAuthoritative => "deleted_in_authoritative",
        }
    }
}

/// One account and its person.
#[derive(Debug, Clone)]
pub struct Link {
    /// The account.
    pub account: Account,
    /// The authoritative user's id, if any rule matched.
    pub person: Option<String>,
    /// Set when the account is an orphan.
    pub orphan: Option<Reason>,
}

/// One person: an authoritative user, live or departed.
struct Person {
    id: String,
    gone: bool,
    disabled: bool,
}

/// The people and what each rule looks them up by.
struct People {
    people: Vec<Person>,
    by_rule: HashMap<(MatchRule, String), Vec<usize>>,
}

fn key(text: &str) -> String {
    text.trim().to_lowercase()
}

fn keys_of(account: &Account, rule: MatchRule) -> Vec<String> {
    let keys: Vec<String> = match rule {
        MatchRule::Email => account.emails.iter().map(|e| key(e)).collect(),
        MatchRule::Login => account.login.iter().map(|l| key(l)).collect(),
        MatchRule::EmployeeId => account.employee_id.iter().map(|e| key(e)).collect(),
    };
    keys.into_iter().filter(|k| !k.is_empty()).collect()
}

impl People {
    fn add(&mut self, account: &Account, gone: bool, rules: &[MatchRule]) {
        let index = self.people.len();
        self.people.push(Person {
            id: account.id.clone(),
            gone: gone || account.status == "deleted",
            disabled: account.status == "disabled",
        });
        for rule in rules {
            for k in keys_of(account, *rule) {
                let list = self.by_rule.entry((*rule, k)).or_default();
                if list.last() != Some(&index) {
                    list.push(index);
                }
            }
        }
    }

    /// The person `account` belongs to: the first rule that finds exactly one. Live people
    /// are asked first, so a re-hired person's new record wins over their departed one.
    fn find(&self, account: &Account, rules: &[MatchRule], live: usize) -> Option<&Person> {
        for rule in rules {
            let mut found: Vec<usize> = Vec::new();
            for k in keys_of(account, *rule) {
                for i in self.by_rule.get(&(*rule, k)).into_iter().flatten() {
                    if !found.contains(i) {
                        found.push(*i);
                    }
                }
            }
            let current: Vec<usize> = found.iter().copied().filter(|i| *i < live).collect();
            let candidates = if current.is_empty() { found } else { current };
            if let [one] = candidates.as_slice() {
                return self.people.get(*one);
            }
        }
        None
    }
}

/// Every user of `source`.
fn users(db: &SinkDb, source: &str) -> Result<Vec<Account>, InspectError> {
    let mut stmt = db
        .conn()
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM resources WHERE source = ?1 AND type = 'user' ORDER BY id"
        ))
        .map_err(|e| db.fail(e))?;
    stmt.query_map(params![source], Account::from_row)
        .and_then(|rows| rows.collect())
        .map_err(|e| db.fail(e))
}

/// Users the authoritative source's snapshots dropped (newest record of each).
fn departed(db: &SinkDb, source: &str) -> Result<Vec<Account>, InspectError> {
    if !db.has_table("departed_users")? {
        return Ok(Vec::new());
    }
    let mut stmt = db
        .conn()
        .prepare_cached(
            "SELECT source, id, 'user', display_name, 'deleted', user FROM departed_users
             WHERE source = ?1 ORDER BY id",
        )
        .map_err(|e| db.fail(e))?;
    stmt.query_map(params![source], Account::from_row)
        .and_then(|rows| rows.collect())
        .map_err(|e| db.fail(e))
}

/// The `[identity]` a command needs (exit code 2 without one).
pub fn required(identity: Option<&IdentityConfig>) -> Result<&IdentityConfig, InspectError> {
    identity.ok_or_else(|| {
        InspectError::NotConfigured(
            "this needs an [identity] section naming the source whose users are the people, e.g.\n  [identity]\n  authoritative = \"corp\"\n  match = [\"email\", \"login\"]".to_owned(),
        )
    })
}

/// Links every account of `only` (or of every source) to its person.
pub fn correlate(
    db: &SinkDb,
    identity: &IdentityConfig,
    only: Option<&str>,
) -> Result<Vec<Link>, InspectError> {
    let sources = db.scope(only)?;
    let authoritative = &identity.authoritative;
    if db.last_complete(authoritative)?.is_none() {
        return Err(InspectError::Incomplete(format!(
            "the authoritative source `{authoritative}` has no complete sync in sink `{}` yet: run `idhost sync --source {authoritative}`",
            db.sink
        )));
    }
    let mut people = People {
        people: Vec::new(),
        by_rule: HashMap::new(),
    };
    let current = users(db, authoritative)?;
    for person in &current {
        people.add(person, false, &identity.rules);
    }
    let live = people.people.len();
    for person in departed(db, authoritative)? {
        people.add(&person, true, &identity.rules);
    }
    let mut links = Vec::new();
    for source in sources {
        let accounts = if &source == authoritative {
            current.clone()
        } else {
            users(db, &source)?
        };
        for account in accounts {
            let link = if &source == authoritative {
                Link {
                    person: Some(account.id.clone()),
                    account,
                    orphan: None,
                }
            } else {
                match people.find(&account, &identity.rules, live) {
                    None => Link {
                        account,
                        person: None,
                        orphan: Some(Reason::NoMatch),
                    },
                    Some(person) => Link {
                        orphan: if person.gone {
                            Some(Reason::DeletedInAuthoritative)
                        } else if person.disabled {
                            Some(Reason::DisabledInAuthoritative)
                        } else {
                            None
                        },
                        person: Some(person.id.clone()),
                        account,
                    },
                }
            };
            links.push(link);
        }
    }
    Ok(links)
}

/// Orphans per source and reason.
pub fn orphan_counts(links: &[Link]) -> BTreeMap<String, BTreeMap<Reason, u64>> {
    let mut counts: BTreeMap<String, BTreeMap<Reason, u64>> = BTreeMap::new();
    for link in links {
        if let Some(reason) = link.orphan {
            *counts
                .entry(link.account.source.clone())
                .or_default()
                .entry(reason)
                .or_default() += 1;
        }
    }
    counts
}
