//! `[identity]`: which source's users are the people, and the ordered rules that link every
//! other source's accounts to them (DESIGN §7.2).
//!
//! ```toml
//! [identity]
//! authoritative = "corp"          # the source whose users are the people
//! match = ["email", "login"]      # the default; the first rule matching exactly one person wins
//! ```

use std::collections::BTreeSet;

use toml::Spanned;

/// One correlation rule: which account attribute must equal the person's (case-insensitively,
/// after trimming).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchRule {
    /// Any of the account's email addresses equals one of the person's.
    Email,
    /// The account's login equals the person's login.
    Login,
    /// The account's `employee_id` equals the person's.
    EmployeeId,
}

impl MatchRule {
    const NAMES: &'static str = "`email`, `login`, `employee_id`";

    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "email" => Self::Email,
            "login" => Self::Login,
            "employee_id" => Self::EmployeeId,
            _ => return None,
        })
    }

    /// The config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Login => "login",
            Self::EmployeeId => "employee_id",
        }
    }
}

/// A validated `[identity]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityConfig {
    /// The source whose users are the people.
    pub authoritative: String,
    /// The rules, in order (default: email, then login).
    pub rules: Vec<MatchRule>,
}

impl super::validator::Validator<'_> {
    pub(super) fn identity(
        &mut self,
        raw: Option<&Spanned<super::raw::RawIdentity>>,
        sources: &BTreeSet<String>,
    ) -> Option<IdentityConfig> {
        let raw = raw?.get_ref();
        let authoritative = raw.authoritative.get_ref();
        if !sources.contains(authoritative) {
            let known: Vec<&str> = sources.iter().map(String::as_str).collect();
            self.errors.push(self.text.at(
                raw.authoritative.span().start,
                format!(
                    "[identity] authoritative = \"{authoritative}\" is not a source; sources are: {}",
                    known.join(", ")
                ),
            ));
        }
        let rules = match &raw.rules {
            None => vec![MatchRule::Email, MatchRule::Login],
            Some(list) => {
                let mut rules = Vec::new();
                for name in list.get_ref() {
                    match MatchRule::parse(name.trim()) {
                        Some(rule) if !rules.contains(&rule) => rules.push(rule),
                        Some(_) => {}
                        None => self.errors.push(self.text.at(
                            list.span().start,
                            format!(
                                "[identity] match rules are {}; got `{name}`",
                                MatchRule::NAMES
                            ),
                        )),
                    }
                }
                if rules.is_empty() && list.get_ref().is_empty() {
                    self.errors.push(self.text.at(
                        list.span().start,
                        "[identity] match needs at least one rule, e.g. match = [\"email\", \"login\"]",
                    ));
                }
                rules
            }
        };
        Some(IdentityConfig {
            authoritative: authoritative.clone(),
            rules,
        })
    }
}
