//! Fuzzing support: the entry points of the host's fuzz targets (`fuzz/fuzz_targets/`), shared
//! with the tests that replay their stored corpus (`host/tests/it/fuzz_corpus.rs`). Not part of the
//! crate's API.

use std::path::Path;

use crate::redact::{REDACTED, Redactor};

/// Target `config_parse`: `config::parse` (TOML, `${VAR}` interpolation, validation) on
/// arbitrary text returns Ok or an error, never panics. Variables resolve to a value for short
/// names and are missing otherwise, so both paths of interpolation are reached.
pub fn config_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| (name.len() < 12).then(|| format!("value-of-{name}"));
    if let Err(err) = crate::config::parse(Path::new("fuzz.toml"), text.to_owned(), &env) {
        // Error messages are rendered (with their source excerpt) as a user would see them.
        let _ = err.to_string();
    }
}

/// Target `redact`: after `redact`, no registered secret is left in the text (secrets inside
/// the `[REDACTED]` marker or crossing its brackets excepted: the marker itself forms them).
/// `\u{1}` separates up to three secrets from the text.
pub fn redact(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\u{1}');
    let Some(body) = parts.next() else {
        return;
    };
    let secrets: Vec<String> = parts.take(3).map(str::to_owned).collect();
    let redactor = Redactor::new(secrets.clone());
    let out = redactor.redact(body);
    for s in &secrets {
        if s.len() < 4 || REDACTED.contains(s.as_str()) || s.contains(['[', ']']) {
            continue;
        }
        assert!(
            !out.contains(s.as_str()),
            "secret {s:?} survives in {out:?}"
        );
    }
}
