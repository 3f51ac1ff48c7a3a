//! Secret redaction: every configured secret and every bearer credential seen in a request is
//! replaced before a message is logged, stored or printed.

use std::sync::{Arc, RwLock};

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// A set of secret strings to scrub from text. Cheap to clone; clones share the set.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    /// A redactor for `secrets` (values shorter than 4 characters are ignored: redacting "1"
    /// everywhere would make every message unreadable and protect nothing).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let r = Self::default();
        for s in secrets {
            r.add(s);
        }
        r
    }

    /// Adds a secret (e.g. a token a plugin sent in an `Authorization` header).
    pub fn add(&self, secret: String) {
        if secret.len() < 4 {
            return;
        }
        if let Ok(mut secrets) = self.secrets.write()
            && !secrets.contains(&secret)
        {
            secrets.push(secret);
            // Longest first, so a secret containing another is replaced whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let Ok(secrets) = self.secrets.read() else {
            return text.to_owned();
        };
        let mut out = text.to_owned();
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        out
    }

    /// Whether `text` contains a secret.
    pub fn leaks(&self, text: &str) -> bool {
        self.secrets
            .read()
            .map(|s| s.iter().any(|secret| text.contains(secret.as_str())))
            .unwrap_or(false)
    }
}

/// Whether a settings key names a credential even if no manifest says so.
pub fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "secret",
        "token",
        "password",
        "api_key",
        "apikey",
        "private_key",
        "credential",
    ]
    .iter()
    .any(|s| key.contains(s))
}

/// The credential inside an `Authorization` header value (`Bearer x`, `Basic x`), to redact.
pub fn credential_of(header_value: &str) -> Option<&str> {
    let (_scheme, credential) = header_value.split_once(' ')?;
    let credential = credential.trim();
    (!credential.is_empty()).then_some(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_secret_longest_first() {
        let r = Redactor::new(["abcd".to_owned(), "abcdef".to_owned(), "x".to_owned()]);
        assert_eq!(
            r.redact("token abcdef and abcd, x"),
            "token [REDACTED] and [REDACTED], x"
        );
        assert!(r.leaks("..abcd.."));
        assert!(!r.leaks("nothing"));
        assert_eq!(credential_of("Bearer tok123"), Some("tok123"));
    }
}
