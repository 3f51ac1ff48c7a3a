//! The keys only `idhost run` reads: `[notify.NAME]` targets, `[coordination]`, and a source's
//! `deadline`. Validated here, in the parent's style (located errors that show a correct value),
//! so the rest of the config module stays about sources and sinks.

use std::collections::BTreeSet;
use std::str::FromStr as _;
use std::time::Duration;

use secrecy::SecretString;
use toml::Spanned;

use super::raw::{RawCoordination, RawNotifyTarget};
use super::{Inputs, Validator, valid_name};

/// The default `deadline` of a source: a sync running longer than a day is overdue.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(24 * 3600);

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotifyEvent {
    /// A sync failed (once per incident, not per failing run).
    SyncFailed,
    /// A sync is still running past the source's `deadline`.
    SyncOverdue,
    /// A scheduled sync did not run (the previous one was still running, or no replica ran it).
    ScheduleMissed,
    /// A source with an open incident synced successfully again.
    Recovered,
}

impl NotifyEvent {
    /// Every event, in config order.
    pub const ALL: [NotifyEvent; 4] = [
        NotifyEvent::SyncFailed,
        NotifyEvent::SyncOverdue,
        NotifyEvent::ScheduleMissed,
        NotifyEvent::Recovered,
    ];

    /// The name in `events = [...]` and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::SyncFailed => "sync_failed",
            NotifyEvent::SyncOverdue => "sync_overdue",
            NotifyEvent::ScheduleMissed => "schedule_missed",
            NotifyEvent::Recovered => "recovered",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One `[notify.NAME]`.
#[derive(Debug, Clone)]
pub struct NotifyTarget {
    /// Name.
    pub name: String,
    /// Sources whose incidents it hears about.
    pub sources: Inputs,
    /// Events it wants.
    pub events: BTreeSet<NotifyEvent>,
    /// Timeout of one delivery attempt.
    pub timeout: Duration,
    /// Where it delivers.
    pub kind: NotifyKind,
}

/// How a target delivers.
#[derive(Debug, Clone)]
pub enum NotifyKind {
    /// JSON POSTed to a URL.
    Webhook {
        /// The URL (may carry a token, as Slack's do: never logged whole).
        url: SecretString,
        /// HMAC-SHA256 key of the `X-Idhost-Signature` header.
        secret: Option<SecretString>,
    },
    /// Mail through an SMTP server.
    Email(EmailTarget),
}

/// TLS towards the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No TLS (loopback relays, test sinks).
    None,
}

/// An email target.
#[derive(Debug, Clone)]
pub struct EmailTarget {
    /// SMTP host.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// TLS mode.
    pub tls: SmtpTls,
    /// SMTP credentials.
    pub credentials: Option<(String, SecretString)>,
    /// Sender mailbox (`idhost <idhost@example.com>`).
    pub from: String,
    /// Recipient mailboxes.
    pub to: Vec<String>,
}

/// `[coordination]`.
#[derive(Debug, Clone)]
pub struct Coordination {
    /// Connection string (holds a password more often than not).
    pub postgres_url: SecretString,
    /// How long a claim on a source lasts without renewal.
    pub lease: Duration,
}

