//! Mail delivery through SMTP (lettre, rustls): STARTTLS by default, SMTPS with `tls = "tls"`,
//! plain only with `tls = "none"` (for a relay on the same host or a test sink).

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use secrecy::ExposeSecret as _;

use super::error::NotifyError;
use super::notice::Notification;
use crate::config::{EmailTarget, SmtpTls};

pub(super) struct Mailer {
    target: String,
    host: String,
    port: u16,
    from: Mailbox,
    to: Vec<Mailbox>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl Mailer {
    pub(super) fn new(
        target: &str,
        config: &EmailTarget,
        timeout: Duration,
    ) -> Result<Self, NotifyError> {
        let error = |message: String| NotifyError::Email {
            target: target.to_owned(),
            host: config.host.clone(),
            port: config.port,
            message,
        };
        let builder = match config.tls {
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| error(e.to_string()))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| error(e.to_string()))?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
        };
        let mut builder = builder.port(config.port).timeout(Some(timeout));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        // Addresses were checked when the config was validated.
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| error(format!("from `{}`: {e}", config.from)))?;
        let to = config
            .to
            .iter()
            .map(|t| t.parse().map_err(|e| error(format!("to `{t}`: {e}"))))
            .collect::<Result<Vec<Mailbox>, _>>()?;
        Ok(Self {
            target: target.to_owned(),
            host: config.host.clone(),
            port: config.port,
            from,
            to,
            transport: builder.build(),
        })
    }

    pub(super) async fn deliver(&self, notice: &Notification) -> Result<(), NotifyError> {
        let error = |message: String| NotifyError::Email {
            target: self.target.clone(),
            host: self.host.clone(),
            port: self.port,
            message,
        };
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(notice.subject())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .body(notice.text())
            .map_err(|e| error(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| error(e.to_string()))
    }
}
