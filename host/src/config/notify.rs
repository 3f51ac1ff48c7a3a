//! `[notify.NAME]`: where `idhost run` reports a failed, overdue or missed sync (a webhook or
//! an email), once per incident.

use std::collections::BTreeSet;
use std::str::FromStr as _;
use std::time::Duration;

use secrecy::SecretString;
use toml::Spanned;

use super::raw::RawNotifyTarget;
use super::validator::{Validator, valid_name};
use crate::route::Inputs;

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
    /// A complete sync was held by the mass-removal brake (`max_removals`), once per held sync.
    SyncHeld,
    /// A sink fell behind: the outbox holds change events it has not taken.
    SinkBehind,
}

impl NotifyEvent {
    /// Every event, in config order.
    pub const ALL: [NotifyEvent; 6] = [
        NotifyEvent::SyncFailed,
        NotifyEvent::SyncOverdue,
        NotifyEvent::ScheduleMissed,
        NotifyEvent::Recovered,
        NotifyEvent::SyncHeld,
        NotifyEvent::SinkBehind,
    ];

    /// The name in `events = [...]` and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::SyncFailed => "sync_failed",
            NotifyEvent::SyncOverdue => "sync_overdue",
            NotifyEvent::ScheduleMissed => "schedule_missed",
            NotifyEvent::Recovered => "recovered",
            NotifyEvent::SyncHeld => "sync_held",
            NotifyEvent::SinkBehind => "sink_behind",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
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
                .inspect(|s| crate::redact::global().add(s.clone()))
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
        if let Some(password) = &password {
            // A literal password is as secret as an interpolated one.
            crate::redact::global().add(password.clone());
        }
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
