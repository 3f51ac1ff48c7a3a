//! The keys only `idhost run` reads besides `[notify]`: `[coordination]` and a source's
//! `deadline`. Validated here, in the parent's style (located errors that show a correct value),
//! so the rest of the config module stays about sources and sinks.

use std::time::Duration;

use secrecy::SecretString;
use toml::Spanned;

use super::raw::RawCoordination;
use super::validator::Validator;

/// The default `deadline` of a source: a sync running longer than a day is overdue.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// `[coordination]`.
#[derive(Debug, Clone)]
pub struct Coordination {
    /// Connection string (holds a password more often than not).
    pub postgres_url: SecretString,
    /// How long a claim on a source lasts without renewal.
    pub lease: Duration,
}

/// Where `state_url` puts the state database.
pub(super) enum StateUrl {
    /// `sqlite:///path`: a SQLite file, as `state_path` names one.
    Sqlite(std::path::PathBuf),
    /// `postgres://…`: a Postgres shared by every replica.
    Postgres(SecretString),
}

impl Validator<'_> {
    /// `state_url`, if set: a `sqlite://` path or a Postgres URL (expanded like
    /// `[coordination] postgres_url`; a password belongs in `${VAR}`, redacted everywhere).
    pub(super) fn state_url(
        &mut self,
        raw: Option<&Spanned<String>>,
        has_state_path: bool,
    ) -> Option<StateUrl> {
        let raw = raw?;
        let offset = raw.span().start;
        if has_state_path {
            self.errors.push(self.text.at(
                offset,
                "state_url and state_path both name the state database; keep one (state_path = \"idhost-state.db\" or state_url = \"postgres://idhost:${PGPASSWORD}@db.example.com:5432/idhost\")".to_owned(),
            ));
            return None;
        }
        let mut secrets = Vec::new();
        let url = self.expand_string(raw, &mut secrets)?;
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                self.errors.push(self.text.at(
                    offset,
                    "state_url `sqlite://` names no file; write it like `sqlite:///var/lib/idhost/state.db` or `sqlite://idhost-state.db` (beside the config)".to_owned(),
                ));
                return None;
            }
            return Some(StateUrl::Sqlite(self.resolve(path)));
        }
        if let Err(problem) = super::sink::check_postgres_url(&url) {
            // The message names the bad part, never the URL (it may hold the password).
            self.errors.push(self.text.at(
                offset,
                format!(
                    "state_url {problem}; write it like `postgres://idhost:${{PGPASSWORD}}@db.example.com:5432/idhost` or `sqlite:///var/lib/idhost/state.db`"
                ),
            ));
            return None;
        }
        Some(StateUrl::Postgres(SecretString::from(url)))
    }

    /// A source's `deadline` (default a day).
    pub(super) fn deadline(&mut self, raw: Option<&Spanned<String>>) -> Duration {
        let Some(raw) = raw else {
            return DEFAULT_DEADLINE;
        };
        match humantime::parse_duration(raw.get_ref().trim()) {
            Ok(d) if d >= Duration::from_secs(1) => d,
            _ => {
                self.errors.push(self.text.at(
                    raw.span().start,
                    format!(
                        "deadline must be a duration of at least one second like `2h` or `90m`; got `{}`",
                        raw.get_ref()
                    ),
                ));
                DEFAULT_DEADLINE
            }
        }
    }

    /// `[coordination]`, if present.
    pub(super) fn coordination(
        &mut self,
        raw: Option<&Spanned<RawCoordination>>,
    ) -> Option<Coordination> {
        let raw = raw?;
        let coordination = raw.get_ref();
        let mut secrets = Vec::new();
        let url = self.expand_string(&coordination.postgres_url, &mut secrets)?;
        let offset = coordination.postgres_url.span().start;
        if let Err(problem) = super::sink::check_postgres_url(&url) {
            // The message names the bad part, never the URL (it may hold the password).
            self.errors.push(self.text.at(
                offset,
                format!(
                    "[coordination] postgres_url {problem}; write it like `postgres://idhost:${{PGPASSWORD}}@db.example.com:5432/idhost`"
                ),
            ));
            return None;
        }
        let lease = match &coordination.lease_secs {
            None => Duration::from_secs(30),
            Some(secs) if (3..=3600).contains(secs.get_ref()) => {
                Duration::from_secs(*secs.get_ref())
            }
            Some(secs) => {
                self.errors.push(self.text.at(
                    secs.span().start,
                    format!(
                        "lease_secs must be between 3 and 3600 (a replica renews every quarter of it); got {}",
                        secs.get_ref()
                    ),
                ));
                return None;
            }
        };
        Some(Coordination {
            postgres_url: SecretString::from(url),
            lease,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::config::{Config, NotifyEvent, NotifyKind, SmtpTls, parse};

    fn parse_with(text: &str) -> Result<Config, String> {
        parse(Path::new("idhost.toml"), text.to_owned(), &|name| {
            (name == "HOOK_SECRET").then(|| "s3cret-hook-key".to_owned())
        })
        .map_err(|e| e.to_string())
    }

    const BASE: &str = r#"
[sources.legal]
connector = "ironclad"
schedule = "15m"
deadline = "2h"

[sources.corp]
connector = "entra"
"#;

    #[test]
    fn daemon_keys_are_validated_into_targets_and_coordination() {
        let text = format!(
            r#"{BASE}
[notify.ops]
type = "webhook"
url = "https://hooks.example.com/idhost"
secret = "${{HOOK_SECRET}}"
sources = ["legal"]

[notify.mail]
type = "email"
host = "smtp.example.com"
username = "idhost"
password = "pw"
from = "idhost <idhost@example.com>"
to = ["it@example.com", "Sec Team <sec@example.com>"]
events = ["sync_failed", "recovered"]

[coordination]
postgres_url = "postgres://idhost:pw@db.example.com:5432/idhost"
lease_secs = 20
"#
        );
        let config = parse_with(&text).expect("valid");
        let legal = &config.sources[config.sources.len() - 1];
        assert_eq!(legal.name, "legal");
        assert_eq!(legal.deadline, Duration::from_secs(7200));
        assert_eq!(config.sources[0].deadline, DEFAULT_DEADLINE);
        assert_eq!(config.notify.len(), 2);
        let mail = &config.notify[0];
        assert_eq!(mail.name, "mail");
        assert!(mail.sources.includes("corp"));
        assert!(!mail.events.contains(&NotifyEvent::SyncOverdue));
        match &mail.kind {
            NotifyKind::Email(e) => {
                assert_eq!((e.port, e.tls), (587, SmtpTls::Starttls));
                assert_eq!(e.to.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        let ops = &config.notify[1];
        assert!(ops.sources.includes("legal") && !ops.sources.includes("corp"));
        match &ops.kind {
            NotifyKind::Webhook { secret, .. } => assert_eq!(
                secret.as_ref().map(|s| s.expose_secret().to_owned()),
                Some("s3cret-hook-key".to_owned())
            ),
            other => panic!("{other:?}"),
        }
        let coordination = config.coordination.expect("coordination");
        assert_eq!(coordination.lease, Duration::from_secs(20));
    }

    #[test]
    fn the_daemon_example_config_parses() {
        let text = include_str!("../../../config/daemon.toml");
        let config = parse(Path::new("config/daemon.toml"), text.to_owned(), &|_| {
            Some("https://hooks.example.com/idhost".to_owned())
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.notify.len(), 2);
        assert!(config.sources.iter().all(|s| s.schedule.is_some()));
    }

    #[test]
    fn daemon_key_errors_are_located_and_show_a_correct_value() {
        let cases = [
            (
                "[notify.a]\ntype = \"pager\"\n",
                "idhost.toml:11:8: notify target type must be one of `webhook`, `email`; got `pager`",
            ),
            (
                "[notify.a]\ntype = \"webhook\"\nurl = \"http://hooks.example.com/x\"\n",
                "idhost.toml:12:7: a webhook url with plain `http://` is accepted only for loopback hosts",
            ),
            (
                "[notify.a]\ntype = \"webhook\"\nurl = \"https://h.example.com\"\nto = [\"x@example.com\"]\n",
                "idhost.toml:13:1: `to` only applies to `email` notify targets",
            ),
            (
                "[notify.a]\ntype = \"webhook\"\nurl = \"https://h.example.com\"\nsources = [\"nope\"]\n",
                "lists source `nope`, which is not a source; sources are: corp, legal",
            ),
            (
                "[notify.a]\ntype = \"webhook\"\nurl = \"https://h.example.com\"\nevents = [\"failed\"]\n",
                "events entries must be among `sync_failed`, `sync_overdue`, `schedule_missed`, `recovered`, `sync_held`, `sink_behind`; got `failed`",
            ),
            (
                "[notify.a]\ntype = \"email\"\nhost = \"mail.example.com\"\nfrom = \"idhost@example.com\"\n",
                "idhost.toml:11:8: notify target `a` of type `email` needs `to`",
            ),
            (
                "[notify.a]\ntype = \"email\"\nhost = \"mail.example.com\"\ntls = \"none\"\nusername = \"u\"\npassword = \"p\"\nfrom = \"i@example.com\"\nto = [\"x@example.com\"]\n",
                "refusing to send SMTP credentials without TLS to a non-loopback host",
            ),
            (
                "[notify.a]\ntype = \"email\"\nhost = \"mail.example.com\"\nfrom = \"not an address\"\nto = [\"x@example.com\"]\n",
                "from `not an address` is not a mail address",
            ),
            (
                "[coordination]\npostgres_url = \"postgres://u:pw@db/x\"\nlease_secs = 1\n",
                "idhost.toml:12:14: lease_secs must be between 3 and 3600",
            ),
            (
                "[coordination]\npostgres_url = \"postgres://u:hunter2@db:notaport/x\"\n",
                "[coordination] postgres_url is not a PostgreSQL connection string",
            ),
        ];
        for (tail, expected) in cases {
            let err = parse_with(&format!("{BASE}\n{tail}")).expect_err(tail);
            assert!(err.contains(expected), "for\n{tail}\ngot: {err}");
            assert!(!err.contains("hunter2"), "a password leaked: {err}");
        }
        let err = parse_with(&BASE.replace("deadline = \"2h\"", "deadline = \"soon\""))
            .expect_err("bad deadline");
        assert!(
            err.contains("idhost.toml:5:12: deadline must be a duration"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod state_url_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]
    use std::path::Path;

    use secrecy::ExposeSecret as _;

    use crate::config::parse;

    const SOURCE: &str = "[sources.corp]\nconnector = \"entra\"\n";

    fn parse_with(text: &str) -> Result<crate::config::Config, String> {
        parse(
            Path::new("/etc/idhost/idhost.toml"),
            text.to_owned(),
            &|name| (name == "PGPASSWORD").then(|| "s3cret-pg".to_owned()),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn state_url_names_a_sqlite_file_or_a_shared_postgres() {
        let config = parse_with(&format!(
            "state_url = \"sqlite:///var/lib/idhost/s.db\"\n{SOURCE}"
        ))
        .unwrap();
        assert_eq!(config.state_path, Path::new("/var/lib/idhost/s.db"));
        assert!(config.state_postgres.is_none());
        let config = parse_with(&format!("state_url = \"sqlite://s.db\"\n{SOURCE}")).unwrap();
        assert_eq!(config.state_path, Path::new("/etc/idhost/s.db"));
        let config = parse_with(&format!(
            "state_url = \"postgres://idhost:${{PGPASSWORD}}@db.example.com:5432/idhost\"\n{SOURCE}"
        ))
        .unwrap();
        let url = config.state_postgres.expect("postgres");
        assert!(url.expose_secret().contains("s3cret-pg"));
        assert_eq!(config.state_path, Path::new("/etc/idhost/idhost-state.db"));
    }

    #[test]
    fn a_bad_state_url_is_located_and_never_repeats_the_password() {
        for (text, wanted) in [
            (
                "state_url = \"mysql://u:hunter2@db/x\"\n",
                "state_url is not a PostgreSQL connection URL",
            ),
            (
                "state_url = \"postgres://u:hunter2@db:notaport/x\"\n",
                "state_url is not a PostgreSQL connection string",
            ),
            (
                "state_url = \"sqlite://\"\n",
                "state_url `sqlite://` names no file",
            ),
            (
                "state_url = \"sqlite://a.db\"\nstate_path = \"b.db\"\n",
                "state_url and state_path both name",
            ),
        ] {
            let err = parse_with(&format!("{text}{SOURCE}")).unwrap_err();
            assert!(err.contains(wanted), "{text}: {err}");
            assert!(err.contains(":1:"), "located: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
