//! Certificate credentials: `client_certificate` (a PEM holding the app's certificate and its
//! unencrypted private key) signs a client assertion for every token request instead of a
//! client secret.
//!
//! The assertion is the one the Microsoft identity platform documents
//! (<https://learn.microsoft.com/entra/identity-platform/certificate-credentials>): an RFC 7523
//! JWT signed RS256, header `x5t#S256` = the base64url SHA-256 of the certificate's DER,
//! claims `aud` = the token URL, `iss` = `sub` = the client id, a fresh `jti`, `nbf`/`iat` = now
//! and `exp` 5 minutes later (the page: "a short time - 5-10 minutes after nbf at most"). It is
//! sent as `client_assertion` with `client_assertion_type =
//! urn:ietf:params:oauth:client-assertion-type:jwt-bearer`. (The page's current revision shows
//! `alg` PS256; its earlier revisions, MSAL and DESIGN §7.4 use RS256, which Entra accepts.)

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use idhost_connector_sdk::{ConnectorError, ExposeSecret as _, SecretString};

/// How long an assertion is valid: the page asks for 5 to 10 minutes at most.
const LIFETIME: Duration = Duration::from_secs(300);

/// Expiry within this long is warned about by `idhost check`.
const WARN_WITHIN: Duration = Duration::from_secs(30 * 24 * 3600);

/// The certificate and key of `client_certificate`.
pub(crate) struct ClientCertificate {
    key: jsonwebtoken::EncodingKey,
    /// base64url SHA-256 of the DER: the `x5t#S256` header.
    pub(crate) x5t_s256: String,
    /// Hex SHA-1 of the DER: the thumbprint the Azure portal lists under "Certificates".
    pub(crate) sha1_thumbprint: String,
    /// The certificate's subject, RFC 4514.
    pub(crate) subject: String,
    /// Validity, Unix seconds.
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("subject", &self.subject)
            .field("x5t_s256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

fn invalid(message: impl Into<String>) -> ConnectorError {
    ConnectorError::invalid_input(format!("client_certificate: {}", message.into()))
}

impl ClientCertificate {
    /// Reads the PEM: one `CERTIFICATE` block (the first is the app's; any more are its chain)
    /// and one `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1) block.
    pub(crate) fn from_pem(pem_text: &SecretString) -> Result<Self, ConnectorError> {
        let blocks = pem::parse_many(pem_text.expose_secret().as_bytes())
            .map_err(|e| invalid(format!("not PEM text ({e})")))?;
        let mut cert_der = None;
        let mut key = None;
        for block in &blocks {
            match block.tag() {
                "CERTIFICATE" if cert_der.is_none() => cert_der = Some(block.contents().to_vec()),
                "CERTIFICATE" => {}
                "PRIVATE KEY" | "RSA PRIVATE KEY" if key.is_none() => {
                    // jsonwebtoken reads a key from its own PEM block, so the key block is
                    // re-encoded alone (the file may hold the certificate first).
                    let alone = pem::encode(block);
                    key = Some(
                        jsonwebtoken::EncodingKey::from_rsa_pem(alone.as_bytes()).map_err(|e| {
                            invalid(format!("the private key is not an RSA key ({e})"))
                        })?,
                    );
                }
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(invalid(
                        "the private key is encrypted; idhost needs it unencrypted \
                         (`openssl pkcs8 -topk8 -nocrypt`), protected by the file's permissions",
                    ));
                }
                _ => {}
            }
        }
        let der = cert_der.ok_or_else(|| invalid("no `BEGIN CERTIFICATE` block"))?;
        let key = key.ok_or_else(|| invalid("no `BEGIN PRIVATE KEY` block"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| invalid(format!("the certificate does not parse ({e})")))?;
        let validity = cert.validity();
        let x5t_s256 = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(ring::digest::digest(&ring::digest::SHA256, &der));
        let sha1_thumbprint = hex_upper(&sha1_of(&der));
        Ok(Self {
            key,
            x5t_s256,
            sha1_thumbprint,
            subject: cert.subject().to_string(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// Seconds since the epoch, now.
    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    /// Refuses a certificate outside its validity: Entra would answer AADSTS700027 for an
    /// expired key, so no request is sent with one.
    pub(crate) fn check_valid_now(&self) -> Result<(), ConnectorError> {
        let now = i64::try_from(Self::now()).unwrap_or(i64::MAX);
        if now >= self.not_after {
            return Err(ConnectorError::unauthenticated(format!(
                "client_certificate `{}` (thumbprint {}) expired on {}; upload a new certificate \
                 to the app registration and point client_certificate at it",
                self.subject,
                self.sha1_thumbprint,
                rfc3339(self.not_after)
            )));
        }
        if now < self.not_before {
            return Err(ConnectorError::unauthenticated(format!(
                "client_certificate `{}` (thumbprint {}) is not valid before {}",
                self.subject,
                self.sha1_thumbprint,
                rfc3339(self.not_before)
            )));
        }
        Ok(())
    }

    /// What `idhost check` says about the certificate, and whether it is a warning.
    pub(crate) fn describe(&self) -> (String, bool) {
        let now = i64::try_from(Self::now()).unwrap_or(i64::MAX);
        let left = self.not_after - now;
        let base = format!(
            "client certificate subject `{}`, thumbprint {} (x5t#S256 {}), expires {}",
            self.subject,
            self.sha1_thumbprint,
            self.x5t_s256,
            rfc3339(self.not_after)
        );
        if left <= 0 {
            (format!("{base}: EXPIRED"), true)
        } else if u64::try_from(left).unwrap_or(0) < WARN_WITHIN.as_secs() {
            (
                format!(
                    "{base}: expires in {} day(s); upload a new certificate before then",
                    left / 86_400
                ),
                true,
            )
        } else {
            (base, false)
        }
    }

    /// A fresh client assertion for `client_id` at `token_url`.
    pub(crate) fn assertion(
        &self,
        client_id: &str,
        token_url: &str,
    ) -> Result<SecretString, ConnectorError> {
        let now = Self::now();
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.typ = Some("JWT".to_owned());
        header.x5t_s256 = Some(self.x5t_s256.clone());
        let claims = Claims {
            aud: token_url,
            iss: client_id,
            sub: client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: now,
            iat: now,
            exp: now + LIFETIME.as_secs(),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map(SecretString::from)
            .map_err(|e| ConnectorError::internal(format!("signing the client assertion: {e}")))
    }
}

fn sha1_of(der: &[u8]) -> Vec<u8> {
    // The portal's thumbprint is SHA-1: shown for matching, never used to sign or verify.
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der)
        .as_ref()
        .to_vec()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}
