//! Secret redaction: every configured secret and every bearer credential seen in a request is
//! replaced before a message is logged, stored or printed — in every form it takes in text
//! (DESIGN §7.3): raw, percent-encoded (`%20` and form `+`), JSON-escaped, and inside an HTTP
//! Basic credential (base64 of `id:secret`).
//!
//! There is one process-wide set ([`global`]): every secret any redactor learns is added to it,
//! and every redactor applies it, so a secret of one part of the config (a sink's URL, a notify
//! password) is redacted in the messages of every other part.

use std::sync::{Arc, LazyLock, RwLock};

use base64::Engine as _;

/// What a redacted secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// A set of secret strings to scrub from text. Cheap to clone; clones share the set.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Secrets>>,
}

#[derive(Debug, Default)]
struct Secrets {
    /// The secrets as given.
    raw: Vec<String>,
    /// Every form each takes in text, longest first.
    forms: Vec<String>,
}

static GLOBAL: LazyLock<Redactor> = LazyLock::new(Redactor::default);

/// The process-wide redactor: every secret of the config and every credential a plugin sent.
pub fn global() -> &'static Redactor {
    &GLOBAL
}

/// `text` with every secret the process knows replaced by [`REDACTED`].
pub fn redact(text: &str) -> String {
    GLOBAL.redact_own(text)
}

/// The forms `secret` takes in text: as is, percent-encoded (upper and lower case hex, spaces as
/// `%20` or `+`), JSON-escaped (with `/` escaped or not).
fn forms_of(secret: &str) -> Vec<String> {
    const FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'*');
    // WHATWG `application/x-www-form-urlencoded` (the `url` crate's form serializer, which
    // oauth2 and reqwest use) keeps `*-._` and writes `~` as `%7E`.
    const WHATWG_FORM: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'*');
    let mut forms = vec![secret.to_owned()];
    // RFC 3986 keeps `~` (and form encoders `*`); older encoders write `%7E`. Spaces are `%20`
    // or, in a form body, `+`; the hex digits either case.
    for set in [FORM, WHATWG_FORM, percent_encoding::NON_ALPHANUMERIC] {
        let encoded = percent_encoding::utf8_percent_encode(secret, set).to_string();
        for hex in [encoded.clone(), lower_hex(&encoded)] {
            forms.push(hex.replace("%20", "+"));
            forms.push(hex);
        }
    }
    if let Ok(json) = serde_json::to_string(secret) {
        let inner = json
            .strip_prefix('"')
            .and_then(|j| j.strip_suffix('"'))
            .unwrap_or(&json)
            .to_owned();
        forms.push(inner.replace('/', "\\/"));
        forms.push(inner);
    }
    forms.sort();
    forms.dedup();
    forms
}

/// `%2f` for `%2F`: the hex digits of every escape in lower case.
fn lower_hex(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at..at + 3).unwrap_or(&rest[at..]);
        out.push_str(&escape.to_ascii_lowercase());
        rest = &rest[at + escape.len()..];
    }
    out.push_str(rest);
    out
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

    /// Adds a secret (e.g. a token a plugin sent in an `Authorization` header), here and to the
    /// process-wide set.
    pub fn add(&self, secret: String) {
        if secret.len() < 4 {
            return;
        }
        if !Arc::ptr_eq(&self.secrets, &GLOBAL.secrets) {
            GLOBAL.add_own(secret.clone());
        }
        self.add_own(secret);
    }

    fn add_own(&self, secret: String) {
        if let Ok(mut secrets) = self.secrets.write()
            && !secrets.raw.contains(&secret)
        {
            let forms = forms_of(&secret);
            secrets.raw.push(secret);
            for form in forms {
                if !secrets.forms.contains(&form) {
                    secrets.forms.push(form);
                }
            }
            // Longest first, so a secret containing another is replaced whole.
            secrets.forms.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// `text` with every secret (this redactor's and the process's) replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let own = self.redact_own(text);
        if Arc::ptr_eq(&self.secrets, &GLOBAL.secrets) {
            own
        } else {
            GLOBAL.redact_own(&own)
        }
    }

    fn redact_own(&self, text: &str) -> String {
        let Ok(secrets) = self.secrets.read() else {
            return text.to_owned();
        };
        if secrets.raw.is_empty() {
            return text.to_owned();
        }
        let mut out = text.to_owned();
        for s in &secrets.forms {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
        redact_basic(&out, &secrets.raw)
    }

    /// Whether `text` contains a secret (in any form).
    pub fn leaks(&self, text: &str) -> bool {
        self.redact(text) != text
    }
}

/// `text` with every base64 word that decodes to text holding a secret (an HTTP Basic
/// credential `base64(id:secret)`) replaced.
fn redact_basic(text: &str, secrets: &[String]) -> String {
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '-' | '_');
    let mut out = String::with_capacity(text.len());
    let mut word_start: Option<usize> = None;
    let flush = |out: &mut String, word: &str| {
        if word.len() >= 8 && holds_secret(word, secrets) {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
    };
    for (i, c) in text.char_indices() {
        if is_b64(c) {
            word_start.get_or_insert(i);
        } else {
            if let Some(start) = word_start.take() {
                flush(&mut out, &text[start..i]);
            }
            out.push(c);
        }
    }
    if let Some(start) = word_start {
        flush(&mut out, &text[start..]);
    }
    out
}

fn holds_secret(word: &str, secrets: &[String]) -> bool {
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    engines.iter().any(|engine| {
        engine.decode(word).is_ok_and(|bytes| {
            let decoded = String::from_utf8_lossy(&bytes);
            secrets.iter().any(|s| decoded.contains(s.as_str()))
        })
    })
}

/// Whether a settings key names a credential even if no manifest says so. A URL (`token_url`,
/// `login_url`) is an address, not a credential.
pub fn looks_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key.ends_with("url") || key.ends_with("uri") || key.ends_with("endpoint") {
        return false;
    }
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

    #[test]
    fn redacts_encoded_forms_and_basic_credentials() {
        let secret = "s3cr~et/with space+\"quote\"";
        let r = Redactor::new([secret.to_owned()]);
        let form = "client_secret=s3cr%7Eet%2Fwith+space%2B%22quote%22&grant_type=x";
        assert!(!r.redact(form).contains("s3cr"), "{}", r.redact(form));
        let pct = "secret: s3cr~et%2Fwith%20space%2B%22quote%22";
        assert!(!r.redact(pct).contains("s3cr"), "{}", r.redact(pct));
        let lower = "s3cr~et%2fwith%20space%2b%22quote%22";
        assert!(!r.redact(lower).contains("s3cr"), "{}", r.redact(lower));
        let json = serde_json::json!({ "client_secret": secret }).to_string();
        assert!(!r.redact(&json).contains("s3cr"), "{}", r.redact(&json));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("client-id:{secret}"));
        let header = format!("Authorization: Basic {basic}, again");
        assert_eq!(r.redact(&header), "Authorization: Basic [REDACTED], again");
        assert!(!looks_secret("token_url"));
        assert!(looks_secret("client_secret"));
    }

    #[test]
    fn a_secret_any_redactor_learns_is_redacted_by_every_other() {
        let a = Redactor::new(["only-in-a-0123".to_owned()]);
        let b = Redactor::default();
        assert_eq!(b.redact("x only-in-a-0123 y"), "x [REDACTED] y");
        assert_eq!(redact("only-in-a-0123"), REDACTED);
        drop(a);
    }
}
