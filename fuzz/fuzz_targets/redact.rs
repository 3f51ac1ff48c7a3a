//! The host's redactor: after `redact`, no registered secret is left in the text (secrets that
//! inside the `[REDACTED]` marker or crossing its brackets excepted: the marker itself forms them).
#![no_main]

use idhost::redact::{REDACTED, Redactor};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `\u{1}` separates up to three secrets from the text.
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
        assert!(!out.contains(s.as_str()), "secret {s:?} survives in {out:?}");
    }
});