const WEBHOOK_ONLY: [&str; 3] = ["url", "secret", "allow_insecure_http"];
const EMAIL_ONLY: [&str; 7] = ["host", "port", "tls", "username", "password", "from", "to"];

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Validator<'_> {
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
        if let Err(err) = tokio_postgres::Config::from_str(&url) {
            // The parser's message names the bad part, never the password.
            self.errors.push(self.text.at(
                offset,
                format!(
                    "coordination postgres_url is not a Postgres connection string ({err}); write it like `postgres://idhost:${{PGPASSWORD}}@db.example.com:5432/idhost`"
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

    /// One `[notify.NAME]`.
    pub(super) fn notify_target(
        &mut self,
        name: &Spanned<String>,
        raw: &RawNotifyTarget,
        sources: &BTreeSet<String>,
    ) -> Option<NotifyTarget> {
        let start = self.errors.len();
        let header = format!("notify.{}", name.get_ref());
        if !valid_name(name.get_ref()) {
            self.errors.push(self.text.at(
                name.span().start,
                format!(
                    "notify target name `{}` must use only a-z, 0-9, `_` and `-`",
                    name.get_ref()
                ),
            ));
        }
        let type_at = raw.target_type.span().start;
        let kind_name = raw.target_type.get_ref().as_str();
        let is_webhook = match kind_name {
            "webhook" => true,
            "email" => false,
            other => {
                self.errors.push(self.text.at(
                    type_at,
                    format!("notify target type must be one of `webhook`, `email`; got `{other}`"),
                ));
                return None;
            }
        };
        let present = |key: &str| match key {
            "url" => raw.url.is_some(),
            "secret" => raw.secret.is_some(),
            "allow_insecure_http" => raw.allow_insecure_http,
            "host" => raw.host.is_some(),
            "port" => raw.port.is_some(),
            "tls" => raw.tls.is_some(),
            "username" => raw.username.is_some(),
            "password" => raw.password.is_some(),
            "from" => raw.from.is_some(),
            "to" => raw.to.is_some(),
            _ => false,
        };
        let foreign: &[&str] = if is_webhook {
            &EMAIL_ONLY
        } else {
            &WEBHOOK_ONLY
        };
        for key in foreign.iter().copied().filter(|k| present(k)) {
            let owner = if is_webhook { "email" } else { "webhook" };
            self.errors.push(self.text.at_key(
                &header,
                key,
                format!("`{key}` only applies to `{owner}` notify targets; `{}` is a `{kind_name}` target", name.get_ref()),
            ));
        }
        let targets = self.notify_sources(name, raw, sources);
        let events = self.notify_events(raw);
        let needs = |what: &str| {
            format!(
                "notify target `{}` of type `{kind_name}` needs `{what}`",
                name.get_ref()
            )
        };
        let mut secrets = Vec::new();
        let kind = if is_webhook {
            let Some(raw_url) = &raw.url else {
                self.errors.push(self.text.at(type_at, needs("url")));
                return None;
            };
            let url = self.expand_string(raw_url, &mut secrets)?;
            self.check_webhook_url(&url, raw_url.span().start, raw.allow_insecure_http);
            let secret = raw
                .secret
                .as_ref()
                .and_then(|s| self.expand_string(s, &mut secrets))
                .map(SecretString::from);
            NotifyKind::Webhook {
                url: SecretString::from(url),
                secret,
            }
        } else {
            NotifyKind::Email(self.email_target(&header, raw, type_at, &needs)?)
        };
        if self.errors.len() > start {
            return None;
        }
        Some(NotifyTarget {
            name: name.get_ref().clone(),
            sources: targets,
            events,
            timeout: Duration::from_secs(raw.timeout_secs.unwrap_or(10).clamp(1, 300)),
            kind,
        })
    }

    fn notify_sources(
        &mut self,
        name: &Spanned<String>,
        raw: &RawNotifyTarget,
        sources: &BTreeSet<String>,
    ) -> Inputs {
        match &raw.sources {
            None => Inputs::All,
            Some(list) if list.get_ref().iter().any(|i| i == "*") => Inputs::All,
            Some(list) => {
                for wanted in list.get_ref() {
                    if !sources.contains(wanted) {
                        let known: Vec<&str> = sources.iter().map(String::as_str).collect();
                        self.errors.push(self.text.at_text(
                            list.span().start,
                            &format!("\"{wanted}\""),
                            format!(
                                "notify target `{}` lists source `{wanted}`, which is not a source; sources are: {}",
                                name.get_ref(),
                                known.join(", ")
                            ),
                        ));
                    }
                }
                Inputs::Named(list.get_ref().iter().cloned().collect())
            }
        }
    }

    fn notify_events(&mut self, raw: &RawNotifyTarget) -> BTreeSet<NotifyEvent> {
        let Some(list) = &raw.events else {
            return NotifyEvent::ALL.into_iter().collect();
        };
        let mut events = BTreeSet::new();
        for name in list.get_ref() {
            match NotifyEvent::parse(name) {
                Some(e) => {
                    events.insert(e);
                }
                None => {
                    let all: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
                    self.errors.push(self.text.at_text(
                        list.span().start,
                        &format!("\"{name}\""),
                        format!(
                            "events entries must be among `{}`; got `{name}`",
                            all.join("`, `")
                        ),
                    ));
                }
            }
        }
        events
    }

    fn check_webhook_url(&mut self, url: &str, offset: usize, allow_insecure_http: bool) {
        match url::Url::parse(url) {
            Ok(parsed) if parsed.scheme() == "https" => {}
            Ok(parsed) if parsed.scheme() == "http" => {
                let loopback = parsed.host_str().is_some_and(is_loopback_host);
                if !loopback && !allow_insecure_http {
                    self.errors.push(self.text.at(
                        offset,
                        "a webhook url with plain `http://` is accepted only for loopback hosts; use `https://`, or set `allow_insecure_http = true`",
                    ));
                }
            }
            Ok(parsed) => self.errors.push(self.text.at(
                offset,
                format!(
                    "a webhook url must be `https://...` (or `http://` on loopback); got scheme `{}`",
                    parsed.scheme()
                ),
            )),
            Err(err) => self.errors.push(self.text.at(
                offset,
                format!("webhook url is not a URL ({err}); write it like `https://hooks.example.com/idhost`"),
            )),
        }
    }

    fn email_target(
        &mut self,
        header: &str,
        raw: &RawNotifyTarget,
        type_at: usize,
        needs: &dyn Fn(&str) -> String,
    ) -> Option<EmailTarget> {
        let mut secrets = Vec::new();
        let mut missing = false;
        for (key, present) in [
            ("host", raw.host.is_some()),
            ("from", raw.from.is_some()),
            ("to", raw.to.is_some()),
        ] {
            if !present {
                self.errors.push(self.text.at(type_at, needs(key)));
                missing = true;
            }
        }
        if missing {
            return None;
        }
        let host = raw
            .host
            .as_ref()
            .and_then(|h| self.expand_string(h, &mut secrets))?;
        let tls = match raw.tls.as_ref().map(|t| t.get_ref().as_str()) {
            None | Some("starttls") => SmtpTls::Starttls,
            Some("tls") => SmtpTls::Tls,
            Some("none") => SmtpTls::None,
            Some(other) => {
                let offset = raw.tls.as_ref().map_or(type_at, |t| t.span().start);
                self.errors.push(self.text.at(
                    offset,
                    format!("tls must be one of `starttls`, `tls`, `none`; got `{other}`"),
                ));
                SmtpTls::Starttls
            }
        };
        let port = raw.port.unwrap_or(match tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        });
        let username = raw
            .username
            .as_ref()
            .and_then(|u| self.expand_string(u, &mut secrets));
        let password = raw
            .password
            .as_ref()
            .and_then(|p| self.expand_string(p, &mut secrets));
        let credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u, SecretString::from(p))),
            (None, None) => None,
            _ => {
                self.errors.push(self.text.at_key(
                    header,
                    if raw.username.is_some() {
                        "username"
                    } else {
                        "password"
                    },
                    "set both `username` and `password`, or neither",
                ));
                None
            }
        };
        if credentials.is_some() && tls == SmtpTls::None && !is_loopback_host(&host) {
            self.errors.push(self.text.at_key(
                header,
                "tls",
                "refusing to send SMTP credentials without TLS to a non-loopback host; use tls = \"starttls\" or \"tls\"",
            ));
        }
        let from = raw
            .from
            .as_ref()
            .and_then(|f| self.expand_string(f, &mut secrets))?;
        if let Err(err) = lettre::message::Mailbox::from_str(&from) {
            self.errors.push(self.text.at_key(
                header,
                "from",
                format!("from `{from}` is not a mail address ({err}); write it like `idhost <idhost@example.com>`"),
            ));
        }
        let to_list = raw.to.as_ref()?;
        if to_list.get_ref().is_empty() {
            self.errors.push(self.text.at(
                to_list.span().start,
                "to must list at least one address, e.g. to = [\"it-ops@example.com\"]",
            ));
        }
        for address in to_list.get_ref() {
            if let Err(err) = lettre::message::Mailbox::from_str(address) {
                self.errors.push(self.text.at_text(
                    to_list.span().start,
                    address,
                    format!("to address `{address}` is not a mail address ({err})"),
                ));
            }
        }
        Some(EmailTarget {
            host,
            port,
            tls,
            credentials,
            from,
            to: to_list.get_ref().clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use secrecy::ExposeSecret as _;

    use super::*;
    use crate::config::{Config, parse};

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
                "events entries must be among `sync_failed`, `sync_overdue`, `schedule_missed`, `recovered`; got `failed`",
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
                "coordination postgres_url is not a Postgres connection string",
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
