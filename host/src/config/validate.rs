//! The whole file, raw to validated: every source, sink, notify target and `[coordination]`,
//! with every error collected (not just the first) before any is reported.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::daemon::Coordination;
use super::error::ConfigError;
use super::identity::IdentityConfig;
use super::notify::NotifyTarget;
use super::raw::RawConfig;
use super::sink::SinkConfig;
use super::source::SourceConfig;
use super::text::SourceText;
use super::validator::{Unresolved, Validator};

/// A validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file's text, to locate later errors (e.g. settings a plugin rejects).
    pub text: SourceText,
    /// Plugin directory from the file.
    pub plugin_dir: Option<PathBuf>,
    /// State database (SQLite), when `state_postgres` is not set; also where the vault file
    /// sits beside by default.
    pub state_path: PathBuf,
    /// `state_url = "postgres://…"`: the state database is this Postgres, shared by every
    /// replica (the URL holds a password more often than not).
    pub state_postgres: Option<secrecy::SecretString>,
    /// `vault_age_recipients`: vault entries are age-encrypted to these (each checked).
    pub vault_age_recipients: Vec<String>,
    /// `vault_age_identity`: the age identity file that decrypts vault entries, if set.
    pub vault_age_identity: Option<PathBuf>,
    /// Sources, in name order.
    pub sources: Vec<SourceConfig>,
    /// Sinks, in name order.
    pub sinks: Vec<SinkConfig>,
    /// Failure notification targets of `idhost run`, in name order.
    pub notify: Vec<NotifyTarget>,
    /// Replica coordination of `idhost run`, if configured.
    pub coordination: Option<Coordination>,
    /// Correlation of accounts across sources (`[identity]`), if configured.
    pub identity: Option<IdentityConfig>,
    /// References left unresolved by a lenient load ([`Resolve`]), in file order.
    pub unresolved: Vec<Unresolved>,
}

impl Validator<'_> {
    pub(super) fn validate(
        mut self,
        raw: RawConfig,
        text: &SourceText,
    ) -> Result<Config, ConfigError> {
        let plugin_dir = raw.plugin_dir.as_ref().map(|p| self.resolve(p.get_ref()));
        let mut state_path = match &raw.state_path {
            Some(p) => self.resolve(p.get_ref()),
            None => self.base_dir.join("idhost-state.db"),
        };
        let state_postgres = match self.state_url(raw.state_url.as_ref(), raw.state_path.is_some())
        {
            Some(super::daemon::StateUrl::Sqlite(path)) => {
                state_path = path;
                None
            }
            Some(super::daemon::StateUrl::Postgres(url)) => Some(url),
            None => None,
        };
        let mut vault_age_recipients = Vec::new();
        for r in raw
            .vault_age_recipients
            .iter()
            .flat_map(|list| list.get_ref())
        {
            // Checked here with the age crate itself (the vault parses them again when it
            // opens), so config does not depend on the vault module.
            match <age::x25519::Recipient as std::str::FromStr>::from_str(r.get_ref().trim()) {
                Ok(_) => vault_age_recipients.push(r.get_ref().trim().to_owned()),
                Err(reason) => self.errors.push(text.at(
                    r.span().start,
                    format!("vault_age_recipients: `{}` is not an age X25519 recipient (`age1…`): {reason}", r.get_ref()),
                )),
            }
        }
        let vault_age_identity = raw
            .vault_age_identity
            .as_ref()
            .map(|p| self.resolve(p.get_ref()));
        let mut sources = Vec::new();
        for (name, source) in &raw.sources {
            if let Some(s) = self.source(name, source) {
                sources.push(s);
            }
        }
        // Every declared source counts, valid or not, so one bad source does not also fail its sinks.
        let source_names: BTreeSet<String> =
            raw.sources.keys().map(|k| k.get_ref().clone()).collect();
        let mut sinks = Vec::new();
        let mut notify = Vec::new();
        for (name, target) in &raw.notify {
            if let Some(t) = self.notify_target(name, target, &source_names) {
                notify.push(t);
            }
        }
        let coordination = self.coordination(raw.coordination.as_ref());
        let identity = self.identity(raw.identity.as_ref(), &source_names);
        for (name, sink) in &raw.sinks {
            if let Some(s) = self.sink(name, sink, &source_names) {
                sinks.push(s);
            }
        }
        if raw.sources.is_empty() {
            self.errors.push(
                text.unlocated(
                    "no sources: add a `[sources.NAME]` table with `connector = \"...\"`",
                ),
            );
        }
        if !self.errors.is_empty() {
            return Err(ConfigError::Invalid(self.errors));
        }
        Ok(Config {
            text: text.clone(),
            plugin_dir,
            state_path,
            state_postgres,
            vault_age_recipients,
            vault_age_identity,
            sources,
            sinks,
            notify,
            coordination,
            identity,
            unresolved: self.unresolved,
        })
    }
}
